"""Leases on running work: owner, heartbeat, take-over of a dead owner's work exactly once, and the
``interrupted`` record, on SQLite and PostgreSQL (and across real processes)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from incidents import IncidentStore, InvalidInput, Status
from incidents.export import export_incident
from incidents.model import RESERVED_KINDS, EventKind
from tests.incidents.test_incident_processes import finish, release, spawn


def test_take_renew_release(store: IncidentStore, incident_id: str) -> None:
    lease = store.take_lease(incident_id, work="triage", owner="replica-a", ttl_s=30, detail={"host": "web-01"})
    assert lease is not None and lease.key == f"triage:{incident_id}" and lease.detail == {"host": "web-01"}
    assert store.take_lease(incident_id, work="triage", owner="replica-b", ttl_s=30) is None, "one owner per work"
    [held] = store.leases(owner="replica-a")
    assert held == lease
    time.sleep(0.01)
    assert store.renew_leases("replica-a", ttl_s=60) == 1
    [renewed] = store.leases(incident_id=incident_id)
    assert renewed.expires_at > lease.expires_at and renewed.heartbeat_at >= lease.heartbeat_at
    assert store.renew_leases("replica-b", ttl_s=60) == 0
    assert store.expired_leases() == []
    assert not store.release_lease(lease.key, owner="replica-b"), "only the owner releases"
    assert store.release_lease(lease.key, owner="replica-a")
    assert store.leases() == [] or all(x.incident_id != incident_id for x in store.leases())


def test_bad_lease_input_changes_nothing(store: IncidentStore, incident_id: str) -> None:
    with pytest.raises(InvalidInput, match="unknown work"):
        store.take_lease(incident_id, work="reboot", owner="a", ttl_s=5)
    with pytest.raises(InvalidInput, match="lease lasts"):
        store.take_lease(incident_id, work="triage", owner="a", ttl_s=0)
    assert store.leases(incident_id=incident_id) == []


def test_expired_lease_is_taken_over_once_and_recorded(store: IncidentStore, incident_id: str) -> None:
    lease = store.take_lease(incident_id, work="triage", owner="replica-a", ttl_s=0.1)
    assert lease is not None
    assert store.take_over_lease(lease, owner="replica-b", ttl_s=30) is None, "not expired yet"
    time.sleep(0.2)
    [expired] = [x for x in store.expired_leases() if x.incident_id == incident_id]
    mine = store.take_over_lease(expired, owner="replica-b", ttl_s=30)
    assert mine is not None and mine.owner == "replica-b" and mine.taken_over_from == "replica-a"
    assert store.take_over_lease(expired, owner="replica-c", ttl_s=30) is None, "the stale view loses"
    assert store.renew_leases("replica-a", ttl_s=30) == 0, "the dead owner no longer holds it"
    assert store.record_interruption(mine.key, owner="replica-c", actor="bondbot", payload={"reason": "x"}) is None
    event = store.record_interruption(
        mine.key, owner="replica-b", actor="bondbot", payload={"reason": "replica-a stopped"},
        notes=[{"text": "re-run /bond triage web-01"}],
    )
    assert event is not None and event.kind == "interrupted"
    assert event.payload == {"work": "triage", "lease": mine.key, "reason": "replica-a stopped"}
    kinds = [e.kind for e in store.events(incident_id)]
    assert kinds[-3:] == ["interrupted", "note", "status_change"]
    assert store.get(incident_id).status is Status.INTERRUPTED
    assert store.leases(incident_id=incident_id) == []
    assert store.record_interruption(mine.key, owner="replica-b", actor="bondbot", payload={"reason": "again"}) is None
    assert store.verify(incident_id).ok
    # the work can go on afterwards: a re-run's result moves the incident on (not to "diagnosed":
    # the PostgreSQL database is shared with test_list_incidents, which counts those)
    store.set_status(incident_id, "fixing", actor="bondbot")
    assert store.verify(incident_id).ok


def test_interrupted_is_written_only_by_the_store(store: IncidentStore, incident_id: str) -> None:
    assert EventKind.INTERRUPTED in RESERVED_KINDS
    with pytest.raises(InvalidInput, match="written by the store"):
        store.append(incident_id, actor="x", kind="interrupted", payload={"reason": "forged"})


def test_interruption_of_a_closed_incident_keeps_its_status(store: IncidentStore, incident_id: str) -> None:
    lease = store.take_lease(incident_id, work="fix", owner="a", ttl_s=30, key=f"fix:{incident_id}:abc")
    assert lease is not None
    store.set_status(incident_id, "closed", actor="U1")
    assert store.record_interruption(lease.key, owner="a", actor="bondbot", payload={"reason": "shutdown"})
    assert store.get(incident_id).status is Status.CLOSED
    assert store.verify(incident_id).ok


def test_processes_taking_over_one_lease_record_it_once(
    db_url: str, store: IncidentStore, incident_id: str, tmp_path: Path
) -> None:
    assert store.take_lease(incident_id, work="triage", owner="dead-replica", ttl_s=0.1)
    time.sleep(0.2)
    go = tmp_path / "go"
    results = [tmp_path / f"r{n}" for n in range(3)]
    procs = [spawn(db_url, "takeover", incident_id, str(go), str(r)) for r in results]
    release(procs, go)
    finish(procs)
    assert sorted(r.read_text() for r in results) == ["0", "0", "1"]
    assert [e.kind for e in store.events(incident_id)].count("interrupted") == 1
    assert store.verify(incident_id).ok


def test_a_log_from_before_leases_migrates_and_still_verifies(db_url: str, tmp_path: Path) -> None:
    """Schema 0001 (no leases) with incidents in it: opening it adds the table, the logs stay valid."""
    import sqlalchemy as sa
    from alembic import command
    from alembic.config import Config

    import incidents.migrations
    from incidents.tables import VERSION_TABLE

    if db_url.startswith("postgresql"):
        from pg import create_database

        db_url = create_database(db_url.rsplit("/", 1)[0] + "/postgres", None)
    with IncidentStore.open(db_url) as s:
        old = s.create_incident(host="web-09", bond="bond0", requester="U1", channel="#ops")
        s.append(old.id, actor="bot", kind="note", payload={"text": "written before the upgrade"})
        s.set_status(old.id, "diagnosed", actor="bot")
        before = s.events(old.id)
    engine = sa.create_engine(db_url)
    try:
        with engine.begin() as conn:
            cfg = Config()
            cfg.set_main_option("script_location", str(Path(incidents.migrations.__file__).parent))
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0001")
        with engine.connect() as conn:
            assert not sa.inspect(conn).has_table("incident_leases")
            assert conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar() == "0001"
    finally:
        engine.dispose()
    with IncidentStore.open(db_url) as s:  # migrates to the head again
        assert s.events(old.id) == before
        assert s.verify(old.id).ok
        assert s.take_lease(old.id, work="triage", owner="a", ttl_s=5) is not None


def test_an_interrupted_incident_exports_to_the_schema_and_reads_in_the_timeline(
    store: IncidentStore, incident_id: str
) -> None:
    import json

    from jsonschema import Draft202012Validator

    from incidents.export import json_schema_text

    lease = store.take_lease(incident_id, work="triage", owner="a", ttl_s=30)
    assert lease is not None
    store.record_interruption(lease.key, owner="a", actor="bondbot",
                              payload={"reason": "replica a stopped <@U1>", "host_as_before": False})
    doc = json.loads(export_incident(store, incident_id, "json").text)
    Draft202012Validator(json.loads(json_schema_text())).validate(doc)
    assert doc["incident"]["status"] == "interrupted" and doc["verification"]["ok"]
    md = export_incident(store, incident_id, "md").text
    assert "Interrupted triage: replica a stopped" in md and "host CHANGED" in md
    html = export_incident(store, incident_id, "html").text
    assert "&lt;@U1&gt;" in html and "<@U1>" not in html  # host- or replica-sourced text is escaped
