"""The drain and the lease life cycle inside one bot (the real app, the stand-in, a real sshd and
store), in both transports: while draining, commands and clicks are answered "restarting" and
nothing runs; work that ends normally leaves no lease; health says it is not taking work."""

from __future__ import annotations

import pytest

from bot.testing.harness import start_bot
from bot.views import ACTION_APPLY_FIX
from tests.bot.conftest import ALICE, BOB, INCIDENTS, World


def _incident_messages(world: World) -> list:
    return [m for m in world.slack.channel_messages(INCIDENTS, include_ephemeral=False) if m.thread_ts is None]


@pytest.mark.parametrize("mode", ["http", "socket"])
async def test_while_draining_commands_and_clicks_are_refused_and_nothing_runs(world: World, mode: str) -> None:
    bot = await start_bot(world.slack, world.deps, mode=mode, ping_interval=0.5)  # type: ignore[arg-type]
    try:
        await bot.command("triage test-host", user=ALICE, channel=INCIDENTS)
        await bot.settle()
        assert world.store.leases() == [], "a triage that ended leaves no lease"
        [msg] = _incident_messages(world)
        bot.bot.supervisor.draining = True
        ack = await bot.command("triage test-host", user=ALICE, channel=INCIDENTS)
        assert "restarting" in ack.body["text"] and "nothing was started" in ack.body["text"]
        assert (await bot.command("help", user=ALICE, channel=INCIDENTS)).body["text"] == "bondbot help"
        await bot.click(msg, ACTION_APPLY_FIX, user=BOB)
        await world.slack.wait_for(lambda: any("restarting" in m.text for m in world.slack.ephemerals(BOB)))
        await bot.settle()
        assert world.remediation.applied == [], "the click ran nothing"
        assert len(world.store.list_incidents()) == 1
        assert ACTION_APPLY_FIX in str(world.slack.message(INCIDENTS, msg.ts).blocks), "the button is still there"
        bot.bot.supervisor.draining = False
        await bot.click(world.slack.message(INCIDENTS, msg.ts), ACTION_APPLY_FIX, user=BOB)
        await bot.settle()
        assert world.remediation.applied == [("fix", "test-host")]
        assert world.store.leases() == [], "a fix that ended leaves no lease"
    finally:
        await bot.stop()


async def test_health_says_not_ready_while_draining(world: World) -> None:
    from bot.health import HealthCheck

    draining = False
    health = HealthCheck(world.store, mode="http", draining=lambda: draining)
    assert (await health.check()).ok
    draining = True
    report = await health.check()
    assert not report.ok and "shutting down" in report.checks["accepting_work"]["detail"]


def test_serve_default_grace_matches_the_supervisor() -> None:
    from bondbot.commands.serve import DEFAULT_GRACE_S
    from bot.recovery import DEFAULT_GRACE_S as SUPERVISOR_DEFAULT

    assert DEFAULT_GRACE_S == SUPERVISOR_DEFAULT == 25.0


@pytest.mark.parametrize("miimon, as_before", [("0", True), ("100", False)])
async def test_the_real_remediation_compares_a_cut_fix_with_its_rollback_note(
    world: World, miimon: str, as_before: bool
) -> None:
    """``EngineRemediation.compare_with_rollback_note`` reads the bond over SSH (the test sshd, a
    host without NetworkManager) and compares it with the rollback note's state before."""
    from bot.wiring import EngineRemediation
    from runbooks.bonding.bond_options import render
    from tests.bot.conftest import seed_table
    from tests.remediation.test_plan import SYSFS

    table = seed_table()
    table[render("read_state.sysfs", bond="bond0")] = (0, SYSFS.replace("miimon:0", f"miimon:{miimon}"), "")
    world.host.server.set_replay(table)
    remediation = EngineRemediation(world.pool, world.store)
    from runbooks.bonding.bond_state import RUNTIME_KEYS
    from runbooks.bonding.remediation import parse_sysfs_bonding

    runtime = parse_sysfs_bonding(SYSFS)  # as FixPlan.rollback_note() records it: the fingerprint's keys
    before = {"runtime_before": {k: runtime.get(k, "") for k in RUNTIME_KEYS}, "nm_profile": {"uuid": None},
              "bond_options_before": None}
    diffs = await remediation.compare_with_rollback_note("test-host", "bond0", before)
    assert (diffs == []) is as_before, diffs
    if not as_before:
        assert diffs == ["miimon: was '0', now '100'"]


async def test_recovering_a_cut_real_fix_compares_the_host_with_the_rollback_note(world: World) -> None:
    """A fix of the real remediation, cut between its change and its verification by a replica that
    died: the live replica's recovery re-reads the bond and records it CHANGED against the note."""
    import asyncio
    import dataclasses

    from bot.app import BondBot
    from bot.recovery import LeaseSettings
    from bot.wiring import EngineRemediation
    from runbooks.bonding.bond_options import render
    from runbooks.bonding.bond_state import RUNTIME_KEYS
    from runbooks.bonding.remediation import parse_sysfs_bonding
    from tests.bot.conftest import seed_table
    from tests.remediation.test_plan import SYSFS

    table = seed_table()
    table[render("read_state.sysfs", bond="bond0")] = (0, SYSFS.replace("miimon:0", "miimon:100"), "")
    world.host.server.set_replay(table)  # the change is in effect, never confirmed
    store = world.store
    incident = store.create_incident(host="test-host", bond="bond0", requester=ALICE, channel=INCIDENTS)
    plan = "ab" * 32
    runtime = parse_sysfs_bonding(SYSFS)
    store.record_approval(incident.id, actor=BOB, plan_hash=plan)
    note = store.add_rollback_note(
        incident.id, actor=BOB, for_change="plan abab: enable miimon=100",
        before={"runtime_before": {k: runtime.get(k, "") for k in RUNTIME_KEYS}, "nm_profile": {"uuid": None},
                "bond_options_before": None},
        restore_commands=["echo 0 > /sys/class/net/bond0/bonding/miimon"],
    )
    store.append(incident.id, actor=BOB, kind="command", payload={"command": "echo 100 > /sys/class/net/bond0/bonding/miimon"})
    assert store.take_lease(incident.id, work="fix", owner="dead-replica", ttl_s=0.1, key=f"fix:{incident.id}:x",
                            detail={"plan_hash": plan, "host": "test-host", "bond": "bond0", "method": ""})
    await asyncio.sleep(0.2)
    deps = dataclasses.replace(world.deps, remediation=EngineRemediation(world.pool, store),
                               leases=LeaseSettings(ttl_s=5))
    from bot.server import make_web_client

    live = BondBot(deps, make_web_client(world.slack.bot_token, world.slack.api_url))
    assert await live.supervisor.recover_expired() == [f"fix:{incident.id}:x"]
    [event] = [e for e in store.events(incident.id) if e.kind == "interrupted"]
    p = event.payload
    assert p["host_as_before"] is False and "miimon: was '0', now '100'" in p["host_state"], p
    assert p["rollback_note_seq"] == note.seq and "between the change and its verification" in p["phase"]
    assert p["owner"] == "dead-replica" and store.get(incident.id).status.value == "interrupted"
    assert store.verify(incident.id).ok and store.leases() == []
    # exactly once: another scan finds nothing
    assert await live.supervisor.recover_expired() == []
    # the replica had no Slack message to repaint: it posted one, with the re-run button
    [msg] = [m for m in world.slack.channel_messages(INCIDENTS, include_ephemeral=False) if m.thread_ts is None]
    assert "bond_rerun_triage" in str(msg.blocks) and "bond_export" in str(msg.blocks)


async def test_a_replica_never_takes_over_its_own_late_lease(world: World) -> None:
    """A heartbeat that came late (a slow database) is not a dead replica: the work goes on."""
    import asyncio
    import dataclasses

    from bot.app import BondBot
    from bot.recovery import LeaseSettings
    from bot.server import make_web_client

    store = world.store
    incident = store.create_incident(host="test-host", bond="bond0", requester=ALICE, channel=INCIDENTS)
    deps = dataclasses.replace(world.deps, leases=LeaseSettings(ttl_s=0.2))
    live = BondBot(deps, make_web_client(world.slack.bot_token, world.slack.api_url))
    lease = await live.supervisor.begin("triage", incident.id)
    assert lease is not None
    await asyncio.sleep(0.3)
    assert store.expired_leases() != []
    assert await live.supervisor.recover_expired() == []
    [held] = store.leases(incident_id=incident.id)
    assert held.owner == live.supervisor.replica_id and held.taken_over_from is None
    assert held.expires_at > lease.expires_at, "renewed instead"
    assert [e.kind for e in store.events(incident.id)] == ["opened"]
