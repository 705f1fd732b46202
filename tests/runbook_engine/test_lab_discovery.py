"""Discovery and verdicts on real hosts: the seed persona (Debian 12) and the second one (edge-07,
Debian 13, NetworkManager 1.52, bond uplink0 on udev-named NICs, no python3).

Marked ``lab``: each persona boots once per run (TCG here: 20-60 s), shared with the other lab
tests. Kept few: one ``bondbot triage`` per scenario that adds evidence. The persona
(``session.persona``) is the oracle; the code under test is told nothing.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from bondbot.cli import app
from lab.testing import LabSession

pytestmark = pytest.mark.lab


def triage(*args: str) -> tuple[int, str, str]:
    # A wide terminal: rich would wrap the long nmcli command lines inside the panel.
    r = CliRunner().invoke(app, ["triage", *args], catch_exceptions=False, env={"COLUMNS": "300"})
    return r.exit_code, r.stdout, r.stderr


def triage_json(*args: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    code, out, _err = triage(*args, "--json")
    return code, json.loads(out)


def test_seed_with_no_bond_named_finds_bond0(lab_env: LabSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The seed host with ``bond:`` removed from its inventory entry: bond0 is found, the seed's
    root cause reached, the profile found by device (it is named bond0 there, as it happens)."""
    inventory = yaml.safe_load(lab_env.inventory_path.read_text())
    inventory["hosts"][lab_env.host_name].pop("bond", None)
    unnamed = tmp_path / "inventory.yaml"
    unnamed.write_text(yaml.safe_dump(inventory))
    monkeypatch.setenv("BONDBOT_INVENTORY", str(unnamed))
    code, data = triage_json(lab_env.host_name)
    assert code == 0 and data["bond_named"] is None and data["bonds_found"] == [lab_env.persona.bond]
    [result] = data["results"]
    assert result["verdict"] == "diagnosed"
    assert result["diagnosis"]["root_cause"]["code"] == "NO_LINK_MONITORING"
    steps = {s["step"].split(" ")[0]: s for s in result["steps"]}
    assert steps["nmcli"]["command"].startswith("nmcli -t con show uuid ") and steps["nmcli"]["status"] == "ok"
    assert all(s["status"] == "ok" for s in result["steps"]), [s for s in result["steps"] if s["status"] != "ok"]
    code, _out, err = triage(lab_env.host_name, "--bond", "bond9")
    assert code == 2 and f"has no bond bond9: its bond: {lab_env.persona.bond}" in err


def test_seed_healthy_is_healthy(lab_env: LabSession) -> None:
    lab_env.scenario("healthy")
    code, data = triage_json(lab_env.host_name)
    assert code == 0 and data["verdict"] == "healthy", data["results"][0]["diagnosis"]


def test_edge07_with_no_bond_named_reaches_the_root_cause_with_the_real_profile(lab_env2: LabSession) -> None:
    persona = lab_env2.persona
    first = persona.bond_nics[0].name
    code, out, err = triage(lab_env2.host_name)
    assert code == 0, (out, err)
    assert f"{lab_env2.host_name}: bond {persona.bond} (mode active-backup)" in out
    assert "Root cause: NO_LINK_MONITORING" in out
    assert f"nmcli con modify bond-uplink0 bond.options mode=active-backup,miimon=100,primary={first}" in out, out
    assert "nmcli con modify uplink0" not in out  # never the interface's name as a profile
    code, data = triage_json(lab_env2.host_name)
    assert data["bonds_found"] == [persona.bond] and data["bond_named"] is None
    [result] = data["results"]
    assert result["failed_steps"] == {} and result["not_applicable"] == {}
    ports = sorted(s["step"].split(" ")[1] for s in result["steps"] if s["step"].startswith("ethtool "))
    assert ports == sorted(n.name for n in persona.bond_nics)  # the guest's own names, found by itself


def test_edge07_two_bonds_and_no_bond(lab_env2: LabSession) -> None:
    lab_env2.scenario("two-bonds")
    code, data = triage_json(lab_env2.host_name)
    assert data["bonds_found"] == ["uplink0", "uplink1"]
    assert code == 0, [(r["bond"], r["verdict"], r["failed_steps"]) for r in data["results"]]
    verdicts = {r["bond"]: (r["verdict"], (r["diagnosis"]["root_cause"] or {}).get("code")) for r in data["results"]}
    assert verdicts == {"uplink0": ("diagnosed", "NO_LINK_MONITORING"), "uplink1": ("healthy", None)}, verdicts
    fix = CliRunner().invoke(app, ["fix", lab_env2.host_name, "--yes"], catch_exceptions=False)
    assert fix.exit_code == 2 and "name the one to change with --bond" in fix.stderr  # never a guessed bond
    lab_env2.scenario("no-bond")
    code, out, _err = triage(lab_env2.host_name)
    assert code == 5 and "no bond on this host" in out and "ealthy" not in out


@pytest.mark.parametrize("scenario, name", [("spaced-profile", "Bond connection 1"),
                                            ("quoted-profile", "Bond \"edge\" it's")])
def test_edge07_renamed_profile_is_named_and_quoted(lab_env2: LabSession, scenario: str, name: str) -> None:
    lab_env2.scenario(scenario)
    code, data = triage_json(lab_env2.host_name)
    assert code == 0
    [result] = data["results"]
    root = result["diagnosis"]["root_cause"]
    assert root["code"] == "NO_LINK_MONITORING"
    code, out, _err = triage(lab_env2.host_name)
    q = shlex.quote(name)
    assert f"nmcli con modify {q} bond.options " in out, out
    line = next(ln for ln in out.splitlines() if "nmcli con modify" in ln)
    words = shlex.split(line[line.index("nmcli con modify"):].rstrip(" │"))
    assert words[:4] == ["nmcli", "con", "modify", name]  # copied as shown, it names the real profile


def test_edge07_ifupdown_bond_has_no_profile_and_is_still_diagnosed(lab_env2: LabSession) -> None:
    lab_env2.scenario("ifupdown")
    code, data = triage_json(lab_env2.host_name)
    assert code == 0
    [result] = data["results"]
    assert result["diagnosis"]["root_cause"]["code"] == "NO_LINK_MONITORING"
    assert "no NetworkManager profile owns uplink0" in result["not_applicable"]["nmcli"]
    code, out, _err = triage(lab_env2.host_name)
    assert "nmcli con modify" not in out and "/etc/network/interfaces" in out
