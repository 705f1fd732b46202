"""``IncidentStore``: the one way to read and write the incident log, on SQLite or PostgreSQL.

Why it is built this way:

* One code path (SQLAlchemy 2 Core) for both databases; the only dialect-specific lines are the
  SQLite connection set-up and PostgreSQL's advisory lock during migrations.
* Appends to one incident are serialised by the database, not by this process: on SQLite every write
  transaction is ``BEGIN IMMEDIATE`` (one writer at a time, waiting up to the busy timeout); on
  PostgreSQL the incident row is locked with ``SELECT ... FOR UPDATE``. The next ``seq`` and
  ``prev_hash`` are read under that lock, and ``(incident_id, seq)`` is the primary key, so two
  processes (or bot replicas) can never fork the chain.
* Each append is one transaction (event row + incident head), so a process killed mid-append leaves
  either the whole event or none of it.
* ``claim`` is an idempotency key backed by a primary key: the database decides which replica runs a
  change, never process memory.
* Leases (``take_lease`` ... ``record_interruption``) say which replica runs a triage or change and
  until when; taking over a dead replica's lease is a compare-and-set on (owner, expiry), and the
  ``interrupted`` event is written in the same transaction that deletes the lease, so work cut off
  by a crash is recorded once, whichever replica finds it.

The store keeps no mutable state besides its SQLAlchemy engine, which is thread-safe: one store may
be shared by threads (asyncio callers use ``asyncio.to_thread``).
"""

from __future__ import annotations

import json
import os
import re
import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from incidents.chain import GENESIS, canonical_json, event_hash, find_first_break
from incidents.errors import (
    IncidentError,
    InvalidInput,
    InvalidTransition,
    StoreUnavailable,
    UnknownIncident,
)
from incidents.model import (
    RESERVED_KINDS,
    TRANSITIONS,
    WORK_KINDS,
    Approval,
    Break,
    Event,
    EventKind,
    Incident,
    Lease,
    Status,
    VerifyResult,
)

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine, Row

__all__ = ["IncidentStore", "Snapshot", "ExportedDocument", "utc_now", "stamp"]

_ID_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: no I, L, O, U
_ID_RE = re.compile(r"^INC-[0-9A-HJKMNP-TV-Z]{4,8}$")
_HOST_RE = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9._:-]*[A-Za-z0-9])?$")
_RUNBOOK_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_PARAM_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_PLAN_HASH_RE = re.compile(r"^[0-9a-f]{16,128}$")
_MAX_PAYLOAD_BYTES = 16 * 1024 * 1024
_BUSY_TIMEOUT_S = 30.0


def utc_now() -> str:
    """The current UTC time as stored and hashed: ``YYYY-MM-DDTHH:MM:SS.mmmZ``."""
    return stamp(datetime.now(UTC))


def stamp(moment: datetime) -> str:
    """``moment`` as the store writes and hashes times: ``YYYY-MM-DDTHH:MM:SS.mmmZ`` (sorts as text)."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _ttl(ttl_s: float) -> float:
    if not isinstance(ttl_s, int | float) or isinstance(ttl_s, bool) or not 0.1 <= ttl_s <= 86400:
        raise InvalidInput(f"a lease lasts 0.1 s to one day, got {ttl_s!r}")
    return float(ttl_s)


def _text(name: str, value: object, *, max_len: int = 200) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{name} must be a non-empty string, got {value!r}")
    if len(value) > max_len:
        raise InvalidInput(f"{name} is longer than {max_len} characters")
    if any(not ch.isprintable() for ch in value):
        raise InvalidInput(f"{name} must not contain control characters: {value!r}")
    return value


def _check_kind_payload(kind: EventKind, payload: Mapping[str, Any]) -> None:
    """Kinds whose payload others rely on are checked here; other kinds take any JSON object."""
    if kind is EventKind.COMMAND:
        if not isinstance(payload.get("command"), str) or not payload["command"]:
            raise InvalidInput("a command event needs payload['command'], the exact command run")
    elif kind is EventKind.ROLLBACK_NOTE:
        if not isinstance(payload.get("before"), dict):
            raise InvalidInput("a rollback note needs payload['before'], the state before (an object)")
        cmds = payload.get("restore_commands")
        if not isinstance(cmds, list) or not cmds or not all(isinstance(c, str) and c.strip() for c in cmds):
            raise InvalidInput("a rollback note needs payload['restore_commands'], a non-empty list of commands")
        if not isinstance(payload.get("for_change"), str) or not payload["for_change"].strip():
            raise InvalidInput("a rollback note needs payload['for_change'], the change it undoes")


def _payload_text(payload: object) -> str:
    if not isinstance(payload, Mapping):
        raise InvalidInput(f"payload must be a JSON object (dict), got {type(payload).__name__}")
    try:
        text = canonical_json(dict(payload))
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"payload is not JSON-serialisable: {exc}") from None
    if len(text.encode("utf-8")) > _MAX_PAYLOAD_BYTES:
        raise InvalidInput(f"payload is larger than {_MAX_PAYLOAD_BYTES // (1024 * 1024)} MiB")
    return text


def _parse_payload(text: str) -> dict[str, Any]:
    # A tampered payload may not even be JSON; show it as stored and let the hash check report it.
    try:
        value = json.loads(text)
    except ValueError:
        return {"unparseable_payload": text}
    return value if isinstance(value, dict) else {"unparseable_payload": text}


def _normalise_id(incident_id: str) -> str:
    if not isinstance(incident_id, str):
        raise UnknownIncident(repr(incident_id))
    norm = incident_id.strip().upper()
    if not _ID_RE.match(norm):
        raise UnknownIncident(incident_id)
    return norm


@dataclass(frozen=True)
class Snapshot:
    """One incident as read in one transaction, with the verification of exactly what was read."""

    incident: Incident
    events: list[Event]
    approvals: list[Approval]
    verification: VerifyResult


class ExportedDocument(Protocol):
    """What ``record_export`` logs of a document handed out (``incidents.export.Export`` is one)."""

    @property
    def incident_id(self) -> str: ...
    @property
    def fmt(self) -> str: ...
    @property
    def sha256(self) -> str: ...
    @property
    def head_seq(self) -> int: ...
    @property
    def head_hash(self) -> str: ...


class IncidentStore:
    """The incident log. Open with ``IncidentStore.open(url)``; close with ``close()`` or ``with``."""

    def __init__(self, engine: Engine) -> None:
        """Use ``IncidentStore.open``; this wraps an engine that is already set up and migrated."""
        self._engine = engine

    # ----------------------------------------------------------------- opening

    @classmethod
    def open(cls, url: str, *, busy_timeout_s: float = _BUSY_TIMEOUT_S) -> IncidentStore:
        """Open (creating and migrating if needed) the store at ``url``.

        The entry points pass ``bondbot.settings.database_url()`` (SQLite in the data directory, or
        ``BONDBOT_DATABASE_URL``); this layer knows no settings. PostgreSQL URLs use psycopg 3:
        ``postgresql+psycopg://...``.
        Raises ``StoreUnavailable`` when the file cannot be created or the server cannot be reached.
        """
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        from incidents.migrations import upgrade

        try:
            parsed = make_url(url)
        except ArgumentError as exc:
            raise StoreUnavailable(f"not a database URL: {url!r} ({exc})") from None
        backend = parsed.get_backend_name()
        if backend == "sqlite":
            engine = _sqlite_engine(parsed, busy_timeout_s)
        elif backend == "postgresql":
            engine = _postgresql_engine(parsed, busy_timeout_s)
        else:
            raise StoreUnavailable(f"unsupported database {backend!r} in {_safe(parsed)}: use sqlite or postgresql")
        store = cls(engine)
        try:
            with store._write() as conn:
                upgrade(conn)
        except BaseException:
            engine.dispose()
            raise
        return store

    def close(self) -> None:
        """Release the store's database connections."""
        self._engine.dispose()

    def __enter__(self) -> IncidentStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def url(self) -> str:
        """The database URL, password hidden."""
        return _safe(self._engine.url)

    # ----------------------------------------------------------------- transactions

    @contextmanager
    def _guard(self) -> Iterator[None]:
        """Turn driver errors about reaching the database into ``StoreUnavailable``."""
        from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError

        try:
            yield
        except IntegrityError:
            raise
        except (OperationalError, InterfaceError) as exc:
            reason = str(exc.orig) if exc.orig is not None else str(exc)
            reason = reason.strip().splitlines()[0] if reason.strip() else type(exc).__name__
            if "locked" in reason or "lock timeout" in reason:
                reason += " (another process held the log for longer than the busy timeout)"
            raise StoreUnavailable(f"incident database {self.url} unavailable: {reason}") from None

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """A write transaction: SQLite ``BEGIN IMMEDIATE``; committed on success, else rolled back."""
        with self._guard(), self._engine.connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        """A read transaction seeing one snapshot (SQLite WAL reader; PostgreSQL REPEATABLE READ)."""
        with self._guard(), self._engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                conn.execution_options(isolation_level="REPEATABLE READ")
            conn.execution_options(incidents_sqlite_begin="BEGIN")
            with conn.begin():
                yield conn

    # ----------------------------------------------------------------- incidents

    def create_incident(self, *, host: str, requester: str, channel: str, runbook: str = "bonding",
                        subject: Mapping[str, str] | None = None, bond: str | None = None) -> Incident:
        """Open a new incident; its first event (``opened``) records who asked, where, about what.

        ``runbook`` names the runbook and ``subject`` what its triage is about (``{"bond": "bond1"}``;
        ``{}`` for a runbook about the host itself). ``bond=`` is ``subject={"bond": bond}`` for the
        bonding runbook's callers. The store checks the shape (plain names, printable values); each
        value's type is the runbook engine's to check, before anything reaches a host.
        """
        from sqlalchemy.exc import IntegrityError

        from incidents.tables import incidents

        if not isinstance(host, str) or not _HOST_RE.match(host):
            raise InvalidInput(f"host must be a host name or address, got {host!r}")
        if bond is not None:
            if subject is not None:
                raise InvalidInput("give the subject or bond=, not both")
            subject = {"bond": bond}
        if not isinstance(runbook, str) or not _RUNBOOK_RE.match(runbook):
            raise InvalidInput(f"runbook must be a runbook name (letters, digits, '_', '.', '-'), got {runbook!r}")
        subject = _subject(subject if subject is not None else {})
        _text("requester", requester)
        _text("channel", channel)
        subject_text = canonical_json(subject)
        for attempt in range(8):
            incident_id = "INC-" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(4 if attempt < 4 else 6))
            now = utc_now()
            try:
                with self._write() as conn:
                    conn.execute(
                        incidents.insert().values(
                            id=incident_id, host=host, runbook=runbook, subject=subject_text,
                            requester=requester, channel=channel,
                            status=Status.OPEN.value, root_cause=None, created_at=now, updated_at=now,
                            head_seq=0, head_hash=GENESIS,
                        )
                    )
                    row = self._lock(conn, incident_id)
                    self._append_locked(
                        conn, row, actor=requester, kind=EventKind.OPENED,
                        payload={"host": host, "runbook": runbook, "subject": subject, "requester": requester,
                                 "channel": channel},
                    )
            except IntegrityError:
                continue  # the id was taken by another incident: draw again
            return self.get(incident_id)
        raise IncidentError("could not draw a free incident id after 8 attempts")

    def get(self, incident_id: str) -> Incident:
        """The incident, or ``UnknownIncident``."""
        from sqlalchemy import select

        from incidents.tables import incidents

        norm = _normalise_id(incident_id)
        with self._read() as conn:
            row = conn.execute(select(incidents).where(incidents.c.id == norm)).one_or_none()
        if row is None:
            raise UnknownIncident(incident_id)
        return _incident(row)

    def list_incidents(
        self, *, status: Status | str | None = None, host: str | None = None, limit: int = 50
    ) -> list[Incident]:
        """Incidents, most recently active first, optionally only those in ``status`` or on ``host``."""
        from sqlalchemy import select

        from incidents.tables import incidents

        query = select(incidents).order_by(incidents.c.updated_at.desc(), incidents.c.id).limit(max(1, limit))
        if status is not None:
            try:
                query = query.where(incidents.c.status == Status(status).value)
            except ValueError:
                raise InvalidInput(f"unknown status {status!r}: one of {', '.join(s.value for s in Status)}") from None
        if host is not None:
            query = query.where(incidents.c.host == host)
        with self._read() as conn:
            return [_incident(r) for r in conn.execute(query)]

    # ----------------------------------------------------------------- events

    def append(self, incident_id: str, *, actor: str, kind: EventKind | str, payload: Mapping[str, Any]) -> Event:
        """Append one event and return it as stored (with its seq, timestamp and hash).

        ``kind`` is an ``EventKind`` (or its value) other than the reserved ones written by the
        store's own methods (``opened``, ``status_change``, ``root_cause``, ``approval``).
        """
        try:
            kind = EventKind(kind)
        except ValueError:
            allowed = ", ".join(k.value for k in EventKind if k not in RESERVED_KINDS)
            raise InvalidInput(f"unknown event kind {kind!r}: one of {allowed}") from None
        if kind in RESERVED_KINDS:
            raise InvalidInput(f"events of kind {kind.value!r} are written by the store itself, not by append()")
        _text("actor", actor)
        _payload_text(payload)
        _check_kind_payload(kind, payload)
        norm = _normalise_id(incident_id)
        with self._write() as conn:
            row = self._lock(conn, norm, shown_as=incident_id)
            return self._append_locked(conn, row, actor=actor, kind=kind, payload=payload)

    def add_rollback_note(
        self, incident_id: str, *, actor: str, before: dict[str, Any], restore_commands: list[str], for_change: str
    ) -> Event:
        """Record how to undo a change *before* making it: the state before and the exact restore commands."""
        return self.append(
            incident_id,
            actor=actor,
            kind=EventKind.ROLLBACK_NOTE,
            payload={"for_change": for_change, "before": before, "restore_commands": list(restore_commands)},
        )

    def set_status(self, incident_id: str, status: Status | str, *, actor: str, reason: str = "") -> Event:
        """Move the incident to ``status`` if the life cycle allows it; logged as ``status_change``."""
        from incidents.tables import incidents

        try:
            new = Status(status)
        except ValueError:
            raise InvalidInput(f"unknown status {status!r}: one of {', '.join(s.value for s in Status)}") from None
        _text("actor", actor)
        norm = _normalise_id(incident_id)
        with self._write() as conn:
            row = self._lock(conn, norm, shown_as=incident_id)
            old = Status(row.status)
            if new not in TRANSITIONS[old]:
                allowed = ", ".join(sorted(s.value for s in TRANSITIONS[old])) or "none: it is final"
                raise InvalidTransition(f"{norm} is {old.value}; it cannot become {new.value} (allowed: {allowed})")
            payload: dict[str, Any] = {"from": old.value, "to": new.value}
            if reason:
                payload["reason"] = reason
            event = self._append_locked(conn, row, actor=actor, kind=EventKind.STATUS_CHANGE, payload=payload)
            conn.execute(incidents.update().where(incidents.c.id == norm).values(status=new.value))
            return event

    def set_root_cause(
        self, incident_id: str, root_cause: str, *, actor: str, details: Mapping[str, Any] | None = None
    ) -> Event:
        """Record the root cause (e.g. a finding's summary); ``details`` may carry code and evidence."""
        from incidents.tables import incidents

        _text("root_cause", root_cause, max_len=2000)
        _text("actor", actor)
        payload = {**dict(details or {}), "root_cause": root_cause}
        _payload_text(payload)
        norm = _normalise_id(incident_id)
        with self._write() as conn:
            row = self._lock(conn, norm, shown_as=incident_id)
            event = self._append_locked(conn, row, actor=actor, kind=EventKind.ROOT_CAUSE, payload=payload)
            conn.execute(incidents.update().where(incidents.c.id == norm).values(root_cause=root_cause))
            return event

    def events(self, incident_id: str) -> list[Event]:
        """All events of the incident, in order (up to its head when read)."""
        return self._snapshot(incident_id)[1]

    # ----------------------------------------------------------------- exactly once

    def claim(self, key: str, *, actor: str, incident_id: str | None = None) -> bool:
        """Take ``key`` for good: True for the one caller (in any process) that got it, else False.

        Use it as an idempotency key, e.g. ``claim(f"run:{incident}:{plan_hash}", actor="bot")``
        before running a change, so that several bot replicas never run it twice.
        """
        from sqlalchemy import select
        from sqlalchemy.exc import IntegrityError

        from incidents.tables import claims, incidents

        _text("key", key, max_len=255)
        _text("actor", actor)
        norm = _normalise_id(incident_id) if incident_id is not None else None
        try:
            with self._write() as conn:
                if norm is not None and conn.execute(select(incidents.c.id).where(incidents.c.id == norm)).first() is None:
                    raise UnknownIncident(incident_id or "")
                conn.execute(claims.insert().values(key=key, incident_id=norm, actor=actor, claimed_at=utc_now()))
        except IntegrityError:
            return False
        return True

    def record_approval(
        self, incident_id: str, *, actor: str, plan_hash: str, summary: str = "", key: str | None = None
    ) -> Approval | None:
        """Record that ``actor`` approved the plan with ``plan_hash``; None if ``key`` was already used.

        ``key`` defaults to ``approval:<incident>:<plan_hash>``, so a plan is approved once; pass a
        button click's own id to make repeated deliveries of one click harmless instead. The claim,
        the approval row and the ``approval`` event are one transaction: all or nothing.
        """
        from sqlalchemy.exc import IntegrityError

        from incidents.tables import approvals, claims

        _text("actor", actor)
        if not isinstance(plan_hash, str) or not _PLAN_HASH_RE.match(plan_hash):
            raise InvalidInput(f"plan_hash must be 16-128 lowercase hex digits, got {plan_hash!r}")
        norm = _normalise_id(incident_id)
        key = key if key is not None else f"approval:{norm}:{plan_hash}"
        _text("key", key, max_len=255)
        try:
            with self._write() as conn:
                row = self._lock(conn, norm, shown_as=incident_id)
                if row.status == Status.CLOSED.value:
                    raise InvalidInput(f"{norm} is closed: nothing can be approved on it")
                now = utc_now()
                conn.execute(claims.insert().values(key=key, incident_id=norm, actor=actor, claimed_at=now))
                payload: dict[str, Any] = {"plan_hash": plan_hash, "key": key}
                if summary:
                    payload["summary"] = summary
                event = self._append_locked(conn, row, actor=actor, kind=EventKind.APPROVAL, payload=payload)
                conn.execute(
                    approvals.insert().values(
                        incident_id=norm, seq=event.seq, plan_hash=plan_hash, approver=actor,
                        approved_at=event.ts, key=key,
                    )
                )
        except IntegrityError:
            return None
        return Approval(norm, plan_hash, actor, event.ts, event.seq, key)

    def approvals(self, incident_id: str) -> list[Approval]:
        """The incident's approvals, oldest first."""
        return self._snapshot(incident_id)[2]

    # ----------------------------------------------------------------- leases (running work)

    def take_lease(
        self, incident_id: str, *, work: str, owner: str, ttl_s: float, detail: Mapping[str, Any] | None = None,
        key: str | None = None,
    ) -> Lease | None:
        """Record that ``owner`` (a bot replica) runs ``work`` on the incident, until ``ttl_s`` from now.

        ``key`` defaults to ``<work>:<incident>``; None when that key is already held (the work is
        already running somewhere). The owner keeps it alive with ``renew_leases``.
        """
        from sqlalchemy import select
        from sqlalchemy.exc import IntegrityError

        from incidents.tables import incidents, leases

        if work not in WORK_KINDS:
            raise InvalidInput(f"unknown work {work!r}: one of {', '.join(sorted(WORK_KINDS))}")
        _text("owner", owner)
        ttl = _ttl(ttl_s)
        norm = _normalise_id(incident_id)
        key = key if key is not None else f"{work}:{norm}"
        _text("key", key, max_len=255)
        text = _payload_text(detail or {})
        now = datetime.now(UTC)
        row = {
            "key": key, "incident_id": norm, "work": work, "owner": owner, "started_at": stamp(now),
            "heartbeat_at": stamp(now), "expires_at": stamp(now + timedelta(seconds=ttl)), "detail": text,
            "taken_over_from": None,
        }
        try:
            with self._write() as conn:
                if conn.execute(select(incidents.c.id).where(incidents.c.id == norm)).first() is None:
                    raise UnknownIncident(incident_id)
                conn.execute(leases.insert().values(**row))
        except IntegrityError:
            return None
        return _lease_from(row)

    def renew_leases(self, owner: str, *, ttl_s: float) -> int:
        """The owner's heartbeat: push the expiry of every lease it holds to ``ttl_s`` from now.

        Returns how many it still holds (a lease another replica took over is no longer its own).
        """
        from incidents.tables import leases

        _text("owner", owner)
        ttl = _ttl(ttl_s)
        now = datetime.now(UTC)
        with self._write() as conn:
            result = conn.execute(
                leases.update().where(leases.c.owner == owner)
                .values(heartbeat_at=stamp(now), expires_at=stamp(now + timedelta(seconds=ttl)))
            )
            return int(result.rowcount or 0)

    def leases(self, *, owner: str | None = None, incident_id: str | None = None) -> list[Lease]:
        """Leases held now, oldest first, optionally only ``owner``'s or one incident's."""
        from sqlalchemy import select

        from incidents.tables import leases

        query = select(leases).order_by(leases.c.started_at, leases.c.key)
        if owner is not None:
            query = query.where(leases.c.owner == owner)
        if incident_id is not None:
            query = query.where(leases.c.incident_id == _normalise_id(incident_id))
        with self._read() as conn:
            return [_lease(r) for r in conn.execute(query)]

    def expired_leases(self, *, now: str | None = None) -> list[Lease]:
        """Leases whose owner stopped renewing them: its work needs recovering."""
        from sqlalchemy import select

        from incidents.tables import leases

        moment = now or utc_now()
        query = select(leases).where(leases.c.expires_at < moment).order_by(leases.c.expires_at, leases.c.key)
        with self._read() as conn:
            return [_lease(r) for r in conn.execute(query)]

    def take_over_lease(self, lease: Lease, *, owner: str, ttl_s: float) -> Lease | None:
        """Take an expired ``lease`` for ``owner``, to recover its work; None if anyone else did.

        A compare-and-set: it succeeds only while the lease still has the owner and expiry that
        ``lease`` shows and that expiry has passed, so of several replicas (or several scans)
        exactly one wins. ``taken_over_from`` keeps the first owner that died.
        """
        from incidents.tables import leases

        _text("owner", owner)
        ttl = _ttl(ttl_s)
        now = datetime.now(UTC)
        if lease.expires_at >= stamp(now):
            return None
        values = {
            "owner": owner, "heartbeat_at": stamp(now), "expires_at": stamp(now + timedelta(seconds=ttl)),
            "taken_over_from": lease.taken_over_from or lease.owner,
        }
        with self._write() as conn:
            result = conn.execute(
                leases.update()
                .where(leases.c.key == lease.key, leases.c.owner == lease.owner,
                       leases.c.expires_at == lease.expires_at, leases.c.expires_at < stamp(now))
                .values(**values)
            )
            if result.rowcount != 1:
                return None
        return Lease(lease.key, lease.incident_id, lease.work, owner, lease.started_at, values["heartbeat_at"],
                     values["expires_at"], lease.detail, values["taken_over_from"])

    def release_lease(self, key: str, *, owner: str) -> bool:
        """The work ended with its result on the log: drop the lease. False if ``owner`` no longer held it."""
        from incidents.tables import leases

        with self._write() as conn:
            result = conn.execute(leases.delete().where(leases.c.key == key, leases.c.owner == owner))
            return result.rowcount == 1

    def record_interruption(
        self, key: str, *, owner: str, actor: str, payload: Mapping[str, Any],
        notes: list[Mapping[str, Any]] | None = None,
    ) -> Event | None:
        """Record that the work under lease ``key`` was cut off; None if ``owner`` no longer holds it.

        One transaction: the ``interrupted`` event (``payload``: what, why, where it stopped),
        any ``notes`` (``note`` events, e.g. the action's result for the incident's message), the
        move to status ``interrupted`` where the life cycle allows it, and the lease's removal.
        Holding the lease is what makes it happen once across replicas.
        """
        from sqlalchemy import select

        from incidents.tables import incidents, leases

        _text("actor", actor)
        _payload_text(payload)
        for note in notes or []:
            _payload_text(note)
        with self._write() as conn:
            held = conn.execute(
                select(leases).where(leases.c.key == key, leases.c.owner == owner).with_for_update()
            ).one_or_none()
            if held is None:
                return None
            row = self._lock(conn, held.incident_id)
            full = {"work": held.work, "lease": key, **dict(payload)}
            event = self._append_locked(conn, row, actor=actor, kind=EventKind.INTERRUPTED, payload=full)
            for note in notes or []:
                row = self._lock(conn, held.incident_id)
                self._append_locked(conn, row, actor=actor, kind=EventKind.NOTE, payload=note)
            row = self._lock(conn, held.incident_id)
            old = Status(row.status)
            if Status.INTERRUPTED in TRANSITIONS.get(old, frozenset()):
                change = {"from": old.value, "to": Status.INTERRUPTED.value,
                          "reason": f"{held.work} interrupted: {str(payload.get('reason', ''))[:300]}"}
                self._append_locked(conn, row, actor=actor, kind=EventKind.STATUS_CHANGE, payload=change)
                conn.execute(incidents.update().where(incidents.c.id == row.id).values(status=Status.INTERRUPTED.value))
            conn.execute(leases.delete().where(leases.c.key == key, leases.c.owner == owner))
            return event

    # ----------------------------------------------------------------- verification and export

    def verify(self, incident_id: str) -> VerifyResult:
        """Check the incident's hash chain and that its row and approvals agree with the events.

        Reports the first broken link (lowest seq) and why; ``ok`` when the log is intact.
        """
        with self._read() as conn:
            inc, rows, appr = self._load(conn, incident_id)
        return _verify_loaded(inc, rows, appr)

    def snapshot(self, incident_id: str) -> Snapshot:
        """The incident, its events and approvals and their verification, read in one transaction:
        what an export renders (``incidents.export.export_incident``; the store knows no format)."""
        with self._read() as conn:
            inc, rows, appr = self._load(conn, incident_id)
        result = _verify_loaded(inc, rows, appr)
        return Snapshot(_incident(inc), [_event(r) for r in rows], [_approval(a) for a in appr], result)

    def record_export(self, export: ExportedDocument, *, actor: str, destination: str | None = None) -> Event:
        """Log that ``export`` was handed out: its format, SHA-256 and the head it covers.

        Call it after the document was written, so a failed write leaves no trace in the log. The
        head hash in this event anchors the log: keep the exported file outside the database.
        """
        payload: dict[str, Any] = {
            "format": export.fmt,
            "sha256": export.sha256,
            "covers_seq": export.head_seq,
            "covers_hash": export.head_hash,
        }
        if destination is not None:
            payload["destination"] = destination
        return self.append(export.incident_id, actor=actor, kind=EventKind.EXPORT, payload=payload)

    # ----------------------------------------------------------------- internals

    def _lock(self, conn: Connection, norm: str, *, shown_as: str | None = None) -> Row[Any]:
        """The incident row, locked for this transaction (FOR UPDATE; SQLite already holds the write lock)."""
        from sqlalchemy import select

        from incidents.tables import incidents

        row = conn.execute(select(incidents).where(incidents.c.id == norm).with_for_update()).one_or_none()
        if row is None:
            raise UnknownIncident(shown_as or norm)
        return row

    def _append_locked(
        self, conn: Connection, row: Row[Any], *, actor: str, kind: EventKind, payload: Mapping[str, Any]
    ) -> Event:
        from incidents.tables import events, incidents

        text = _payload_text(payload)
        stored = json.loads(text)
        seq = row.head_seq + 1
        ts = max(utc_now(), row.updated_at)  # never earlier than the event before (clock skew)
        digest = event_hash(
            incident_id=row.id, seq=seq, ts=ts, actor=actor, kind=kind.value, payload=stored, prev_hash=row.head_hash
        )
        conn.execute(
            events.insert().values(
                incident_id=row.id, seq=seq, ts=ts, actor=actor, kind=kind.value, payload=text,
                prev_hash=row.head_hash, hash=digest,
            )
        )
        updated = conn.execute(
            incidents.update()
            .where(incidents.c.id == row.id, incidents.c.head_seq == row.head_seq)
            .values(head_seq=seq, head_hash=digest, updated_at=ts)
        )
        if updated.rowcount != 1:  # cannot happen under the lock; refuse rather than fork the chain
            raise IncidentError(f"{row.id}: the log head moved during an append; nothing was written")
        return Event(row.id, seq, ts, actor, kind.value, stored, row.head_hash, digest)

    def _load(self, conn: Connection, incident_id: str) -> tuple[Row[Any], list[Row[Any]], list[Row[Any]]]:
        """The incident row, all its event rows (by seq) and approval rows, within ``conn``'s snapshot."""
        from sqlalchemy import select

        from incidents.tables import approvals, events, incidents

        norm = _normalise_id(incident_id)
        row = conn.execute(select(incidents).where(incidents.c.id == norm)).one_or_none()
        if row is None:
            raise UnknownIncident(incident_id)
        evs = conn.execute(select(events).where(events.c.incident_id == norm).order_by(events.c.seq))
        appr = conn.execute(select(approvals).where(approvals.c.incident_id == norm).order_by(approvals.c.seq))
        return row, list(evs), list(appr)

    def _snapshot(self, incident_id: str) -> tuple[Incident, list[Event], list[Approval]]:
        with self._read() as conn:
            inc, rows, appr = self._load(conn, incident_id)
        return _incident(inc), [_event(r) for r in rows], [_approval(a) for a in appr]


def _verify_loaded(inc: Row[Any], rows: list[Row[Any]], appr: list[Row[Any]]) -> VerifyResult:
    evs = [_event(r) for r in rows]
    first = find_first_break(inc.id, evs, head_seq=inc.head_seq, head_hash=inc.head_hash)
    for r in rows:  # a payload edited without changing its meaning (spacing, key order)
        if first is not None and r.seq >= first.seq:
            break
        if canonical_json(_parse_payload(r.payload)) != r.payload:
            first = Break(r.seq, "payload text was altered (no longer the canonical JSON that was hashed)")
            break
    if first is None:
        first = _cross_check(inc, evs, appr)
    return VerifyResult(inc.id, len(evs), evs[-1].hash if evs else None, first)


def _cross_check(inc: Row[Any], evs: list[Event], appr: list[Row[Any]]) -> Break | None:
    """The incident row and the approvals table must say what the (hash-checked) events say."""
    if not evs:
        return Break(1, "the incident has no events (its 'opened' event is missing)")
    opened = evs[0]
    if opened.kind != EventKind.OPENED.value:
        return Break(1, f"the first event is {opened.kind!r}, not 'opened'")
    for field in ("host", "requester", "channel"):
        if opened.payload.get(field) != getattr(inc, field):
            return Break(1, f"the incident's {field} ({getattr(inc, field)!r}) differs from the opened event's")
    runbook, subject = _opened_subject(opened.payload)
    if runbook != inc.runbook:
        return Break(1, f"the incident's runbook ({inc.runbook!r}) differs from the opened event's")
    if subject != _parse_payload(inc.subject):
        return Break(1, f"the incident's subject ({inc.subject}) differs from the opened event's")
    status: object = Status.OPEN.value
    status_seq = 1
    root_cause, root_seq = None, 1
    for ev in evs:
        if ev.kind == EventKind.STATUS_CHANGE.value:
            status, status_seq = ev.payload.get("to"), ev.seq
        elif ev.kind == EventKind.ROOT_CAUSE.value:
            root_cause, root_seq = ev.payload.get("root_cause"), ev.seq
    if inc.status != status:
        return Break(status_seq, f"the incident's status {inc.status!r} differs from the log's {status!r}")
    if inc.root_cause != root_cause:
        return Break(root_seq, "the incident's root cause differs from the one the log records")
    logged = {ev.seq: ev for ev in evs if ev.kind == EventKind.APPROVAL.value}
    for a in appr:
        approval_ev = logged.pop(a.seq, None)
        if (approval_ev is None or approval_ev.actor != a.approver
                or approval_ev.payload.get("plan_hash") != a.plan_hash or approval_ev.ts != a.approved_at):
            return Break(a.seq, "an approval record differs from the approval event at this seq")
    if logged:
        seq = min(logged)
        return Break(seq, "an approval event has no approval record (the record was removed)")
    return None


def _opened_subject(payload: Mapping[str, Any]) -> tuple[Any, Any]:
    """(runbook, subject) an ``opened`` event records. Before migration 0003 every incident was a
    bonding incident and its event says ``bond``: that is the subject ``{"bond": ...}``."""
    if "subject" in payload:
        return payload.get("runbook"), payload.get("subject")
    return "bonding", {"bond": payload.get("bond")}


def _subject(value: object) -> dict[str, str]:
    if not isinstance(value, Mapping) or len(value) > 8:
        raise InvalidInput(f"subject must be an object of at most 8 parameter -> value, got {value!r}")
    out: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not _PARAM_RE.match(key):
            raise InvalidInput(f"subject parameter names are lower-case words, got {key!r}")
        out[key] = _text(f"subject {key}", item, max_len=255)
    return out


def _incident(row: Row[Any]) -> Incident:
    return Incident(
        id=row.id, host=row.host, runbook=row.runbook, subject=_parse_payload(row.subject),
        requester=row.requester, channel=row.channel,
        status=Status(row.status), root_cause=row.root_cause, created_at=row.created_at,
        head_seq=row.head_seq, head_hash=row.head_hash,
    )


def _lease_from(row: Mapping[Any, Any]) -> Lease:
    return Lease(
        key=row["key"], incident_id=row["incident_id"], work=row["work"], owner=row["owner"],
        started_at=row["started_at"], heartbeat_at=row["heartbeat_at"], expires_at=row["expires_at"],
        detail=_parse_payload(row["detail"]), taken_over_from=row["taken_over_from"],
    )


def _lease(row: Row[Any]) -> Lease:
    return _lease_from(row._mapping)


def _approval(row: Row[Any]) -> Approval:
    return Approval(row.incident_id, row.plan_hash, row.approver, row.approved_at, row.seq, row.key)


def _event(row: Row[Any]) -> Event:
    return Event(row.incident_id, row.seq, row.ts, row.actor, row.kind, _parse_payload(row.payload), row.prev_hash, row.hash)


def _safe(url: Any) -> str:
    return url.render_as_string(hide_password=True)


def _enable_wal(cursor: Any, busy_timeout_s: float) -> None:
    """Put the database in WAL mode, waiting like any other statement would.

    Turning a new file to WAL needs an exclusive lock, and SQLite answers "database is locked" at
    once, without its busy handler, while another process holds the file (two bots opening a new log
    together): so retry here, up to the busy timeout.
    """
    import sqlite3
    import time

    deadline = time.monotonic() + busy_timeout_s
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.02)


#: The SQLite file's mode unless the URL says ``?file_mode=``: it holds raw host outputs.
DEFAULT_FILE_MODE = 0o600


def _file_mode(url: Any) -> int:
    raw = url.query.get("file_mode")
    if raw is None:
        return DEFAULT_FILE_MODE
    try:
        mode = int(str(raw), 8)
    except ValueError:
        raise StoreUnavailable(f"file_mode={raw!r} in the database URL is not an octal mode like 0600") from None
    if not 0 <= mode <= 0o666 or mode & 0o600 != 0o600:
        raise StoreUnavailable(f"file_mode={raw!r}: the owner must read and write the log, and no x bits")
    return mode


def _private_dirs(directory: Path, mode: int) -> None:
    """Create ``directory`` (and missing parents) with ``mode``; an existing one is left as it is."""
    target = directory
    missing: list[Path] = []
    while not directory.exists():
        missing.append(directory)
        directory = directory.parent
    for path in reversed(missing):
        path.mkdir(mode=mode, exist_ok=True)
        os.chmod(path, mode)  # mkdir's mode is filtered by the umask
    if not target.is_dir():
        raise NotADirectoryError(20, "Not a directory", str(target))


def _sqlite_engine(url: Any, busy_timeout_s: float) -> Engine:
    from sqlalchemy import create_engine, event

    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        raise StoreUnavailable(
            f"{_safe(url)}: the incident log must be a file shared by every process, not an in-memory database"
        )
    path = Path(database).expanduser()
    mode = _file_mode(url)
    try:
        _private_dirs(path.parent, mode | ((mode & 0o444) >> 2))
    except OSError as exc:
        raise StoreUnavailable(f"cannot create the directory for the incident database {path}: {exc.strerror}") from None
    if path.is_dir():
        raise StoreUnavailable(f"the incident database path {path} is a directory")
    try:
        # The log holds raw host outputs: created with ``mode`` (SQLite's -wal/-shm files copy it),
        # and an existing file brought to it. ``?file_mode=0640`` in the URL chooses another mode.
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, mode))
        for part in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            if part.exists() and part.stat().st_mode & 0o777 != mode:
                os.chmod(part, mode)
    except OSError as exc:
        raise StoreUnavailable(f"cannot create the incident database {path}: {exc.strerror}") from None
    query = {k: v for k, v in url.query.items() if k != "file_mode"}
    engine = create_engine(url.set(database=str(path), query=query), connect_args={"timeout": busy_timeout_s})
    busy_ms = int(busy_timeout_s * 1000)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # We issue BEGIN ourselves (below), so the driver must not open transactions on its own.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {busy_ms}")
        _enable_wal(cur, busy_timeout_s)
        cur.execute("PRAGMA synchronous = FULL")  # an audit log: a commit survives power loss
        cur.execute("PRAGMA foreign_keys = ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql(conn.get_execution_options().get("incidents_sqlite_begin", "BEGIN IMMEDIATE"))

    return engine


def _postgresql_engine(url: Any, busy_timeout_s: float) -> Engine:
    from sqlalchemy import create_engine

    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    return create_engine(
        url,
        pool_pre_ping=True,
        connect_args={"connect_timeout": 5, "options": f"-c lock_timeout={int(busy_timeout_s * 1000)}"},
    )
