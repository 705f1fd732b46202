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

__all__ = ["RawOutput", "StepProgress", "TriageReport", "TriageService", "UnknownTarget"]


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


OnStep = Callable[[StepProgress], Awaitable[None]]


class TriageService(Protocol):
    def resolve(self, host: str, bond: str | None) -> tuple[str, str]:
        """The inventory host name and the bond to triage (the inventory's default if None).

        Raises ``UnknownTarget`` with a message for the user when the host is not in the inventory.
        """
        ...

    def step_names(self, host: str, bond: str) -> list[str]:
        """The triage steps, in order, for the progress display before they run."""
        ...

    async def run(
        self, host: str, bond: str, *, incident_id: str, actor: str, on_step: OnStep
    ) -> TriageReport:
        """Run the triage on ``host``; never raises for host problems (they come back in ``error``)."""
        ...

    def group_hosts(self, group: str | None) -> list[tuple[str, str]]:
        """(host, bond) of every inventory host in ``group`` (all hosts if None); ``UnknownTarget``."""
        ...
