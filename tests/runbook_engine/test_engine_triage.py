"""The triage runbook run over a real sshd that answers from the written seed fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

from runbooks.engine import RunbookError, StepEvent, load_runbook, render_command, run_triage
from runbooks.validation import InvalidValue
from ssh_exec import HostNotAllowed, SshPool
from tests.ssh.fixtures import SshTestHost, seed_replay
from tests.triage_replay import BONDING_MASTERS, NM_LIST, SYSFS_SLAVES

SEED_UUID = "6d1f9b3e-2a4c-4f7e-9c1a-5b8e0d7f3a21"  # the written seed profile's connection.uuid
SEED_COMMANDS = {
    BONDING_MASTERS,
    SYSFS_SLAVES,
    NM_LIST,
    "cat /proc/net/bonding/bond0",
    "ip -d -j link show bond0",
    f"nmcli -t con show uuid {SEED_UUID}",
    "ip link show eno1",
    "ip link show eno2",
    "ethtool eno1",
    "ethtool eno2",
}


def _pool(ssh_host: SshTestHost) -> SshPool:
    return SshPool(ssh_host.inventory(), known_hosts=ssh_host.known_hosts_path)


async def test_seed_triage_end_to_end(ssh_host: SshTestHost) -> None:
    ssh_host.server.set_replay(seed_replay())
    events: list[StepEvent] = []
    async with _pool(ssh_host) as pool:
        result = await run_triage(pool, "test-host", progress=events.append)
    assert set(ssh_host.server.commands()) == SEED_COMMANDS  # slaves eno1/eno2 discovered, not written
    assert len(ssh_host.server.commands()) == 10
    out = result.outputs
    assert out.proc_bonding and out.proc_bonding.command == "cat /proc/net/bonding/bond0"
    assert set(out.ip_link) == set(out.ethtool) == {"eno1", "eno2"}
    assert out.nmcli and out.ip_details_json
    # bondbot-test is not root and has no sudo; active-backup output needs no privilege
    assert out.failed_steps == {}
    assert result.diagnosis is not None and result.diagnosis.root_cause is not None
    assert result.diagnosis.root_cause.code == "NO_LINK_MONITORING"
    assert [r.step for r in result.steps] == [
        "discover bonds", "discover slaves", "discover nm_profiles", "proc_bonding", "ip_details",
        "nmcli", "ip_link eno1", "ip_link eno2", "ethtool eno1", "ethtool eno2"]
    assert all(r.status == "ok" and r.exit_status == 0 and r.duration > 0 for r in result.steps)
    assert [e.kind for e in events].count("done") == 10 and [e.kind for e in events].count("start") == 10
    assert result.verdict == "diagnosed"


async def test_failed_step_is_recorded_and_triage_goes_on(ssh_host: SshTestHost) -> None:
    table = seed_replay()
    table[f"nmcli -t con show uuid {SEED_UUID}"] = (10, "", "Error: timeout waiting for NetworkManager\n")
    ssh_host.server.set_replay(table)
    async with _pool(ssh_host) as pool:
        result = await run_triage(pool, "test-host")
    assert result.outputs.nmcli is None
    assert result.outputs.failed_steps == {"nmcli": "exit status 10: Error: timeout waiting for NetworkManager"}
    nmcli = next(r for r in result.steps if r.step.startswith("nmcli"))
    assert (nmcli.status, nmcli.exit_status) == ("failed", 10)
    assert result.diagnosis and result.diagnosis.root_cause and result.diagnosis.root_cause.code == "NO_LINK_MONITORING"
    assert "STEP_FAILED" in result.diagnosis.codes()


async def test_no_networkmanager_is_not_a_failure(ssh_host: SshTestHost) -> None:
    table = seed_replay()
    table[NM_LIST] = (127, "", "sh: 1: nmcli: not found\n")
    ssh_host.server.set_replay(table)
    async with _pool(ssh_host) as pool:
        result = await run_triage(pool, "test-host")
    assert result.outputs.nmcli is None and result.outputs.failed_steps == {}
    assert result.outputs.not_applicable == {"nmcli": "NetworkManager is not installed (no nmcli)"}
    assert not any(c.startswith("nmcli -t con show") for c in ssh_host.server.commands())
    root = result.diagnosis.root_cause  # type: ignore[union-attr]
    assert root and root.code == "NO_LINK_MONITORING"
    # No profile: the text gives the runtime change and where to persist it, never a made-up profile.
    assert "nmcli con modify" not in root.explanation
    assert "echo 100 > /sys/class/net/bond0/bonding/miimon" in root.explanation
    assert "/etc/network/interfaces" in root.explanation


async def test_missing_bond_skips_slave_steps(ssh_host: SshTestHost) -> None:
    """The host's bond list could not be read and the named bond's status file is missing: the
    ports are unknown, the per-port steps are skipped, and the verdict is inconclusive."""
    ssh_host.server.set_replay({
        "cat /proc/net/bonding/bond7": (1, "", "cat: /proc/net/bonding/bond7: No such file or directory\n"),
    })
    async with _pool(ssh_host) as pool:
        result = await run_triage(pool, "test-host", bond="bond7")
    assert set(ssh_host.server.commands()) == {
        BONDING_MASTERS, SYSFS_SLAVES, NM_LIST, "cat /proc/net/bonding/bond7", "ip -d -j link show bond7"}
    assert result.outputs.failed_steps["ip_link"].startswith("not run: slave names unknown: proc_bonding exit status 1")
    assert {r.step: r.status for r in result.steps}["ethtool"] == "skipped"
    assert result.verdict == "inconclusive" and result.diagnosis and result.diagnosis.root_cause is None
    assert "own state" in result.diagnosis.reasons[0]


async def test_unprivileged_8023ad_is_reported_not_misdiagnosed(ssh_host: SshTestHost, shared_samples: Path) -> None:
    text = (shared_samples / "telegraf__8023ad_v3.7.1_nonroot_no_agg_info.txt").read_text()
    ssh_host.server.set_replay({"cat /proc/net/bonding/bond0": (0, text, "")})
    async with _pool(ssh_host) as pool:
        result = await run_triage(pool, "test-host")
    proc = next(r for r in result.steps if r.step == "proc_bonding")
    assert proc.status == "partial" and proc.reason and proc.reason.startswith("not privileged: 802.3ad LACP details")
    assert "CAP_NET_ADMIN" in result.outputs.failed_steps["proc_bonding (privileged details)"]
    assert result.outputs.proc_bonding is not None


async def test_bond_from_inventory_when_not_named(ssh_host: SshTestHost) -> None:
    ssh_host.rewrite_inventory(bond="bond3")
    async with _pool(ssh_host) as pool:
        await run_triage(pool, "test-host", diagnose=False)
    assert "cat /proc/net/bonding/bond3" in ssh_host.server.commands()


@pytest.mark.parametrize("bond", ["bond0; reboot", "$(reboot)", "bond0\nreboot", "-oops", "a" * 16, "..", "b/0", "bönd"])
async def test_invalid_bond_rejected_before_connecting(ssh_host: SshTestHost, bond: str) -> None:
    async with _pool(ssh_host) as pool:
        with pytest.raises(InvalidValue):
            await run_triage(pool, "test-host", bond=bond)
        assert pool._entries == {}  # never connected
    assert ssh_host.server.commands() == []


async def test_unlisted_host_refused(ssh_host: SshTestHost) -> None:
    async with _pool(ssh_host) as pool:
        with pytest.raises(HostNotAllowed):
            await run_triage(pool, "web-99")
    assert ssh_host.server.commands() == []


async def test_hostile_slave_names_from_the_host_are_not_used(ssh_host: SshTestHost) -> None:
    table = seed_replay()
    proc = table["cat /proc/net/bonding/bond0"]
    table["cat /proc/net/bonding/bond0"] = (0, proc[1].replace("Slave Interface: eno2", "Slave Interface: $(reboot)"), "")
    ssh_host.server.set_replay(table)
    async with _pool(ssh_host) as pool:
        result = await run_triage(pool, "test-host")
    table[SYSFS_SLAVES] = (0, "/sys/class/net/bond0/bonding/slaves:eno1 $(reboot)\n", "")
    ssh_host.server.set_replay(table)
    async with _pool(ssh_host) as pool:
        result = await run_triage(pool, "test-host")
    assert not any("reboot" in c for c in ssh_host.server.commands())
    assert "failed validation" in result.outputs.failed_steps["ethtool"]


def test_render_is_strict() -> None:
    rb = load_runbook()
    with pytest.raises(RunbookError, match="'slave' is undefined"):
        render_command("ethtool {{ slave }}", {"bond": "bond0"}, rb.parameters)
    with pytest.raises(RunbookError, match="no declared type"):
        render_command("echo {{ x }}", {"x": "1"}, rb.parameters)
    with pytest.raises(InvalidValue):
        render_command("ethtool {{ slave }}", {"slave": "eth0 x"}, rb.parameters)
    assert render_command("ethtool {{ slave }} {{ slave | q }}", {"slave": "eth0"}, rb.parameters) == "ethtool eth0 eth0"


def test_runbook_yaml_shape() -> None:
    rb = load_runbook()
    assert [s.name for s in rb.triage] == ["proc_bonding", "ip_details", "nmcli", "ip_link", "ethtool"]
    assert [d.name for d in rb.discover] == ["bonds", "slaves", "nm_profiles"]
    assert rb.name == "bonding" and rb.subject.params == ("bond",) and rb.subject.discover == "bonds"
    assert set(rb.actions) == {"fix", "failover_test"} and all(a.plan for a in rb.actions.values())
    assert all(callable(rb.callable(a.plan or "")) for a in rb.actions.values())  # the planners exist
    assert rb.parameters["slave"].values == "runbooks.bonding.triage:slaves"
    assert rb.parameters["bond"].default is None  # never a guessed bond0
    assert rb.step("nmcli").needs == "nm_uuid" and rb.parameters["nm_uuid"].type == "uuid"
    assert not any("eno" in s.command or "eth" in s.command.replace("ethtool", "") for s in rb.triage)


def test_engine_knows_no_bonding() -> None:
    """Everything bonding is in runbooks/bonding/ and named by its YAML: the engine imports none of it."""
    import ast

    import runbooks.actions
    import runbooks.engine
    import runbooks.outputs
    import runbooks.results
    import runbooks.runbook

    for module in (runbooks.engine, runbooks.runbook, runbooks.results, runbooks.outputs, runbooks.actions):
        source = Path(module.__file__ or "").read_text()
        tree = ast.parse(source)
        imported = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module]
        imported += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        assert not [m for m in imported if "bonding" in m], (module.__name__, imported)
        for word in ("proc_bonding", "nmcli", "slave", "TriageOutputs", "nm_uuid", "miimon"):
            assert word not in source, (module.__name__, word)
