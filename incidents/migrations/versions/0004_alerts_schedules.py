"""Alerts and schedules: what Alertmanager sent (and which incident it opened or updated), the
scheduled audits and failover drills, and one row per occurrence a replica ran.

Adds three tables; events, incidents and their hashes are untouched, so every log written before
this migration reads and verifies as it did. ``schedule_runs``' primary key (schedule, occurrence)
is what makes an occurrence run exactly once across replicas; ``alert_incidents``' primary key
(group, fingerprint) makes one alert open one incident.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alert_notifications",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("received_at", sa.String(24), nullable=False),
        sa.Column("receiver", sa.String(256), nullable=False),
        sa.Column("group_key", sa.Text, nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("labels", sa.Text, nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("incident_id", sa.String(16), sa.ForeignKey("incidents.id"), nullable=True),
        sa.Column("detail", sa.Text, nullable=False),
    )
    op.create_index("ix_alert_notifications_fingerprint", "alert_notifications", ["fingerprint"])
    op.create_table(
        "alert_incidents",
        sa.Column("group_hash", sa.String(64), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("incident_id", sa.String(16), sa.ForeignKey("incidents.id"), nullable=True),
        sa.Column("claimed_by", sa.String(200), nullable=False),
        sa.Column("claimed_at", sa.String(24), nullable=False),
        sa.PrimaryKeyConstraint("group_hash", "fingerprint", name="pk_alert_incidents"),
    )
    op.create_table(
        "schedules",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("definition", sa.Text, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("updated_at", sa.String(24), nullable=False),
    )
    op.create_table(
        "schedule_runs",
        sa.Column("schedule_id", sa.String(32), sa.ForeignKey("schedules.id"), nullable=False),
        sa.Column("occurrence", sa.String(24), nullable=False),
        sa.Column("runner", sa.String(200), nullable=False),
        sa.Column("started_at", sa.String(24), nullable=False),
        sa.Column("finished_at", sa.String(24), nullable=True),
        sa.Column("outcome", sa.String(16), nullable=True),
        sa.Column("result", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("schedule_id", "occurrence", name="pk_schedule_runs"),
    )


def downgrade() -> None:
    op.drop_table("schedule_runs")
    op.drop_table("schedules")
    op.drop_table("alert_incidents")
    op.drop_index("ix_alert_notifications_fingerprint", table_name="alert_notifications")
    op.drop_table("alert_notifications")
