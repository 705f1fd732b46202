"""The incident log's first schema: incidents, hash-chained events, claims and approvals.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "incidents",
        sa.Column("id", sa.String(16), primary_key=True),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("bond", sa.String(32), nullable=False),
        sa.Column("requester", sa.String(200), nullable=False),
        sa.Column("channel", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("root_cause", sa.Text, nullable=True),
        sa.Column("created_at", sa.String(24), nullable=False),
        sa.Column("updated_at", sa.String(24), nullable=False),
        sa.Column("head_seq", sa.Integer, nullable=False),
        sa.Column("head_hash", sa.String(64), nullable=False),
    )
    op.create_table(
        "incident_events",
        sa.Column("incident_id", sa.String(16), sa.ForeignKey("incidents.id"), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("ts", sa.String(24), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("incident_id", "seq", name="pk_incident_events"),
    )
    op.create_table(
        "incident_claims",
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("incident_id", sa.String(16), sa.ForeignKey("incidents.id"), nullable=True),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("claimed_at", sa.String(24), nullable=False),
    )
    op.create_table(
        "incident_approvals",
        sa.Column("incident_id", sa.String(16), sa.ForeignKey("incidents.id"), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("plan_hash", sa.String(128), nullable=False),
        sa.Column("approver", sa.String(200), nullable=False),
        sa.Column("approved_at", sa.String(24), nullable=False),
        sa.Column("key", sa.String(255), sa.ForeignKey("incident_claims.key"), nullable=False),
        sa.PrimaryKeyConstraint("incident_id", "seq", name="pk_incident_approvals"),
        sa.UniqueConstraint("key", name="uq_incident_approvals_key"),
    )


def downgrade() -> None:
    op.drop_table("incident_approvals")
    op.drop_table("incident_claims")
    op.drop_table("incident_events")
    op.drop_table("incidents")
