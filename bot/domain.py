"""The narrow interface the bot needs from the triage side (runbook engine + diagnosis).

The bot never runs commands or parses output itself; it asks a ``TriageService`` and shows what
comes back. ``bot.wiring`` provides the implementation over the real runbook engine; tests and the
demo use that same implementation against a real sshd or the lab VM.

It knows no runbook in particular: a triage is a runbook (by name, from the registry; the
service's default when none is named) on a host and, when the runbook has one, a *subject* (the
value of its subject parameter: a bond for the bonding runbook). ``RunbookInfo`` says how the
runbook speaks of its subjects, so the messages read "No bond on web-01" for bonding and need no
bonding of their own. ``BondListing`` and ``bonds`` are the bonding runbook's names for
``SubjectListing`` and ``subjects``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from runbooks.findings import Diagnosis
from runbooks.plan import Plan

__all__ = ["BondListing", "RawOutput", "RunbookInfo", "StepProgress", "SubjectListing", "TriageReport",
           "TriageService", "UnknownTarget"]


class UnknownTarget(ValueError):
    """The host (or group) is not in the inventory, the runbook is unknown, or the subject is not a
    valid value of its type; nothing ran."""


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
class RunbookInfo:
    """What the bot needs to know of a runbook to talk about it. ``param`` None: the runbook is
    about the host itself; ``discovers``: it can list a host's subjects (else one must be named)."""

    name: str
    title: str = ""
    param: str | None = None
    noun: str = ""
    plural: str = ""
    discovers: bool = False
    actions: tuple[str, ...] = ()
    #: The actions whose steps are data in the runbook (planned and run by the engine, not by the
    #: bot's remediation), e.g. the test runbook's ``sync``.
    data_actions: tuple[str, ...] = ()


@dataclass(frozen=True)
class SubjectListing:
    """The subjects a host has. ``subjects`` None: they could not be listed (``error``;
    ``unreachable`` when the host itself could not be reached); empty: none (``why_none``)."""

    subjects: tuple[str, ...] | None
    error: str | None = None
    why_none: str = ""
    unreachable: bool = False

    @property
    def bonds(self) -> tuple[str, ...] | None:
        """``subjects`` (bonding runbook callers): read-only."""
        return self.subjects


#: The bonding runbook's callers' name for it.
BondListing = SubjectListing

OnStep = Callable[[StepProgress], Awaitable[None]]


class TriageService(Protocol):
    #: Where runbook names are found beside the built-in ones (``os.pathsep``-separated; the
    #: caller's setting, ``BONDBOT_RUNBOOKS`` for ``serve``): ``/bond triage --runbook`` is parsed with it.
    runbooks: str

    def runbook(self, name: str | None = None) -> RunbookInfo:
        """The runbook ``name`` (the service's default when None); ``UnknownTarget`` if unknown."""
        ...

    def resolve(self, host: str, subject: str | None, *, runbook: str | None = None) -> tuple[str, str | None]:
        """The inventory host name and the subject named (the command's, else the inventory's for
        this runbook, else None: discover). Never a guess.

        Raises ``UnknownTarget`` with a message for the user when the host is not in the inventory,
        the runbook is unknown or the subject is not a valid value.
        """
        ...

    async def subjects(self, host: str, *, runbook: str | None = None) -> SubjectListing:
        """The subjects ``host`` has (a runbook about the host: none to list); never raises for host problems."""
        ...

    async def bonds(self, host: str) -> SubjectListing:
        """``subjects`` of the default runbook (the bonding runbook's callers)."""
        ...

    def step_names(self, host: str, subject: str | None, *, runbook: str | None = None) -> list[str]:
        """The triage steps, in order, for the progress display before they run."""
        ...

    async def run(
        self, host: str, subject: str | None, *, incident_id: str, actor: str, on_step: OnStep,
        runbook: str | None = None,
    ) -> TriageReport:
        """Run the triage on ``host``; never raises for host problems (they come back in ``error``)."""
        ...

    def group_hosts(self, group: str | None, *, runbook: str | None = None) -> list[tuple[str, str | None]]:
        """(host, subject or None) of every inventory host in ``group`` (all if None); ``UnknownTarget``."""
        ...

    def plan_action(self, runbook: str, action: str, host: str, subject: Mapping[str, str]) -> Plan | None:
        """The ``runbooks.plan.Plan`` of one of the runbook's data actions (None: not a data action)."""
        ...

    async def run_action(self, plan: Plan, *, incident_id: str, actor: str) -> Any:
        """Run an approved data action's plan by role; its commands go to the incident log.
        Returns an object with ``ok`` and ``summary``."""
        ...
