"""The second runbook (tests/runbook_engine/loadavg/) through the bot's triage, unchanged by it.

``/bond triage HOST --runbook loadavg``: the real Bolt app over signed HTTP, the Slack stand-in, a
real sshd replaying an overloaded host, a real SQLite incident log. The runbook is found by name
on the search path the bot is given (``serve``: ``BONDBOT_RUNBOOKS``; the bot never loads a
runbook from a path typed in chat); the
incident records its runbook and subject; nothing of the bonding runbook runs or is offered.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.testing.harness import RunningBot, start_bot
from bot.views import ACTION_APPLY_FIX, ACTION_RUN_ACTION
from tests.bot.conftest import ALICE, BOB, INCIDENTS, World, make_world
from tests.ssh.fixtures import SshTestHost

RUNBOOKS = Path(__file__).resolve().parent.parent / "runbook_engine"
OVERLOADED = {"cat /proc/loadavg": (0, "7.95 3.10 1.20 9/412 12345\n", ""), "nproc": (0, "4\n", ""),
              "sync": (0, "", "")}


def _texts(blocks: list[dict[str, Any]]) -> str:
    return "\n".join(b["text"]["text"] for b in blocks if b["type"] == "section")


@pytest.fixture
async def bot_world(ssh_host: SshTestHost, policy: Any, clock: Any, sqlite_url: str) -> AsyncIterator[tuple[World, RunningBot]]:
    ssh_host.server.set_replay(OVERLOADED)
    # the folder holding loadavg/runbook.yaml, as serve passes BONDBOT_RUNBOOKS
    world = await make_world(sqlite_url, ssh_host, policy, clock, runbooks=str(RUNBOOKS))
    bot = await start_bot(world.slack, world.deps, mode="http")
    try:
        yield world, bot
    finally:
        await bot.stop()
        await world.slack.stop()
        await world.pool.close()
        world.store.close()


async def test_triage_with_another_runbook(bot_world: tuple[World, RunningBot]) -> None:
    world, bot = bot_world
    ack = await bot.command("triage test-host --runbook loadavg", user=ALICE, channel=INCIDENTS)
    assert ack.status == 200
    await bot.settle()
    [incident] = world.store.list_incidents()
    assert (incident.runbook, incident.subject, incident.host) == ("loadavg", {}, "test-host")
    assert incident.status.value == "diagnosed" and incident.root_cause == "1-minute load 7.95 is above the 4 CPU(s)"
    assert sorted(world.host.server.commands()) == ["cat /proc/loadavg", "nproc"]  # no bonding read at all
    [top] = [m for m in world.slack.channel_messages(INCIDENTS, include_ephemeral=False) if m.thread_ts is None]
    assert "LOAD_ABOVE_CPUS" in _texts(top.blocks)
    buttons = [e["action_id"] for b in top.blocks if b["type"] == "actions" for e in b["elements"]]
    assert ACTION_APPLY_FIX not in buttons  # bonding's fix is not this runbook's action
    assert world.store.verify(incident.id).ok


async def test_its_action_is_offered_approved_and_run(bot_world: tuple[World, RunningBot]) -> None:
    """The runbook's ``sync`` (steps as data): offered as a button, the two-person rule, approved,
    run by role, and one digest in the proposal, the approval, the command and the result."""
    world, bot = bot_world
    await bot.command("triage test-host --runbook loadavg", user=ALICE, channel=INCIDENTS)
    await bot.settle()
    [incident] = world.store.list_incidents()
    top = lambda: next(m for m in world.slack.channel_messages(INCIDENTS, include_ephemeral=False)  # noqa: E731
                       if m.thread_ts is None)
    run_sync = f"{ACTION_RUN_ACTION}_sync"
    [button] = [e for b in top().blocks if b["type"] == "actions" for e in b["elements"] if e["action_id"] == run_sync]
    assert button["text"]["text"] == "Flush the file system buffers (harmless)"
    assert "*Offered:* Flush the file system buffers (harmless)" in _texts(top().blocks)
    [details] = [m for m in world.slack.thread(INCIDENTS, top().ts) if "*Offered: " in json.dumps(m.blocks)]
    assert "```sync```" in json.dumps(details.blocks)  # the exact command, in the thread
    assert "sync" not in world.host.server.commands()  # offered, not run
    await bot.click(top(), run_sync, user=ALICE)  # the requester: refused by the two-person rule
    await bot.settle()
    assert "sync" not in world.host.server.commands()
    assert any("two-person rule" in m.text for m in world.slack.ephemerals(ALICE))
    approve = world.slack.block_action_payload(user=BOB, channel=INCIDENTS, message_ts=top().ts, action_id=run_sync)
    await bot.click(top(), run_sync, user=BOB, payload=approve)
    await bot.settle()
    assert world.host.server.commands().count("sync") == 1
    await bot.click(top(), run_sync, user=BOB, payload=approve)  # replayed after it ran: refused, not run again
    await bot.settle()
    assert world.host.server.commands().count("sync") == 1
    events = world.store.events(incident.id)
    [proposal] = [e.payload for e in events if e.kind == "proposal"]
    digest = proposal["digest"]
    assert proposal["action"] == "sync" and proposal["plan"]["runbook"] == "loadavg"
    assert [e.payload["plan_hash"] for e in events if e.kind == "approval"] == [digest]
    assert [(e.payload["command"], e.payload["digest"]) for e in events if e.kind == "command"] == [("sync", digest)]
    [result] = [e.payload["action_result"] for e in events if e.kind == "note" and "action_result" in e.payload]
    assert result["ok"] and result["digest"] == digest
    assert [(e.actor, e.payload["code"]) for e in events if e.kind == "refusal"] == [
        (ALICE, "self_approval"), (BOB, "already_decided")]
    assert world.store.verify(incident.id).ok


async def test_unknown_runbook_and_paths_are_refused(bot_world: tuple[World, RunningBot]) -> None:
    """Refused when the command is parsed, in the ack itself: nothing is opened or sent."""
    world, bot = bot_world
    texts = []
    for text in ("triage test-host --runbook nosuch", "triage test-host --runbook ../../etc",
                 "triage test-host --runbook loadavg eth0", "triage test-host --runbook"):
        ack = await bot.command(text, user=ALICE, channel=INCIDENTS)
        assert ack.status == 200 and ack.body["response_type"] == "ephemeral"
        texts.append(ack.body["text"])
    await bot.settle()
    assert texts[0].startswith("unknown runbook 'nosuch'; known: bonding, loadavg"), texts
    assert texts[1].startswith("`../../etc` is not a valid runbook name."), texts
    assert texts[2].startswith("Runbook `loadavg` triages the host itself: it takes no subject (got `eth0`)."), texts
    assert texts[3].startswith("`--runbook` needs a runbook name."), texts
    assert world.store.list_incidents() == [] and world.host.server.commands() == []

