"""The fix and the failover test planned over SSH (the test sshd answering as the seed host):
one Plan, one digest; what is generated for a run is fixed in the plan; planning again with the
shown plan's token gives the same digest, and the run sends exactly the plan's commands."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.wiring import EngineRemediation
from runbooks.bonding.bond_options import render, sh_c
from runbooks.bonding.failover import sampler_script
from ssh_exec import SshPool
from tests.bot.conftest import seed_table
from tests.remediation.test_failover_analysis import GOOD_TOOLS
from tests.remediation.test_plan import SYSFS
from tests.ssh.fixtures import SshTestHost, ssh_host, sshd_server  # noqa: F401


def host_table(miimon: int) -> dict[str, tuple[int, str, str]]:
    table = seed_table(miimon=miimon)
    table[render("read_state.sysfs", bond="bond0")] = (0, SYSFS.replace("miimon:0", f"miimon:{miimon}"), "")
    table[render("read_state.default_gateway", bond="bond0")] = (0, "default via 10.20.0.1 dev bond0\n", "")
    table[sh_c(render("failover.tools"))] = (0, GOOD_TOOLS, "")
    return table


@pytest.fixture
async def pool(ssh_host: SshTestHost) -> AsyncIterator[SshPool]:  # noqa: F811
    p = SshPool(ssh_host.inventory(), known_hosts=ssh_host.known_hosts_path)
    try:
        yield p
    finally:
        await p.close()


async def test_failover_plan_fixes_token_script_and_deadline_and_replans_to_the_same_digest(
        ssh_host: SshTestHost, pool: SshPool) -> None:  # noqa: F811
    ssh_host.server.set_replay(host_table(miimon=100))
    remediation = EngineRemediation(pool, None, manual_timeout=120.0, hold_seconds=2.0)
    offered = await remediation.plan_failover_test("test-host", "bond0", "manual")
    assert offered is not None
    plan = offered.plan
    assert offered.plan_hash == plan.digest == offered.domain.plan_hash
    assert (plan.runbook, plan.action, plan.subject) == ("bonding", "failover-test", (("bond", "bond0"),))
    # The manual method's deadline is the one shown: hold + the wait for the operator + 40 s.
    assert plan.param("max_seconds") == "162" and plan.param("manual_timeout") == "120"
    token = plan.param("token")
    assert token and offered.domain.token == token
    start = plan.step("start_sampler")
    assert start is not None and start.role == "read"
    # The whole sampler script, the token and the deadline are in the command shown and hashed.
    assert sampler_script().splitlines()[1].strip() in start.command
    assert f"bondbot-failover-{token}" in start.command and " 162 " in start.command
    cut = plan.step("cut")
    assert cut is not None and cut.role == "operator" and "120 s" in cut.instruction
    # The bot plans again at click time: the same digest on the unchanged host.
    again = await remediation.plan_failover_test("test-host", "bond0", "manual")
    assert again is not None and again.plan_hash == offered.plan_hash
    # Another process (no memory of the offer) reaches the same digest from the offered plan only.
    fresh = EngineRemediation(pool, None, manual_timeout=120.0, hold_seconds=2.0)
    other = await fresh.plan_failover_test("test-host", "bond0", "manual")
    assert other is not None and other.plan_hash != offered.plan_hash
    like = await fresh.plan_failover_test("test-host", "bond0", "manual", like=plan)
    assert like is not None and like.plan_hash == offered.plan_hash
    # The host changed (the active port): another plan.
    changed = host_table(miimon=100)
    proc = render("read_state.proc", bond="bond0")
    status, out, err = changed[proc]
    changed[proc] = (status, out.replace("Currently Active Slave: eno1", "Currently Active Slave: eno2"), err)
    ssh_host.server.set_replay(changed)
    moved = await remediation.plan_failover_test("test-host", "bond0", "manual")
    assert moved is not None and moved.plan_hash != offered.plan_hash


async def test_fix_plan_replans_to_the_same_digest_and_shows_what_runs(ssh_host: SshTestHost, pool: SshPool) -> None:  # noqa: F811
    ssh_host.server.set_replay(host_table(miimon=0))
    remediation = EngineRemediation(pool, None)
    offered = await remediation.plan_fix("test-host", "bond0")
    assert offered is not None
    plan = offered.plan
    assert offered.plan_hash == plan.digest and plan.action == "fix"
    run = plan.param("run")
    assert run and all(f"-{run}" in s.command for s in plan.steps if s.name in ("watchdog", "disarm"))
    # Shown (the bot's commands) == the plan's change steps.
    assert [c for c in offered.commands if not c.startswith("(only if")] == [s.command for s in offered.domain.steps]
    again = await remediation.plan_fix("test-host", "bond0")
    assert again is not None and again.plan_hash == offered.plan_hash
    assert (await EngineRemediation(pool, None).plan_fix("test-host", "bond0", like=plan)).plan_hash == offered.plan_hash


async def test_one_reading_plans_the_fix_and_each_method_as_reading_again_would(
        ssh_host: SshTestHost, pool: SshPool) -> None:  # noqa: F811
    """``read_state`` once, then every plan from it: nothing more is sent, and each plan (digest,
    commands, rollback) is the one planning with its own reading gives (the click's re-read)."""
    ssh_host.server.set_replay(host_table(miimon=0))
    remediation = EngineRemediation(pool, None)
    reading = await remediation.read_state("test-host", "bond0")
    ssh_host.server.clear_log()
    fix = await remediation.plan_fix("test-host", "bond0", state=reading)
    assert fix is not None and ssh_host.server.commands() == [], "planned from the reading alone"
    again = await EngineRemediation(pool, None).plan_fix("test-host", "bond0", like=fix.plan)
    assert again is not None and ssh_host.server.commands(), "without a reading the host is read"
    assert (again.plan_hash, again.commands, again.rollback) == (fix.plan_hash, fix.commands, fix.rollback)
    ssh_host.server.set_replay(host_table(miimon=100))
    reading = await remediation.read_state("test-host", "bond0")
    for method in remediation.failover_methods():
        ssh_host.server.clear_log()
        test = await remediation.plan_failover_test("test-host", "bond0", method, state=reading)
        assert test is not None and ssh_host.server.commands() == []
        again = await EngineRemediation(pool, None).plan_failover_test("test-host", "bond0", method, like=test.plan)
        assert again is not None and (again.plan_hash, again.commands) == (test.plan_hash, test.commands)
    with pytest.raises(ValueError, match="not test-host bond1"):
        await remediation.plan_fix("test-host", "bond1", state=reading)
