"""Bond discovery, verdicts and the NetworkManager profile found by device, over a real sshd.

The hosts replay real kernel and nmcli output recorded from the lab (tests/fixtures/lab/), with
the bond and its ports renamed the way a host the project has never seen names them (``uplink0``
on ``ens4``/``ens5``, profiles named by nmcli ``bond-uplink0`` or by nmtui ``Bond connection 1``):
no bond is named anywhere, so the triage must find everything itself.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bondbot.cli import app
from runbooks.engine import BondNotFound, BondSelectionError, run_host_triage, run_triage
from ssh_exec import SshPool
from tests.ssh.fixtures import SshTestHost
from tests.triage_replay import BONDING_MASTERS, NM_LIST, SYSFS_SLAVES, host_table, nm_list_line, persona_bond


def _pool(ssh_host: SshTestHost) -> SshPool:
    return SshPool(ssh_host.inventory(), known_hosts=ssh_host.known_hosts_path)


async def _cli(*args: str):  # type: ignore[no-untyped-def]
    """The CLI in a thread: it runs its own event loop."""
    import asyncio

    return await asyncio.to_thread(lambda: CliRunner().invoke(app, list(args), catch_exceptions=False))


@pytest.fixture
def unnamed(ssh_host: SshTestHost) -> SshTestHost:
    """The test host with no ``bond:`` in the inventory (the second persona's inventory entry)."""
    ssh_host.rewrite_inventory(bond=None)
    return ssh_host


async def test_one_bond_found_and_its_profile_by_device(unnamed: SshTestHost) -> None:
    unnamed.server.set_replay(host_table(persona_bond("incident")))
    async with _pool(unnamed) as pool:
        ht = await run_host_triage(pool, "test-host")
    assert ht.bonds == ("uplink0",) and ht.named is None and [r.bond for r in ht.results] == ["uplink0"]
    [r] = ht.results
    sent = unnamed.server.commands()
    assert "nmcli -t con show uuid 0b7d1c3e-5f60-4a1b-9c2d-3e4f5a6b7c8d" in sent
    assert not any(c.startswith("nmcli -t con show uplink0") for c in sent)  # never by the device's name
    assert {"ip link show ens4", "ethtool ens5"} <= set(sent)  # ports from sysfs, not assumed
    assert r.verdict == "diagnosed" and r.diagnosis and r.diagnosis.root_cause
    root = r.diagnosis.root_cause
    assert root.code == "NO_LINK_MONITORING"
    assert "nmcli con modify bond-uplink0 bond.options mode=active-backup,miimon=100,primary=ens4" in root.explanation
    assert ht.verdict == "diagnosed"


async def test_two_bonds_each_triaged_with_its_own_profile(unnamed: SshTestHost) -> None:
    first = persona_bond("incident")
    second = persona_bond("healthy", bond="uplink1", ports=("ens6", "ens7"), profile="Bond connection 1",
                          uuid="1c8e2d4f-6a71-4b2c-8d3e-4f5a6b7c8d9e")
    unnamed.server.set_replay(host_table(first, second))
    async with _pool(unnamed) as pool:
        ht = await run_host_triage(pool, "test-host")
        sent = unnamed.server.commands()
        with pytest.raises(BondSelectionError, match="several bonds"):
            await run_triage(pool, "test-host")  # one result wanted: it asks, never picks
    assert ht.bonds == ("uplink0", "uplink1")
    verdicts = {r.bond: r.verdict for r in ht.results}
    assert verdicts == {"uplink0": "diagnosed", "uplink1": "healthy"}
    assert ht.verdict == "diagnosed"
    # Discovery ran once for the host (three reads), not once per bond.
    assert sent.count(BONDING_MASTERS) == 1 and sent.count(NM_LIST) == 1
    uplink1 = next(r for r in ht.results if r.bond == "uplink1")
    assert uplink1.outputs.nmcli and "connection.id:Bond connection 1" in uplink1.outputs.nmcli.text
    # CLI: one section per bond, exit 0 (both conclusive).
    r = await _cli("triage", "test-host")
    assert r.exit_code == 0, r.output
    assert "2 bonds: uplink0, uplink1" in r.stdout and "bond uplink1" in r.stdout
    assert "Root cause: NO_LINK_MONITORING" in r.stdout and "Healthy" in r.stdout
    data = json.loads((await _cli("triage", "test-host", "--json")).stdout)
    assert [x["bond"] for x in data["results"]] == ["uplink0", "uplink1"] and data["verdict"] == "diagnosed"


@pytest.mark.parametrize("answer, why", [
    ((1, "", "cat: /sys/class/net/bonding_masters: No such file or directory\n"), "bonding driver is not loaded"),
    ((0, "\n", ""), "has no bond"),
])
async def test_host_without_bond_says_so(unnamed: SshTestHost, answer: tuple[int, str, str], why: str) -> None:
    unnamed.server.set_replay({BONDING_MASTERS: answer, SYSFS_SLAVES: (2, "", "grep: /sys/class/net/*/bonding/slaves: "
                                                                      "No such file or directory\n"),
                               NM_LIST: (0, "", "")})
    async with _pool(unnamed) as pool:
        ht = await run_host_triage(pool, "test-host")
    assert ht.verdict == "no-bond" and ht.results == [] and ht.bonds == ()
    assert ht.no_bond and why in ht.no_bond and ht.no_bond.startswith("no bond on this host")
    r = await _cli("triage", "test-host")
    assert r.exit_code == 5 and "no bond on this host" in r.stdout and "ealthy" not in r.stdout
    assert json.loads((await _cli("triage", "test-host", "--json")).stdout)["verdict"] == "no-bond"


async def test_named_bond_that_does_not_exist_lists_the_bonds(unnamed: SshTestHost) -> None:
    unnamed.server.set_replay(host_table(persona_bond("incident")))
    async with _pool(unnamed) as pool:
        with pytest.raises(BondNotFound) as exc:
            await run_host_triage(pool, "test-host", bond="bond9")
    assert exc.value.bonds == ("uplink0",) and str(exc.value) == "test-host has no bond bond9: its bond: uplink0"
    r = await _cli("triage", "test-host", "--bond", "bond9")
    assert r.exit_code == 2 and "has no bond bond9: its bond: uplink0" in r.stderr
    # The same for the inventory's bond: never "healthy" about a bond that is not there.
    unnamed.rewrite_inventory(bond="bond0")
    r = await _cli("triage", "test-host")
    assert r.exit_code == 2 and "has no bond bond0" in r.stderr
    r = await _cli("audit", "--json")
    assert r.exit_code == 4
    [row] = json.loads(r.stdout)["hosts"]
    assert row["status"] == "bond-not-found" and "its bond: uplink0" in row["error"]


async def test_change_commands_never_guess_the_bond(unnamed: SshTestHost) -> None:
    unnamed.server.set_replay(host_table(persona_bond("incident"), persona_bond(
        "healthy", bond="uplink1", ports=("ens6", "ens7"), uuid="1c8e2d4f-6a71-4b2c-8d3e-4f5a6b7c8d9e")))
    for command in (["fix", "test-host", "--yes"], ["failover-test", "test-host", "--method", "host", "--yes"]):
        r = await _cli(*command)
        assert r.exit_code == 2 and "has 2 bonds (uplink0, uplink1): name the one to change with --bond" in r.stderr
        r = await _cli(*command, "--bond", "bond0")
        assert r.exit_code == 2 and "has no bond bond0: its bonds: uplink0, uplink1" in r.stderr
    sent = set(unnamed.server.commands())
    assert sent <= {BONDING_MASTERS}  # nothing read beyond the bond list, nothing changed


async def test_bond_list_unreadable_is_inconclusive(unnamed: SshTestHost) -> None:
    unnamed.server.set_replay({BONDING_MASTERS: (1, "", "cat: /sys/class/net/bonding_masters: Permission denied\n")})
    async with _pool(unnamed) as pool:
        ht = await run_host_triage(pool, "test-host")
    assert ht.verdict == "inconclusive" and ht.error and "Permission denied" in ht.error
    r = await _cli("triage", "test-host")
    assert r.exit_code == 4 and "inconclusive" in r.stdout and "--bond" in r.stdout


async def test_inactive_profile_found_by_interface_name(unnamed: SshTestHost) -> None:
    """No active connection on the device: the bond profiles are read by UUID and the one whose
    connection.interface-name is the bond owns it (a port profile and another bond's are not it)."""
    t = persona_bond("incident", profile="Bond \"edge\" it's", active=False)
    other = "2d9f3e5a-7b82-4c3d-9e4f-5a6b7c8d9e0f"
    table = host_table(t)
    lines = table[NM_LIST][1].replace(":uplink0:", "::")  # inactive: no device
    lines += nm_list_line(other, "bond", "", "spare bond") + "\n"
    lines += nm_list_line("3e0a4f6b-8c93-4d4e-af50-6b7c8d9e0f1a", "ethernet", "ens4", "bond-slave-ens4") + "\n"
    table[NM_LIST] = (0, lines, "")
    spare = table["nmcli -t con show uuid 0b7d1c3e-5f60-4a1b-9c2d-3e4f5a6b7c8d"][1].replace(
        "connection.interface-name:uplink0", "connection.interface-name:spare0")
    table[f"nmcli -t con show uuid {other}"] = (0, spare, "")
    unnamed.server.set_replay(table)
    async with _pool(unnamed) as pool:
        ht = await run_host_triage(pool, "test-host")
    [r] = ht.results
    assert r.outputs.nmcli and r.outputs.nmcli.command == "nmcli -t con show uuid 0b7d1c3e-5f60-4a1b-9c2d-3e4f5a6b7c8d"
    root = r.diagnosis.root_cause  # type: ignore[union-attr]
    assert root and root.code == "NO_LINK_MONITORING"
    q = shlex.quote("Bond \"edge\" it's")
    assert f"nmcli con modify {q} bond.options " in root.explanation
    assert shlex.split(root.facts["fix_commands"][0])[3] == "Bond \"edge\" it's"
    nm_step = next(s for s in r.steps if s.step.startswith("nmcli 0b7d"))
    assert nm_step.reason and "interface-name" in nm_step.reason
    # What the operator reads and copies: the real name, quoted so the shell sees one word.
    import asyncio

    cli = await asyncio.to_thread(lambda: CliRunner().invoke(app, ["triage", "test-host"], catch_exceptions=False,
                                                             env={"COLUMNS": "300"}))
    line = next(ln for ln in cli.stdout.splitlines() if "nmcli con modify" in ln)
    assert shlex.split(line[line.index("nmcli con modify"):].rstrip(" │"))[:4] == ["nmcli", "con", "modify", "Bond \"edge\" it's"]


async def test_no_profile_owns_the_bond(unnamed: SshTestHost) -> None:
    """NetworkManager runs but the bond is configured elsewhere (ifupdown): not a failure."""
    table = host_table(persona_bond("healthy", profile=None))
    table[NM_LIST] = (0, nm_list_line("3e0a4f6b-8c93-4d4e-af50-6b7c8d9e0f1a", "ethernet", "ens3", "mgmt") + "\n", "")
    unnamed.server.set_replay(table)
    async with _pool(unnamed) as pool:
        ht = await run_host_triage(pool, "test-host")
    [r] = ht.results
    assert r.verdict == "healthy" and r.outputs.failed_steps == {}
    assert "no NetworkManager profile owns uplink0" in r.outputs.not_applicable["nmcli"]


@pytest.mark.parametrize("failing", [
    ("cat /proc/net/bonding/uplink0",),
    ("ethtool ens4", "ethtool ens5"),
    ("ip -d -j link show uplink0", "ip link show ens5"),
    ("nmcli -t con show uuid 0b7d1c3e-5f60-4a1b-9c2d-3e4f5a6b7c8d",),
    (SYSFS_SLAVES, "cat /proc/net/bonding/uplink0"),
    (NM_LIST,),
    "all",
])
async def test_failed_steps_over_ssh_are_inconclusive_never_healthy(unnamed: SshTestHost, failing: object) -> None:
    table = host_table(persona_bond("healthy"))
    names = [c for c in table if c != BONDING_MASTERS] if failing == "all" else list(failing)  # type: ignore[arg-type]
    for command in names:
        table[command] = (1, "", "simulated: Input/output error\n")
    unnamed.server.set_replay(table)
    async with _pool(unnamed) as pool:
        ht = await run_host_triage(pool, "test-host")
    [r] = ht.results
    assert r.verdict == "inconclusive", (failing, r.diagnosis.reasons if r.diagnosis else None)
    assert r.diagnosis and r.diagnosis.reasons and r.diagnosis.root_cause is None
    r2 = await _cli("triage", "test-host")
    assert r2.exit_code == 4 and "Inconclusive" in r2.stdout and "Healthy" not in r2.stdout
    audit = await _cli("audit", "--csv")
    assert audit.exit_code == 4 and ",uplink0,inconclusive," in audit.stdout


async def test_warnings_only_is_healthy_with_risks(unnamed: SshTestHost) -> None:
    unnamed.server.set_replay(host_table(persona_bond("arp")))
    r = await _cli("triage", "test-host")
    assert r.exit_code == 0, r.output
    assert "Healthy, 1 risk" in r.stdout and "ARP_SINGLE_TARGET" in r.stdout and "Root cause" not in r.stdout
    data = json.loads((await _cli("triage", "test-host", "--json")).stdout)
    assert data["verdict"] == "healthy" and data["results"][0]["diagnosis"]["risks"] == ["ARP_SINGLE_TARGET"]
    text = (await _cli("audit")).stdout
    assert "healthy (1 with risks)" in text


async def test_hostile_profile_name_cannot_drive_the_terminal(unnamed: SshTestHost) -> None:
    """A profile name is host-sourced: shown quoted for the shell and with control characters
    escaped for the terminal (an escape sequence must not retitle or recolour it)."""
    unnamed.server.set_replay(host_table(persona_bond("incident", profile="evil\x1b]0;pwned\x07$(reboot)")))
    import asyncio

    cli = await asyncio.to_thread(lambda: CliRunner().invoke(app, ["triage", "test-host"], catch_exceptions=False,
                                                             env={"COLUMNS": "300"}))
    assert cli.exit_code == 0
    assert "\x1b]0;" not in cli.stdout and "\x07" not in cli.stdout
    assert "\\x1b]0;pwned\\x07$(reboot)" in cli.stdout
    assert not any("reboot" in c for c in unnamed.server.commands())  # a name from the host is never sent back


async def test_record_opens_one_incident_per_bond_with_its_own_status(unnamed: SshTestHost, tmp_path: Path) -> None:
    """``--record``: one incident per bond; an inconclusive bond is recorded as such, not as open."""
    from incidents import IncidentStore

    healthy_but_unread = persona_bond("healthy", bond="uplink1", ports=("ens6", "ens7"),
                                      uuid="1c8e2d4f-6a71-4b2c-8d3e-4f5a6b7c8d9e")
    table = host_table(persona_bond("incident"), healthy_but_unread)
    table["ethtool ens7"] = (1, "", "netlink error: Operation not permitted\n")
    unnamed.server.set_replay(table)
    db = f"sqlite:///{tmp_path / 'log.sqlite3'}"
    r = await _cli("triage", "test-host", "--record", "--database-url", db)
    assert r.exit_code == 4, r.output  # worst over the bonds: uplink1 is inconclusive
    store = IncidentStore.open(db)
    try:
        status = {i.bond: str(getattr(i.status, "value", i.status)) for i in store.list_incidents()}
        assert status == {"uplink0": "diagnosed", "uplink1": "inconclusive"}
        assert store.verify(next(i.id for i in store.list_incidents() if i.bond == "uplink1")).ok
    finally:
        store.close()


PERSONA2_RECORDINGS = sorted(p for p in (Path(__file__).resolve().parent.parent / "fixtures" / "lab").glob("trixie-*")
                             if (p / "meta.yaml").is_file() and (p / "commands.yaml").is_file())


@pytest.mark.skipif(not PERSONA2_RECORDINGS, reason="no recordings of the second lab persona (bondbot lab record)")
@pytest.mark.parametrize("folder", PERSONA2_RECORDINGS, ids=[p.name for p in PERSONA2_RECORDINGS])
async def test_second_persona_recordings_replayed(unnamed: SshTestHost, folder: Path) -> None:
    """edge-07's real outputs (Debian 13, NM 1.52), replayed: the bonds found and the profile that
    owns each are what the recording's meta says (the lab's own truth)."""
    import yaml

    from tests.triage_replay import _recorded, with_discovery

    meta = yaml.safe_load((folder / "meta.yaml").read_text())
    recorded = _recorded(folder)
    bonds = tuple(recorded[BONDING_MASTERS][1].split())
    unnamed.server.set_replay(with_discovery(recorded, bonds))
    async with _pool(unnamed) as pool:
        ht = await run_host_triage(pool, "test-host")
    if not bonds:
        assert ht.verdict == "no-bond"
        return
    assert ht.bonds == bonds
    truth = {b["bond"]: b for b in meta["bonds"]}
    for r in ht.results:
        assert r.verdict in ("diagnosed", "healthy"), (r.bond, r.diagnosis.reasons if r.diagnosis else None)
        profile = truth[r.bond].get("nm_profile")
        if profile is None:
            assert r.outputs.nmcli is None and "nmcli" in r.outputs.not_applicable
        else:
            assert r.outputs.nmcli is not None and f"connection.id:{profile}" in r.outputs.nmcli.text.replace("\\:", ":")
            root = r.diagnosis.root_cause if r.diagnosis else None
            if root is not None and root.code == "NO_LINK_MONITORING":
                assert f"nmcli con modify {shlex.quote(profile)} bond.options " in root.explanation
