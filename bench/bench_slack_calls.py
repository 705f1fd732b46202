"""Slack Web API calls per triage: a 1,000-slave bond, and 100 triages at once (issue 12: <= 15).

    .venv/bin/python bench/bench_slack_calls.py [--slaves 1000] [--triages 100]

The real bot (``bot.testing.harness``: the Bolt app over signed HTTP) against the Slack stand-in,
which records every Web API call, and a real OpenSSH sshd on loopback (tests/sshd.py) replaying
the seed incident, widened to N ports for the big bond (each extra port a copy of eno2, renamed).
The tests' remediation (``tests/bot/host_remediation.py``) plans the fix and the failover test, so
the offers and their repaints are counted too. Figures: API calls by method per triage (the file
upload's own POST to the upload URL is counted too, as ``upload``; auth.test, once per process, is
not), wall time.

The peer it names is the same bot before issue 12, as the review measured it: one triage of a
1,000-slave bond sent 4,007 chat.update and 2,003 thread posts; 1,000 triages from one user were
all accepted (21,833 calls). For "100 at once" the per-user and per-channel triage limits are
switched off (they would accept 5 of one user's 100: that is also shown), so every triage runs.
Needs root (sshd). Not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.app import BotDeps  # noqa: E402
from bot.authz import AuthzPolicy  # noqa: E402
from bot.limits import RateLimit, SlackLimits  # noqa: E402
from bot.testing.harness import start_bot  # noqa: E402
from bot.testing.standin import SlackStandin  # noqa: E402
from bot.wiring import EngineTriage  # noqa: E402
from incidents import IncidentStore  # noqa: E402
from ssh_exec import SshPool, load_inventory  # noqa: E402
from tests.bot.host_remediation import FIX_COMMANDS, TEST_COMMANDS, HostRemediation  # noqa: E402
from tests.ssh.fixtures import seed_replay  # noqa: E402
from tests.sshd import start_sshd  # noqa: E402

TARGET = 15
CHANNEL = "C0INCIDENT"


def wide_bond(slaves: int) -> dict[str, tuple[int, str, str]]:
    """The seed's bond0 with ``slaves`` ports: eno1, eno2 and copies of eno2 named p3..pN."""
    table = seed_replay()
    extra = [f"p{i}" for i in range(3, slaves + 1)]
    proc_rc, proc, proc_err = table["cat /proc/net/bonding/bond0"]
    section = proc[proc.index("Slave Interface: eno2"):]
    proc = proc + "".join("\n" + section.replace("eno2", name).replace("3c:ec:ef:10:20:02", f"3c:ec:ef:{i >> 8 & 255:02x}:"
                          f"{i & 255:02x}:02") for i, name in enumerate(extra, 3))
    table["cat /proc/net/bonding/bond0"] = (proc_rc, proc, proc_err)
    rc, listing, err = table["grep -H . /sys/class/net/*/bonding/slaves"]
    table["grep -H . /sys/class/net/*/bonding/slaves"] = (rc, listing.rstrip("\n") + "".join(f" {n}" for n in extra)
                                                          + "\n", err)
    for name in extra:
        for command in ("ethtool eno2", "ip link show eno2"):
            rc, out, err = table[command]
            table[command.replace("eno2", name)] = (rc, out.replace("eno2", name), err)
    for command in FIX_COMMANDS + TEST_COMMANDS + ("ip link set eno1 up",):
        table.setdefault(command, (0, "", ""))
    return table


async def measure(server: object, tmp: Path, *, triages: int, limits: SlackLimits) -> tuple[dict[str, int], float, int]:
    tmp.mkdir(parents=True, exist_ok=True)
    inventory = load_inventory(server.write_inventory(tmp / "inventory.yaml"))  # type: ignore[attr-defined]
    known_hosts = server.write_known_hosts(tmp / "known_hosts")  # type: ignore[attr-defined]
    store = IncidentStore.open(f"sqlite:///{tmp / f'incidents-{triages}.sqlite3'}")
    pool = SshPool(inventory, known_hosts=known_hosts)
    deps = BotDeps(store=store, triage=EngineTriage(pool, store), policy=AuthzPolicy(approver_users=frozenset({"U0BOB"})),
                   remediation=HostRemediation(pool), limits=limits)
    users = {f"U0USER{i:03d}": f"user{i}" for i in range(triages)}
    async with SlackStandin(users=users) as slack:
        bot = await start_bot(slack, deps, mode="http")
        try:
            await slack.wait_for(lambda: True)
            before = len(slack.calls)
            started = time.perf_counter()
            await asyncio.gather(*(bot.command("triage test-host bond0", user=u, channel=CHANNEL) for u in users))
            await bot.settle(timeout=600)
            took = time.perf_counter() - started
            counted = collections.Counter(c.method for c in slack.calls[before:] if c.method != "auth.test")
        finally:
            await bot.stop()
            await pool.close()
            incidents = len(store.list_incidents(limit=100_000))
            store.close()
    return dict(counted), took, incidents


def show(title: str, calls: dict[str, int], took: float, incidents: int) -> float:
    total = sum(calls.values())
    per = total / max(1, incidents)
    methods = ", ".join(f"{m} {n}" for m, n in sorted(calls.items(), key=lambda kv: -kv[1]))
    verdict = "ok" if per <= TARGET else "OVER TARGET"
    print(f"{title:<34} {incidents:>4} incident(s)  {total:>6} calls  {per:6.1f} per triage  {took:6.1f} s  "
          f"[{verdict}]\n{'':<36}{methods}")
    return per


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--slaves", type=int, default=1000)
    ap.add_argument("--triages", type=int, default=100)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bondbot-bench-slack-"))
    unlimited = SlackLimits(triage_per_user=RateLimit(0, 1), triage_per_channel=RateLimit(0, 1))
    print(f"Slack Web API calls per triage (target <= {TARGET}); before issue 12 (the review): 1,000-slave bond "
          "4,007 chat.update + 2,003 thread posts; 1,000 triages 21,833 calls\n")
    server = start_sshd(replay=wide_bond(args.slaves))
    try:
        calls, took, n = asyncio.run(measure(server, tmp / "wide", triages=1, limits=unlimited))
        wide = show(f"one triage, {args.slaves}-slave bond", calls, took, n)
        server.set_replay(wide_bond(2))
        calls, took, n = asyncio.run(measure(server, tmp / "many", triages=args.triages, limits=unlimited))
        many = show(f"{args.triages} triages at once (seed bond)", calls, took, n)
        calls, took, n = asyncio.run(measure(server, tmp / "limited", triages=args.triages, limits=SlackLimits()))
        print(f"{args.triages} triages at once, default limits: {n} accepted (20 per channel per minute), "
              f"{sum(calls.values())} calls")
    finally:
        server.stop()
    print(f"\nRESULT per triage: {wide:.1f} ({args.slaves}-slave bond), {many:.1f} ({args.triages} at once); "
          f"target <= {TARGET}")


if __name__ == "__main__":
    main()
