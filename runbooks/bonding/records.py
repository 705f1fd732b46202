"""What a remediation action leaves behind: checks, the commands it ran, the incident log.

Shared by the fix (``fix_apply``) and the failover test (``failover``), so that both record the
same way: every event goes to the incident log when a store and an incident are given, and
nothing is recorded (and nothing fails) when they are not, e.g. for ``bondbot fix`` without an
incident.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runbooks.bonding.fix_plan import FixPlan

__all__ = ["Check", "StepRecord", "IncidentRecorder"]


@dataclass(frozen=True)
class Check:
    """One verification check and what proved it (or did not)."""

    name: str
    ok: bool
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail}


@dataclass(frozen=True)
class StepRecord:
    """One command that was run, with its result."""

    purpose: str
    command: str
    exit_status: int | None
    stdout: str
    stderr: str
    duration: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class IncidentRecorder:
    """Writes to the incident log when given one; does nothing otherwise."""

    def __init__(self, store: Any, incident_id: str | None, actor: str) -> None:
        self.store, self.incident_id, self.actor = store, incident_id, actor

    @property
    def active(self) -> bool:
        return self.store is not None and self.incident_id is not None

    def event(self, kind: str, payload: dict[str, Any]) -> None:
        if self.active:
            self.store.append(self.incident_id, actor=self.actor, kind=kind, payload=payload)

    def rollback_note(self, plan: FixPlan) -> None:
        if not self.active:
            return
        note = plan.rollback_note()
        self.store.add_rollback_note(
            self.incident_id, actor=self.actor, before=note, restore_commands=note["restore_commands"],
            for_change=f"plan {plan.plan_hash[:12]}: {plan.summary()}")

    def status(self, status: str, reason: str) -> None:
        if self.active and hasattr(self.store, "set_status"):
            try:
                self.store.set_status(self.incident_id, status, actor=self.actor, reason=reason)
            except Exception as exc:  # an incident already in another state: record, do not fail the fix
                self.event("note", {"text": f"status not changed to {status}: {exc}"})
