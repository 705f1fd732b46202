"""Run one coroutine per item with bounded concurrency: ``bondbot audit`` over many hosts."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["Outcome", "fan_out"]

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Outcome(Generic[T, R]):
    """What happened for one item: ``value`` on success, ``error`` (an exception) otherwise."""

    item: T
    value: R | None = None
    error: BaseException | None = None


async def fan_out(
    items: Iterable[T],
    work: Callable[[T], Awaitable[R]],
    *,
    concurrency: int = 50,
    on_done: Callable[[Outcome[T, R]], None] | None = None,
) -> list[Outcome[T, R]]:
    """Apply ``work`` to every item, at most ``concurrency`` at once; outcomes in input order.

    One item's failure never stops the others: its exception is kept in its ``Outcome``. Workers
    pull from a shared queue instead of one task per item, so 10,000 items cost 50 tasks.
    """
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    todo = list(enumerate(items))
    results: list[Outcome[T, R] | None] = [None] * len(todo)
    queue = iter(todo)

    async def worker() -> None:
        for index, item in queue:
            try:
                outcome: Outcome[T, R] = Outcome(item, value=await work(item))
            except Exception as exc:  # one host's failure is that host's result
                outcome = Outcome(item, error=exc)
            results[index] = outcome
            if on_done is not None:
                on_done(outcome)

    await asyncio.gather(*(worker() for _ in range(min(concurrency, len(todo)) or 1)))
    return [r for r in results if r is not None]
