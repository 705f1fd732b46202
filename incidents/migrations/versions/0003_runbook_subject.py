"""Incidents record their runbook and subject instead of a bond: ``bond`` -> ``runbook`` + ``subject``.

Every existing incident is a bonding incident: it gets ``runbook = 'bonding'`` and
``subject = {"bond": <its bond>}`` (canonical JSON, as the store writes it). Events are not
touched: an old incident's ``opened`` event still says ``bond``, and ``verify`` reads it as the
subject ``{"bond": ...}`` of the bonding runbook, so every log written before this migration reads
and verifies as it did (tests/deploy/test_upgrade.py opens a previous release's log).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _canonical(value: object) -> str:
    # incidents.chain.canonical_json, inlined: a migration must not change if that module does.
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def upgrade() -> None:
    op.add_column("incidents", sa.Column("runbook", sa.String(64), nullable=False, server_default="bonding"))
    op.add_column("incidents", sa.Column("subject", sa.Text, nullable=False, server_default="{}"))
    conn = op.get_bind()
    rows = conn.execute(sa.text("SELECT id, bond FROM incidents")).fetchall()
    for incident_id, bond in rows:
        conn.execute(sa.text("UPDATE incidents SET runbook = 'bonding', subject = :subject WHERE id = :id"),
                     {"subject": _canonical({"bond": bond}), "id": incident_id})
    # SQLite (>= 3.35) and PostgreSQL both drop a plain column in place: no table copy, so the
    # foreign keys of events, claims, approvals and leases are never in the way.
    op.drop_column("incidents", "bond")


def downgrade() -> None:
    op.add_column("incidents", sa.Column("bond", sa.String(32), nullable=False, server_default=""))
    conn = op.get_bind()
    for incident_id, subject in conn.execute(sa.text("SELECT id, subject FROM incidents")).fetchall():
        bond = json.loads(subject or "{}").get("bond", "")
        conn.execute(sa.text("UPDATE incidents SET bond = :bond WHERE id = :id"), {"bond": bond, "id": incident_id})
    op.drop_column("incidents", "subject")
    op.drop_column("incidents", "runbook")
