"""The diagnosis on real kernel output: what `bondbot lab record` saved from the lab VM.

Each scenario was put in place through NetworkManager on a real bonding driver (kernel and
NetworkManager versions in its meta.yaml); the conclusions below are what a triage must reach.

The ``trixie-*`` recordings come from the second persona (Debian 13, kernel 6.12, NM 1.52, host
``edge-07``): there the bond is found from ``/sys/class/net/bonding_masters`` and its
NetworkManager profile by device (``nmcli ... device show <bond>``, then ``con show uuid``), as a
triage that assumes nothing must do; each bond listed is diagnosed.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from runbooks.bonding.diagnosis import diagnose
from runbooks.bonding.outputs import SourceOutput, TriageOutputs

LAB_FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "lab"

# scenario -> (mode, root cause, codes that must be present, codes that must be absent).
# A warning is never the root cause: a bond with only warnings is healthy, its warnings are risks.
EXPECTED: dict[str, tuple[str, str | None, set[str], set[str]]] = {
    "incident": ("active-backup", "NO_LINK_MONITORING", set(), {"ACTIVE_SLAVE_NO_CARRIER"}),
    "incident-eno1-down": ("active-backup", "NO_LINK_MONITORING", {"ACTIVE_SLAVE_NO_CARRIER"}, set()),
    "ssh-via-bond": ("active-backup", "NO_LINK_MONITORING", set(), set()),
    "healthy": ("active-backup", None, set(), {"NO_LINK_MONITORING", "SLAVE_DOWN"}),
    "healthy-eno1-down": ("active-backup", None, {"SLAVE_DOWN", "ACTIVE_NOT_PRIMARY"},
                          {"NO_LINK_MONITORING", "ACTIVE_SLAVE_NO_CARRIER"}),
    "arp": ("active-backup", None, {"ARP_SINGLE_TARGET"}, {"NO_LINK_MONITORING", "MIIMON_AND_ARP_BOTH_SET"}),
    "lacp-no-partner": ("802.3ad", "LACP_NO_PARTNER", {"LACP_AGGREGATOR_SPLIT", "SWITCH_CONFIG_REQUIRED"},
                        {"LACP_INFO_UNPRIVILEGED"}),
    "single-port": ("active-backup", None, {"SINGLE_SLAVE"}, {"NO_LINK_MONITORING"}),
    "rr-no-monitor": ("balance-rr", "NO_LINK_MONITORING", {"SWITCH_CONFIG_REQUIRED"}, set()),
}


def recorded_outputs(folder: Path) -> TriageOutputs:
    """The recorded commands of one scenario, as the triage engine hands them to the diagnosis."""
    meta = yaml.safe_load((folder / "meta.yaml").read_text())
    outputs = TriageOutputs(bond=meta["bond"])
    for entry in yaml.safe_load((folder / "commands.yaml").read_text()):
        command = entry["command"]
        assert entry["exit_status"] == 0, f"{folder.name}: {command} failed when recorded"
        out = SourceOutput(command, entry["stdout"])
        argv = command.split()
        if command.startswith("cat /proc/net/bonding/"):
            outputs.proc_bonding = out
        elif command.startswith("ip -d -j link show "):
            outputs.ip_details_json = out
        elif command.startswith("ip link show "):
            outputs.ip_link[argv[-1]] = out
        elif argv[0] == "ethtool":
            outputs.ethtool[argv[-1]] = out
        elif argv[:4] == ["nmcli", "-t", "con", "show"]:
            outputs.nmcli = out
    return outputs


# recording -> {bond: (mode, root cause)} for every bond bonding_masters lists ({}: no bond at all).
NO_MONITOR = ("active-backup", "NO_LINK_MONITORING")
EXPECTED_DISCOVERED: dict[str, dict[str, tuple[str, str | None]]] = {
    "trixie-incident": {"uplink0": NO_MONITOR},
    "trixie-healthy": {"uplink0": ("active-backup", None)},
    "trixie-two-bonds": {"uplink0": NO_MONITOR, "uplink1": ("active-backup", None)},
    "trixie-no-bond": {},
    "trixie-spaced-profile": {"uplink0": NO_MONITOR},
    "trixie-quoted-profile": {"uplink0": NO_MONITOR},
    "trixie-ifupdown": {"uplink0": NO_MONITOR},
}


def test_every_recorded_scenario_has_an_expectation() -> None:
    recorded = {p.name for p in LAB_FIXTURES.iterdir() if (p / "commands.yaml").is_file()}
    assert recorded == set(EXPECTED) | set(EXPECTED_DISCOVERED)


def discovered_outputs(folder: Path) -> tuple[dict, dict[str, TriageOutputs], dict[str, dict]]:
    """A discovered-bond recording: its meta, and per bond the outputs a triage would hand over,
    with the NetworkManager profile read by UUID (never by the bond's name)."""
    meta = yaml.safe_load((folder / "meta.yaml").read_text())
    entries = {e["command"]: e for e in yaml.safe_load((folder / "commands.yaml").read_text())}
    per_bond: dict[str, TriageOutputs] = {}
    raw: dict[str, dict] = {}
    for bond_meta in meta["bonds"]:
        bond = bond_meta["bond"]
        outputs = TriageOutputs(bond=bond)

        def ok(command: str) -> SourceOutput:
            entry = entries[command]
            assert entry["exit_status"] == 0, f"{folder.name}: {command} failed when recorded"
            return SourceOutput(command, entry["stdout"])

        outputs.proc_bonding = ok(f"cat /proc/net/bonding/{bond}")
        outputs.ip_details_json = ok(f"ip -d -j link show {bond}")
        for slave in bond_meta["slaves"]:
            outputs.ip_link[slave] = ok(f"ip link show {slave}")
            outputs.ethtool[slave] = ok(f"ethtool {slave}")
        if bond_meta["nm_profile_uuid"]:
            outputs.nmcli = ok(f"nmcli -t con show uuid {bond_meta['nm_profile_uuid']}")
        per_bond[bond] = outputs
        raw[bond] = entries
    return meta, per_bond, raw


@pytest.mark.parametrize("recording", sorted(EXPECTED_DISCOVERED))
def test_diagnosis_of_discovered_bonds(recording: str) -> None:
    folder = LAB_FIXTURES / recording
    meta, per_bond, entries = discovered_outputs(folder)
    masters = {e["command"]: e for e in yaml.safe_load((folder / "commands.yaml").read_text())}[
        "cat /sys/class/net/bonding_masters"]
    assert masters["stdout"].split() == list(EXPECTED_DISCOVERED[recording])
    assert set(per_bond) == set(EXPECTED_DISCOVERED[recording])
    for bond, (mode, root) in EXPECTED_DISCOVERED[recording].items():
        diagnosis = diagnose(per_bond[bond], strict=True)
        assert diagnosis.mode == mode, bond
        assert (diagnosis.root_cause.code if diagnosis.root_cause else None) == root, (bond, diagnosis.codes())
        # The seed's lookup by the bond's name finds no profile on this host: nmcli named it.
        by_name = entries[bond][f"nmcli -t con show {bond}"]
        assert by_name["exit_status"] != 0 and "no such connection profile" in by_name["stderr"]


def test_discovered_profiles_are_nmclis_or_renamed_or_none() -> None:
    """What the by-device lookup found: the name nmcli chose, the renamed ones, none for ifupdown."""
    def profile(recording: str, bond: str = "uplink0") -> str | None:
        meta = yaml.safe_load((LAB_FIXTURES / recording / "meta.yaml").read_text())
        return next(b["nm_profile"] for b in meta["bonds"] if b["bond"] == bond)

    assert profile("trixie-incident") == "bond-uplink0"
    assert profile("trixie-two-bonds", "uplink1") == "bond-uplink1"
    assert profile("trixie-spaced-profile") == "Bond connection 1"
    assert profile("trixie-quoted-profile") == "Bond \"edge\" it's"
    assert profile("trixie-ifupdown") is None  # NetworkManager does not manage that bond


@pytest.mark.parametrize("scenario", sorted(EXPECTED))
def test_diagnosis_of_real_kernel_output(scenario: str) -> None:
    mode, root, present, absent = EXPECTED[scenario]
    outputs = recorded_outputs(LAB_FIXTURES / scenario)
    assert outputs.proc_bonding and outputs.ip_details_json and outputs.nmcli
    assert set(outputs.ip_link) == set(outputs.ethtool) and outputs.ip_link

    diagnosis = diagnose(outputs, strict=True)

    assert diagnosis.mode == mode
    assert (diagnosis.root_cause.code if diagnosis.root_cause else None) == root
    assert diagnosis.verdict == ("diagnosed" if root else "healthy")
    if root is None:  # every warning is listed as a risk, none is the cause
        assert {f.code for f in diagnosis.risks} == {f.code for f in diagnosis.findings if f.severity.value == "warning"}
    codes = set(diagnosis.codes())
    assert present <= codes, f"missing {present - codes}"
    assert not (absent & codes), f"unexpected {absent & codes}"
    for finding in diagnosis.findings:
        for evidence in finding.evidence:
            lines = {o.command: o.text for o in _all(outputs)}[evidence.source].splitlines()
            if evidence.source.startswith("ip -d -j "):
                # One-line JSON: the evidence is the "key":value fragment that proves the point.
                assert any(evidence.line in line for line in lines), (finding.code, evidence)
            else:
                assert evidence.line in lines, (finding.code, evidence)


def _all(outputs: TriageOutputs) -> list[SourceOutput]:
    parts = [outputs.proc_bonding, outputs.ip_details_json, outputs.nmcli]
    parts += [*outputs.ip_link.values(), *outputs.ethtool.values()]
    return [p for p in parts if p is not None]
