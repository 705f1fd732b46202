"""What the bot needs from the remediation actions (the fix and the failover test), and no more.

The remediation itself (building the exact ``nmcli`` commands, recording the rollback first,
running them over SSH, verifying) belongs to the runbook layer. The bot only shows a plan, asks a
human to approve *that* plan, and hands the approved plan back. This module is the narrow seam
between the two: structural protocols any implementation can satisfy without importing the bot.
An approval is bound to the plan's ``runbooks.plan.Plan.digest`` (the ``plan`` attribute, or the
plan itself): there is no other hash.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Literal, Protocol, runtime_checkable

__all__ = [
    "ActionKind",
    "Notify",
    "PlanLike",
    "ResultLike",
    "Remediation",
]

ActionKind = Literal["fix", "failover_test"]


@runtime_checkable
class PlanLike(Protocol):
    """A change proposed for approval: exactly what will run, and how to undo it.

    ``method`` says how a failover test provokes the failure (e.g. "carrier loss on eno1 via
    ``ip link set eno1 down``"); for the fix it is a short description of the change.
    """

    # Read-only members (properties), so that frozen dataclasses such as bot.wiring.DomainPlan match.
    @property
    def host(self) -> str: ...
    @property
    def bond(self) -> str: ...
    @property
    def commands(self) -> Sequence[str]: ...
    @property
    def rollback(self) -> Sequence[str]: ...
    @property
    def title(self) -> str: ...
    @property
    def method(self) -> str: ...
    @property
    def plan_hash(self) -> str:
        """``plan.digest``: what the approval refers to."""
        ...


@runtime_checkable
class ResultLike(Protocol):
    """How an approved action went: ``ok`` only when it ran *and* verified."""

    @property
    def ok(self) -> bool: ...
    @property
    def summary(self) -> str: ...


Notify = Callable[[str], Awaitable[None]]


class Remediation(Protocol):
    """The remediation actions, as the bot calls them.

    ``plan_*`` return None when there is nothing to do (e.g. the bond already has link
    monitoring) and raise with a message for the channel when the action cannot be offered (e.g.
    the failover test before the fix: no link monitoring). They read the current state of the
    host, so calling them again right before running is how the bot re-checks that the approved
    plan still applies. ``approved_hash`` is the plan's own ``plan_hash`` as it was shown and
    approved: the domain refuses to run a plan whose hash differs. ``apply_fix`` and
    ``run_failover_test`` write their commands, rollback notes and verification to the incident.

    Optional: ``async read_state(host, bond)``, one reading of the host for every offer made
    together; then ``plan_fix`` / ``plan_failover_test`` also take ``state=`` (that reading) and
    plan from it without reading again (``bot.proposals``). A click plans without it.
    """

    def failover_methods(self) -> tuple[str, ...]:
        """How this bot can cut the active port for a failover test (e.g. ``("manual", "host")``)."""
        ...

    async def plan_fix(self, host: str, bond: str) -> PlanLike | None: ...

    async def apply_fix(
        self, plan: PlanLike, *, incident_id: str, actor: str, approved_hash: str
    ) -> ResultLike: ...

    async def plan_failover_test(self, host: str, bond: str, method: str) -> PlanLike | None: ...

    async def run_failover_test(
        self, plan: PlanLike, *, incident_id: str, actor: str, approved_hash: str, notify: Notify
    ) -> ResultLike:
        """Run the approved test; clicking "confirm" on the dialog (which says the test needs a
        maintenance window) is the operator's confirmation of one. ``notify`` posts to the
        incident's thread (the ``manual`` method tells the operator when to shut the port)."""
        ...
