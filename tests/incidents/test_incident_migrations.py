"""The schema comes from the Alembic migrations, and ``incidents.tables`` matches what they build."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

import incidents.migrations
from incidents import IncidentStore
from incidents.migrations import SCHEMA_HEAD
from incidents.tables import VERSION_TABLE, metadata


def test_schema_head_constant_is_the_newest_revision() -> None:
    script = ScriptDirectory(str(Path(incidents.migrations.__file__).parent))
    assert script.get_current_head() == SCHEMA_HEAD


def test_tables_match_the_migrated_database(db_url: str, store: IncidentStore) -> None:
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar() == SCHEMA_HEAD
            ctx = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
            diff = [d for d in compare_metadata(ctx, metadata) if not _foreign_table(d)]
    finally:
        engine.dispose()
    assert diff == []


def _foreign_table(diff: object) -> bool:
    """Tables of other parts of bondbot sharing the database are not ours to compare."""
    return isinstance(diff, tuple) and diff[0] == "remove_table" and not diff[1].name.startswith("incident")
