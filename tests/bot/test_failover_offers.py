"""The failover test's offer: only once the bond has link monitoring, one button per method, a
confirm dialog that asks for a maintenance window, the ``manual`` method talking in the thread,
and the hash the approver saw handed to the domain."""

from __future__ import annotations

import asyncio
import json

from bot.testing.harness import RunningBot
from bot.testing.standin import StandinMessage
from bot.views import ACTION_APPLY_FIX, ACTION_EXPORT, failover_action_id
from tests.bot.conftest import ALICE, BOB, INCIDENTS, World, seed_table


def _buttons(msg: StandinMessage) -> list[dict]:
    return [e for b in msg.blocks if b["type"] == "actions" for e in b["elements"]]


def _texts(msg: StandinMessage) -> list[str]:
    return [b["text"]["text"] if b["type"] == "section" else b.get("elements", [{}])[0].get("text", "")
            for b in msg.blocks if b["type"] in ("section", "context")]


async def test_failover_test_offered_after_the_fix_per_method_and_manual_talks_in_the_thread(
    world: World, http_bot: RunningBot
) -> None:
    world.remediation.methods = ("manual", "host")
    world.remediation.require_monitor = True
    await http_bot.command("triage test-host", user=ALICE, channel=INCIDENTS)
    await http_bot.settle()
    [msg] = [m for m in world.slack.channel_messages(INCIDENTS, include_ephemeral=False) if m.thread_ts is None]
    # Before the fix: no failover test button, and the message says why (once, not per method).
    assert [b["action_id"] for b in _buttons(msg)] == [ACTION_APPLY_FIX, ACTION_EXPORT]
    [note] = [t for t in _texts(msg) if "Failover test not offered" in t]
    assert note == "ℹ️ Failover test not offered: preconditions not met (link monitoring on: miimon=0)"

    # The fix runs; meanwhile the host gets its monitor (the replaying sshd now answers miimon 100).
    world.remediation.gate = asyncio.Event()
    await http_bot.click(msg, ACTION_APPLY_FIX, user=BOB)
    for _ in range(200):
        if world.remediation.applied:
            break
        await asyncio.sleep(0.01)
    world.host.server.set_replay(seed_table(miimon=100))
    world.remediation.gate.set()
    await http_bot.settle()

    msg = world.slack.message(INCIDENTS, msg.ts)
    buttons = _buttons(msg)
    assert [b["action_id"] for b in buttons] == [
        failover_action_id("manual"), failover_action_id("host"), ACTION_EXPORT,
    ]
    assert [b["text"]["text"] for b in buttons[:2]] == ["Failover test: manual", "Failover test: host"]
    assert not any("not offered" in t for t in _texts(msg)), "the reason went with the new offer"
    confirm = buttons[0]["confirm"]["text"]["text"]
    assert confirm.startswith("Needs a maintenance window: by confirming you state that test-host is in one.")
    assert "Restore: (operator) re-enable the switch port of eno1" in confirm
    [section] = [t for t in _texts(msg) if t.startswith("*Failover test:")]
    assert section.endswith("— ⚠️ needs a maintenance window; methods `manual`, `host`")
    assert "ip link set" not in section  # the exact commands are in the thread
    [details] = [m for m in world.slack.thread(INCIDENTS, msg.ts) if "*Failover test (manual)" in json.dumps(m.blocks)]
    thread = "\n".join(b["text"]["text"] for b in details.blocks if b["type"] == "section")
    assert "*Failover test (host):" in thread and "ip link set eno1 down" in thread

    await http_bot.click(msg, failover_action_id("manual"), user=BOB)
    await http_bot.settle()
    assert world.remediation.applied == [("fix", "test-host"), ("failover_test", "test-host")]
    # notify() of the manual method: a reply in the incident's thread, addressed to the approver.
    told = [m.text for m in world.slack.thread(INCIDENTS, msg.ts) if "switch port" in m.text]
    assert told == [f"<@{BOB}> Shut the switch port of eno1 now."]
    msg = world.slack.message(INCIDENTS, msg.ts)
    # The used button is gone; the other method stays on offer (a test may be repeated another way).
    assert [b["action_id"] for b in _buttons(msg)] == [failover_action_id("host"), ACTION_EXPORT]
    lines = [line for t in _texts(msg) for line in t.split("\n")]
    assert any(line.startswith(f"✅ Failover test (manual) approved by <@{BOB}>") for line in lines)

    # The hash handed to the domain is the digest of the plan the approver saw (the one on the offer).
    [incident] = world.store.list_incidents()
    offered = {e.payload["plan_hash"]: e.payload["plan"]["digest"]
               for e in world.store.events(incident.id) if e.kind == "proposal"}
    approved = [offered[a.plan_hash] for a in world.store.approvals(incident.id)]
    assert world.remediation.approved_hashes == approved and all(len(h) == 64 for h in approved)


async def test_an_offer_replaced_by_a_newer_one_cannot_be_clicked(world: World, http_bot: RunningBot) -> None:
    await http_bot.command("triage test-host", user=ALICE, channel=INCIDENTS)
    await http_bot.settle()
    [msg] = [m for m in world.slack.channel_messages(INCIDENTS, include_ephemeral=False) if m.thread_ts is None]
    old_click = world.slack.block_action_payload(
        user=BOB, channel=INCIDENTS, message_ts=msg.ts, action_id=failover_action_id("host")
    )
    # A newer batch offers the failover test again with a different plan (another method text).
    [incident] = world.store.list_incidents()
    world.remediation.methods = ("manual",)
    await http_bot.bot._propose(incident.id, "test-host", "bond0", actions=("failover_test",))
    await http_bot.bot.refresh_message(incident.id)
    await http_bot.click(msg, failover_action_id("host"), user=BOB, payload=old_click)
    await http_bot.settle()
    assert world.remediation.applied == []
    [eph] = world.slack.ephemerals(BOB)
    assert eph.text == "❌ This plan was replaced by a newer one on the message; nothing ran."
    msg = world.slack.message(INCIDENTS, msg.ts)
    assert [b["action_id"] for b in _buttons(msg)] == [ACTION_APPLY_FIX, failover_action_id("manual"), ACTION_EXPORT]
