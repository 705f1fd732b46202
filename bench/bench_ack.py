"""How fast does /bond answer? 50 concurrent `/bond triage` requests, each must be acknowledged
well within Slack's 3 s (target: 300 ms), over HTTP (signed) and over Socket Mode.

The whole stack is real: the Bolt app, the Slack stand-in, a real sshd replaying the seed incident
(tests/sshd.py; needs root and OpenSSH), the SQLite incident store. After the acks, the bench waits
for every triage to finish and checks that each produced exactly one incident.

    .venv/bin/python bench/bench_ack.py [--n 50]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


async def run(n: int, mode: str, tmp: Path, server: object) -> tuple[list[float], float, int]:
    from bot.app import BotDeps
    from bot.authz import AuthzPolicy
    from bot.testing.harness import start_bot
    from bot.testing.standin import SlackStandin
    from bot.wiring import EngineTriage
    from incidents import IncidentStore
    from ssh_exec import SshPool, load_inventory

    inv = server.write_inventory(tmp / f"inventory-{mode}.yaml", name="test-host")  # type: ignore[attr-defined]
    kh = server.write_known_hosts(tmp / "known_hosts")  # type: ignore[attr-defined]
    store = IncidentStore.open(f"sqlite:///{tmp / f'{mode}.sqlite3'}")
    pool = SshPool(load_inventory(inv), known_hosts=kh)
    deps = BotDeps(store=store, triage=EngineTriage(pool, store), policy=AuthzPolicy())
    async with SlackStandin() as slack:
        bot = await start_bot(slack, deps, mode=mode)  # type: ignore[arg-type]
        started = time.perf_counter()
        acks = await asyncio.gather(
            *(bot.command("triage test-host", user=f"U{i:04d}X", channel="C0BENCH") for i in range(n))
        )
        await bot.settle(timeout=300)
        total = time.perf_counter() - started
        await bot.stop()
    incidents = len(store.list_incidents(limit=10 * n))
    await pool.close()
    store.close()
    bad = [a for a in acks if a.status != 200 or not a.body]
    if bad:
        raise SystemExit(f"{len(bad)} request(s) not acknowledged properly: {bad[:3]}")
    return [a.seconds * 1000 for a in acks], total, incidents


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50)
    args = parser.parse_args()
    from ssh.fixtures import seed_replay  # tests/ssh/fixtures.py
    from sshd import sshd_available, start_sshd

    reason = sshd_available()
    if reason:
        raise SystemExit(f"cannot run: {reason}")
    with start_sshd(replay=seed_replay()) as server, tempfile.TemporaryDirectory() as d:
        print(f"{args.n} concurrent `/bond triage` (ack = time until the app answered Slack)")
        print(f"{'transport':<12} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'target':>8} {'Slack limit':>12} {'all done s':>11} {'incidents':>10}")
        failed = False
        for mode in ("http", "socket"):
            times, total, incidents = asyncio.run(run(args.n, mode, Path(d), server))
            p50, p99, worst = statistics.median(times), _pct(times, 99), max(times)
            print(f"{mode:<12} {p50:8.1f} {p99:8.1f} {worst:8.1f} {'300':>8} {'3000':>12} {total:11.2f} {incidents:10d}")
            failed |= worst >= 3000 or incidents != args.n
        if failed:
            raise SystemExit("FAILED: an ack took 3 s or more, or an incident was lost or repeated")


if __name__ == "__main__":
    main()
