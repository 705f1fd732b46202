"""Scheduled audits and failover drills with a controllable clock, against the real bot (Bolt app,
stand-in, a real sshd replaying a host), two replicas on one store where it matters."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from bot.schedule_flow import ScheduleRunner
from bot.testing.harness import RunningBot, start_bot
from incidents import IncidentStore, automation
from incidents.chain import canonical_json
from incidents.tables import schedules
from runbooks.scheduler import ScheduleService
from tests.bot.conftest import BOB, INCIDENTS, World, seed_table
from tests.bot.host_remediation import TEST_COMMANDS
from tests.triage_replay import host_table, persona_bond

BERLIN = ZoneInfo("Europe/Berlin")
#: When the tests' schedules are made (the clock is set before: nothing earlier is due).
START = datetime(2031, 6, 30, 12, 0, tzinfo=UTC)


def healthy_table(*, test_fails: bool = False) -> dict[str, tuple[int, str, str]]:
    table = host_table(persona_bond("healthy", bond="bond0", ports=("eno1", "eno2")))
    for command in TEST_COMMANDS:
        table.setdefault(command, (0, "", ""))
    if test_fails:
        table[TEST_COMMANDS[0]] = (2, "", "RTNETLINK answers: Operation not permitted\n")
    return table


def at(world: World, moment: datetime) -> None:
    """Set the bot's clock to ``moment``."""
    world.clock.offset = timedelta()
    world.clock.offset = moment - world.clock()


@pytest.fixture
async def two(world: World) -> AsyncIterator[tuple[RunningBot, RunningBot]]:
    a = await start_bot(world.slack, world.deps)
    b = await start_bot(world.slack, world.deps)
    try:
        yield a, b
    finally:
        await a.stop()
        await b.stop()


async def _tick_all(*bots: RunningBot) -> list[tuple[str, str]]:
    runners = [ScheduleRunner(b.bot) for b in bots]
    taken = await asyncio.gather(*(r.tick() for r in runners))
    for b in bots:
        await b.settle()
    return [t for ts in taken for t in ts]


def _top(world: World) -> list:
    return [m for m in world.slack.channel_messages(INCIDENTS, include_ephemeral=False) if m.thread_ts is None]


async def test_an_audit_posts_once_per_period_across_two_replicas(world: World, two: tuple[RunningBot, RunningBot]) -> None:
    at(world, datetime(2031, 3, 4, 9, 40, tzinfo=UTC))
    service = ScheduleService(world.store, world.clock)
    schedule = service.add(kind="audit", cron="0 * * * *", tz="UTC", window="30m", channel=INCIDENTS,
                           created_by=BOB, hosts=("test-host",))
    hour = datetime(2031, 3, 4, 10, 0, tzinfo=UTC)
    at(world, hour - timedelta(minutes=1))
    assert await _tick_all(*two) == []
    at(world, hour + timedelta(minutes=5))
    assert len(await _tick_all(*two)) == 1  # both replicas tried; the store gave it to one
    assert await _tick_all(*two) == []  # handled: not again in the same period
    [summary] = _top(world)
    assert summary.text.startswith(f"Scheduled audit {schedule.id} of test-host (2031-03-04T10:00:00Z): 1 broken, "
                                   "0 at risk, 0 inconclusive, 0 healthy")
    assert "First run of this audit" in str(summary.blocks)
    assert world.store.list_incidents() == []  # read-only: no incident, nothing offered
    # Next period: the bond was fixed meanwhile; the summary says what changed.
    world.host.server.set_replay(healthy_table())
    at(world, hour + timedelta(hours=1, minutes=1))
    assert len(await _tick_all(*two)) == 1
    second = _top(world)[-1]
    assert len(_top(world)) == 2
    assert second.text.endswith("): 0 broken, 0 at risk, 0 inconclusive, 1 healthy")
    assert "Changed since the last run:* test-host bond0 (broken → healthy)" in str(second.blocks)
    runs = automation.schedule_runs(world.store, schedule.id)
    assert [(r.occurrence, r.outcome) for r in runs] == [("2031-03-04T10:00:00Z", "ok"), ("2031-03-04T11:00:00Z", "ok")]
    assert len({r.runner for r in runs}) >= 1


async def test_a_drill_runs_inside_its_window_only(world: World, two: tuple[RunningBot, RunningBot]) -> None:
    world.host.server.set_replay(healthy_table())
    at(world, START)
    service = ScheduleService(world.store, world.clock)
    drill = service.add(kind="drill", cron="0 2 * * *", tz="Europe/Berlin", window="1h", channel=INCIDENTS,
                        created_by=BOB, hosts=("test-host",), bond="bond0", method="host")
    night = datetime(2031, 7, 1, 2, 0, tzinfo=BERLIN)  # 00:00 UTC (summer time)
    for before in (timedelta(minutes=-30), timedelta(hours=-5)):
        at(world, night + before)
        assert await _tick_all(*two) == []
    assert world.remediation.applied == []
    at(world, night + timedelta(minutes=10))
    assert len(await _tick_all(*two)) == 1
    assert world.remediation.applied == [("failover_test", "test-host")]
    [incident] = world.store.list_incidents()
    assert incident.requester == f"schedule:{drill.id}"
    events = world.store.events(incident.id)
    [standing] = [e.payload["standing_approval"] for e in events if e.kind == "note" and "standing_approval" in e.payload]
    assert standing["scope_digest"] == drill.scope_digest() and standing["approved_by"] == BOB
    assert standing["scope"]["window_minutes"] == 60 and standing["scope"]["tz"] == "Europe/Berlin"
    [approval] = [e for e in events if e.kind == "approval"]
    assert approval.actor == f"standing:{drill.id}:{BOB}"
    [result] = [e.payload["action_result"] for e in events if "action_result" in e.payload]
    assert result["ok"] is True and result["digest"] == approval.payload["plan_hash"]
    assert any(m.text.startswith(f"✅ Scheduled failover drill {drill.id} (2031-07-01T00:00:00Z): passed")
               for m in _top(world))
    # Later in the same window, or after it: it does not run again.
    for later in (timedelta(minutes=40), timedelta(hours=3)):
        at(world, night + later)
        assert await _tick_all(*two) == []
    # The next night: the bot was down all through the window, so it is skipped (said once), not run late.
    at(world, night + timedelta(days=1, hours=2))
    assert len(await _tick_all(*two)) == 1
    assert await _tick_all(*two) == []
    assert world.remediation.applied == [("failover_test", "test-host")]
    runs = automation.schedule_runs(world.store, drill.id)
    assert [r.outcome for r in runs] == ["passed", "skipped"]
    assert any("skipped the occurrence 2031-07-02T00:00:00Z" in m.text for m in _top(world))
    assert service.get(drill.id).state == "active"


async def test_a_failed_drill_pauses_the_series_until_resumed(world: World, two: tuple[RunningBot, RunningBot]) -> None:
    world.host.server.set_replay(healthy_table(test_fails=True))
    at(world, START)
    service = ScheduleService(world.store, world.clock)
    drill = service.add(kind="drill", cron="0 2 * * *", tz="Europe/Berlin", window="1h", channel=INCIDENTS,
                        created_by=BOB, hosts=("test-host",), bond="bond0", method="host")
    night = datetime(2031, 7, 1, 2, 0, tzinfo=BERLIN)
    at(world, night + timedelta(minutes=1))
    assert len(await _tick_all(*two)) == 1
    paused = service.get(drill.id)
    assert paused.state == "paused" and "failed drill" in paused.paused_reason
    assert any("The series is paused" in m.text and f"/bond schedule resume {drill.id}" in m.text for m in _top(world))
    # Paused: the next nights' occurrences run nothing (not even a skip notice).
    for day in (1, 2):
        at(world, night + timedelta(days=day, minutes=1))
        assert await _tick_all(*two) == []
    assert world.remediation.applied == [("failover_test", "test-host")]
    world.host.server.set_replay(healthy_table())
    service.resume(drill.id, actor=BOB)
    at(world, night + timedelta(days=2, minutes=5))
    assert await _tick_all(*two) == []  # resumed inside a window that opened while paused: not run
    at(world, night + timedelta(days=3, minutes=1))
    assert len(await _tick_all(*two)) == 1
    assert world.remediation.applied == [("failover_test", "test-host")] * 2
    assert [r.outcome for r in automation.schedule_runs(world.store, drill.id)] == ["failed", "passed"]
    assert service.get(drill.id).state == "active"


async def test_a_drill_on_a_broken_bond_does_not_run_the_test_and_pauses(world: World, two: tuple[RunningBot, RunningBot]) -> None:
    world.host.server.set_replay(seed_table())  # the seed incident: miimon=0, eno1 without carrier
    at(world, START)
    service = ScheduleService(world.store, world.clock)
    drill = service.add(kind="drill", cron="30 3 * * *", tz="UTC", window="1h", channel=INCIDENTS,
                        created_by=BOB, hosts=("test-host",), method="host")
    at(world, datetime(2031, 7, 1, 3, 31, tzinfo=UTC))
    assert len(await _tick_all(*two)) == 1
    assert world.remediation.applied == []
    [incident] = world.store.list_incidents()
    notes = [e.payload["drill_result"] for e in world.store.events(incident.id) if "drill_result" in e.payload]
    assert notes and notes[0]["summary"].startswith("not drilled: the bond must be healthy first")
    assert service.get(drill.id).state == "paused"


async def test_a_tampered_scope_is_not_covered_by_the_standing_approval(world: World, two: tuple[RunningBot, RunningBot]) -> None:
    world.host.server.set_replay(healthy_table())
    at(world, START)
    service = ScheduleService(world.store, world.clock)
    drill = service.add(kind="drill", cron="0 2 * * *", tz="UTC", window="1h", channel=INCIDENTS,
                        created_by=BOB, hosts=("test-host",), bond="bond0", method="host")
    row = automation.get_schedule(world.store, drill.id)
    assert row is not None
    with world.store._write() as conn:  # the row edited outside bondbot: no event on its log
        conn.execute(sa.update(schedules).where(schedules.c.id == drill.id).values(
            definition=canonical_json({**row.definition, "window_minutes": 600})))
    events, _, broken = service.verify(drill.id)
    assert events == 1 and broken is not None and "changed outside bondbot" in broken.reason
    at(world, datetime(2031, 7, 1, 2, 5, tzinfo=UTC))
    assert len(await _tick_all(*two)) == 1
    assert world.remediation.applied == [] and world.store.list_incidents() == []
    assert service.get(drill.id).state == "paused"
    assert any("scope digest mismatch" in m.text for m in _top(world))
    [added, run] = service.history(drill.id)
    assert (added.kind, added.actor, run.kind, run.actor) == ("added", BOB, "run", "bondbot:scheduler")
    assert added.payload["standing_approval"]["scope"]["window_minutes"] == 60
    assert "scope digest mismatch" in run.payload["paused"] and run.payload["state"] == "paused"


async def test_a_restart_loses_nothing(world: World, sqlite_url: str) -> None:
    world.host.server.set_replay(healthy_table())
    at(world, START)
    service = ScheduleService(world.store, world.clock)
    audit = service.add(kind="audit", cron="0 6 * * *", tz="UTC", window="2h", channel=INCIDENTS, created_by=BOB,
                        hosts=("test-host",))
    drill = service.add(kind="drill", cron="0 2 * * *", tz="UTC", window="1h", channel=INCIDENTS,
                        created_by=BOB, hosts=("test-host",), bond="bond0", method="host")
    service.pause(audit.id, actor=BOB, reason="holiday")
    day = datetime(2031, 7, 1, tzinfo=UTC)
    first = await start_bot(world.slack, world.deps)
    at(world, day + timedelta(hours=2, minutes=1))
    assert len(await _tick_all(first)) == 1
    await first.stop()
    world.store.close()
    # A new process: a new store on the same database, a new bot.
    store = IncidentStore.open(sqlite_url)
    try:
        world.deps.store = store
        world.deps.triage.store = store  # type: ignore[attr-defined]
        again = await start_bot(world.slack, world.deps)
        try:
            restarted = ScheduleService(store, world.clock)
            assert {s.id: s.state for s in restarted.schedules()} == {audit.id: "paused", drill.id: "active"}
            assert restarted.get(audit.id).paused_reason == "holiday"
            assert restarted.get(drill.id).scope_digest() == drill.scope_digest()
            assert await _tick_all(again) == []  # the occurrence handled before the restart stays handled
            at(world, day + timedelta(days=1, hours=2, minutes=1))
            assert len(await _tick_all(again)) == 1
            assert world.remediation.applied == [("failover_test", "test-host")] * 2
            assert [r.outcome for r in automation.schedule_runs(store, drill.id)] == ["passed", "passed"]
        finally:
            await again.stop()
    finally:
        world.store = store


async def test_a_run_whose_replica_died_is_recorded_interrupted_once_and_pauses_the_drill(
        world: World, two: tuple[RunningBot, RunningBot]) -> None:
    """A replica claimed tonight's drill and died (it renews no heartbeat). The live replicas go on
    renewing their own runs; once the dead one's heartbeat is older than the staleness limit, one of
    them (one only) records the occurrence interrupted, pauses the series and says so."""
    world.host.server.set_replay(healthy_table())
    at(world, START)
    service = ScheduleService(world.store, world.clock)
    drill = service.add(kind="drill", cron="0 2 * * *", tz="UTC", window="1h", channel=INCIDENTS,
                        created_by=BOB, hosts=("test-host",), bond="bond0", method="host")
    night = datetime(2031, 7, 1, 2, 0, tzinfo=UTC)
    at(world, night + timedelta(minutes=1))
    assert service.claim(drill, night, runner="replica-dead:4242:abc")  # ... and it died at once
    assert await _tick_all(*two) == []  # claimed: nobody else runs it; its heartbeat is still fresh
    assert [r.outcome for r in automation.schedule_runs(world.store, drill.id)] == [None]
    at(world, night + timedelta(minutes=2))
    assert await _tick_all(*two) == []  # 60 s without a heartbeat: not yet stale (120 s)
    at(world, night + timedelta(minutes=4))
    assert await _tick_all(*two) == []
    [run] = automation.schedule_runs(world.store, drill.id)
    assert run.outcome == "interrupted" and run.result is not None and "replica-dead:4242:abc" in run.result["reason"]
    assert service.get(drill.id).state == "paused" and "interrupted" in service.get(drill.id).paused_reason
    said = [m.text for m in _top(world) if "was interrupted" in m.text]
    assert len(said) == 1 and "replica-dead:4242:abc" in said[0] and f"/bond schedule resume {drill.id}" in said[0]
    assert world.remediation.applied == []  # nothing was run again
    [_, event] = service.history(drill.id)
    assert (event.kind, event.payload["outcome"], event.payload["state"]) == ("run", "interrupted", "paused")
    assert service.verify(drill.id)[2] is None


async def test_a_live_replica_keeps_its_long_run(world: World, two: tuple[RunningBot, RunningBot]) -> None:
    a, b = two
    at(world, START)
    service = ScheduleService(world.store, world.clock)
    audit = service.add(kind="audit", cron="0 6 * * *", tz="UTC", window="2h", channel=INCIDENTS, created_by=BOB,
                        hosts=("test-host",))
    morning = datetime(2031, 7, 1, 6, 0, tzinfo=UTC)
    at(world, morning)
    runner_a = ScheduleRunner(a.bot)
    assert service.claim(audit, morning, runner=runner_a.runner_id)  # a long audit of replica a, still running
    for minutes in (3, 6, 9):
        at(world, morning + timedelta(minutes=minutes))
        await runner_a.tick()  # a renews its run on every tick
        assert await ScheduleRunner(b.bot).tick() == []
        assert [r.outcome for r in automation.schedule_runs(world.store, audit.id)] == [None]
