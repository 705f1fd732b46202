"""``/bond triage`` and ``/bond audit`` on hosts the project has never seen: the bot finds the
bonds, opens one incident per bond, refuses a bond the host lacks with a select menu of the ones
it has (never picking one), and never shows an inconclusive bond as healthy.

The real Bolt app over signed HTTP, the Slack stand-in, a real sshd replaying lab output renamed
to an unseen host (tests/triage_replay.py), a real SQLite incident log.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bot.testing.harness import RunningBot, start_bot
from bot.views import ACTION_APPLY_FIX, ACTION_PICK_BOND
from tests.bot.conftest import ALICE, INCIDENTS, World, make_world
from tests.ssh.fixtures import SshTestHost
from tests.triage_replay import BONDING_MASTERS, host_table, persona_bond


def _texts(blocks: list[dict[str, Any]]) -> str:
    return "\n".join(b["text"]["text"] for b in blocks if b["type"] == "section")


@pytest.fixture
async def edge(ssh_host: SshTestHost, policy: Any, clock: Any, sqlite_url: str) -> AsyncIterator[tuple[World, RunningBot]]:
    """The bot over a host whose inventory entry names no bond."""
    ssh_host.rewrite_inventory(bond=None)
    world = await make_world(sqlite_url, ssh_host, policy, clock)
    bot = await start_bot(world.slack, world.deps, mode="http")
    try:
        yield world, bot
    finally:
        await bot.stop()
        await world.slack.stop()
        await world.pool.close()
        world.store.close()


def _top(world: World) -> list[Any]:
    return [m for m in world.slack.channel_messages(INCIDENTS, include_ephemeral=False) if m.thread_ts is None]


async def test_two_bonds_two_incidents(edge: tuple[World, RunningBot]) -> None:
    world, bot = edge
    world.host.server.set_replay(host_table(
        persona_bond("incident"),
        persona_bond("healthy", bond="uplink1", ports=("ens6", "ens7"), profile="Bond connection 1",
                     uuid="1c8e2d4f-6a71-4b2c-8d3e-4f5a6b7c8d9e")))
    ack = await bot.command("triage test-host", user=ALICE, channel=INCIDENTS)
    assert ack.status == 200
    await bot.settle()
    incidents = {i.bond: i for i in world.store.list_incidents()}
    assert set(incidents) == {"uplink0", "uplink1"}
    assert str(getattr(incidents["uplink0"].status, "value", incidents["uplink0"].status)) == "diagnosed"
    messages = {m.blocks[0]["text"]["text"]: m for m in _top(world)}
    assert set(messages) == {"test-host · uplink0 · diagnosed", "test-host · uplink1 · open"}
    broken, fine = messages["test-host · uplink0 · diagnosed"], messages["test-host · uplink1 · open"]
    assert "NO_LINK_MONITORING" in _texts(broken.blocks)
    assert "✅ *Healthy:* `uplink1`" in _texts(fine.blocks)
    # The change is offered on the incident of the bond it changes, nowhere else.
    buttons = lambda m: [e["action_id"] for b in m.blocks if b["type"] == "actions" for e in b["elements"]]  # noqa: E731
    assert ACTION_APPLY_FIX not in buttons(fine)
    # The bond list was read once (before the incidents were opened), not again per bond.
    assert world.host.server.commands().count(BONDING_MASTERS) == 1


async def test_named_bond_missing_gets_a_menu_of_the_bonds_and_nothing_opens(edge: tuple[World, RunningBot]) -> None:
    world, bot = edge
    world.host.server.set_replay(host_table(persona_bond("incident")))
    await bot.command("triage test-host bond9", user=ALICE, channel=INCIDENTS)
    await bot.settle()
    assert world.store.list_incidents() == [] and _top(world) == []
    [eph] = [m for m in world.slack.ephemerals(ALICE) if "bond9" in m.text]
    assert "test-host has no bond bond9: its bond: uplink0" in eph.text
    [menu] = [e for b in eph.blocks if b["type"] == "actions" for e in b["elements"]]
    assert menu["type"] == "static_select" and menu["action_id"] == ACTION_PICK_BOND
    assert [json.loads(o["value"]) for o in menu["options"]] == [{"bond": "uplink0", "host": "test-host"}]
    # Picking uplink0 triages it, like typing /bond triage test-host uplink0.
    await bot.click(eph, ACTION_PICK_BOND, user=ALICE, payload=_select_payload(world, menu, menu["options"][0]))
    await bot.settle()
    [incident] = world.store.list_incidents()
    assert (incident.host, incident.bond) == ("test-host", "uplink0")
    # A forged pick (a value no menu offered, with shell in it) is refused by the same parser.
    forged = dict(menu["options"][0], value=json.dumps({"host": "test-host", "bond": "x;reboot"}))
    await bot.click(eph, ACTION_PICK_BOND, user=ALICE, payload=_select_payload(world, menu, forged))
    await bot.settle()
    assert len(world.store.list_incidents()) == 1
    assert not any("reboot" in c for c in world.host.server.commands())


def _select_payload(world: World, menu: dict[str, Any], option: dict[str, Any]) -> dict[str, Any]:
    """A ``block_actions`` payload for picking ``option`` in an ephemeral message's select menu."""
    return {
        "type": "block_actions",
        "user": {"id": ALICE, "username": "alice", "team_id": world.slack.team_id},
        "api_app_id": world.slack.app_id,
        "token": "deprecated-verification-token",
        "container": {"type": "message", "message_ts": "", "channel_id": INCIDENTS, "is_ephemeral": True},
        "trigger_id": "13345224609.738474920.8088930838d88f008e0",
        "team": {"id": world.slack.team_id, "domain": "standin"},
        "channel": {"id": INCIDENTS, "name": "incident"},
        "state": {"values": {}},
        "response_url": world.slack.new_response_url(INCIDENTS, ALICE),
        "actions": [{"type": "static_select", "action_id": menu["action_id"], "block_id": "pick:test-host",
                     "selected_option": option, "action_ts": "1700000000.000001"}],
    }


async def test_host_without_bond_says_so_and_opens_nothing(edge: tuple[World, RunningBot]) -> None:
    world, bot = edge
    world.host.server.set_replay({BONDING_MASTERS: (1, "", "cat: /sys/class/net/bonding_masters: No such file or directory\n")})
    await bot.command("triage test-host", user=ALICE, channel=INCIDENTS)
    await bot.settle()
    assert world.store.list_incidents() == []
    [eph] = [m for m in world.slack.ephemerals(ALICE) if "No bond" in m.text]
    assert "No bond on test-host: the bonding driver is not loaded" in eph.text and "✅" not in eph.text


async def test_inconclusive_is_never_a_check_mark(edge: tuple[World, RunningBot]) -> None:
    world, bot = edge
    table = host_table(persona_bond("healthy"))
    table["ethtool ens4"] = (1, "", "netlink error: Operation not permitted\n")
    world.host.server.set_replay(table)
    await bot.command("triage test-host", user=ALICE, channel=INCIDENTS)
    await bot.settle()
    [incident] = world.store.list_incidents()
    assert str(getattr(incident.status, "value", incident.status)) == "inconclusive"
    [msg] = _top(world)
    text = _texts(msg.blocks)
    assert "⚠️ *Inconclusive:* `uplink0`" in text and "ethtool ens4" in text
    assert "✅ *Healthy" not in text and "No root cause found" not in text
    assert "inconclusive" in msg.text
    # /bond audit: one line per bond, the inconclusive one with ⚠️, never ✅.
    await bot.command("audit", user=ALICE, channel=INCIDENTS)
    await bot.settle()
    audit = [m for m in world.slack.channel_messages(INCIDENTS, include_ephemeral=False) if m.text.startswith("Audit")]
    body = _texts(audit[-1].blocks)
    assert "⚠️ *test-host* uplink0: inconclusive:" in body and "✅" not in body
