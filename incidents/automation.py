"""What the bot does on its own, on the record: alert notifications and schedules (migration 0004).

Why it is here, below the bot: "exactly once across replicas" is the database's to decide, as for
clicks. ``claim_alert`` lets one replica open the incident of an alert (its group and fingerprint;
the others, and later repeats, find it with ``alert_incident``), and ``claim_occurrence`` lets one
replica run an occurrence of a schedule (primary key schedule + occurrence). Schedules are rows, so
they survive restarts; their definition is ``runbooks.schedules.Schedule.to_dict()`` as canonical
JSON, which this layer stores without interpreting.

Every change of a schedule is also an event of its own hash-chained log (migration 0005), written
in the same transaction as the row: a drill schedule is a standing approval, and the row alone
keeps only its latest definition. ``schedule_log`` reads the log, ``verify_schedule_log`` checks
it as ``IncidentStore.verify`` checks an incident's (``incidents.chain``).

Functions take an ``IncidentStore`` and use its transactions; they keep no state.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from incidents.chain import GENESIS, canonical_json, event_hash, find_first_break
from incidents.errors import InvalidInput
from incidents.model import Break, Event

if TYPE_CHECKING:
    from incidents.store import IncidentStore

__all__ = [
    "AlertRecord",
    "ScheduleRow",
    "ScheduleRun",
    "alert_incident",
    "bind_alert",
    "claim_alert",
    "record_alert",
    "alert_records",
    "save_schedule",
    "get_schedule",
    "list_schedules",
    "claim_occurrence",
    "heartbeat_runs",
    "stale_runs",
    "take_over_run",
    "finish_occurrence",
    "schedule_runs",
    "log_schedule_event",
    "schedule_log",
    "verify_schedule_log",
]


def _now() -> str:
    from incidents.store import utc_now

    return utc_now()


def group_hash(group_key: str) -> str:
    """Alertmanager's group keys are long label sets; the key column holds their SHA-256."""
    return hashlib.sha256(group_key.encode()).hexdigest()


# ------------------------------------------------------------------ alerts


@dataclass(frozen=True)
class AlertRecord:
    id: int
    received_at: str
    receiver: str
    group_key: str
    fingerprint: str
    status: str
    labels: dict[str, str]
    outcome: str
    incident_id: str | None
    detail: str


def claim_alert(store: IncidentStore, group_key: str, fingerprint: str, *, actor: str) -> bool:
    """True for the one caller (any replica) that is to open this alert's incident."""
    from sqlalchemy.exc import IntegrityError

    from incidents.tables import alert_incidents

    try:
        with store._write() as conn:
            conn.execute(alert_incidents.insert().values(
                group_hash=group_hash(group_key), fingerprint=fingerprint, incident_id=None,
                claimed_by=actor, claimed_at=_now()))
    except IntegrityError:
        return False
    return True


def bind_alert(store: IncidentStore, group_key: str, fingerprint: str, incident_id: str) -> None:
    """Record which incident the claimed alert opened."""
    from incidents.tables import alert_incidents

    with store._write() as conn:
        conn.execute(alert_incidents.update().where(
            (alert_incidents.c.group_hash == group_hash(group_key))
            & (alert_incidents.c.fingerprint == fingerprint)).values(incident_id=incident_id))


def alert_incident(store: IncidentStore, group_key: str, fingerprint: str) -> tuple[bool, str | None]:
    """(claimed, incident id or None while the claimer is still opening it)."""
    from sqlalchemy import select

    from incidents.tables import alert_incidents

    with store._read() as conn:
        row = conn.execute(select(alert_incidents.c.incident_id).where(
            (alert_incidents.c.group_hash == group_hash(group_key))
            & (alert_incidents.c.fingerprint == fingerprint))).first()
    return (False, None) if row is None else (True, row[0])


def record_alert(store: IncidentStore, *, receiver: str, group_key: str, fingerprint: str, status: str,
                 labels: Mapping[str, str], outcome: str, incident_id: str | None = None, detail: str = "") -> int:
    """Keep one received alert and what became of it; returns its row id."""
    from incidents.tables import alert_notifications

    if outcome not in {"triaged", "updated", "resolved", "unmapped", "skipped"}:
        raise InvalidInput(f"unknown alert outcome {outcome!r}")
    with store._write() as conn:
        result = conn.execute(alert_notifications.insert().values(
            received_at=_now(), receiver=receiver[:256], group_key=group_key, fingerprint=fingerprint,
            status=status, labels=canonical_json(dict(labels)), outcome=outcome, incident_id=incident_id,
            detail=detail[:4000]))
        key = result.inserted_primary_key
    return int(key[0]) if key else 0


def alert_records(store: IncidentStore, *, fingerprint: str | None = None) -> list[AlertRecord]:
    """Received alerts, oldest first (optionally one alert's)."""
    from sqlalchemy import select

    from incidents.tables import alert_notifications as t

    query = select(t).order_by(t.c.id)
    if fingerprint is not None:
        query = query.where(t.c.fingerprint == fingerprint)
    with store._read() as conn:
        rows = conn.execute(query).all()
    return [AlertRecord(r.id, r.received_at, r.receiver, r.group_key, r.fingerprint, r.status,
                        json.loads(r.labels), r.outcome, r.incident_id, r.detail) for r in rows]


# ------------------------------------------------------------------ schedules


@dataclass(frozen=True)
class ScheduleRow:
    id: str
    kind: str
    definition: dict[str, Any]
    state: str
    updated_at: str


@dataclass(frozen=True)
class ScheduleRun:
    schedule_id: str
    occurrence: str
    runner: str
    started_at: str
    finished_at: str | None
    outcome: str | None
    result: dict[str, Any] | None
    heartbeat_at: str | None = None


def save_schedule(store: IncidentStore, schedule_id: str, kind: str, definition: Mapping[str, Any],
                  *, actor: str, change: str, detail: Mapping[str, Any] | None = None,
                  create: bool = False) -> None:
    """Insert (``create``: fails with InvalidInput if the id exists) or replace a schedule's row,
    and append the ``change`` by ``actor`` to its log (payload: the new state and definition, and
    ``detail``), in one transaction: no change without its event, no event without its change."""
    from sqlalchemy.exc import IntegrityError

    from incidents.tables import schedules

    state = str(definition.get("state", "active"))
    values = {"kind": kind, "definition": canonical_json(dict(definition)), "state": state, "updated_at": _now()}
    payload = {"state": state, "definition": dict(definition), **dict(detail or {})}
    try:
        with store._write() as conn:
            if create:
                conn.execute(schedules.insert().values(id=schedule_id, head_seq=0, head_hash=GENESIS, **values))
            else:
                done = conn.execute(schedules.update().where(schedules.c.id == schedule_id).values(**values))
                if done.rowcount == 0:
                    raise InvalidInput(f"no schedule {schedule_id!r}")
            _append(conn, schedule_id, actor, change, payload)
    except IntegrityError:
        raise InvalidInput(f"schedule {schedule_id!r} exists") from None


def log_schedule_event(store: IncidentStore, schedule_id: str, *, actor: str, kind: str,
                       payload: Mapping[str, Any]) -> None:
    """An event that changes no definition (a refused change, say) on the schedule's log."""
    with store._write() as conn:
        _append(conn, schedule_id, actor, kind, dict(payload))


def _append(conn: Any, schedule_id: str, actor: str, kind: str, payload: Mapping[str, Any]) -> Event:
    """The next event of a schedule's log, inside the caller's write transaction (the row is locked
    on PostgreSQL; SQLite's BEGIN IMMEDIATE already serialises writers)."""
    from sqlalchemy import select

    from incidents.tables import schedule_events, schedules

    head = conn.execute(select(schedules.c.head_seq, schedules.c.head_hash)
                        .where(schedules.c.id == schedule_id).with_for_update()).first()
    if head is None:
        raise InvalidInput(f"no schedule {schedule_id!r}")
    seq, prev, ts = int(head.head_seq) + 1, str(head.head_hash), _now()
    digest = event_hash(incident_id=schedule_id, seq=seq, ts=ts, actor=actor, kind=kind, payload=payload,
                        prev_hash=prev)
    conn.execute(schedule_events.insert().values(schedule_id=schedule_id, seq=seq, ts=ts, actor=actor, kind=kind,
                                                 payload=canonical_json(dict(payload)), prev_hash=prev, hash=digest))
    conn.execute(schedules.update().where(schedules.c.id == schedule_id).values(head_seq=seq, head_hash=digest))
    return Event(schedule_id, seq, ts, actor, kind, dict(payload), prev, digest)


def schedule_log(store: IncidentStore, schedule_id: str) -> list[Event]:
    """A schedule's log, oldest first (``Event.incident_id`` holds the schedule id)."""
    from sqlalchemy import select

    from incidents.tables import schedule_events as t

    with store._read() as conn:
        rows = conn.execute(select(t).where(t.c.schedule_id == schedule_id).order_by(t.c.seq)).all()
    return [_event(r) for r in rows]


def _event(row: Any) -> Event:
    """A ``schedule_events`` row as an ``Event``; ValueError if its payload is not JSON."""
    return Event(row.schedule_id, row.seq, row.ts, row.actor, row.kind, json.loads(row.payload), row.prev_hash,
                 row.hash)


def verify_schedule_log(store: IncidentStore, schedule_id: str) -> tuple[int, str, Break | None]:
    """``(events, head hash, the first break or None)``: the log against its own hashes and the
    row's head (which catches a removed tail), and the row's definition against the last one the
    log recorded (which catches a row changed outside bondbot). ``InvalidInput`` for an unknown
    schedule."""
    from sqlalchemy import select

    from incidents.tables import schedule_events as t
    from incidents.tables import schedules

    with store._read() as conn:
        head = conn.execute(select(schedules.c.head_seq, schedules.c.head_hash, schedules.c.definition)
                            .where(schedules.c.id == schedule_id)).first()
        if head is None:
            raise InvalidInput(f"no schedule {schedule_id!r}")
        rows = conn.execute(select(t).where(t.c.schedule_id == schedule_id).order_by(t.c.seq)).all()
    events = []
    for r in rows:
        try:
            events.append(_event(r))
        except ValueError:
            return len(rows), str(head.head_hash), Break(r.seq, "payload is not JSON")
    found = find_first_break(schedule_id, events, head_seq=int(head.head_seq), head_hash=str(head.head_hash))
    if found is None:
        recorded = next((e for e in reversed(events) if "definition" in e.payload), None)
        try:
            row_definition = canonical_json(json.loads(head.definition))
        except ValueError:
            row_definition = None
        if recorded is None or row_definition != canonical_json(recorded.payload["definition"]):
            found = Break(recorded.seq if recorded else 0,
                          "the schedule's row differs from the definition its log recorded last "
                          "(changed outside bondbot)")
    return len(events), str(head.head_hash), found


def get_schedule(store: IncidentStore, schedule_id: str) -> ScheduleRow | None:
    from sqlalchemy import select

    from incidents.tables import schedules

    with store._read() as conn:
        r = conn.execute(select(schedules).where(schedules.c.id == schedule_id)).first()
    return None if r is None else ScheduleRow(r.id, r.kind, json.loads(r.definition), r.state, r.updated_at)


def list_schedules(store: IncidentStore, *, include_removed: bool = False) -> list[ScheduleRow]:
    from sqlalchemy import select

    from incidents.tables import schedules

    query = select(schedules).order_by(schedules.c.id)
    if not include_removed:
        query = query.where(schedules.c.state != "removed")
    with store._read() as conn:
        rows = conn.execute(query).all()
    return [ScheduleRow(r.id, r.kind, json.loads(r.definition), r.state, r.updated_at) for r in rows]


def claim_occurrence(store: IncidentStore, schedule_id: str, occurrence: str, *, runner: str,
                     now: str | None = None) -> bool:
    """True for the one caller (any replica, any restart) that is to run this occurrence.
    ``now``: the caller's clock for the run's heartbeat (``heartbeat_runs``, ``stale_runs``)."""
    from sqlalchemy.exc import IntegrityError

    from incidents.tables import schedule_runs

    try:
        with store._write() as conn:
            conn.execute(schedule_runs.insert().values(schedule_id=schedule_id, occurrence=occurrence,
                                                       runner=runner, started_at=_now(), heartbeat_at=now or _now()))
    except IntegrityError:
        return False
    return True


def heartbeat_runs(store: IncidentStore, runner: str, *, now: str) -> int:
    """Renew the heartbeat of every unfinished run of ``runner``; returns how many."""
    from incidents.tables import schedule_runs as t

    with store._write() as conn:
        done = conn.execute(t.update().where((t.c.runner == runner) & t.c.finished_at.is_(None))
                            .values(heartbeat_at=now))
    return int(done.rowcount or 0)


def stale_runs(store: IncidentStore, *, before: str) -> list[ScheduleRun]:
    """Unfinished runs whose heartbeat is older than ``before`` (their replica stopped), oldest first."""
    from sqlalchemy import or_, select

    from incidents.tables import schedule_runs as t

    query = select(t).where(t.c.finished_at.is_(None) & or_(t.c.heartbeat_at < before, t.c.heartbeat_at.is_(None)))
    with store._read() as conn:
        rows = conn.execute(query.order_by(t.c.occurrence, t.c.schedule_id)).all()
    return [ScheduleRun(r.schedule_id, r.occurrence, r.runner, r.started_at, r.finished_at, r.outcome, None,
                        r.heartbeat_at) for r in rows]


def take_over_run(store: IncidentStore, run: ScheduleRun, *, runner: str, now: str) -> bool:
    """Compare-and-set: ``runner`` takes the stale ``run`` (to record it) only if it is still as
    ``run`` shows it (same runner and heartbeat, unfinished); of several replicas one wins."""
    from incidents.tables import schedule_runs as t

    same_beat = t.c.heartbeat_at.is_(None) if run.heartbeat_at is None else t.c.heartbeat_at == run.heartbeat_at
    with store._write() as conn:
        done = conn.execute(t.update().where(
            (t.c.schedule_id == run.schedule_id) & (t.c.occurrence == run.occurrence) & (t.c.runner == run.runner)
            & t.c.finished_at.is_(None) & same_beat).values(runner=runner, heartbeat_at=now))
    return bool(done.rowcount)


def finish_occurrence(store: IncidentStore, schedule_id: str, occurrence: str, *, outcome: str,
                      result: Mapping[str, Any], definition: Mapping[str, Any], actor: str,
                      detail: Mapping[str, Any] | None = None) -> None:
    """The occurrence's outcome, the schedule's new ``definition`` (moved past it, maybe paused)
    and a ``run`` event saying both (with the result's SHA-256), in one transaction."""
    from incidents.tables import schedule_runs as t
    from incidents.tables import schedules

    text = canonical_json(dict(result))
    state = str(definition.get("state", "active"))
    with store._write() as conn:
        conn.execute(t.update().where((t.c.schedule_id == schedule_id) & (t.c.occurrence == occurrence)).values(
            finished_at=_now(), outcome=outcome, result=text))
        conn.execute(schedules.update().where(schedules.c.id == schedule_id).values(
            definition=canonical_json(dict(definition)), state=state, updated_at=_now()))
        _append(conn, schedule_id, actor, "run", {
            "occurrence": occurrence, "outcome": outcome, "state": state, "definition": dict(definition),
            "result_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(), **dict(detail or {})})


def schedule_runs(store: IncidentStore, schedule_id: str | None = None) -> list[ScheduleRun]:
    """Occurrences handled, oldest first."""
    from sqlalchemy import select

    from incidents.tables import schedule_runs as t

    query = select(t).order_by(t.c.occurrence, t.c.schedule_id)
    if schedule_id is not None:
        query = query.where(t.c.schedule_id == schedule_id)
    with store._read() as conn:
        rows = conn.execute(query).all()
    return [ScheduleRun(r.schedule_id, r.occurrence, r.runner, r.started_at, r.finished_at, r.outcome,
                        json.loads(r.result) if r.result else None, r.heartbeat_at) for r in rows]
