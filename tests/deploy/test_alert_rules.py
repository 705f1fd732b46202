"""deploy/alerts: the node_exporter alert rules, checked and unit-tested by the real promtool, and
the Alertmanager example checked by the real amtool (Debian: prometheus, prometheus-alertmanager).

The oracle is promtool's own evaluator on series that reproduce each case (bonding.rules.test.yml);
the mutation tests show the unit tests can fail: a rule that ignores the MAC join, or a slave that
never loses carrier, must make ``promtool test rules`` fail.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ALERTS = Path(__file__).resolve().parents[2] / "deploy" / "alerts"
PROMTOOL = shutil.which("promtool")
AMTOOL = shutil.which("amtool")


def _need(tool: str | None, package: str) -> str:
    if tool is None:
        if os.environ.get("CI"):
            pytest.fail(f"{package} is not installed (./run installs it)", pytrace=False)
        pytest.skip(f"{package} not installed (Debian: {package})")
    return tool


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=60)


def test_rules_are_valid() -> None:
    promtool = _need(PROMTOOL, "prometheus")
    r = _run(promtool, "check", "rules", "bonding.rules.yml", cwd=ALERTS)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS: 3 rules found" in r.stdout


def test_rules_unit_tests_pass() -> None:
    promtool = _need(PROMTOOL, "prometheus")
    r = _run(promtool, "test", "rules", "bonding.rules.test.yml", cwd=ALERTS)
    assert r.returncode == 0, r.stdout + r.stderr


def _copy(tmp_path: Path) -> Path:
    for name in ("bonding.rules.yml", "bonding.rules.test.yml"):
        shutil.copy(ALERTS / name, tmp_path / name)
    return tmp_path


def test_a_slave_rule_without_the_bond_join_fails_the_tests(tmp_path: Path) -> None:
    """``node_network_carrier == 0`` alone would page for ens9, a NIC in no bond."""
    promtool = _need(PROMTOOL, "prometheus")
    d = _copy(tmp_path)
    rules = yaml.safe_load((d / "bonding.rules.yml").read_text())
    [slave] = [r for r in rules["groups"][0]["rules"] if r["alert"] == "BondSlaveNoCarrier"]
    slave["expr"] = "node_network_carrier == 0"
    (d / "bonding.rules.yml").write_text(yaml.safe_dump(rules))
    r = _run(promtool, "test", "rules", "bonding.rules.test.yml", cwd=d)
    assert r.returncode != 0 and "BondSlaveNoCarrier" in r.stdout + r.stderr and "ens9" in r.stdout + r.stderr


def test_the_seed_case_is_what_fires_the_slave_alert(tmp_path: Path) -> None:
    """If eno1 kept its carrier, the expected BondSlaveNoCarrier alert would be missing."""
    promtool = _need(PROMTOOL, "prometheus")
    d = _copy(tmp_path)
    text = (d / "bonding.rules.test.yml").read_text()
    line = "'node_network_carrier{instance=\"web-01:9100\",job=\"node\",device=\"eno1\"}'\n        values: '1 1 0x8'"
    assert line in text
    (d / "bonding.rules.test.yml").write_text(text.replace(line, line.replace("'1 1 0x8'", "'1x10'")))
    r = _run(promtool, "test", "rules", "bonding.rules.test.yml", cwd=d)
    assert r.returncode != 0 and "BondSlaveNoCarrier" in r.stdout + r.stderr


def test_alertmanager_example_is_valid_and_routes_every_bond_alert() -> None:
    amtool = _need(AMTOOL, "prometheus-alertmanager")
    r = _run(amtool, "check-config", "alertmanager.example.yml", cwd=ALERTS)
    assert r.returncode == 0 and "SUCCESS" in r.stdout, r.stdout + r.stderr
    rules = yaml.safe_load((ALERTS / "bonding.rules.yml").read_text())
    names = {r["alert"] for r in rules["groups"][0]["rules"]}
    config = yaml.safe_load((ALERTS / "alertmanager.example.yml").read_text())
    [route] = [r for r in config["route"]["routes"] if r["receiver"] == "bondbot"]
    [matcher] = route["matchers"]
    routed = set(matcher.split("=~", 1)[1].strip().strip('"').split("|"))
    assert routed == names
    # One group per bond on one host: repeats of an alert land on one incident.
    assert {"instance", "master"} <= set(route["group_by"])
    # Every rule carries the labels the receiver maps onto a host and a bond.
    for rule in rules["groups"][0]["rules"]:
        assert "$labels.instance" in rule["annotations"]["summary"] and "$labels.master" in rule["annotations"]["summary"]
