"""Approval buttons: who may click, expiry, binding to the plan, re-check, exactly once."""

from __future__ import annotations

import asyncio
import json
import re

import pytest

from bot.testing.harness import RunningBot
from bot.testing.standin import StandinMessage
from bot.views import ACTION_APPLY_FIX, ACTION_EXPORT, ACTION_FAILOVER_TEST
from tests.bot.conftest import ALICE, BOB, CAROL, INCIDENTS, MALLORY, World, seed_table
from tests.bot.host_remediation import FIX_COMMANDS

FAILOVER_HOST = f"{ACTION_FAILOVER_TEST}_host"


async def _triaged(world: World, bot: RunningBot) -> StandinMessage:
    await bot.command("triage test-host", user=ALICE, channel=INCIDENTS)
    await bot.settle()
    [msg] = [m for m in world.slack.channel_messages(INCIDENTS, include_ephemeral=False) if m.thread_ts is None]
    return msg


def _buttons(msg: StandinMessage) -> list[str]:
    return [e["action_id"] for b in msg.blocks if b["type"] == "actions" for e in b["elements"]]


def _fix_runs(world: World) -> int:
    return sum(1 for c in world.host.server.commands() if c == FIX_COMMANDS[0])


async def test_approver_applies_the_fix_and_the_message_shows_who_what_result(world: World, http_bot: RunningBot) -> None:
    msg = await _triaged(world, http_bot)
    ack = await http_bot.click(msg, ACTION_APPLY_FIX, user=BOB)
    assert ack.status == 200 and ack.seconds < 0.3
    await http_bot.settle()
    assert world.remediation.applied == [("fix", "test-host")]
    assert _fix_runs(world) == 1
    msg = world.slack.message(INCIDENTS, msg.ts)
    assert _buttons(msg) == [FAILOVER_HOST, ACTION_EXPORT], "the used button is gone"
    texts = [b["text"]["text"] for b in msg.blocks if b["type"] == "section"]
    # One line in the message: who, when, the result; what ran and the report in the thread.
    [outcome] = [t for t in texts if t.startswith("✅ Fix approved by")]
    assert re.fullmatch(rf"✅ Fix approved by <@{BOB}> at \d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d UTC: verified", outcome)
    assert FIX_COMMANDS[0] not in json.dumps(msg.blocks)
    [ran] = [m for m in world.slack.thread(INCIDENTS, msg.ts) if m.text.startswith("✅ Fix approved by")]
    assert "Ran:\n```" + FIX_COMMANDS[0] in ran.text and "2 commands ran" in ran.text
    # While it ran, the message said so.
    assert any(
        b.get("text", {}).get("text", "").startswith(f"⏳ Fix approved by <@{BOB}>")
        for v in msg.versions for b in v["blocks"]
    )
    [incident] = world.store.list_incidents()
    [approval] = world.store.approvals(incident.id)
    assert approval.approver == BOB


async def test_group_member_may_approve(world: World, http_bot: RunningBot) -> None:
    msg = await _triaged(world, http_bot)
    await http_bot.click(msg, FAILOVER_HOST, user=CAROL)
    await http_bot.settle()
    assert world.remediation.applied == [("failover_test", "test-host")]
    assert world.slack.calls_to("usergroups.users.list")[0].body["usergroup"] == "S0NETOPS"


@pytest.mark.parametrize(
    ("user", "reason"),
    [
        (MALLORY, f"<@{MALLORY}> is not an approver"),
        (ALICE, "two-person rule: you requested this change, so someone else must approve it"),
    ],
)
async def test_unauthorized_or_self_approval_is_refused_ephemerally_and_logged(
    world: World, http_bot: RunningBot, user: str, reason: str
) -> None:
    msg = await _triaged(world, http_bot)
    before = msg.blocks
    await http_bot.click(msg, ACTION_APPLY_FIX, user=user)
    await http_bot.settle()
    assert world.remediation.applied == [] and _fix_runs(world) == 0
    [eph] = world.slack.ephemerals(user)
    assert eph.text == f"🚫 Not allowed to apply the fix: {reason}."
    assert world.slack.message(INCIDENTS, msg.ts).blocks == before, "the buttons stay for a real approver"
    [incident] = world.store.list_incidents()
    [refusal] = [e for e in world.store.events(incident.id) if e.kind == "refusal"]
    assert refusal.actor == user and refusal.payload["reason"] == reason


async def test_expired_button_is_refused_and_removed(world: World, http_bot: RunningBot) -> None:
    msg = await _triaged(world, http_bot)
    world.clock.advance(minutes=15, seconds=1)
    await http_bot.click(msg, ACTION_APPLY_FIX, user=BOB)
    await http_bot.settle()
    assert world.remediation.applied == []
    [eph] = world.slack.ephemerals(BOB)
    assert eph.text == "❌ This approval request has expired; run `/bond triage` again for a fresh plan."
    msg = world.slack.message(INCIDENTS, msg.ts)
    assert _buttons(msg) == [ACTION_EXPORT]
    assert any("⌛ Fix: the approval window closed" in b.get("text", {}).get("text", "") for b in msg.blocks)
    [incident] = world.store.list_incidents()
    [refusal] = [e for e in world.store.events(incident.id) if e.kind == "refusal"]
    assert refusal.actor == BOB and refusal.payload["code"] == "expired", "the late click is on the record"


async def test_replayed_click_and_double_click_run_once(world: World, http_bot: RunningBot) -> None:
    msg = await _triaged(world, http_bot)
    payload = world.slack.block_action_payload(user=BOB, channel=INCIDENTS, message_ts=msg.ts, action_id=ACTION_APPLY_FIX)
    second = world.slack.block_action_payload(user=CAROL, channel=INCIDENTS, message_ts=msg.ts, action_id=ACTION_APPLY_FIX)
    acks = await asyncio.gather(
        http_bot.click(msg, ACTION_APPLY_FIX, user=BOB, payload=payload),
        http_bot.click(msg, ACTION_APPLY_FIX, user=BOB, payload=payload, retry_num=1),  # Slack retry
        http_bot.click(msg, ACTION_APPLY_FIX, user=CAROL, payload=second),  # another approver, same moment
    )
    assert [a.status for a in acks] == [200, 200, 200]
    await http_bot.settle()
    assert world.remediation.applied == [("fix", "test-host")]
    assert _fix_runs(world) == 1
    # Replayed later, after it finished: still nothing.
    await http_bot.click(msg, ACTION_APPLY_FIX, user=BOB, payload=payload)
    await http_bot.settle()
    assert _fix_runs(world) == 1
    [incident] = world.store.list_incidents()
    assert len(world.store.approvals(incident.id)) == 1
    # Every losing click is a decision on the record, refused as already decided (or in progress).
    refusals = [e.payload for e in world.store.events(incident.id) if e.kind == "refusal"]
    assert len(refusals) == 3 and {r["code"] for r in refusals} == {"already_decided"}


async def test_click_while_the_first_is_still_running(world: World, http_bot: RunningBot) -> None:
    msg = await _triaged(world, http_bot)
    world.remediation.gate = gate = asyncio.Event()
    # Carol's client still shows the button (her screen had not refreshed yet).
    stale_view = world.slack.block_action_payload(user=CAROL, channel=INCIDENTS, message_ts=msg.ts, action_id=ACTION_APPLY_FIX)
    try:
        await http_bot.click(msg, ACTION_APPLY_FIX, user=BOB)
        await world.slack.wait_for(lambda: world.remediation.applied)
        assert ACTION_APPLY_FIX not in _buttons(world.slack.message(INCIDENTS, msg.ts)), "gone while running"
        await http_bot.click(msg, ACTION_APPLY_FIX, user=CAROL, payload=stale_view)
        eph = await world.slack.wait_for(lambda: world.slack.ephemerals(CAROL))
        assert eph[0].text.startswith(f"Already approved by <@{BOB}> at ")
    finally:
        gate.set()
    await http_bot.settle()
    assert world.remediation.applied == [("fix", "test-host")] and _fix_runs(world) == 1


async def test_state_is_rechecked_before_running(world: World, http_bot: RunningBot) -> None:
    msg = await _triaged(world, http_bot)
    # Someone fixed the bond by hand after the triage: the approved plan no longer applies.
    world.host.server.set_replay(seed_table(miimon=100))
    await http_bot.click(msg, ACTION_APPLY_FIX, user=BOB)
    await http_bot.settle()
    assert world.remediation.applied == [] and _fix_runs(world) == 0
    [eph] = world.slack.ephemerals(BOB)
    assert eph.text == "❌ Not run: the host no longer needs it."
    msg = world.slack.message(INCIDENTS, msg.ts)
    assert ACTION_APPLY_FIX not in _buttons(msg)
    [incident] = world.store.list_incidents()
    assert world.store.approvals(incident.id) == []
    [refusal] = [e.payload for e in world.store.events(incident.id) if e.kind == "refusal"]
    assert refusal["code"] == "stale" and refusal["stale"] is True and refusal["reason"] == "the host no longer needs it"


async def test_forged_button_value_for_another_plan_runs_nothing(world: World, http_bot: RunningBot) -> None:
    msg = await _triaged(world, http_bot)
    payload = world.slack.block_action_payload(user=BOB, channel=INCIDENTS, message_ts=msg.ts, action_id=ACTION_APPLY_FIX)
    [incident] = world.store.list_incidents()
    payload["actions"][0]["value"] = json.dumps({"incident": incident.id, "plan": "0" * 64})
    await http_bot.click(msg, ACTION_APPLY_FIX, user=BOB, payload=payload)
    await http_bot.settle()
    assert world.remediation.applied == []
    assert world.slack.ephemerals(BOB)[0].text == "❌ No such plan on this incident; nothing ran."
    [refusal] = [e.payload for e in world.store.events(incident.id) if e.kind == "refusal"]
    assert refusal["code"] == "no_offer" and refusal["digest"] == "0" * 64


async def test_export_button_uploads_the_timeline_to_the_thread(world: World, http_bot: RunningBot) -> None:
    msg = await _triaged(world, http_bot)
    await http_bot.click(msg, ACTION_EXPORT, user=BOB)
    await http_bot.settle()
    [incident] = world.store.list_incidents()
    steps = [c.method for c in world.slack.calls if c.method in ("files.getUploadURLExternal", "upload", "files.completeUploadExternal")]
    assert steps == ["files.getUploadURLExternal", "upload", "files.completeUploadExternal"]
    complete = world.slack.calls_to("files.completeUploadExternal")[0].body
    assert complete["channel_id"] == INCIDENTS and complete["thread_ts"] == msg.ts
    [upload] = world.slack.uploads.values()
    assert upload["name"] == f"{incident.id}.md"
    assert incident.id.encode() in upload["content"]
    assert [e.kind for e in world.store.events(incident.id)][-1] == "export"
    # people by name (Slack users.info through the stand-in), the summary first
    md = upload["content"].decode()
    assert md.index("## Summary") < md.index("## Timeline (UTC)")
    assert f"| Requested by | alice in {INCIDENTS} |" in md
    asked = {c.body.get("user") for c in world.slack.calls_to("users.info")}
    assert ALICE in asked and "bondbot" not in asked  # only user ids are looked up
    timeline = md.split("## Timeline (UTC)", 1)[1].split("## Appendix", 1)[0]
    assert ALICE not in timeline and "| alice | triage_step |" in timeline


async def test_an_export_shows_ids_slack_has_no_name_for(world: World, http_bot: RunningBot) -> None:
    msg = await _triaged(world, http_bot)
    world.slack.users.pop(ALICE)  # users.info answers user_not_found
    await http_bot.click(msg, ACTION_EXPORT, user=BOB)
    await http_bot.settle()
    [upload] = world.slack.uploads.values()
    md = upload["content"].decode()
    assert f"| Requested by | {ALICE} in {INCIDENTS} |" in md
    assert [c.body.get("user") for c in world.slack.calls_to("users.info")].count(ALICE) == 1


async def test_a_declined_offer_leaves_the_message(world: World) -> None:
    """A "no" decided elsewhere (the CLI's prompt into this incident) closes the offer on the card."""
    from datetime import UTC, datetime

    from bot.incident_view import card_from_log
    from runbooks.approvals import Approvals
    from runbooks.plan import Plan, PlanStep

    incident = world.store.create_incident(host="test-host", bond="bond0", requester=ALICE, channel=INCIDENTS)
    service = Approvals(world.store, clock=lambda: datetime.now(UTC), ttl_seconds=900, two_person=True)
    plan = Plan("bonding", "fix", "test-host", (("bond", "bond0"),), "enable miimon",
                (PlanStep("change", "enable", FIX_COMMANDS[0]),))
    service.offer(incident.id, plan, actor="bondbot", action="fix")
    before = card_from_log(world.store.get(incident.id), world.store.events(incident.id), now=datetime.now(UTC))
    assert [o.plan_hash for o in before.offers] == [plan.digest]
    assert not service.decide(incident.id, plan.digest, actor="cli:root", approve=False, current=None)
    card = card_from_log(world.store.get(incident.id), world.store.events(incident.id), now=datetime.now(UTC))
    assert card.offers == () and [(o.state, o.summary) for o in card.outcomes] == [("stale", "declined by cli:root")]
