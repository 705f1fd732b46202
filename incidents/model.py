"""The incident log's vocabulary: statuses, event kinds and the records the store returns.

Records are frozen dataclasses: what the store hands out is a copy of what is stored, never a live
row, so nothing a caller does to it can change the log.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Status",
    "EventKind",
    "TRANSITIONS",
    "RESERVED_KINDS",
    "Incident",
    "Event",
    "Approval",
    "Break",
    "VerifyResult",
]


class Status(str, enum.Enum):
    """Where an incident is in its life cycle."""

    OPEN = "open"
    DIAGNOSED = "diagnosed"
    FIXING = "fixing"
    VERIFIED = "verified"
    ROLLED_BACK = "rolled_back"
    CLOSED = "closed"


#: Allowed status changes. ``closed`` is final: a new problem on the same bond is a new incident.
TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.OPEN: frozenset({Status.DIAGNOSED, Status.CLOSED}),
    Status.DIAGNOSED: frozenset({Status.FIXING, Status.CLOSED}),
    Status.FIXING: frozenset({Status.VERIFIED, Status.ROLLED_BACK}),
    Status.VERIFIED: frozenset({Status.CLOSED, Status.ROLLED_BACK}),
    Status.ROLLED_BACK: frozenset({Status.DIAGNOSED, Status.FIXING, Status.CLOSED}),
    Status.CLOSED: frozenset(),
}


class EventKind(str, enum.Enum):
    """What an event records. Payload conventions (keys) are documented in the README."""

    OPENED = "opened"  # first event: host, bond, requester, channel
    TRIAGE_STEP = "triage_step"
    FINDING = "finding"
    DIAGNOSIS = "diagnosis"
    ROOT_CAUSE = "root_cause"
    PROPOSAL = "proposal"
    APPROVAL = "approval"
    REFUSAL = "refusal"
    COMMAND = "command"
    VERIFICATION = "verification"
    ROLLBACK_NOTE = "rollback_note"
    ROLLBACK = "rollback"
    NOTE = "note"
    EXPORT = "export"
    STATUS_CHANGE = "status_change"


#: Kinds only the store itself writes, because they must agree with other rows (the incident row,
#: the approvals table); ``append`` refuses them.
RESERVED_KINDS: frozenset[EventKind] = frozenset(
    {EventKind.OPENED, EventKind.STATUS_CHANGE, EventKind.ROOT_CAUSE, EventKind.APPROVAL}
)


@dataclass(frozen=True)
class Incident:
    """One incident: a bond on a host, who asked, and where it stands."""

    id: str
    host: str
    bond: str
    requester: str
    channel: str
    status: Status
    root_cause: str | None
    created_at: str  # UTC, ISO 8601 with milliseconds, e.g. 2025-01-31T09:15:02.123Z
    head_seq: int
    head_hash: str

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "host": self.host,
            "bond": self.bond,
            "requester": self.requester,
            "channel": self.channel,
            "status": self.status.value,
            "root_cause": self.root_cause,
            "created_at": self.created_at,
            "head_seq": self.head_seq,
            "head_hash": self.head_hash,
        }


@dataclass(frozen=True)
class Event:
    """One entry of an incident's log; ``hash`` covers every other field, ``prev_hash`` included."""

    incident_id: str
    seq: int
    ts: str
    actor: str
    kind: str
    payload: dict[str, Any] = field(hash=False)
    prev_hash: str
    hash: str

    def to_json(self) -> dict[str, Any]:
        return {
            "incident_id": self.incident_id,
            "seq": self.seq,
            "ts": self.ts,
            "actor": self.actor,
            "kind": self.kind,
            "payload": self.payload,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


@dataclass(frozen=True)
class Approval:
    """Who approved which plan (by its hash) when; ``seq`` is the approval event in the log."""

    incident_id: str
    plan_hash: str
    approver: str
    approved_at: str
    seq: int
    key: str

    def to_json(self) -> dict[str, Any]:
        return {
            "incident_id": self.incident_id,
            "plan_hash": self.plan_hash,
            "approver": self.approver,
            "approved_at": self.approved_at,
            "seq": self.seq,
            "key": self.key,
        }


@dataclass(frozen=True)
class Break:
    """The first place where the stored log disagrees with its own hashes."""

    seq: int
    reason: str


@dataclass(frozen=True)
class VerifyResult:
    """The outcome of ``IncidentStore.verify``: ``ok`` or the first broken link."""

    incident_id: str
    events: int
    head_hash: str | None
    first_break: Break | None = None

    @property
    def ok(self) -> bool:
        return self.first_break is None

    def __str__(self) -> str:
        if self.first_break is None:
            return f"{self.incident_id}: chain valid ({self.events} events, head {self.head_hash})"
        b = self.first_break
        return f"{self.incident_id}: chain BROKEN at seq {b.seq}: {b.reason}"

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "events": self.events,
            "head_hash": self.head_hash,
            "first_break": (
                None
                if self.first_break is None
                else {"seq": self.first_break.seq, "reason": self.first_break.reason}
            ),
        }
