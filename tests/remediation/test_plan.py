"""The fix's pure logic: option merging, plan commands and quoting, rollback note, refusals."""

from __future__ import annotations

import shlex

import pytest

from runbooks.bonding.remediation import (
    BondState,
    Monitor,
    PlanRefused,
    RemediationError,
    build_fix_plan,
    fingerprint_differences,
    merge_bond_options,
    parse_sysfs_bonding,
    runtime_restore_commands,
)

SYSFS = """\
/sys/class/net/bond0/bonding/active_slave:eno1
/sys/class/net/bond0/bonding/arp_interval:0
/sys/class/net/bond0/bonding/downdelay:0
/sys/class/net/bond0/bonding/miimon:0
/sys/class/net/bond0/bonding/mode:active-backup 1
/sys/class/net/bond0/bonding/primary:eno1
/sys/class/net/bond0/bonding/slaves:eno1 eno2
/sys/class/net/bond0/bonding/updelay:0
/sys/class/net/bond0/bonding/xmit_hash_policy:layer2 0
"""
UUID = "0b9f3c7e-5d2a-5a55-9d47-6c1e2f3a4b5c"


def incident_state(**changes) -> BondState:
    fields = dict(
        bond="bond0", runtime=parse_sysfs_bonding(SYSFS), slaves={"eno1": "up", "eno2": "up"},
        active_slave="eno1", miimon=0, arp_interval=0, nm_uuid=UUID, nm_id="bond0",
        bond_options={"mode": "active-backup", "miimon": "0", "primary": "eno1", "xmit_hash_policy": "layer2"},
        nm_file="/etc/NetworkManager/system-connections/bond0.nmconnection", nm_gateway="10.20.0.1",
        device_paths=("/org/freedesktop/NetworkManager/Devices/4", "/org/freedesktop/NetworkManager/Devices/2",
                      "/org/freedesktop/NetworkManager/Devices/3"),
        has_systemd_run=True,
    )
    fields.update(changes)
    return BondState(**fields)


def test_sysfs_parse_reads_values_and_leaves_empty_files_out() -> None:
    values = parse_sysfs_bonding(SYSFS + "grep: /sys/class/net/bond0/bonding/ad_aggregator: Invalid argument\n")
    assert values["miimon"] == "0" and values["slaves"] == "eno1 eno2" and values["mode"] == "active-backup 1"
    assert "arp_ip_target" not in values and "ad_aggregator" not in values


def test_merge_keeps_every_other_option_in_order() -> None:
    merged, removed = merge_bond_options({"mode": "active-backup", "miimon": "0", "primary": "eno1",
                                          "xmit_hash_policy": "layer2"}, Monitor.mii(100))
    assert list(merged.items()) == [("mode", "active-backup"), ("miimon", "100"), ("primary", "eno1"),
                                    ("xmit_hash_policy", "layer2")]
    assert removed == []


def test_merge_adds_miimon_when_absent_and_drops_arp_options() -> None:
    merged, removed = merge_bond_options({"mode": "active-backup", "arp_interval": "1000",
                                          "arp_ip_target": "10.20.0.1", "arp_validate": "all"}, Monitor.mii(200))
    assert merged == {"mode": "active-backup", "miimon": "200"}
    assert removed == ["arp_interval", "arp_ip_target", "arp_validate"]


def test_merge_to_arp_never_keeps_miimon() -> None:
    merged, removed = merge_bond_options({"mode": "active-backup", "miimon": "100", "updelay": "200",
                                          "primary": "eno1"}, Monitor.arp(500, ["10.20.0.1", "10.20.0.2"]))
    assert "miimon" not in merged and "updelay" not in merged
    assert merged["arp_interval"] == "500" and merged["arp_ip_target"] == "10.20.0.1,10.20.0.2"
    assert removed == ["miimon", "updelay"]


@pytest.mark.parametrize("bad", [0, 5, 10001, -1, True, "100"])
def test_miimon_out_of_range_is_refused(bad) -> None:
    with pytest.raises(RemediationError, match="miimon"):
        Monitor.mii(bad)


@pytest.mark.parametrize("bad", ["10.20.0.1; reboot", "224.0.0.1", "0.0.0.0", "fe80::1", "$(id)"])
def test_arp_target_must_be_a_unicast_ipv4(bad) -> None:
    with pytest.raises(RemediationError):
        Monitor.arp(1000, [bad])


def test_arp_validate_is_checked_and_written_before_the_interval() -> None:
    with pytest.raises(RemediationError, match="arp_validate"):
        Monitor.arp(1000, ["10.20.0.1"], validate="all; reboot")
    plan = build_fix_plan("web-01", incident_state(), Monitor.arp(1000, ["10.20.0.1"], validate="all"))
    runtime = [s.command for s in plan.steps if s.purpose.startswith("runtime change")]
    assert runtime[-2:] == ["sh -c 'echo all > /sys/class/net/bond0/bonding/arp_validate'",
                            "sh -c 'echo 1000 > /sys/class/net/bond0/bonding/arp_interval'"]
    assert plan.new_options.endswith("arp_validate=all")


def test_arp_needs_a_target() -> None:
    with pytest.raises(RemediationError, match="at least one"):
        Monitor.arp(1000, [])


def test_nm_plan_commands_in_order_and_quoted() -> None:
    plan = build_fix_plan("web-01", incident_state(), Monitor.mii(100), run_id="0a1b2c3d")
    cmds = [s.command for s in plan.steps]
    assert "CheckpointCreate aouu 3 /org/freedesktop/NetworkManager/Devices/4" in cmds[0] and cmds[0].endswith(" 60 0")
    # The host's own undo is armed before anything changes: 60 s + grace, the note's runtime commands.
    armed = shlex.split(shlex.split(cmds[1])[2])
    # The run id is fixed when the plan is made: shown, hashed and run as it is.
    assert armed[:3] == ["rm", "-f", "/run/bondbot-fix-bond0-0a1b2c3d.confirmed;"]
    assert "--unit=bondbot-undo-bond0-0a1b2c3d" in armed
    undo = armed[armed.index("/bin/sh") + 2]
    assert undo.startswith("sleep 68; if [ -e /run/bondbot-fix-bond0-0a1b2c3d.confirmed ]")
    assert "echo 0 > /sys/class/net/bond0/bonding/miimon" in cmds[1]
    # The profile change comes before the runtime change: the checkpoint then always reactivates.
    assert cmds[2] == (f"nmcli connection modify uuid {UUID} bond.options "
                       "mode=active-backup,miimon=100,primary=eno1,xmit_hash_policy=layer2")
    assert cmds[3] == "sh -c 'echo 100 > /sys/class/net/bond0/bonding/miimon'"
    assert cmds[4] == "nmcli device reapply bond0"
    assert shlex.split(cmds[5])[2] == ("touch /run/bondbot-fix-bond0-0a1b2c3d.confirmed; "
                                       "systemctl stop bondbot-undo-bond0-0a1b2c3d.service 2>/dev/null; true")
    assert "CheckpointDestroy" in cmds[6] and len(cmds) == 7
    assert plan.new_options == "mode=active-backup,miimon=100,primary=eno1,xmit_hash_policy=layer2"
    assert plan.target == "10.20.0.1"
    assert plan.fallback[0].command.startswith("systemd-run --quiet --collect --unit=bondbot-bounce-bond0 /bin/sh -c")
    assert "nmcli connection down uuid" in plan.fallback[0].command and "nmcli connection up uuid" in plan.fallback[0].command


def test_rollback_note_has_options_runtime_and_exact_restore_commands() -> None:
    plan = build_fix_plan("web-01", incident_state(), Monitor.mii(100))
    note = plan.rollback_note()
    assert note["bond_options_before"] == "mode=active-backup,miimon=0,primary=eno1,xmit_hash_policy=layer2"
    assert note["runtime_before"]["miimon"] == "0" and note["runtime_before"]["primary"] == "eno1"
    restore = note["restore_commands"]
    assert any("CheckpointRollback" in c for c in restore)
    assert (f"nmcli connection modify uuid {UUID} bond.options "
            "mode=active-backup,miimon=0,primary=eno1,xmit_hash_policy=layer2") in restore
    assert restore[-1] == "sh -c 'echo 0 > /sys/class/net/bond0/bonding/miimon'"
    assert "60 s" in note["text"]


def test_plan_hash_is_stable_and_changes_with_the_plan() -> None:
    a = build_fix_plan("web-01", incident_state(), Monitor.mii(100), run_id="0a1b2c3d")
    b = build_fix_plan("web-01", incident_state(), Monitor.mii(100), run_id="0a1b2c3d")
    c = build_fix_plan("web-01", incident_state(), Monitor.mii(200), run_id="0a1b2c3d")
    assert a.plan_hash == b.plan_hash != c.plan_hash and len(a.plan_hash) == 64
    # One hash: the Plan's digest. Another run id (a new plan) is another digest.
    assert a.plan_hash == a.plan.digest
    assert build_fix_plan("web-01", incident_state(), Monitor.mii(100)).plan_hash != a.plan_hash
    # The state shown with the plan is hashed with it: another runtime value before, another plan.
    changed = incident_state(runtime={**parse_sysfs_bonding(SYSFS), "updelay": "200"})
    assert build_fix_plan("web-01", changed, Monitor.mii(100), run_id="0a1b2c3d").plan_hash != a.plan_hash


def test_fix_plan_is_a_plan_with_roles_from_the_yaml() -> None:
    plan = build_fix_plan("web-01", incident_state(), Monitor.mii(100), run_id="0a1b2c3d")
    p = plan.plan
    assert (p.runbook, p.action, p.host, p.subject) == ("bonding", "fix", "web-01", (("bond", "bond0"),))
    assert [s.name for s in p.steps_for("checkpoint")] == ["checkpoint", "watchdog"]
    assert [s.name for s in p.steps_for("confirm")] == ["disarm", "checkpoint_destroy"]
    assert [s.name for s in p.steps_for("verify")] == ["proc", "sysfs", "profile", "persisted", "gateway"]
    assert [s.name for s in p.steps_for("rollback")][:3] == ["checkpoint_rollback", "nm_restore", "nm_restore_reapply"]
    assert [s.name for s in plan.fallback] == ["bounce"]
    assert p.param("run") == "0a1b2c3d" and p.param("backend") == "networkmanager"
    # What the views show is exactly what the Plan holds.
    assert [s.command for s in plan.steps] == [s.command for s in p.steps_for("checkpoint", "change", "confirm")
                                               if s.name != "bounce"]


def test_profile_values_with_shell_characters_are_refused() -> None:
    state = incident_state(bond_options={"mode": "active-backup", "primary": "eno1$(reboot)"})
    with pytest.raises(RemediationError, match="will not pass on"):
        build_fix_plan("web-01", state, Monitor.mii(100))


def test_quoting_of_a_target_that_passed_validation() -> None:
    plan = build_fix_plan("web-01", incident_state(), Monitor.mii(100), target="10.20.0.254")
    ping = plan.verify[-1].command
    assert shlex.split(ping)[-1] == "10.20.0.254" and "-I bond0" in ping


def test_refuses_when_monitoring_already_set_that_way() -> None:
    state = incident_state(miimon=100)
    with pytest.raises(PlanRefused, match="already"):
        build_fix_plan("web-01", state, Monitor.mii(100))


def test_refuses_without_a_gateway_to_verify() -> None:
    with pytest.raises(PlanRefused, match="--target"):
        build_fix_plan("web-01", incident_state(nm_gateway=None), Monitor.mii(100))


def test_arp_plan_writes_targets_before_interval() -> None:
    plan = build_fix_plan("web-01", incident_state(), Monitor.arp(1000, ["10.20.0.1"]))
    runtime = [s.command for s in plan.steps if s.purpose.startswith("runtime change")]
    assert runtime == ["sh -c 'echo +10.20.0.1 > /sys/class/net/bond0/bonding/arp_ip_target'",
                       "sh -c 'echo 1000 > /sys/class/net/bond0/bonding/arp_interval'"]
    assert "miimon" not in plan.new_options


def test_runtime_restore_puts_the_old_monitor_last() -> None:
    cmds = runtime_restore_commands("bond0", {"miimon": "0", "arp_interval": "0"})
    assert cmds[0] == "sh -c 'echo none > /sys/class/net/bond0/bonding/arp_validate'"
    assert cmds[1].endswith("arp_interval'") and cmds[-1] == "sh -c 'echo 0 > /sys/class/net/bond0/bonding/miimon'"
    cmds = runtime_restore_commands("bond0", {"miimon": "0", "arp_interval": "1000", "arp_ip_target": "10.20.0.1",
                                              "arp_validate": "all 3"})
    assert cmds[0] == "sh -c 'echo all > /sys/class/net/bond0/bonding/arp_validate'"
    assert cmds[-1].endswith("echo 1000 > /sys/class/net/bond0/bonding/arp_interval'")
    assert "sh -c 'echo +10.20.0.1 > /sys/class/net/bond0/bonding/arp_ip_target'" in cmds


def test_fingerprint_differences_name_what_changed() -> None:
    before = incident_state().fingerprint()
    after = incident_state(runtime={**incident_state().runtime, "miimon": "100"},
                           bond_options={"mode": "active-backup", "miimon": "100"}).fingerprint()
    diffs = fingerprint_differences(before, after)
    assert "miimon: was '0', now '100'" in diffs
    assert any(d.startswith("bond.options: was") for d in diffs)
    assert fingerprint_differences(before, incident_state().fingerprint()) == []


@pytest.mark.parametrize(
    ("files", "expect"),
    [
        (("/etc/network/interfaces",), ["[ifupdown", "bond-miimon 100"]),
        (("/etc/netplan/01-bond.yaml",), ["[netplan", "mii-monitor-interval: 100", "netplan try"]),
        (("/etc/sysconfig/network-scripts/ifcfg-bond0",),
         ["[ifcfg", 'BONDING_OPTS="mode=active-backup primary=eno1 xmit_hash_policy=layer2 miimon=100"']),
        ((), ["[unknown", "MIIMonitorSec=100ms"]),
    ],
)
def test_hosts_without_networkmanager_get_runtime_change_and_persistence_steps(files, expect) -> None:
    state = incident_state(nm_uuid=None, nm_id=None, bond_options=None, nm_file=None, device_paths=(),
                           config_files=files)
    plan = build_fix_plan("web-01", state, Monitor.mii(100))
    assert plan.backend == "sysfs"
    cmds = [s.command for s in plan.steps]
    assert len(cmds) == 3 and "bondbot-undo-bond0" in cmds[0] and "disarm" in plan.steps[2].purpose
    assert cmds[1] == "sh -c 'echo 100 > /sys/class/net/bond0/bonding/miimon'"
    for text in expect:
        assert text in plan.persistence
    assert "reboot" in " ".join(plan.warnings)
    assert "persistence" in plan.render_text().lower()


def test_render_text_shows_commands_and_rollback() -> None:
    text = build_fix_plan("web-01", incident_state(), Monitor.mii(100)).render_text()
    assert "nmcli device reapply bond0" in text and "Rollback for web-01 bond0" in text
    assert "bond.options after: mode=active-backup,miimon=100,primary=eno1" in text
