"""The project's own fixtures (tests/fixtures/written): the seed incident and cases no sample covers,
including the cross-source rules and what happens when a triage step failed or printed garbage."""

from __future__ import annotations

import pytest

from diag_helpers import SEED, WRITTEN, proc_only, seed_outputs
from runbooks.bonding.diagnosis import diagnose
from runbooks.bonding.parsers import ParseError

SEED_PROC = (SEED / "proc_net_bonding_bond0.txt").read_text()


def test_seed_incident_root_cause_and_evidence() -> None:
    diagnosis = diagnose(seed_outputs(), strict=True)
    assert diagnosis.bond == "bond0" and diagnosis.mode == "active-backup"
    root = diagnosis.root_cause
    assert root is not None and root.code == "NO_LINK_MONITORING"
    assert root.severity.value == "critical"
    assert "ACTIVE_SLAVE_NO_CARRIER" in diagnosis.codes()
    assert "SLAVE_NO_CARRIER" not in diagnosis.codes()  # eno2 is fine
    sources = {(e.source, e.line) for e in root.evidence}
    assert ("cat /proc/net/bonding/bond0", "MII Polling Interval (ms): 0") in sources
    assert ("ip -d -j link show bond0", '"miimon":0') in sources
    assert ("nmcli -t con show bond0",
            "bond.options:mode=active-backup,miimon=0,primary=eno1") in sources
    assert ("ethtool eno1", "\tLink detected: no") in sources
    # The explanation follows the seed: why ip link says UP, the fix, what to watch out for.
    text = root.explanation
    # The profile's own name (connection.id), shell-quoted, and the option string quoted too.
    assert "nmcli con modify bond0 bond.options mode=active-backup,miimon=100,primary=eno1" in text
    assert "mutually exclusive" in text and "maintenance window" in text
    assert "miimon=200" in text and "NO-CARRIER" in text
    assert root.facts["fix_commands"][1] == "nmcli con down bond0 && nmcli con up bond0"
    # Every evidence line is verbatim from the output of the command it names.
    outputs = seed_outputs()
    texts = {outputs.proc_bonding.command: outputs.proc_bonding.text,
             outputs.ip_details_json.command: outputs.ip_details_json.text,
             outputs.nmcli.command: outputs.nmcli.text}
    texts.update({o.command: o.text for o in outputs.ip_link.values()})
    texts.update({o.command: o.text for o in outputs.ethtool.values()})
    for finding in diagnosis.findings:
        for e in finding.evidence:
            assert e.line in texts[e.source]


def test_seed_json_shape() -> None:
    data = diagnose(seed_outputs()).to_json()
    assert set(data) == {"bond", "mode", "subject", "details", "verdict", "reasons", "root_cause", "risks", "findings"}
    assert (data["subject"], data["details"]) == ({"bond": data["bond"]}, {"mode": data["mode"]})
    assert (data["verdict"], data["reasons"], data["risks"]) == ("diagnosed", [], [])
    assert data["root_cause"] == {"code": "NO_LINK_MONITORING", "severity": "critical",
                                  "summary": data["findings"][0]["summary"]}
    for f in data["findings"]:
        assert set(f) == {"code", "severity", "summary", "evidence"}
        assert "\n" not in f["summary"]


def test_proc_alone_cannot_see_the_carrier() -> None:
    diagnosis = diagnose(proc_only(SEED_PROC))
    assert diagnosis.root_cause.code == "NO_LINK_MONITORING"
    assert "ACTIVE_SLAVE_NO_CARRIER" not in diagnosis.codes()


def test_active_slave_no_carrier_needs_a_second_source() -> None:
    # miimon 100, the driver still says up (monitor not yet run), ethtool says no link.
    proc = SEED_PROC.replace("MII Polling Interval (ms): 0", "MII Polling Interval (ms): 100")
    diagnosis = diagnose(seed_outputs(**{"proc_net_bonding_bond0.txt": proc}))
    assert diagnosis.root_cause.code == "ACTIVE_SLAVE_NO_CARRIER"
    assert "NO_LINK_MONITORING" not in diagnosis.codes()
    # Once the monitor noticed (MII down), it is a down slave, not a blind bond.
    noticed = proc.replace("Slave Interface: eno1\nMII Status: up", "Slave Interface: eno1\nMII Status: down")
    codes = diagnose(seed_outputs(**{"proc_net_bonding_bond0.txt": noticed})).codes()
    assert "ACTIVE_SLAVE_NO_CARRIER" not in codes and "SLAVE_DOWN" in codes


def test_backup_without_carrier_is_slave_no_carrier() -> None:
    eno2 = (SEED / "ip_link_show_eno2.txt").read_text().replace(
        "<BROADCAST,MULTICAST,SLAVE,UP,LOWER_UP>", "<NO-CARRIER,BROADCAST,MULTICAST,SLAVE,UP>")
    proc = SEED_PROC.replace("MII Polling Interval (ms): 0", "MII Polling Interval (ms): 100")
    outputs = seed_outputs(**{"proc_net_bonding_bond0.txt": proc, "ip_link_show_eno2.txt": eno2,
                              "ip_link_show_eno1.txt": (SEED / "ip_link_show_eno2.txt").read_text()
                              .replace("3: eno2", "2: eno1"),
                              "ethtool_eno1.txt": (SEED / "ethtool_eno2.txt").read_text()
                              .replace("eno2", "eno1")})
    diagnosis = diagnose(outputs)
    # A backup without carrier: no redundancy left, a warning; the bond itself works: healthy, 1 risk.
    assert diagnosis.root_cause is None and diagnosis.verdict == "healthy"
    assert [f.code for f in diagnosis.risks] == ["SLAVE_NO_CARRIER"]


def test_failed_steps_are_reported_not_concluded() -> None:
    outputs = proc_only(SEED_PROC)
    outputs.failed_steps = {"ethtool eno1": "ethtool: command not found"}
    diagnosis = diagnose(outputs)
    step = [f for f in diagnosis.findings if f.code == "STEP_FAILED"]
    assert len(step) == 1 and step[0].severity.value == "info"
    assert "ethtool: command not found" in step[0].summary
    assert diagnosis.root_cause.code == "NO_LINK_MONITORING"


def test_garbage_output_is_reported_or_raised() -> None:
    outputs = seed_outputs(**{"nmcli_-t_con_show_bond0.txt": "Error: unknown connection 'bond0'.\n"})
    diagnosis = diagnose(outputs)
    assert "OUTPUT_UNPARSEABLE" in diagnosis.codes()
    assert diagnosis.root_cause.code == "NO_LINK_MONITORING"
    with pytest.raises(ParseError) as exc:
        diagnose(outputs, strict=True)
    assert exc.value.source == "nmcli -t con show bond0" and exc.value.line_number == 1


def test_arp_monitor_without_targets() -> None:
    text = (WRITTEN / "arp-monitor-no-targets" / "proc_net_bonding_bond1.txt").read_text()
    diagnosis = diagnose(proc_only(text, "bond1"), strict=True)
    assert diagnosis.root_cause.code == "NO_LINK_MONITORING"
    assert "ARP_MONITOR_NO_TARGETS" in diagnosis.codes()
    assert "(fail_over_mac active)" not in diagnosis.mode


def test_port_going_back_is_not_a_fault() -> None:
    text = (WRITTEN / "8023ad-port-going-back" / "proc_net_bonding_bond0.txt").read_text()
    diagnosis = diagnose(proc_only(text), strict=True)
    assert diagnosis.root_cause is None
    down = [f for f in diagnosis.findings if f.code == "SLAVE_DOWN"]
    assert [f.severity.value for f in down] == ["info"]
    assert "LACP_NO_PARTNER" not in diagnosis.codes()
    assert "LACP_INFO_UNPRIVILEGED" not in diagnosis.codes()


def test_every_registered_code_has_a_template() -> None:
    from runbooks.bonding.diagnosis import TEMPLATE_DIR
    from runbooks.bonding.rules import RULES

    codes = {r.code for r in RULES}
    assert {p.stem for p in TEMPLATE_DIR.glob("*.j2")} == codes
    issue_codes = {
        "NO_LINK_MONITORING", "ACTIVE_SLAVE_NO_CARRIER", "SLAVE_NO_CARRIER",
        "MIIMON_AND_ARP_BOTH_SET", "ARP_MONITOR_NO_TARGETS", "ARP_SINGLE_TARGET", "SLAVE_DOWN",
        "BOND_DOWN", "NO_SLAVES", "SINGLE_SLAVE", "LACP_NO_PARTNER", "LACP_AGGREGATOR_SPLIT",
        "LACP_NOT_DISTRIBUTING", "LACP_CHURN", "LACP_INFO_UNPRIVILEGED", "SPEED_MISMATCH",
        "DUPLEX_MISMATCH", "LINK_FLAPPING", "PRIMARY_NOT_SET", "ACTIVE_NOT_PRIMARY",
        "SLOW_LINK_MONITOR", "SWITCH_CONFIG_REQUIRED"}
    assert issue_codes <= codes
