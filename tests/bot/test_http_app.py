"""The real Bolt app over HTTP, with requests signed as Slack signs them, against the stand-in."""

from __future__ import annotations

import json
import time
from urllib.parse import urlencode

from bot.testing.harness import RunningBot
from bot.views import ACTION_APPLY_FIX, ACTION_EXPORT, ACTION_FAILOVER_TEST
from tests.bot.conftest import ALICE, INCIDENTS, RANDOM, World

FAILOVER_HOST = f"{ACTION_FAILOVER_TEST}_host"

SEED_COMMANDS = [
    "cat /sys/class/net/bonding_masters",  # read once, before the incident is opened
    "grep -H . /sys/class/net/*/bonding/slaves",
    "nmcli -t -f UUID,TYPE,DEVICE,NAME connection show",
    "cat /proc/net/bonding/bond0",
    "ip -d -j link show bond0",
    "nmcli -t con show uuid 6d1f9b3e-2a4c-4f7e-9c1a-5b8e0d7f3a21",
    "ip link show eno1",
    "ip link show eno2",
    "ethtool eno1",
    "ethtool eno2",
]


def _section_texts(blocks: list[dict]) -> list[str]:
    return [b["text"]["text"] for b in blocks if b["type"] == "section"]


def _buttons(blocks: list[dict]) -> list[str]:
    return [e["action_id"] for b in blocks if b["type"] == "actions" for e in b["elements"]]


async def test_help_is_an_ephemeral_ack_and_nothing_else(world: World, http_bot: RunningBot) -> None:
    ack = await http_bot.command("help", user=ALICE, channel=INCIDENTS)
    assert ack.status == 200
    assert ack.body["response_type"] == "ephemeral"
    assert ack.body["text"] == "bondbot help"
    assert "`/bond triage HOST [BOND]`" in ack.body["blocks"][0]["text"]["text"]
    await http_bot.settle()
    assert world.slack.messages == []


async def test_unknown_subcommand_gets_short_usage(world: World, http_bot: RunningBot) -> None:
    ack = await http_bot.command("reboot web-01", user=ALICE, channel=INCIDENTS)
    assert ack.body["response_type"] == "ephemeral"
    assert ack.body["text"].startswith("Unknown subcommand `reboot`. Usage: `/bond triage HOST [SUBJECT] [--runbook NAME]`")
    ack = await http_bot.command("triage 'web-01;reboot'", user=ALICE, channel=INCIDENTS)
    assert ack.body["text"].startswith("`'web-01;reboot'` is not a valid host name.")
    await http_bot.settle()
    assert world.slack.messages == []
    assert world.host.server.commands() == []


async def test_triage_outside_allowed_channels_is_refused(world: World, http_bot: RunningBot) -> None:
    ack = await http_bot.command("triage test-host", user=ALICE, channel=RANDOM)
    assert ack.body["text"] == f"🚫 Not allowed to use `/bond triage` here: triage is not enabled in <#{RANDOM}>."
    await http_bot.settle()
    assert world.slack.messages == [] and world.host.server.commands() == []


async def test_forged_or_stale_requests_get_401_and_nothing_runs(world: World, http_bot: RunningBot) -> None:
    fields = world.slack.slash_command_payload("triage test-host", user=ALICE, channel=INCIDENTS)
    body = urlencode(fields)
    forged = await world.slack.post_signed(body, url=http_bot.url, secret="not-the-secret")
    stale = await world.slack.post_signed(body, url=http_bot.url, timestamp=int(time.time()) - 6 * 60)
    assert (forged.status, stale.status) == (401, 401)
    # A click with a valid-looking payload but no valid signature: also refused.
    click = urlencode({"payload": json.dumps({"type": "block_actions", "actions": []})})
    assert (await world.slack.post_signed(click, url=http_bot.url, secret="x")).status == 401
    await http_bot.settle()
    assert world.slack.calls == []  # not even auth.test: nothing ran
    assert world.host.server.commands() == []
    assert world.store.list_incidents() == []


async def test_triage_posts_one_message_updated_per_step_then_the_summary(
    world: World, http_bot: RunningBot
) -> None:
    ack = await http_bot.command("triage test-host", user=ALICE, channel=INCIDENTS)
    assert ack.status == 200 and ack.seconds < 0.3
    assert ack.body["text"] == "Triage of test-host started; the incident follows in this channel."
    await http_bot.settle()
    slack = world.slack

    top = [m for m in slack.channel_messages(INCIDENTS, include_ephemeral=False) if m.thread_ts is None]
    assert len(top) == 1, "one message per incident"
    msg = top[0]
    [incident] = world.store.list_incidents()
    assert (incident.host, incident.bond, incident.requester, incident.channel) == ("test-host", "bond0", ALICE, INCIDENTS)
    # Updated while the steps ran: the first rendering lists every step pending.
    first = msg.versions[0]["blocks"]
    assert "▫️ `cat /proc/net/bonding/bond0`" in _section_texts(first)[0]
    # Repaints are coalesced (one per second per message), and the message is repainted at the end.
    updates = slack.calls_to("chat.update")
    assert 1 <= len(updates) <= len(SEED_COMMANDS)
    # The step progress ones at most ~1 per second; the diagnosis is shown at once, however soon after.
    progress = [u for u in updates if "running" in u.body.get("text", "")]
    assert progress and all(b.at - a.at >= 0.9 for a, b in zip(progress, progress[1:], strict=False))

    blocks = msg.blocks
    # One laptop screen: header, context, root cause with <= 5 evidence lines, other findings as a
    # count, the offers in one line each, their context, the buttons. Nothing else.
    assert [b["type"] for b in blocks] == ["header", "context", "context", "section", "context", "section", "context",
                                           "actions"]
    assert blocks[0]["text"]["text"] == "test-host · bond0 · diagnosed"
    texts = _section_texts(blocks)
    root = incident.root_cause
    assert root and root.startswith("bond0 has no link monitoring (miimon 0, no ARP monitor)")
    assert texts[0].startswith(f"*Root cause:* {root}  `NO_LINK_MONITORING`\n```")
    evidence = texts[0].split("```")[1].strip("\n").split("\n")
    assert 1 <= len(evidence) <= 5 and "cat /proc/net/bonding/bond0: MII Polling Interval (ms): 0" in evidence
    assert "*Why:*" not in json.dumps(blocks) and "nmcli con" not in json.dumps(blocks)  # no shell text, no essay
    assert texts[1].startswith("*Fix:* enable MII link monitoring (miimon=100) on bond0\n*Failover test:* ")
    assert "ACTIVE_SLAVE_NO_CARRIER" in blocks[4]["elements"][0]["text"] and "in the thread" in blocks[4]["elements"][0]["text"]
    assert _buttons(blocks) == [ACTION_APPLY_FIX, FAILOVER_HOST, ACTION_EXPORT]
    fix_button = blocks[-1]["elements"][0]
    # The dialog says what the change is, from the plan.
    assert fix_button["confirm"]["text"]["text"] == (
        "Enable MII link monitoring (miimon=100) on bond0 (test-host). 2 command(s), listed in the message."
    )
    assert msg.text == f"[{incident.id}] test-host bond0: {root}"

    # The thread: the details (why, each step with its purpose then its exact commands, the rollback,
    # the other findings), then the raw outputs in one post, a section per command.
    details, post = slack.thread(INCIDENTS, msg.ts)
    dtexts = _section_texts(details.blocks)
    assert dtexts[0].startswith("*Why:* bond0 runs in mode active-backup with MII link monitoring disabled")
    fix = next(t for t in dtexts if t.startswith("*Fix: enable MII link monitoring (miimon=100)*"))
    assert '1. enable link monitoring\n```nmcli con modify bond0 bond.options "mode=active-backup,miimon=100,primary=eno1"```' in fix
    assert "2. enable link monitoring\n```nmcli con down bond0 &amp;&amp; nmcli con up bond0```" in fix  # Slack-escaped
    assert "3. " not in fix  # the rollback steps are the rollback, below
    rollback = dtexts[dtexts.index(fix) + 1]
    assert rollback == "*Rollback:*\n```nmcli con modify bond0 bond.options \"mode=active-backup,miimon=0,primary=eno1\"```"
    assert any(t.startswith("*Other findings*\n") and "ACTIVE_SLAVE_NO_CARRIER" in t for t in dtexts)
    heads = [b["text"]["text"].split("\n", 1)[0] for b in post.blocks]
    assert sorted(heads) == sorted(f"`$ {c}`" for c in SEED_COMMANDS)
    # Only reads ran on the host (the triage, then the planner's re-read): no change unapproved.
    assert set(world.host.server.commands()) == set(SEED_COMMANDS)
    # Everything is on the record: the steps with their outputs, the diagnosis, the proposals.
    kinds = [e.kind for e in world.store.events(incident.id)]
    assert kinds.count("triage_step") == len(SEED_COMMANDS)
    assert kinds.count("proposal") == 2 and "diagnosis" in kinds and "root_cause" in kinds
    assert world.store.get(incident.id).status.value == "diagnosed"


async def test_http_retry_of_a_command_runs_the_triage_once(world: World, http_bot: RunningBot) -> None:
    fields = world.slack.slash_command_payload("triage test-host", user=ALICE, channel=INCIDENTS)
    body = urlencode(fields)
    first = await world.slack.post_signed(body, url=http_bot.url)
    retry = await world.slack.post_signed(body, url=http_bot.url, retry_num=1)
    assert (first.status, retry.status) == (200, 200)
    await http_bot.settle()
    assert len(world.store.list_incidents()) == 1
    assert len(world.slack.calls_to("chat.postMessage")) == 3  # the message, its details, the raw outputs in one post
