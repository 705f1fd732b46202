"""The diagnosis on real kernel output: what `bondbot lab record` saved from the lab VM.

Each scenario was put in place through NetworkManager on a real bonding driver (kernel and
NetworkManager versions in its meta.yaml); the conclusions below are what a triage must reach.
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


def test_every_recorded_scenario_has_an_expectation() -> None:
    recorded = {p.name for p in LAB_FIXTURES.iterdir() if (p / "commands.yaml").is_file()}
    assert recorded == set(EXPECTED)


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
