"""Schedules get a hash-chained log of their own: every change (added, paused, resumed, removed,
a run and what it did to the series) and every refusal is an event, as an incident's are.

Why: a drill schedule is a standing approval, and ``schedules`` keeps only a schedule's latest
definition, so who approved it, who paused, resumed or removed it and when, were overwritten by
the next change. Adds ``schedule_events`` (hashed exactly like ``incident_events``, the schedule id
in the incident id's place) and ``head_seq``/``head_hash`` on ``schedules``, which catch a removed
tail. A schedule made before this migration gets one first event, ``recorded``, holding its
definition as found, so every schedule's log starts somewhere and verifies. ``schedule_runs`` gets
``heartbeat_at``: the replica running an occurrence renews it, so a run whose replica died is
found and recorded interrupted by another. Incidents, their events and hashes are untouched.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

GENESIS = "0" * 64


def _canonical(value: object) -> str:
    # incidents.chain.canonical_json, inlined: a migration must not change if that module does.
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _hash(doc: dict[str, object]) -> str:
    # incidents.chain.event_hash, inlined for the same reason.
    return hashlib.sha256(_canonical(doc).encode("utf-8")).hexdigest()


def upgrade() -> None:
    op.add_column("schedules", sa.Column("head_seq", sa.Integer, nullable=False, server_default="0"))
    op.add_column("schedules", sa.Column("head_hash", sa.String(64), nullable=False, server_default=GENESIS))
    op.add_column("schedule_runs", sa.Column("heartbeat_at", sa.String(24), nullable=True))
    op.create_table(
        "schedule_events",
        sa.Column("schedule_id", sa.String(32), sa.ForeignKey("schedules.id"), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("ts", sa.String(24), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("schedule_id", "seq", name="pk_schedule_events"),
    )
    conn = op.get_bind()
    moment = datetime.now(UTC)
    now = moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    for schedule_id, definition, state in conn.execute(sa.text("SELECT id, definition, state FROM schedules")).fetchall():
        payload = {"state": state, "definition": json.loads(definition),
                   "note": "made before the schedule log (migration 0005): its earlier changes are not known"}
        doc = {"incident_id": schedule_id, "seq": 1, "ts": now, "actor": "bondbot-migration", "kind": "recorded",
               "payload": payload, "prev_hash": GENESIS}
        digest = _hash(doc)
        conn.execute(sa.text("INSERT INTO schedule_events (schedule_id, seq, ts, actor, kind, payload, prev_hash, hash) "
                             "VALUES (:id, 1, :ts, 'bondbot-migration', 'recorded', :payload, :prev, :hash)"),
                     {"id": schedule_id, "ts": now, "payload": _canonical(payload), "prev": GENESIS, "hash": digest})
        conn.execute(sa.text("UPDATE schedules SET head_seq = 1, head_hash = :hash WHERE id = :id"),
                     {"hash": digest, "id": schedule_id})


def downgrade() -> None:
    op.drop_table("schedule_events")
    with op.batch_alter_table("schedule_runs") as batch:
        batch.drop_column("heartbeat_at")
    with op.batch_alter_table("schedules") as batch:
        batch.drop_column("head_hash")
        batch.drop_column("head_seq")
