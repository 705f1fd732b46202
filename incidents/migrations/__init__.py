"""Versioned schema migrations (Alembic), run by ``IncidentStore.open`` — no alembic.ini needed.

To add a migration: copy the newest file in ``versions/``, give it the next revision id, set
``down_revision`` to the previous one, and update ``SCHEMA_HEAD`` (a test checks that it matches).
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Connection, text

__all__ = ["SCHEMA_HEAD", "upgrade"]

#: The newest revision; lets ``open`` skip loading Alembic when the database is already current.
SCHEMA_HEAD = "0005"

_LOCK_KEY = 0x626F6E64  # "bond": PostgreSQL advisory lock serialising concurrent upgrades


def current_revision(conn: Connection) -> str | None:
    """The database's schema revision, or None before the first migration."""
    from incidents.tables import VERSION_TABLE

    if not conn.dialect.has_table(conn, VERSION_TABLE):
        return None
    return conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()


def upgrade(conn: Connection) -> None:
    """Bring the schema to ``SCHEMA_HEAD`` inside the caller's transaction on ``conn``.

    The caller holds a write transaction (SQLite: BEGIN IMMEDIATE), and on PostgreSQL we take an
    advisory lock first, so two processes opening a new database at once migrate it once.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
    if current_revision(conn) == SCHEMA_HEAD:
        return  # the usual case: no need to load Alembic at all
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent).replace("%", "%%"))
    cfg.attributes["connection"] = conn
    command.upgrade(cfg, "head")
