"""A schedule's own hash-chained log (migration 0005): every change with who made it, checked like an
incident's log; a row edited, an event changed or a tail removed outside bondbot is caught."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

import incidents.migrations
from incidents import IncidentStore
from incidents.chain import canonical_json
from incidents.tables import schedule_events, schedules
from runbooks.scheduler import RUNNER_ACTOR, ScheduleService, describe_event

T0 = datetime(2031, 6, 30, 12, 0, tzinfo=UTC)


def _service(store: IncidentStore) -> ScheduleService:
    return ScheduleService(store, lambda: T0)


def _drill(svc: ScheduleService) -> str:
    return svc.add(kind="drill", cron="0 2 * * *", tz="UTC", window="1h", channel="C0INC", created_by="U0BOB",
                   hosts=("web-01",), bond="bond0", method="host").id


def test_every_change_is_an_event_with_its_actor_and_the_log_verifies(store: IncidentStore) -> None:
    svc = _service(store)
    sid = _drill(svc)
    svc.pause(sid, actor="U0CAROL", reason="switch maintenance")
    svc.refused(sid, actor="U0MALLORY", action="resume", reason="not an approver")
    svc.resume(sid, actor="U0BOB")
    schedule = svc.get(sid)
    svc.claim(schedule, T0 + timedelta(hours=14), runner="replica-a")
    svc.handled(schedule, T0 + timedelta(hours=14), outcome="failed", result={"incident": "INC-AAAA"},
                pause_reason="failed drill: outage 900 ms")
    svc.remove(sid, actor="U0CAROL")

    log = svc.history(sid)
    assert [(e.seq, e.kind, e.actor) for e in log] == [
        (1, "added", "U0BOB"), (2, "paused", "U0CAROL"), (3, "refusal", "U0MALLORY"), (4, "resumed", "U0BOB"),
        (5, "run", RUNNER_ACTOR), (6, "removed", "U0CAROL")]
    added = log[0].payload
    assert added["standing_approval"]["approved_by"] == "U0BOB"
    assert added["standing_approval"]["scope_digest"] == added["definition"]["extra"]["scope_digest"]
    assert log[1].payload["reason"] == "switch maintenance" and log[1].payload["state"] == "paused"
    assert log[4].payload["outcome"] == "failed" and log[4].payload["paused"] == "failed drill: outage 900 ms"
    assert len(log[4].payload["result_sha256"]) == 64
    assert log[5].payload["state"] == "removed"
    count, head, broken = svc.verify(sid)
    assert (count, head, broken) == (6, log[-1].hash, None)
    assert [describe_event(e.kind, e.actor, e.payload) for e in log][1:4] == [
        "paused by U0CAROL: switch maintenance", "refused to resume for U0MALLORY: not an approver",
        "resumed by U0BOB"]


def _write(store: IncidentStore, statement: sa.Executable) -> None:
    with store._write() as conn:
        conn.execute(statement)


def test_a_changed_event_a_removed_tail_and_an_edited_row_are_caught(store: IncidentStore) -> None:
    svc = _service(store)
    sid = _drill(svc)
    svc.pause(sid, actor="U0CAROL", reason="maintenance")
    svc.resume(sid, actor="U0BOB")
    original = {e.seq: e for e in svc.history(sid)}

    # The standing approval's approver rewritten in the first event.
    forged = {**original[1].payload, "standing_approval": {**original[1].payload["standing_approval"],
                                                           "approved_by": "U0MALLORY"}}
    _write(store, sa.update(schedule_events).where((schedule_events.c.schedule_id == sid) & (schedule_events.c.seq == 1))
           .values(payload=canonical_json(forged)))
    _, _, broken = svc.verify(sid)
    assert broken is not None and broken.seq == 1 and "hash" in broken.reason
    _write(store, sa.update(schedule_events).where((schedule_events.c.schedule_id == sid) & (schedule_events.c.seq == 1))
           .values(payload=canonical_json(original[1].payload)))
    assert svc.verify(sid)[2] is None

    # The last event (the resume) deleted: the row's head still names it.
    _write(store, sa.delete(schedule_events).where((schedule_events.c.schedule_id == sid) & (schedule_events.c.seq == 3)))
    _, _, broken = svc.verify(sid)
    assert broken is not None and broken.seq == 3 and "event missing" in broken.reason


def test_a_row_edited_outside_bondbot_differs_from_its_log(store: IncidentStore) -> None:
    svc = _service(store)
    sid = _drill(svc)
    definition = svc.get(sid).to_dict()
    _write(store, sa.update(schedules).where(schedules.c.id == sid)
           .values(definition=canonical_json({**definition, "hosts": ["web-01", "db-01"]})))
    _, _, broken = svc.verify(sid)
    assert broken is not None and "changed outside bondbot" in broken.reason


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'old.sqlite3'}"
    url: str = request.getfixturevalue("fresh_postgres_database")
    return url


def test_0005_gives_a_schedule_made_before_it_a_first_event_that_verifies(empty_url: str) -> None:
    from alembic import command
    from alembic.config import Config

    engine = sa.create_engine(empty_url)
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(incidents.migrations.__file__).parent))
    definition = {"id": "SCH-OLD001", "kind": "audit", "cron": "0 6 * * *", "tz": "UTC", "window_minutes": 60,
                  "channel": "C0INC", "created_by": "U0BOB", "state": "paused"}
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0004")
        conn.execute(sa.text("INSERT INTO schedules (id, kind, definition, state, updated_at) VALUES "
                             "('SCH-OLD001', 'audit', :d, 'paused', '2031-06-01T00:00:00.000Z')"),
                     {"d": canonical_json(definition)})
    engine.dispose()
    with IncidentStore.open(empty_url) as store:  # migrates to the head
        svc = ScheduleService(store)
        [first] = svc.history("SCH-OLD001")
        assert (first.seq, first.kind, first.actor) == (1, "recorded", "bondbot-migration")
        assert first.payload["definition"] == definition and first.payload["state"] == "paused"
        assert svc.verify("SCH-OLD001")[2] is None
