"""The lab VM's scenarios are what they claim, checked against the real bonding driver.

One VM per run (``lab_vm``); each test starts from the seed's incident with all links up
(``lab_host``) and switches scenario through NetworkManager, never by rebooting. That a
scenario survives a reboot is proved by the fix's story (tests/remediation/test_lab_remediation.py
reboots after the fix and finds miimon=100 persisted): one reboot per persona, not two.
"""

from __future__ import annotations

import re
import socket
import time

import pytest
import yaml

from lab.network import BOND_ADDRESS, GATEWAY
from lab.testing import LabSession

pytestmark = pytest.mark.lab


def bonding(lab: LabSession) -> str:
    return lab.ssh("cat /proc/net/bonding/bond0", check=True).stdout


def active_slave(lab: LabSession) -> str | None:
    match = re.search(r"^Currently Active Slave: (\S+)$", bonding(lab), re.M)
    return match.group(1) if match else None


def wait_active(lab: LabSession, wanted: str, timeout: float = 10.0) -> float:
    """Seconds until ``wanted`` is the active slave, or fail with the last state seen."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if active_slave(lab) == wanted:
            return time.monotonic() - started
        time.sleep(0.2)
    pytest.fail(f"{wanted} never became active within {timeout} s:\n{bonding(lab)}")


def ping_received(lab: LabSession, count: int = 4, interval: float = 0.3) -> int:
    out = lab.ssh(f"ping -n -q -c {count} -i {interval} -W 1 {GATEWAY}", timeout=60).stdout
    match = re.search(r"(\d+) received", out)
    assert match, out
    return int(match.group(1))


def slave_mii(lab: LabSession, slave: str) -> str:
    match = re.search(rf"^Slave Interface: {slave}\nMII Status: (\S+)$", bonding(lab), re.M)
    assert match, bonding(lab)
    return match.group(1)


def test_boot_wrote_inventory_entry_and_pinned_host_key(lab_vm: LabSession) -> None:
    inventory = yaml.safe_load(lab_vm.inventory_path.read_text())
    entry = inventory["hosts"]["lab-host"]
    assert entry == lab_vm.entry
    assert entry["address"] == "127.0.0.1" and entry["user"] == "root" and entry["bond"] == "bond0"
    assert entry["groups"] == ["lab"] and entry["sudo"] is False
    key_line = lab_vm.vm.image.host_key_line()
    assert f"[127.0.0.1]:{entry['port']} {key_line}" in lab_vm.known_hosts_path.read_text().splitlines()
    # The guest really presents that key and no other (sshd offers only the built ed25519 key).
    scanned = lab_vm.ssh("cat /etc/ssh/ssh_host_ed25519_key.pub", check=True).stdout.split()[:2]
    assert " ".join(scanned) == key_line


def test_wrong_pinned_host_key_is_refused(lab_host: LabSession, tmp_path) -> None:
    import subprocess

    from lab.hostconfig import pin_known_host
    from lab.vm import LabVM

    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    state = lab_host.vm.state()
    impostor = LabVM(tmp_path, image=lab_host.vm.image)  # same client key, other known_hosts
    pin_known_host(impostor.known_hosts, "127.0.0.1", state.ssh_port,
                   " ".join(other.with_suffix(".pub").read_text().split()[:2]))
    result = impostor.ssh("true", port=state.ssh_port, multiplex=False)
    assert result.exit_status == 255
    assert "Host key verification failed" in result.stderr


def test_incident_miimon0_keeps_dead_slave_active_and_loses_pings(lab_host: LabSession) -> None:
    text = bonding(lab_host)
    assert "MII Polling Interval (ms): 0" in text and active_slave(lab_host) == "eno1"
    assert ping_received(lab_host, 2) == 2
    lab_host.link("eno1", False)
    time.sleep(1.5)
    assert "NO-CARRIER" in lab_host.ssh("ip link show eno1", check=True).stdout
    assert "Link detected: no" in lab_host.ssh("ethtool eno1", check=True).stdout
    assert active_slave(lab_host) == "eno1", "miimon=0 must not notice the dead port"
    assert slave_mii(lab_host, "eno1") == "up"
    assert ping_received(lab_host, 4) == 0
    lab_host.link("eno1", True)
    time.sleep(1.5)
    assert ping_received(lab_host, 2) == 2


def test_healthy_fails_over_and_takes_primary_back(lab_host: LabSession) -> None:
    lab_host.scenario("healthy")
    assert "MII Polling Interval (ms): 100" in bonding(lab_host)
    wait_active(lab_host, "eno1")
    lab_host.link("eno1", False)
    wait_active(lab_host, "eno2", timeout=5)
    assert slave_mii(lab_host, "eno1") == "down"
    assert ping_received(lab_host, 3) == 3
    lab_host.link("eno1", True)
    wait_active(lab_host, "eno1", timeout=5)  # primary=eno1 is taken back
    assert ping_received(lab_host, 2) == 2


def test_arp_monitor_watches_the_gateway_and_fails_over(lab_host: LabSession) -> None:
    lab_host.scenario("arp")
    text = bonding(lab_host)
    assert "ARP Polling Interval (ms): 1000" in text
    assert f"ARP IP target/s (n.n.n.n form): {GATEWAY}" in text
    assert "MII Polling Interval (ms): 0" in text
    wait_active(lab_host, "eno1", timeout=8)
    lab_host.link("eno1", False)
    wait_active(lab_host, "eno2", timeout=10)
    assert ping_received(lab_host, 2) == 2


def test_lacp_without_partner(lab_host: LabSession) -> None:
    lab_host.scenario("lacp-no-partner")
    text = bonding(lab_host)
    assert "Bonding Mode: IEEE 802.3ad Dynamic link aggregation" in text
    assert "Partner Mac Address: 00:00:00:00:00:00" in text
    # No LACPDUs from the "switch": each port sits in an aggregator of its own.
    ids = re.findall(r"^Slave Interface: (\S+)\n(?:.*\n)*?Aggregator ID: (\d+)$", text, re.M)
    assert len({agg for _slave, agg in ids}) == 2, text


def test_single_port_has_no_redundancy(lab_host: LabSession) -> None:
    lab_host.scenario("single-port")
    text = bonding(lab_host)
    assert re.findall(r"^Slave Interface: (\S+)$", text, re.M) == ["eno1"]
    assert "master bond0" not in lab_host.ssh("ip link show eno2", check=True).stdout
    lab_host.link("eno1", False)
    time.sleep(1)
    assert ping_received(lab_host, 3) == 0


def tx_packets(lab: LabSession) -> dict[str, int]:
    out = lab.ssh("cat /sys/class/net/eno1/statistics/tx_packets /sys/class/net/eno2/statistics/tx_packets",
                  check=True).stdout.split()
    return {"eno1": int(out[0]), "eno2": int(out[1])}


def test_round_robin_without_monitoring(lab_host: LabSession) -> None:
    lab_host.scenario("rr-no-monitor")
    text = bonding(lab_host)
    assert "Bonding Mode: load balancing (round-robin)" in text
    assert "MII Polling Interval (ms): 0" in text
    before = tx_packets(lab_host)
    assert ping_received(lab_host, 10, 0.2) == 10
    after = tx_packets(lab_host)
    assert all(after[s] - before[s] >= 3 for s in before), (before, after)  # really round robin
    lab_host.link("eno1", False)
    time.sleep(1)
    # Found on kernel 6.1: round robin skips a slave without carrier even with miimon=0
    # (bond_slave_can_tx checks the carrier), so no pings are lost, but the bond's own view
    # of eno1 stays stale: /proc still says MII Status up.
    assert ping_received(lab_host, 10, 0.2) == 10
    assert slave_mii(lab_host, "eno1") == "up"


def test_ssh_via_bond_cuts_the_operator_off_when_the_bond_goes_down(lab_host: LabSession) -> None:
    lab_host.scenario("ssh-via-bond")
    state = lab_host.vm.state()
    assert state.ssh_via_bond and lab_host.entry["port"] == state.bond_ssh_port
    assert yaml.safe_load(lab_host.inventory_path.read_text())["hosts"]["lab-host"]["port"] == state.bond_ssh_port
    who = lab_host.ssh("echo $SSH_CONNECTION", check=True, multiplex=False).stdout.split()
    assert who[2] == BOND_ADDRESS, who  # the session lands on the bond's address
    mgmt = lab_host.ssh("true", port=state.ssh_port, multiplex=False, timeout=30)
    assert mgmt.exit_status == 255, "the management path must be cut in this scenario"
    # A bad change: take the bond down. The operator loses the host.
    lab_host.ssh("systemd-run --on-active=1 nmcli connection down bond0", check=True)
    # Under TCG and a loaded machine nmcli may take seconds to act: wait for the cut, bounded.
    deadline = time.monotonic() + 60
    while True:
        cut = lab_host.ssh("true", multiplex=False, timeout=40)
        if cut.exit_status == 255 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert cut.exit_status == 255, "SSH through the bond still works 60 s after the bond went down"
    # The lab itself still gets back in (through the management NIC) and restores the host.
    lab_host.scenario("incident")
    assert lab_host.ssh("true", multiplex=False).exit_status == 0


def test_link_rejects_unknown_interface_and_changes_nothing(lab_vm: LabSession) -> None:
    from lab.errors import InvalidArgument

    before = lab_vm.vm.state().links
    with pytest.raises(InvalidArgument, match="unknown lab interface 'eth0'"):
        lab_vm.link("eth0", False)
    assert lab_vm.vm.state().links == before


def test_mgmt_port_is_a_plain_tcp_forward_to_sshd(lab_host: LabSession) -> None:
    state = lab_host.vm.state()
    with socket.create_connection(("127.0.0.1", state.ssh_port), timeout=30) as conn:
        conn.settimeout(30)
        assert conn.recv(64).startswith(b"SSH-2.0-OpenSSH_9.2")
