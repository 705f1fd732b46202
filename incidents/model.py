"""The incident log's vocabulary: statuses, event kinds and the records the store returns.

Records are frozen dataclasses: what the store hands out is a copy of what is stored, never a live
row, so nothing a caller does to it can change the log.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
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
    "Lease",
    "WORK_KINDS",
    "Break",
    "VerifyResult",
]


class Status(str, enum.Enum):
    """Where an incident is in its life cycle."""

    OPEN = "open"
    INCONCLUSIVE = "inconclusive"  # triaged, but the bond's state could not be fully read: not healthy
    DIAGNOSED = "diagnosed"
    FIXING = "fixing"
    VERIFIED = "verified"
    ROLLED_BACK = "rolled_back"
    #: The triage or change running on it stopped without a result (the replica running it was
    #: stopped or died); the ``interrupted`` event says what was cut, where, and the host's state.
    INTERRUPTED = "interrupted"
    CLOSED = "closed"


#: Allowed status changes. ``closed`` is final: a new problem on the same subject is a new incident.
#: Any incident not closed can be interrupted; an interrupted one goes on once the work is re-run
#: (or a result that arrived late is recorded).
TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.OPEN: frozenset({Status.DIAGNOSED, Status.INCONCLUSIVE, Status.CLOSED, Status.INTERRUPTED}),
    # Inconclusive: a later triage that reads everything may still find the cause.
    Status.INCONCLUSIVE: frozenset({Status.DIAGNOSED, Status.CLOSED, Status.INTERRUPTED}),
    Status.DIAGNOSED: frozenset({Status.FIXING, Status.CLOSED, Status.INTERRUPTED}),
    Status.FIXING: frozenset({Status.VERIFIED, Status.ROLLED_BACK, Status.INTERRUPTED}),
    Status.VERIFIED: frozenset({Status.CLOSED, Status.ROLLED_BACK, Status.INTERRUPTED}),
    Status.ROLLED_BACK: frozenset({Status.DIAGNOSED, Status.FIXING, Status.CLOSED, Status.INTERRUPTED}),
    Status.INTERRUPTED: frozenset(
        {Status.DIAGNOSED, Status.INCONCLUSIVE, Status.FIXING, Status.VERIFIED, Status.ROLLED_BACK, Status.CLOSED}
    ),
    Status.CLOSED: frozenset(),
}


class EventKind(str, enum.Enum):
    """What an event records. Payload conventions (keys) are documented in the README."""

    OPENED = "opened"  # first event: host, runbook, subject, requester, channel (before 0003: bond)
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
    INTERRUPTED = "interrupted"  # work, reason, owner, and for a change: where it was cut, host state


#: Kinds only the store itself writes, because they must agree with other rows (the incident row,
#: the approvals table, the leases); ``append`` refuses them.
RESERVED_KINDS: frozenset[EventKind] = frozenset(
    {EventKind.OPENED, EventKind.STATUS_CHANGE, EventKind.ROOT_CAUSE, EventKind.APPROVAL, EventKind.INTERRUPTED}
)

#: What a lease can cover: work that runs for a while on a host and must end with a result
#: (``action``: a runbook's own action, named in the lease's detail).
WORK_KINDS: frozenset[str] = frozenset({"triage", "fix", "failover_test", "action"})


@dataclass(frozen=True)
class Incident:
    """One incident: a runbook's subject on a host (bonding: one bond), who asked, and where it stands.

    ``subject`` is what the runbook's triage is about, as the runbook names it (``{"bond": "bond1"}``;
    empty for a runbook about the host itself); ``bond`` reads ``subject["bond"]`` for the bonding
    runbook's callers (None for other runbooks).
    """

    id: str
    host: str
    runbook: str
    subject: Mapping[str, str] = field(hash=False)
    requester: str = ""
    channel: str = ""
    status: Status = Status.OPEN
    root_cause: str | None = None
    created_at: str = ""  # UTC, ISO 8601 with milliseconds, e.g. 2025-01-31T09:15:02.123Z
    head_seq: int = 0
    head_hash: str = ""

    @property
    def bond(self) -> str | None:
        """``subject["bond"]`` (bonding runbook callers): read-only."""
        return self.subject.get("bond")

    @property
    def about(self) -> str:
        """The subject in words (``bond0``), or the runbook's name for a host-level runbook."""
        return " ".join(self.subject.values()) or self.runbook

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "host": self.host,
            "runbook": self.runbook,
            "subject": dict(self.subject),
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
class Lease:
    """Running work (a triage, a fix, a failover test) and the bot replica that owns it.

    The owner renews ``expires_at`` while it runs (its heartbeat). A lease whose ``expires_at`` has
    passed belongs to a replica that stopped or died: any live replica may take it over (once, by
    a compare-and-set on owner and expiry) and record the work as interrupted. ``taken_over_from``
    is the owner that died, once another replica holds the lease to recover it.
    """

    key: str
    incident_id: str
    work: str
    owner: str
    started_at: str
    heartbeat_at: str
    expires_at: str
    detail: dict[str, Any] = field(hash=False)
    taken_over_from: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "incident_id": self.incident_id,
            "work": self.work,
            "owner": self.owner,
            "started_at": self.started_at,
            "heartbeat_at": self.heartbeat_at,
            "expires_at": self.expires_at,
            "detail": self.detail,
            "taken_over_from": self.taken_over_from,
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
