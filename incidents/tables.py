"""The incident store's tables, as SQLAlchemy Core objects for queries.

The schema itself is created and changed only by the Alembic migrations in ``migrations/``;
``tests/incidents`` checks that these definitions and the migrated database agree.
Timestamps are stored as ISO 8601 text (``2025-01-31T09:15:02.123Z``), exactly as hashed, so that
no driver or server time zone can change what the hash covers. Payloads are stored as canonical JSON
text for the same reason (a JSONB column would reorder keys and renormalise numbers).
"""

from __future__ import annotations

from sqlalchemy import (
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)

__all__ = ["metadata", "incidents", "events", "claims", "approvals", "leases", "alert_notifications",
           "alert_incidents", "schedules", "schedule_runs", "schedule_events", "VERSION_TABLE"]

#: Alembic's bookkeeping table, named so that other parts of bondbot can share the database.
VERSION_TABLE = "incidents_alembic_version"

metadata = MetaData()

incidents = Table(
    "incidents",
    metadata,
    Column("id", String(16), primary_key=True),
    Column("host", String(255), nullable=False),
    Column("runbook", String(64), nullable=False),  # migration 0003 (was: bond)
    Column("subject", Text, nullable=False),  # canonical JSON object, e.g. {"bond":"bond1"}
    Column("requester", String(200), nullable=False),
    Column("channel", String(200), nullable=False),
    Column("status", String(16), nullable=False),
    Column("root_cause", Text, nullable=True),
    Column("created_at", String(24), nullable=False),
    Column("updated_at", String(24), nullable=False),
    Column("head_seq", Integer, nullable=False),
    Column("head_hash", String(64), nullable=False),
)

events = Table(
    "incident_events",
    metadata,
    Column("incident_id", String(16), ForeignKey("incidents.id"), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("ts", String(24), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("payload", Text, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    PrimaryKeyConstraint("incident_id", "seq", name="pk_incident_events"),
)

claims = Table(
    "incident_claims",
    metadata,
    Column("key", String(255), primary_key=True),
    Column("incident_id", String(16), ForeignKey("incidents.id"), nullable=True),
    Column("actor", String(200), nullable=False),
    Column("claimed_at", String(24), nullable=False),
)

approvals = Table(
    "incident_approvals",
    metadata,
    Column("incident_id", String(16), ForeignKey("incidents.id"), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("plan_hash", String(128), nullable=False),
    Column("approver", String(200), nullable=False),
    Column("approved_at", String(24), nullable=False),
    Column("key", String(255), ForeignKey("incident_claims.key"), nullable=False),
    PrimaryKeyConstraint("incident_id", "seq", name="pk_incident_approvals"),
    UniqueConstraint("key", name="uq_incident_approvals_key"),
)

#: Running work and the replica that owns it (migration 0002). Not part of the hash chain: a lease
#: is bookkeeping that lives only while the work runs; what happened is in the events.
leases = Table(
    "incident_leases",
    metadata,
    Column("key", String(255), primary_key=True),
    Column("incident_id", String(16), ForeignKey("incidents.id"), nullable=False),
    Column("work", String(32), nullable=False),
    Column("owner", String(200), nullable=False),
    Column("started_at", String(24), nullable=False),
    Column("heartbeat_at", String(24), nullable=False),
    Column("expires_at", String(24), nullable=False),
    Column("detail", Text, nullable=False),
    Column("taken_over_from", String(200), nullable=True),
    Index("ix_incident_leases_expires_at", "expires_at"),
    Index("ix_incident_leases_owner", "owner"),
)

#: Every alert Alertmanager sent and what became of it (migration 0004): triaged, updated,
#: resolved or unmapped (named no inventory host; reported, never triaged).
alert_notifications = Table(
    "alert_notifications",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("received_at", String(24), nullable=False),
    Column("receiver", String(256), nullable=False),
    Column("group_key", Text, nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("labels", Text, nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("incident_id", String(16), ForeignKey("incidents.id"), nullable=True),
    Column("detail", Text, nullable=False),
    Index("ix_alert_notifications_fingerprint", "fingerprint"),
)

#: One incident per alert (its group + fingerprint): the primary key lets one replica open it.
alert_incidents = Table(
    "alert_incidents",
    metadata,
    Column("group_hash", String(64), nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("incident_id", String(16), ForeignKey("incidents.id"), nullable=True),
    Column("claimed_by", String(200), nullable=False),
    Column("claimed_at", String(24), nullable=False),
    PrimaryKeyConstraint("group_hash", "fingerprint", name="pk_alert_incidents"),
)

#: Scheduled audits and drills (``runbooks.schedules.Schedule.to_dict()`` as canonical JSON).
schedules = Table(
    "schedules",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("definition", Text, nullable=False),
    Column("state", String(16), nullable=False),
    Column("updated_at", String(24), nullable=False),
    Column("head_seq", Integer, nullable=False),  # migration 0005: the schedule log's last event
    Column("head_hash", String(64), nullable=False),
)

#: A schedule's hash-chained log (migration 0005): hashed as ``incident_events`` are, the schedule
#: id in the incident id's place (``incidents.chain``).
schedule_events = Table(
    "schedule_events",
    metadata,
    Column("schedule_id", String(32), ForeignKey("schedules.id"), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("ts", String(24), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("payload", Text, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    PrimaryKeyConstraint("schedule_id", "seq", name="pk_schedule_events"),
)

#: One row per occurrence handled; the primary key makes it run exactly once across replicas.
schedule_runs = Table(
    "schedule_runs",
    metadata,
    Column("schedule_id", String(32), ForeignKey("schedules.id"), nullable=False),
    Column("occurrence", String(24), nullable=False),
    Column("runner", String(200), nullable=False),
    Column("started_at", String(24), nullable=False),
    Column("finished_at", String(24), nullable=True),
    Column("outcome", String(16), nullable=True),
    Column("result", Text, nullable=True),
    Column("heartbeat_at", String(24), nullable=True),  # migration 0005: renewed while it runs
    PrimaryKeyConstraint("schedule_id", "occurrence", name="pk_schedule_runs"),
)
