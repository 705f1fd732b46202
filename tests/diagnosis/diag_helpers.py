"""Shared helpers for the diagnosis tests: build TriageOutputs from files the way the engine does."""

from __future__ import annotations

from pathlib import Path

from runbooks.bonding.outputs import SourceOutput, TriageOutputs

WRITTEN = Path(__file__).resolve().parent.parent / "fixtures" / "written"
SEED = WRITTEN / "seed-active-backup-miimon0"


def proc_only(text: str, bond: str = "bond0") -> TriageOutputs:
    return TriageOutputs(bond=bond, proc_bonding=SourceOutput(f"cat /proc/net/bonding/{bond}", text))


def seed_outputs(**replace: str) -> TriageOutputs:
    """The seed incident as the triage runbook would collect it; ``replace`` swaps file texts."""

    def read(name: str) -> str:
        return replace.get(name, (SEED / name).read_text())

    return TriageOutputs(
        bond="bond0",
        proc_bonding=SourceOutput("cat /proc/net/bonding/bond0", read("proc_net_bonding_bond0.txt")),
        ip_details_json=SourceOutput("ip -d -j link show bond0", read("ip_-d_-j_link_show_bond0.json")),
        ip_link={i: SourceOutput(f"ip link show {i}", read(f"ip_link_show_{i}.txt"))
                 for i in ("eno1", "eno2")},
        ethtool={i: SourceOutput(f"ethtool {i}", read(f"ethtool_{i}.txt")) for i in ("eno1", "eno2")},
        nmcli=SourceOutput("nmcli -t con show bond0", read("nmcli_-t_con_show_bond0.txt")),
    )
