"""The narrow interface the bot needs from the triage side (runbook engine + diagnosis).

The bot never runs commands or parses output itself; it asks a ``TriageService`` and shows what
comes back. ``bot.wiring`` provides the implementation over the real runbook engine; tests and the
demo use that same implementation against a real sshd or the lab VM.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from runbooks.findings import Diagnosis

__all__ = ["BondListing", "RawOutput", "StepProgress", "TriageReport", "TriageService", "UnknownTarget"]


class UnknownTarget(ValueError):
    """The host (or group) is not in the inventory, or the bond name is invalid; nothing ran."""


@dataclass(frozen=True)
class StepProgress:
    name: str
    status: Literal["pending", "running", "ok", "failed", "skipped"]
    detail: str = ""


@dataclass(frozen=True)
class RawOutput:
    command: str
    text: str
    exit_status: int | None = 0


@dataclass(frozen=True)
class TriageReport:
    diagnosis: Diagnosis | None
    outputs: tuple[RawOutput, ...]
    steps: tuple[StepProgress, ...]
    error: str | None = None


@dataclass(frozen=True)
class BondListing:
    """The bonds a host has. ``bonds`` None: they could not be listed (``error``; ``unreachable``
    when the host itself could not be reached); empty: the host has no bond (``why_none``)."""

    bonds: tuple[str, ...] | None
    error: str | None = None
    why_none: str = ""
    unreachable: bool = False


OnStep = Callable[[StepProgress], Awaitable[None]]


class TriageService(Protocol):
    def resolve(self, host: str, bond: str | None) -> tuple[str, str | None]:
        """The inventory host name and the bond named (the command's, else the inventory's, else
        None: discover). Never a guess.

        Raises ``UnknownTarget`` with a message for the user when the host is not in the inventory.
        """
        ...

    async def bonds(self, host: str) -> BondListing:
        """The bonds ``host`` has; never raises for host problems."""
        ...

    def step_names(self, host: str, bond: str) -> list[str]:
        """The triage steps, in order, for the progress display before they run."""
        ...

    async def run(
        self, host: str, bond: str, *, incident_id: str, actor: str, on_step: OnStep
    ) -> TriageReport:
        """Run the triage on ``host``; never raises for host problems (they come back in ``error``)."""
        ...

    def group_hosts(self, group: str | None) -> list[tuple[str, str | None]]:
        """(host, bond or None) of every inventory host in ``group`` (all if None); ``UnknownTarget``."""
        ...
