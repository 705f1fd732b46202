"""The fix on an ifupdown bond (the file edit, its backup and undo) and NM profile names as shown.

The stanza edit is checked by running the plan's own write command with /bin/sh on a copy of the
file (paths rewritten into a temp dir), so the quoting of the whole new content is exercised by a
real shell, not only compared as strings.
"""

from __future__ import annotations

import hashlib
import shlex
import subprocess
from pathlib import Path

import pytest

from runbooks.bonding.bond_options import RemediationError
from runbooks.bonding.fix_plan import shown_name
from runbooks.bonding.ifupdown_file import parse_ifquery, set_mii_monitor
from runbooks.bonding.remediation import Monitor, build_fix_plan
from tests.remediation.test_plan import incident_state

# As the lab's ifupdown scenario writes it (lab/edge_scenarios.py), with an operator's comment.
INTERFACES = """\
# interfaces(5) file used by ifup(8) and ifdown(8)
source /etc/network/interfaces.d/*

auto lo
iface lo inet loopback

# bondbot-lab scenario ifupdown: begin
iface ens4 inet manual
iface ens5 inet manual

auto uplink0
iface uplink0 inet static
    address 10.77.0.20/24
    gateway 10.77.0.1
    # the uplink: keep active-backup
    bond-slaves ens4 ens5
    bond-mode active-backup
    bond-miimon 0
    bond-primary ens4
# bondbot-lab scenario ifupdown: end
"""

IFQUERY = """\
address: 10.77.0.20/24
gateway: 10.77.0.1
bond-slaves: ens4 ens5
bond-mode: active-backup
bond-miimon: 0
bond-primary: ens4
"""


def test_miimon_line_changed_in_place_everything_else_kept() -> None:
    edit = set_mii_monitor(INTERFACES, "uplink0", 100)
    assert edit.content == INTERFACES.replace("    bond-miimon 0\n", "    bond-miimon 100\n")
    assert edit.changes == ("line 18: bond-miimon 0 -> bond-miimon 100",)


def test_miimon_added_when_absent_and_arp_lines_removed() -> None:
    text = INTERFACES.replace("    bond-miimon 0\n", "    bond_arp_interval 1000\n    bond-arp-ip-target 10.77.0.1\n")
    edit = set_mii_monitor(text, "uplink0", 200)
    lines = edit.content.splitlines()
    assert "    bond-miimon 200" in lines and not any("arp" in ln for ln in lines)
    assert lines[lines.index("    bond-miimon 200") - 1] == "    bond-primary ens4"
    assert "    # the uplink: keep active-backup" in lines and "iface ens5 inet manual" in lines
    assert len(edit.changes) == 3


def test_other_interfaces_and_similar_names_untouched() -> None:
    text = INTERFACES + "\nauto uplink01\niface uplink01 inet manual\n    bond-miimon 0\n"
    edit = set_mii_monitor(text, "uplink0", 100)
    assert edit.content.endswith("iface uplink01 inet manual\n    bond-miimon 0\n")
    with pytest.raises(RemediationError, match="no 'iface bond7' stanza"):
        set_mii_monitor(text, "bond7", 100)


def test_ifquery_output_parsed() -> None:
    assert parse_ifquery(IFQUERY)["bond-miimon"] == "0"
    assert parse_ifquery("bond_miimon: 100\n") == {"bond-miimon": "100"}


def ifupdown_state(text: str = INTERFACES, filename: str = "/etc/network/interfaces"):
    sysfs = {"mode": "active-backup 1", "miimon": "0", "arp_interval": "0", "primary": "ens4",
             "slaves": "ens4 ens5", "updelay": "0", "downdelay": "0", "arp_validate": "none 0"}
    return incident_state(bond="uplink0", runtime=sysfs, slaves={"ens4": "up", "ens5": "up"}, active_slave="ens4",
                          nm_uuid=None, nm_id=None, bond_options=None, nm_file=None, nm_gateway=None,
                          device_paths=(), route_gateway="10.77.0.1", config_files=(filename,),
                          ifquery=parse_ifquery(IFQUERY), ifupdown_file=filename, ifupdown_text=text,
                          ifupdown_sha256=hashlib.sha256(text.encode()).hexdigest())


def test_ifupdown_plan_backs_up_then_writes_checked_then_runtime_and_verifies_with_ifquery() -> None:
    plan = build_fix_plan("edge-07", ifupdown_state(), Monitor.mii(100), run_id="0a1b2c3d")
    assert plan.backend == "ifupdown" and plan.persistence is None
    purposes = [s.purpose for s in plan.steps]
    assert purposes[0].startswith("arm the host's own undo") and "from its backup" in purposes[0]
    assert purposes[1].startswith("back up /etc/network/interfaces")
    assert purposes[2].startswith("persist the monitor in /etc/network/interfaces")
    assert "runtime change" in purposes[3] and purposes[-1].startswith("confirm:")
    sha = hashlib.sha256(INTERFACES.encode()).hexdigest()
    backup = f"/var/backups/bondbot/interfaces.{sha[:12]}.bak"
    assert backup in plan.steps[1].command and "interfaces.d" not in backup
    assert "ifquery uplink0" in [v.command for v in plan.verify]
    restore = [r.command for r in plan.rollback]
    assert restore[0] == f"cp -p {backup} /etc/network/interfaces"
    assert any("miimon" in r and "echo 0" in r for r in restore)
    # The rollback note has the exact commands (no placeholder) and names the file.
    note = plan.rollback_note()
    assert note["ifupdown_file"] == "/etc/network/interfaces" and restore[0] in note["restore_commands"]
    assert "<run>" not in " ".join(note["restore_commands"])
    text = plan.render_text()
    assert "Persisted by bondbot in /etc/network/interfaces" in text and "bond-miimon 0 -> bond-miimon 100" in text
    # Planned twice from the same state: the same plan (the bot re-plans at click time).
    assert build_fix_plan("edge-07", ifupdown_state(), Monitor.mii(100), run_id="0a1b2c3d").plan_hash == plan.plan_hash


def test_ifupdown_write_command_run_by_a_real_shell(tmp_path: Path) -> None:
    """The plan's backup and write commands, with /etc and /var rewritten into tmp_path."""
    weird = INTERFACES.replace("# the uplink: keep active-backup", "# it's the \"uplink\": $HOME `id` \\n").replace(
        "source /etc/network/interfaces.d/*", "source-directory interfaces.d")  # no path local() would rewrite
    plan = build_fix_plan("edge-07", ifupdown_state(weird), Monitor.mii(100))
    (tmp_path / "etc/network").mkdir(parents=True)
    target = tmp_path / "etc/network/interfaces"
    target.write_text(weird)
    target.chmod(0o640)

    def local(cmd: str) -> str:
        return cmd.replace("/etc/network", str(tmp_path / "etc/network")).replace("/var/backups", str(tmp_path / "var"))

    for step in plan.steps[1:3]:
        inner = shlex.split(step.command)
        assert inner[:2] == ["sh", "-c"]
        proc = subprocess.run(["/bin/sh", "-c", local(inner[2])], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
    assert target.read_text() == weird.replace("bond-miimon 0\n", "bond-miimon 100\n")
    assert oct(target.stat().st_mode & 0o777) == "0o640"
    backups = list((tmp_path / "var/bondbot").iterdir())
    assert len(backups) == 1 and backups[0].read_text() == weird
    # Run again: the file is no longer what the plan read, so nothing is written.
    target.write_text(weird.replace("10.77.0.1", "10.77.0.254"))
    inner = shlex.split(plan.steps[2].command)
    proc = subprocess.run(["/bin/sh", "-c", local(inner[2])], capture_output=True, text=True)
    assert proc.returncode == 3 and "changed since the plan" in proc.stderr
    assert "10.77.0.254" in target.read_text()
    # The rollback note's restore puts the backup back.
    proc = subprocess.run(["/bin/sh", "-c", local(plan.rollback[0].command)], capture_output=True, text=True)
    assert proc.returncode == 0 and target.read_text() == weird


def test_arp_on_ifupdown_is_runtime_only_and_says_so() -> None:
    plan = build_fix_plan("edge-07", ifupdown_state(), Monitor.arp(1000, ["10.77.0.1"]))
    assert plan.backend == "sysfs" and plan.persistence and "[ifupdown" in plan.persistence
    assert any("persists only MII monitoring" in w for w in plan.warnings)


def test_no_ifquery_means_printed_steps_not_an_edit() -> None:
    state = ifupdown_state()
    from dataclasses import replace

    plan = build_fix_plan("edge-07", replace(state, ifquery=None), Monitor.mii(100))
    assert plan.backend == "sysfs" and "bond-miimon 100" in (plan.persistence or "")


@pytest.mark.parametrize("name", ["bond-uplink0", "Bond connection 1", "it's \"bond\"", "a\x1b[31mred"])
def test_nm_profile_real_name_shown_quoted(name: str) -> None:
    plan = build_fix_plan("edge-07", incident_state(nm_id=name), Monitor.mii(100))
    text = plan.render_text()
    quoted = shown_name(name)
    assert f"NetworkManager profile: {quoted} (uuid " in text
    assert f"save the new options in the profile {quoted}" in text
    assert "\x1b" not in text
    assert shlex.split(quoted) == [name.replace("\x1b", "\\x1b")]
    # Commands never use the name: the UUID is what nmcli is given.
    assert all(name not in s.command for s in plan.steps + plan.rollback + plan.verify)
    assert f"NetworkManager profile: {quoted}" in plan.rollback_note()["text"]
