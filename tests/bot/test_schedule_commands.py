"""``/bond schedule ...`` through the real Bolt app (signed requests, the stand-in): who may add a
drill (an approver: a standing approval), bad input refused with nothing stored, list/pause/resume/remove."""

from __future__ import annotations

import pytest

from bot.schedule_commands import ScheduleRequest, ScheduleUsage, parse_schedule
from bot.testing.harness import RunningBot
from runbooks.scheduler import ScheduleService
from tests.bot.conftest import BOB, INCIDENTS, MALLORY, RANDOM, World

DRILL = 'add drill hosts=test-host bond=bond0 method=host cron="0 2 * * SAT" tz=Europe/Berlin window=2h'


async def _answer(world: World, bot: RunningBot, text: str, user: str, channel: str = INCIDENTS) -> str:
    """The ephemeral answer ``user`` got to this command ("" if none: a change is said in the channel)."""
    seen = len(world.slack.ephemerals(user))
    ack = await bot.command(f"schedule {text}", user=user, channel=channel)
    await bot.settle()
    assert ack.status == 200
    answers = world.slack.ephemerals(user)[seen:]
    return " ".join(f"{a.text} {a.blocks}" for a in answers)


async def test_only_an_approver_adds_a_drill_and_it_is_a_standing_approval(world: World, http_bot: RunningBot) -> None:
    service = ScheduleService(world.store)
    answer = await _answer(world, http_bot, DRILL, MALLORY)
    assert "Not allowed to schedule a failover drill" in answer and "standing approval" in answer
    assert service.schedules() == []
    assert await _answer(world, http_bot, DRILL, BOB) == ""
    [drill] = service.schedules()
    assert (drill.kind, drill.hosts, drill.bond, drill.method, drill.approved_by, drill.channel) == (
        "drill", ("test-host",), "bond0", "host", BOB, INCIDENTS)
    assert drill.cron == "0 2 * * SAT" and drill.tz == "Europe/Berlin" and drill.window_minutes == 120
    assert drill.extra["scope_digest"] == drill.scope_digest()
    [said] = [m for m in world.slack.channel_messages(INCIDENTS, include_ephemeral=False)]
    assert f"added schedule `{drill.id}`" in said.text and "standing approval" in said.text
    assert f"/bond schedule remove {drill.id}" in said.text
    answer = await _answer(world, http_bot, "list", MALLORY)
    assert drill.id in answer and "failover drill (host) of test-host bond bond0" in answer
    # Anyone who may triage here may stop it; resuming a drill is an approver's.
    await _answer(world, http_bot, f"pause {drill.id} switch maintenance", MALLORY)
    assert service.get(drill.id).state == "paused" and service.get(drill.id).paused_reason == "switch maintenance"
    answer = await _answer(world, http_bot, f"resume {drill.id}", MALLORY)
    assert "Not allowed to resume a failover drill" in answer and service.get(drill.id).state == "paused"
    await _answer(world, http_bot, f"resume {drill.id}", BOB)
    assert service.get(drill.id).state == "active"
    await _answer(world, http_bot, f"remove {drill.id}", MALLORY)
    assert service.schedules() == [] and service.schedules(include_removed=True)[0].state == "removed"
    assert world.host.server.commands() == []
    # Every decision, the refused resume included, is on the schedule's log, with its Slack user.
    assert [(e.kind, e.actor) for e in service.history(drill.id)] == [
        ("added", BOB), ("paused", MALLORY), ("refusal", MALLORY), ("resumed", BOB), ("removed", MALLORY)]
    answer = await _answer(world, http_bot, f"history {drill.id}", MALLORY)
    assert "log intact: 5 events" in answer and "refused to resume for " + MALLORY in answer
    assert "paused by " + MALLORY + ": switch maintenance" in answer


@pytest.mark.parametrize(("text", "problem"), [
    ('add drill hosts=test-host method=manual cron="0 2 * * *" tz=UTC window=1h', "never scheduled"),
    ('add drill hosts=nope-01 method=host cron="0 2 * * *" tz=UTC window=1h', "nope-01"),
    ('add audit hosts=test-host cron="0 2 * *" tz=UTC window=1h', "five fields"),
    ('add audit hosts=test-host cron="0 2 * * *" tz=Mars/Olympus window=1h', "unknown time zone"),
    ('add audit hosts=test-host cron="0 2 * * *" tz=UTC window=9d', "window"),
    ('add audit hosts=test-host bond="bond0;reboot" cron="0 2 * * *" tz=UTC window=1h', "not a valid bond"),
    ('add audit hosts=test-host method=host cron="0 2 * * *" tz=UTC window=1h', "read-only"),
])
async def test_bad_schedules_are_refused_and_nothing_is_stored(world: World, http_bot: RunningBot, text: str,
                                                               problem: str) -> None:
    answer = await _answer(world, http_bot, text, BOB)
    assert problem in answer
    assert ScheduleService(world.store).schedules() == []


async def test_schedule_outside_the_triage_channels_is_refused(world: World, http_bot: RunningBot) -> None:
    ack = await http_bot.command(f"schedule {DRILL}", user=BOB, channel=RANDOM)
    await http_bot.settle()
    assert "Not allowed" in ack.body["text"]
    assert ScheduleService(world.store).schedules() == []


async def test_a_reason_in_the_history_stays_text(world: World, http_bot: RunningBot) -> None:
    await _answer(world, http_bot, DRILL, BOB)
    [drill] = ScheduleService(world.store).schedules()
    await _answer(world, http_bot, f"pause {drill.id} <!channel> see <https://evil.example|docs> *now*", BOB)
    answer = await _answer(world, http_bot, f"history {drill.id}", BOB)
    assert "paused by" in answer and "&lt;!channel&gt;" in answer
    assert "<!channel>" not in answer and "<https://evil.example" not in answer


def test_parse_schedule() -> None:
    r = parse_schedule("add drill group=web method=host cron=\u201c0 2 * * SAT\u201d tz=UTC window=90m")
    assert r.kind == "drill" and r.options["cron"] == "0 2 * * SAT" and r.options["group"] == "web"
    assert parse_schedule("pause sch-abc123 a reason").schedule_id == "SCH-ABC123"
    assert parse_schedule("history SCH-ABC123") == ScheduleRequest("history", schedule_id="SCH-ABC123")
    for bad in ("", "add", "add drill cron", "remove x", "pause", "add audit hosts=a hosts=b", "resume SCH-AAAA x",
                "history", "history SCH-AAAA more"):
        with pytest.raises(ScheduleUsage):
            parse_schedule(bad)
