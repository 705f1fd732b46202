"""The schema comes from the Alembic migrations, and ``incidents.tables`` matches what they build."""

from __future__ import annotations

from pathlib import Path

import pytest
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


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'old.sqlite3'}"
    return request.getfixturevalue("fresh_postgres_database")


def test_0003_moves_bond_to_runbook_and_subject_and_old_logs_verify(empty_url: str) -> None:
    """A log written at revision 0002 (a bond column, an 'opened' event saying bond) upgraded to
    0003: the row gets runbook 'bonding' and subject {"bond": ...}; its chain verifies unchanged;
    a subject edited afterwards is caught by verify."""
    from alembic import command
    from alembic.config import Config

    from incidents.chain import GENESIS, canonical_json, event_hash

    engine = sa.create_engine(empty_url)
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(incidents.migrations.__file__).parent))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0002")
        payload = {"host": "web-01", "bond": "bond7", "requester": "U1", "channel": "#ops"}
        ts = "2025-01-31T09:15:02.123Z"
        digest = event_hash(incident_id="INC-AAAA", seq=1, ts=ts, actor="U1", kind="opened", payload=payload,
                            prev_hash=GENESIS)
        conn.execute(sa.text(
            "INSERT INTO incidents (id, host, bond, requester, channel, status, root_cause, created_at, updated_at,"
            " head_seq, head_hash) VALUES ('INC-AAAA', 'web-01', 'bond7', 'U1', '#ops', 'open', NULL, :ts, :ts, 1, :h)"),
            {"ts": ts, "h": digest})
        conn.execute(sa.text(
            "INSERT INTO incident_events (incident_id, seq, ts, actor, kind, payload, prev_hash, hash)"
            " VALUES ('INC-AAAA', 1, :ts, 'U1', 'opened', :p, :g, :h)"),
            {"ts": ts, "p": canonical_json(payload), "g": GENESIS, "h": digest})
    engine.dispose()
    with IncidentStore.open(empty_url) as store:  # migrates to the head
        inc = store.get("INC-AAAA")
        assert (inc.runbook, inc.subject, inc.bond) == ("bonding", {"bond": "bond7"}, "bond7")
        assert store.verify("INC-AAAA").ok
        assert store.events("INC-AAAA")[0].payload == payload  # the event itself is untouched
        store.append("INC-AAAA", actor="U2", kind="note", payload={"text": "after 0003"})
        assert store.verify("INC-AAAA").ok
    engine = sa.create_engine(empty_url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE incidents SET subject = :s WHERE id = 'INC-AAAA'"), {"s": '{"bond":"bond8"}'})
    engine.dispose()
    with IncidentStore.open(empty_url) as store:
        result = store.verify("INC-AAAA")
        assert not result.ok and result.first_break is not None and "subject" in result.first_break.reason
