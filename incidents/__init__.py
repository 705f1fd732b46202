"""The incident log: append-only, hash-chained events in SQLite or PostgreSQL, and timeline export.

Public API::

    store = IncidentStore.open(url)       # "sqlite:///path" or "postgresql+psycopg://..."
    inc = store.create_incident(host="web-01", runbook="bonding", subject={"bond": "bond0"},
                                requester="U123", channel="#ops")   # bond="bond0": the same
    store.append(inc.id, actor="bot", kind="command", payload={"command": "...", "exit_status": 0})
    store.add_rollback_note(inc.id, actor="bot", before={...}, restore_commands=[...], for_change="...")
    store.record_approval(inc.id, actor="U123", plan_hash="...")   # None if already approved
    store.claim("run:INC-7K3F:<plan_hash>", actor="bot")           # True exactly once, across replicas
    lease = store.take_lease(inc.id, work="triage", owner="replica-a", ttl_s=30)  # running work
    store.renew_leases("replica-a", ttl_s=30)                      # the owner's heartbeat
    store.take_over_lease(expired, owner="replica-b", ttl_s=30)    # a dead owner's: one winner
    store.record_interruption(lease.key, owner="replica-b", actor="bot", payload={"reason": "..."})
    store.set_status(inc.id, "diagnosed", actor="bot")
    store.verify(inc.id)                                          # VerifyResult: ok / first break
    export_incident(store, inc.id, "html").text                  # incidents.export: renders a snapshot
    store.snapshot(inc.id)                                        # what an export renders, in one read
"""

from incidents.errors import (
    ExportError,
    IncidentError,
    InvalidInput,
    InvalidTransition,
    StoreUnavailable,
    UnknownIncident,
)
from incidents.model import Approval, Break, Event, EventKind, Incident, Lease, Status, VerifyResult
from incidents.store import IncidentStore, stamp, utc_now

__all__ = [
    "IncidentStore",
    "Incident",
    "Event",
    "EventKind",
    "Status",
    "Approval",
    "Lease",
    "Break",
    "VerifyResult",
    "IncidentError",
    "StoreUnavailable",
    "UnknownIncident",
    "InvalidInput",
    "InvalidTransition",
    "ExportError",
    "utc_now",
    "stamp",
]
