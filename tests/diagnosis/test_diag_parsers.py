"""Parser unit tests on the project's own fixtures and small hand-made variants of them."""

from __future__ import annotations

import pytest

from diag_helpers import SEED, WRITTEN, proc_only
from runbooks.bonding.diagnosis import diagnose
from runbooks.bonding.parsers import (
    LacpPortState,
    ParseError,
    parse_ethtool,
    parse_ip_details,
    parse_ip_link,
    parse_nmcli,
    parse_proc_bonding,
)

SEED_PROC = (SEED / "proc_net_bonding_bond0.txt").read_text()
LACP = (WRITTEN / "8023ad-port-going-back" / "proc_net_bonding_bond0.txt").read_text()


def test_proc_seed_fields() -> None:
    bond = parse_proc_bonding(SEED_PROC)
    assert bond.driver_version == "v5.14.0-427.13.1.el9_4.x86_64"
    assert (bond.mode, bond.primary_slave, bond.primary_reselect, bond.active_slave) == (
        "active-backup", "eno1", "always", "eno1")
    assert (bond.miimon, bond.arp_interval, bond.peer_notification_delay_ms) == (0, 0, 0)
    assert [s.name for s in bond.slaves] == ["eno1", "eno2"]
    eno1 = bond.slave("eno1")
    assert (eno1.mii_status, eno1.speed_mbps, eno1.duplex) == ("up", None, "unknown")
    assert bond.slave("eno2").speed_mbps == 1000
    assert bond.lines["miimon"] == "MII Polling Interval (ms): 0"


def test_proc_8023ad_privileged_block() -> None:
    bond = parse_proc_bonding(LACP)
    ad = bond.ad_info
    assert (ad.lacp_active, ad.lacp_rate, ad.system_priority) == (True, "fast", 65535)
    assert ad.active_aggregator.partner_mac == "00:1c:73:aa:bb:cc"
    assert bond.lacp_privileged is True
    ens3, ens4 = bond.slaves
    assert ens3.actor_lacp.port_state.in_use and ens3.partner_lacp.key == 1001
    assert ens4.mii_status == "going back"
    assert ens4.actor_lacp.port_state.defaulted
    assert ens4.partner_lacp.system_mac == "00:00:00:00:00:00"


def test_proc_unprivileged_detection() -> None:
    hidden = "\n".join(
        ln for ln in LACP.splitlines()
        if not ln.startswith(("System ", "Active Aggregator", "\t", "details", "    ")))
    bond = parse_proc_bonding(hidden)
    assert bond.lacp_privileged is False
    diagnosis = diagnose(proc_only(hidden))
    assert "LACP_INFO_UNPRIVILEGED" in diagnosis.codes()
    assert "LACP_NO_PARTNER" not in diagnosis.codes()


def test_proc_arp_and_ns_targets() -> None:
    text = SEED_PROC.replace(
        "Peer Notification Delay (ms): 0\n",
        "Peer Notification Delay (ms): 0\nARP Polling Interval (ms): 1000\nARP Missed Max: 2\n"
        "ARP IP target/s (n.n.n.n form): 10.20.0.1, 10.20.0.2\n"
        "NS IPv6 target/s (xx::xx form): 2001:db8::1\n")
    bond = parse_proc_bonding(text)
    assert bond.arp_targets == ("10.20.0.1", "10.20.0.2")
    assert bond.ns_targets == ("2001:db8::1",)
    assert bond.arp_missed_max == 2
    codes = diagnose(proc_only(text)).codes()
    assert "NO_LINK_MONITORING" not in codes and "ARP_SINGLE_TARGET" not in codes


@pytest.mark.parametrize("line, message", [
    ("MII Polling Interval (ms): often", "not a number"),
    ("Bonding Mode: quantum entanglement", "unknown bonding mode"),
    ("MII Status: sideways", "MII status"),
])
def test_proc_bad_values_name_the_line(line: str, message: str) -> None:
    key = line.split(":")[0]
    original = next(ln for ln in SEED_PROC.splitlines() if ln.startswith(key + ":"))
    text = SEED_PROC.replace(original, line, 1)
    with pytest.raises(ParseError, match=message) as exc:
        parse_proc_bonding(text, "bond0.txt")
    assert exc.value.line == line
    assert SEED_PROC.splitlines()[exc.value.line_number - 1] == original
    assert str(exc.value).startswith("bond0.txt: line ")


def test_proc_rejects_other_outputs() -> None:
    for text in ("", "\n\n", (SEED / "ethtool_eno1.txt").read_text(),
                 "Ethernet Channel Bonding Driver: v6.1\n\nMII Status: up\n"):
        with pytest.raises(ParseError):
            parse_proc_bonding(text)


def test_lacp_port_state_bits() -> None:
    assert LacpPortState(63).flags() == ["lacp_activity", "lacp_timeout", "aggregation",
                                         "synchronization", "collecting", "distributing"]
    assert LacpPortState(61).in_use and not LacpPortState(61).lacp_timeout
    assert LacpPortState(77).defaulted and not LacpPortState(77).in_use
    assert LacpPortState(15).synchronization and not LacpPortState(15).collecting
    assert str(LacpPortState(0)) == "0 (no bits set)"


def test_ip_json_and_text_agree() -> None:
    js = parse_ip_details((SEED / "ip_-d_-j_link_show_bond0.json").read_text())
    assert (js.ifname, js.mode, js.miimon, js.active_slave, js.primary) == (
        "bond0", "active-backup", 0, "eno1", "eno1")
    assert js.admin_up and js.lower_up and js.options["arp_validate"] is None
    text = ("4: bond0: <BROADCAST,MULTICAST,MASTER,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP "
            "mode DEFAULT group default qlen 1000\n    link/ether 3c:ec:ef:10:20:01 brd "
            "ff:ff:ff:ff:ff:ff promiscuity 0\n    bond mode active-backup active_slave eno1 "
            "miimon 0 updelay 0 downdelay 0 use_carrier 1 arp_interval 0 arp_ip_target "
            "10.0.0.1,10.0.0.2 primary eno1 lacp_rate slow num_grat_arp 1\n")
    tx = parse_ip_details(text)
    assert (tx.ifname, tx.mode, tx.miimon, tx.active_slave, tx.primary) == (
        js.ifname, js.mode, js.miimon, js.active_slave, js.primary)
    assert tx.arp_ip_targets == ("10.0.0.1", "10.0.0.2")
    assert tx.options["ad_lacp_rate"] == "slow" and tx.options["num_peer_notif"] == 1


def test_ip_json_errors() -> None:
    with pytest.raises(ParseError, match="invalid JSON"):
        parse_ip_details('[{"ifname": ')
    with pytest.raises(ParseError, match="no bond"):
        parse_ip_details('[{"ifname":"eth0","flags":["UP"]}]')
    with pytest.raises(ParseError, match="miimon is not a number"):
        parse_ip_details('[{"ifname":"bond0","linkinfo":{"info_kind":"bond",'
                         '"info_data":{"mode":"active-backup","miimon":"x"}}}]')


def test_ip_link_flags() -> None:
    (eno1,) = parse_ip_link((SEED / "ip_link_show_eno1.txt").read_text())
    assert eno1.no_carrier and eno1.admin_up and not eno1.lower_up
    assert (eno1.master, eno1.state, eno1.mtu) == ("bond0", "DOWN", 1500)
    (eno2,) = parse_ip_link((SEED / "ip_link_show_eno2.txt").read_text())
    assert not eno2.no_carrier and eno2.permaddr == "3c:ec:ef:10:20:02"
    with pytest.raises(ParseError, match="not ip link output"):
        parse_ip_link("Device \"eno9\" does not exist.\n")


def test_ethtool_fields_and_errors() -> None:
    info = parse_ethtool((SEED / "ethtool_eno1.txt").read_text())
    assert (info.interface, info.speed_mbps, info.duplex, info.link_detected) == (
        "eno1", None, "unknown", False)
    assert "drv probe link" in info.fields["Current message level"]
    missing = parse_ethtool("Cannot get device settings: No such device\n"
                            "Cannot get link status: No such device\nNo data available\n")
    assert missing.interface is None and len(missing.errors) == 3
    with pytest.raises(ParseError, match="Link detected"):
        parse_ethtool("Settings for eno1:\n\tLink detected: maybe\n")


def test_nmcli_terse_and_plain() -> None:
    nm = parse_nmcli((SEED / "nmcli_-t_con_show_bond0.txt").read_text())
    assert nm.terse and nm.id == "bond0" and nm.type == "bond"
    assert nm.uuid == "6d1f9b3e-2a4c-4f7e-9c1a-5b8e0d7f3a21"
    assert nm.bond_options == {"mode": "active-backup", "miimon": "0", "primary": "eno1"}
    assert nm.active_state == "activated" and nm.autoconnect is True
    assert nm.controller is None
    port = parse_nmcli("connection.id:                          bond0-port1\n"
                       "connection.master:                      bond0\n"
                       "connection.slave-type:                  bond\n"
                       "connection.zone:                        --\n"
                       "802-3-ethernet.cloned-mac-address:      --\n")
    assert (port.controller, port.port_type, port.terse) == ("bond0", "bond", False)
    assert port.properties["connection.zone"] == ""
    escaped = parse_nmcli("connection.id:b\n802-3-ethernet.mac-address:AA\\:BB\\:CC\\:DD\\:EE\\:FF\n"
                          "bond.options:mode=balance-xor,arp_interval=1000,"
                          "arp_ip_target=10.0.0.1,10.0.0.2\n")
    assert escaped.properties["802-3-ethernet.mac-address"] == "AA:BB:CC:DD:EE:FF"
    assert escaped.bond_options["arp_ip_target"] == "10.0.0.1,10.0.0.2"
    with pytest.raises(ParseError, match="not nmcli"):
        parse_nmcli("Error: bond0 - no such connection profile.\n")


def test_rules_on_variants() -> None:
    """Codes that no sample shows, from small edits of the written seed."""
    both = SEED_PROC.replace("MII Polling Interval (ms): 0", "MII Polling Interval (ms): 100") \
        .replace("Peer Notification Delay (ms): 0\n", "Peer Notification Delay (ms): 0\n"
                 "ARP Polling Interval (ms): 1000\nARP IP target/s (n.n.n.n form): 10.0.0.1\n")
    assert "MIIMON_AND_ARP_BOTH_SET" in diagnose(proc_only(both)).codes()
    single = SEED_PROC.split("\nSlave Interface: eno2")[0]
    assert "SINGLE_SLAVE" in diagnose(proc_only(single)).codes()
    half = SEED_PROC.replace("Duplex: full", "Duplex: half")
    assert "DUPLEX_MISMATCH" in diagnose(proc_only(half)).codes()
    on_backup = SEED_PROC.replace("MII Polling Interval (ms): 0", "MII Polling Interval (ms): 100") \
        .replace("Currently Active Slave: eno1", "Currently Active Slave: eno2")
    diagnosis = diagnose(proc_only(on_backup))
    # primary up, reselect always: a warning, so a risk of a healthy bond, never its root cause
    assert diagnosis.root_cause is None and diagnosis.verdict == "healthy"
    assert [f.code for f in diagnosis.risks] == ["ACTIVE_NOT_PRIMARY"]
    assert diagnosis.headline() == "healthy, 1 risk"
