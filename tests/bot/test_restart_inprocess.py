"""The drain and the lease life cycle inside one bot (the real app, the stand-in, a real sshd and
store), in both transports: while draining, commands and clicks are answered "restarting" and
nothing runs; work that ends normally leaves no lease; health says it is not taking work."""

from __future__ import annotations

import pytest

from bot.harness import start_bot
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
