"""Parse + diagnose a generated 64-slave 802.3ad /proc/net/bonding file; target: under 5 ms.

Prints our figures side by side with a peer: Red Hat insights-core's ``Bond`` parser (parse only,
it has no diagnosis), when ``insights-core`` is installed (it is in the ``dev`` extra).
Run: ``.venv/bin/python bench/bench_diagnose.py [--slaves 64] [--rounds 300]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from runbooks.bonding.diagnosis import diagnose  # noqa: E402
from runbooks.bonding.outputs import SourceOutput, TriageOutputs  # noqa: E402
from runbooks.bonding.parsers import parse_proc_bonding  # noqa: E402

TARGET_MS = 5.0


def generate_8023ad(slaves: int) -> str:
    """A privileged read of a kernel 6.x 802.3ad bond, in bond_procfs.c's exact format.

    Every 8th port is down and every 16th sits outside the active aggregator, so the rules do
    real work (SLAVE_DOWN, LACP_AGGREGATOR_SPLIT, LACP_NOT_DISTRIBUTING) rather than a fast path.
    """
    out = [
        "Ethernet Channel Bonding Driver: v6.1.0-18-amd64", "",
        "Bonding Mode: IEEE 802.3ad Dynamic link aggregation",
        "Transmit Hash Policy: layer3+4 (1)", "MII Status: up", "MII Polling Interval (ms): 100",
        "Up Delay (ms): 0", "Down Delay (ms): 0", "Peer Notification Delay (ms): 0", "",
        "802.3ad info", "LACP active: on", "LACP rate: fast", "Min links: 0",
        "Aggregator selection policy (ad_select): stable", "System priority: 65535",
        "System MAC address: 52:54:00:00:10:00", "Active Aggregator Info:",
        "\tAggregator ID: 1", f"\tNumber of ports: {slaves}", "\tActor Key: 15",
        "\tPartner Key: 1001", "\tPartner Mac Address: 00:1c:73:aa:bb:cc",
    ]
    for i in range(slaves):
        down = i % 8 == 7
        agg = 2 if i % 16 == 14 else 1
        state = 71 if down else (15 if agg == 2 else 63)
        out += [
            "", f"Slave Interface: ens{i}", f"MII Status: {'down' if down else 'up'}",
            "Speed: Unknown" if down else "Speed: 25000 Mbps",
            "Duplex: Unknown" if down else "Duplex: full", f"Link Failure Count: {i % 3}",
            f"Permanent HW addr: 52:54:00:00:{i // 256:02x}:{i % 256:02x}", "Slave queue ID: 0",
            f"Aggregator ID: {agg}", "Actor Churn State: none", "Partner Churn State: none",
            "Actor Churned Count: 0", "Partner Churned Count: 0",
            "details actor lacp pdu:", "    system priority: 65535",
            "    system mac address: 52:54:00:00:10:00", "    port key: 15",
            "    port priority: 255", f"    port number: {i + 1}", f"    port state: {state}",
            "details partner lacp pdu:", "    system priority: 32768",
            "    system mac address: 00:1c:73:aa:bb:cc", "    oper key: 1001",
            "    port priority: 32768", f"    port number: {i + 100}", f"    port state: {state}",
        ]
    return "\n".join(out) + "\n"


def measure(fn: Callable[[], object], rounds: int) -> tuple[float, float]:
    fn()  # warm: template compilation, imports
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times), min(times)


def insights_bond(text: str) -> Callable[[], object] | None:
    try:
        from insights.core.context import Context
        from insights.parsers.bond import Bond
    except ImportError:
        return None
    lines = text.splitlines()

    def run() -> object:
        return Bond(Context(content=lines, path="/proc/net/bonding/bond0"))

    return run


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slaves", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=300)
    args = ap.parse_args()
    text = generate_8023ad(args.slaves)
    outputs = TriageOutputs(bond="bond0",
                            proc_bonding=SourceOutput("cat /proc/net/bonding/bond0", text))
    diagnosis = diagnose(outputs, strict=True)
    print(f"input: {args.slaves}-slave 802.3ad file, {len(text.splitlines())} lines, "
          f"{len(text)} bytes; {args.rounds} rounds; median (best) in ms")
    print(f"diagnosis: root cause {diagnosis.root_cause.code if diagnosis.root_cause else None}, "
          f"{len(diagnosis.findings)} findings")
    rows = [
        ("bondbot parse_proc_bonding", measure(lambda: parse_proc_bonding(text), args.rounds)),
        ("bondbot parse + diagnose (rules, templates)",
         measure(lambda: diagnose(outputs), args.rounds)),
    ]
    peer = insights_bond(text)
    if peer is not None:
        rows.append(("insights-core Bond parser (parse only)", measure(peer, args.rounds)))
    width = max(len(name) for name, _ in rows)
    for name, (median, best) in rows:
        print(f"  {name:<{width}}  {median:7.3f}  ({best:.3f})")
    if peer is None:
        print("  insights-core not installed (pip install -e '.[dev]'): no peer figure")
    full = rows[1][1][0]
    verdict = "OK" if full < TARGET_MS else "OVER TARGET"
    print(f"parse + diagnose median {full:.3f} ms vs target {TARGET_MS} ms: {verdict}")
    return 0 if full < TARGET_MS else 1


if __name__ == "__main__":
    raise SystemExit(main())
