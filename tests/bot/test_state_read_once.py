"""State read once (issue 16, item 3): one reading of the host serves the fix and every failover
method offered with it; a click reads the host again (once) and compares digests.

The real Bolt app over signed HTTP to the Slack stand-in, with the real ``EngineRemediation``
against the test sshd replaying the seed host. What the host received is read from the sshd's own
command log: before the buttons appear, every command of the state reading
(``read_bond_state``: sysfs, proc, active NM connections, the default route, systemd-run, the
profile, its file, the D-Bus device paths) and the failover test's tool listing were sent once,
not once per offer (before: three times, for the fix and the manual and host methods).
"""

from __future__ import annotations

import collections
import dataclasses

from bot.testing.harness import start_bot
from bot.testing.standin import StandinMessage
from bot.views import ACTION_APPLY_FIX
from bot.wiring import EngineRemediation, HostReading
from runbooks.bonding.bond_options import render, sh_c
from runbooks.bonding.failover import tool_checks
from tests.bot.conftest import ALICE, INCIDENTS, World, seed_table
from tests.remediation.test_failover_analysis import GOOD_TOOLS
from tests.remediation.test_plan import SYSFS
from tests.ssh.fixtures import seed_replay

#: What the triage itself sends (its own reads; some are the same commands as the state's).
TRIAGE = [c for c in seed_replay() if c != "nmcli -t con show bond0"]


def host_table(miimon: int = 0) -> dict[str, tuple[int, str, str]]:
    table = seed_table(miimon)
    table[render("read_state.sysfs", bond="bond0")] = (0, SYSFS.replace("miimon:0", f"miimon:{miimon}"), "")
    table[render("read_state.default_gateway", bond="bond0")] = (0, "default via 10.20.0.1 dev bond0\n", "")
    table[sh_c(render("failover.tools"))] = (0, GOOD_TOOLS, "")
    return table


#: Commands every state reading sends (then more, depending on who holds the bond: for the seed
#: host, which NetworkManager does not list, the configuration files that name it).
BASIC_READS = [render("read_state.sysfs", bond="bond0"), render("read_state.proc", bond="bond0"),
               render("read_state.nm_active"), render("read_state.default_gateway", bond="bond0"),
               sh_c(render("read_state.has_systemd_run")), sh_c(render("failover.tools"))]


async def one_reading(world: World) -> tuple[list[str], HostReading]:
    """What one ``read_state`` sends to this host (each command once), and the reading."""
    world.host.server.clear_log()
    reading = await EngineRemediation(world.pool, world.store).read_state("test-host", "bond0")
    read = world.host.server.commands()
    world.host.server.clear_log()
    assert len(read) == len(set(read)), f"a command sent twice in one reading: {read}"
    assert set(BASIC_READS) <= set(read) and len(read) > len(BASIC_READS), read
    return read, reading


def _top(world: World) -> StandinMessage:
    [msg] = [m for m in world.slack.channel_messages(INCIDENTS, include_ephemeral=False) if m.thread_ts is None]
    return msg


def _buttons(msg: StandinMessage) -> list[str]:
    return [e["action_id"] for b in msg.blocks if b["type"] == "actions" for e in b["elements"]]


async def test_one_state_reading_before_the_buttons(world: World) -> None:
    assert tool_checks(GOOD_TOOLS) and all(c.ok for c in tool_checks(GOOD_TOOLS))
    world.host.server.set_replay(host_table(miimon=0))
    reads, _reading = await one_reading(world)
    remediation = EngineRemediation(world.pool, world.store)
    assert remediation.failover_methods() == ("manual", "host"), "two failover methods are planned"
    deps = dataclasses.replace(world.deps, remediation=remediation)
    bot = await start_bot(world.slack, deps, mode="http")
    try:
        world.host.server.clear_log()
        await bot.command("triage test-host", user=ALICE, channel=INCIDENTS)
        await bot.settle()
        msg = _top(world)
        assert ACTION_APPLY_FIX in _buttons(msg), "the fix is offered"
        sent = collections.Counter(world.host.server.commands())
    finally:
        await bot.stop()
    [incident] = world.store.list_incidents()
    notes = [e.payload["plan_error"] for e in world.store.events(incident.id)
             if e.kind == "note" and "plan_error" in e.payload]
    # Both failover methods were planned from the reading (not ready before the fix: no monitoring).
    assert [n["action"] for n in notes] == ["failover_test"] and "preconditions not met" in notes[0]["error"]
    for command in reads:
        expected = 1 + TRIAGE.count(command)
        assert sent[command] == expected, (command, sent[command], expected)
    assert all(n == 1 + TRIAGE.count(c) for c, n in sent.items() if c not in TRIAGE or c in reads), sent


async def test_a_reading_plans_every_offer_without_reading_again(world: World) -> None:
    world.host.server.set_replay(host_table(miimon=100))
    reads, reading = await one_reading(world)
    remediation = EngineRemediation(world.pool, world.store)
    plans = [await remediation.plan_failover_test("test-host", "bond0", m, state=reading)
             for m in remediation.failover_methods()]
    assert world.host.server.commands() == [], "planning from the reading sends nothing"
    # Planned again at click time (no reading given: the host is read afresh): the same digests.
    for plan in plans:
        assert plan is not None
        world.host.server.clear_log()
        again = await remediation.plan_failover_test("test-host", "bond0", plan.domain.method, like=plan)
        assert again is not None and again.plan_hash == plan.plan_hash and again.commands == plan.commands
        assert sorted(world.host.server.commands()) == sorted(reads), "the click re-reads the host, once"
