"""The seed's bonding incident as the bot would log it, used by the export and CLI tests."""

from __future__ import annotations

from incidents import IncidentStore

PROC_BONDING = """Ethernet Channel Bonding Driver: v5.14.0

Bonding Mode: fault-tolerance (active-backup)
Primary Slave: None
Currently Active Slave: eno1
MII Status: up
MII Polling Interval (ms): 0
Up Delay (ms): 0
Down Delay (ms): 0

Slave Interface: eno1
MII Status: up
Speed: 1000 Mbps
"""

PLAN_HASH = "5e3c1b9a" * 8


def build_incident(store: IncidentStore) -> str:
    """An incident from triage to close; returns its id. 15 events."""
    inc = store.create_incident(host="web-01", bond="bond0", requester="U024BE7LH", channel="#ops-network")
    i = inc.id
    store.append(i, actor="bot", kind="triage_step", payload={
        "step": "bond status", "command": "cat /proc/net/bonding/bond0", "host": "web-01",
        "exit_status": 0, "duration_s": 0.034, "stdout": PROC_BONDING, "stderr": "",
    })
    store.append(i, actor="bot", kind="triage_step", payload={
        "step": "link detection", "command": "ethtool eno1 | grep -i link", "host": "web-01",
        "exit_status": 0, "duration_s": 0.021, "stdout": "\tLink detected: no\n",
    })
    store.append(i, actor="bot", kind="finding", payload={
        "code": "BOND_MIIMON_DISABLED", "severity": "critical",
        "summary": "bond0 has no link monitoring (miimon=0, no arp_interval)",
        "evidence": [{"source": "cat /proc/net/bonding/bond0", "line": "MII Polling Interval (ms): 0"}],
    })
    store.set_root_cause(i, "MII link monitoring is disabled (miimon=0): the bond cannot detect eno1's link loss",
                         actor="bot", details={"code": "BOND_MIIMON_DISABLED"})
    store.set_status(i, "diagnosed", actor="bot")
    store.append(i, actor="bot", kind="proposal", payload={
        "summary": "Enable MII link monitoring: miimon=100", "plan_hash": PLAN_HASH,
        "commands": ['nmcli con modify bond0 bond.options "mode=active-backup,miimon=100,primary=eno1"',
                     "nmcli con down bond0 && nmcli con up bond0"],
    })
    store.record_approval(i, actor="U024BE7LH", plan_hash=PLAN_HASH, summary="Enable MII link monitoring: miimon=100")
    store.add_rollback_note(
        i, actor="bot", before={"bond.options": "mode=active-backup,miimon=0,primary=eno1"},
        restore_commands=['nmcli con modify bond0 bond.options "mode=active-backup,miimon=0,primary=eno1"',
                          "nmcli con down bond0 && nmcli con up bond0"],
        for_change="Enable MII link monitoring: miimon=100",
    )
    store.set_status(i, "fixing", actor="bot")
    store.append(i, actor="bot", kind="command", payload={
        "command": 'nmcli con modify bond0 bond.options "mode=active-backup,miimon=100,primary=eno1"',
        "host": "web-01", "exit_status": 0, "duration_s": 0.412, "stdout": "", "stderr": "",
    })
    store.append(i, actor="bot", kind="verification", payload={
        "ok": True, "summary": "MII Polling Interval (ms): 100; failover to eno2 in 212 ms",
    })
    store.set_status(i, "verified", actor="bot")
    store.append(i, actor="U024BE7LH", kind="note", payload={
        "text": "Switch team: <script>alert('x')</script> | ports are access ports in VLAN 200 `ok`",
    })
    store.set_status(i, "closed", actor="U024BE7LH", reason="fixed and verified")
    return i
