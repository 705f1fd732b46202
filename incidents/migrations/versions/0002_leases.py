"""Leases: which bot replica owns a running triage or change, and until when (its heartbeat).

Adds one table; events, incidents and their hashes are untouched, so every log written before
this migration reads and verifies as it did.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "incident_leases",
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("incident_id", sa.String(16), sa.ForeignKey("incidents.id"), nullable=False),
        sa.Column("work", sa.String(32), nullable=False),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("started_at", sa.String(24), nullable=False),
        sa.Column("heartbeat_at", sa.String(24), nullable=False),
        sa.Column("expires_at", sa.String(24), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("taken_over_from", sa.String(200), nullable=True),
    )
    op.create_index("ix_incident_leases_expires_at", "incident_leases", ["expires_at"])
    op.create_index("ix_incident_leases_owner", "incident_leases", ["owner"])


def downgrade() -> None:
    op.drop_index("ix_incident_leases_owner", table_name="incident_leases")
    op.drop_index("ix_incident_leases_expires_at", table_name="incident_leases")
    op.drop_table("incident_leases")
