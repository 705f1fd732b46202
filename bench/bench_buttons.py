"""Time from ``/bond triage`` to the buttons in the channel, next to ``bondbot triage`` on the same host.

    .venv/bin/python bench/bench_buttons.py [--delay 0.1] [--runs 5]

Issue 16 (item 3): the root cause and the buttons within 1.5x the time ``bondbot triage`` takes on
the same host, also when every host command takes 100 ms. The host is a real OpenSSH sshd on
loopback (tests/sshd.py) replaying the seed incident plus what the fix and the failover test read
(sysfs, the default route, the tools), with ``delay`` seconds added before every answer
(``set_replay(delay=)``). The bot is the real Bolt app over signed HTTP (``bot.testing.harness``)
against the Slack stand-in, with the real ``EngineTriage`` and ``EngineRemediation``; the clock
stops when the top message first carries the fix button. Each run has a fresh pool, store and bot
(connect included, as in the CLI).

Figures (medians of ``runs``), at delay 0 and at ``delay``:

  cli          ``bondbot triage HOST --json`` as a whole command (process start-up included)
  engine       ``runbooks.engine.run_triage`` in-process (fresh pool), the CLI's work without start-up
  buttons      ``/bond triage HOST`` -> the fix button in the channel (state read once per batch)
  per-offer    the same with the remediation's ``read_state`` hidden, so that each offer reads the
               host itself (the path before item 3: the fix and each failover method)

and the host commands each sent before the buttons, counted from the sshd's own log. Needs root
(sshd). Not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.app import BotDeps  # noqa: E402
from bot.authz import AuthzPolicy  # noqa: E402
from bot.limits import RateLimit, SlackLimits  # noqa: E402
from bot.testing.harness import start_bot  # noqa: E402
from bot.testing.standin import SlackStandin  # noqa: E402
from bot.views import ACTION_APPLY_FIX  # noqa: E402
from bot.wiring import EngineRemediation, EngineTriage  # noqa: E402
from incidents import IncidentStore  # noqa: E402
from runbooks.bonding.bond_options import render, sh_c  # noqa: E402
from ssh_exec import SshPool, load_inventory  # noqa: E402
from tests.remediation.test_failover_analysis import GOOD_TOOLS as TOOLS  # noqa: E402
from tests.ssh.fixtures import seed_replay  # noqa: E402
from tests.sshd import SshServer, start_sshd  # noqa: E402

TARGET = 1.5
CHANNEL = "C0INCIDENT"
BONDBOT = Path(sys.executable).parent / "bondbot"

def host_table() -> dict[str, tuple[int, str, str]]:
    """The seed host (miimon 0: the fix is offered, the failover test planned and not ready)."""
    table = seed_replay()
    sysfs = ("/sys/class/net/bond0/bonding/mode:active-backup 1\n/sys/class/net/bond0/bonding/miimon:0\n"
             "/sys/class/net/bond0/bonding/arp_interval:0\n/sys/class/net/bond0/bonding/slaves:eno1 eno2\n"
             "/sys/class/net/bond0/bonding/active_slave:eno1\n/sys/class/net/bond0/bonding/primary:eno1\n"
             "/sys/class/net/bond0/bonding/updelay:0\n/sys/class/net/bond0/bonding/downdelay:0\n")
    table[render("read_state.sysfs", bond="bond0")] = (0, sysfs, "")
    table[render("read_state.default_gateway", bond="bond0")] = (0, "default via 10.20.0.1 dev bond0\n", "")
    table[sh_c(render("failover.tools"))] = (0, TOOLS, "")
    return table


class PerOfferReads:
    """The remediation without ``read_state``: ``bot.proposals`` then lets each offer read the host."""

    def __init__(self, inner: EngineRemediation) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        if name == "read_state":
            raise AttributeError(name)
        return getattr(self._inner, name)


def _has_fix_button(slack: SlackStandin) -> bool:
    return any(e.get("action_id") == ACTION_APPLY_FIX
               for m in slack.channel_messages(CHANNEL, include_ephemeral=False) if m.thread_ts is None
               for b in m.blocks if b.get("type") == "actions" for e in b.get("elements", []))


async def buttons_once(server: SshServer, tmp: Path, *, read_once: bool) -> tuple[float, int]:
    """Seconds from the slash command to the fix button, and the host commands sent meanwhile."""
    tmp.mkdir(parents=True, exist_ok=True)
    inventory = load_inventory(server.write_inventory(tmp / "inventory.yaml"))
    known_hosts = server.write_known_hosts(tmp / "known_hosts")
    store = IncidentStore.open(f"sqlite:///{tmp / 'incidents.sqlite3'}")
    pool = SshPool(inventory, known_hosts=known_hosts)
    engine = EngineRemediation(pool, store)
    remediation: Any = engine if read_once else PerOfferReads(engine)
    unlimited = SlackLimits(triage_per_user=RateLimit(0, 1), triage_per_channel=RateLimit(0, 1))
    deps = BotDeps(store=store, triage=EngineTriage(pool, store), policy=AuthzPolicy(approver_users=frozenset({"U0BOB"})),
                   remediation=remediation, limits=unlimited)
    async with SlackStandin(users={"U0ALICE": "alice", "U0BOB": "bob"}) as slack:
        bot = await start_bot(slack, deps, mode="http")
        try:
            server.clear_log()
            started = time.perf_counter()
            await bot.command("triage test-host bond0", user="U0ALICE", channel=CHANNEL)
            await slack.wait_for(lambda: _has_fix_button(slack), timeout=120)
            took = time.perf_counter() - started
            sent = len(server.commands())
            await bot.settle(timeout=120)
        finally:
            await bot.stop()
            await pool.close()
            store.close()
    return took, sent


def engine_once(inventory: Path, known_hosts: Path) -> float:
    from runbooks.engine import run_triage

    async def go() -> float:
        started = time.perf_counter()
        async with SshPool(load_inventory(inventory), known_hosts=known_hosts) as pool:
            result = await run_triage(pool, "test-host")
        took = time.perf_counter() - started
        assert result.diagnosis is not None and result.diagnosis.root_cause is not None
        return took

    return asyncio.run(go())


def cli_once(env: dict[str, str]) -> float:
    started = time.perf_counter()
    p = subprocess.run([str(BONDBOT), "triage", "test-host", "--json"], env=env, capture_output=True, text=True)
    took = time.perf_counter() - started
    if p.returncode not in (0, 1, 2):  # a finding exits non-zero; anything else is an error
        raise RuntimeError(f"bondbot triage failed ({p.returncode}): {p.stderr[-2000:]}")
    return took


def measure(server: SshServer, tmp: Path, delay: float, runs: int) -> dict[str, Any]:
    server.set_replay(host_table(), delay=delay)
    inventory = server.write_inventory(tmp / "inventory.yaml")
    known_hosts = server.write_known_hosts(tmp / "known_hosts")
    env = dict(os.environ, BONDBOT_INVENTORY=str(inventory), BONDBOT_KNOWN_HOSTS=str(known_hosts),
               BONDBOT_DATA_DIR=str(tmp / "data"), BONDBOT_CONFIG_DIR=str(tmp / "config"))
    cli_once(env)  # warm-up (imports compiled, caches)
    server.clear_log()
    cli = [cli_once(env) for _ in range(runs)]
    cli_commands = len(server.commands()) // runs
    engine = [engine_once(inventory, known_hosts) for _ in range(runs)]
    once = [asyncio.run(buttons_once(server, tmp / f"once-{i}", read_once=True)) for i in range(runs)]
    per = [asyncio.run(buttons_once(server, tmp / f"per-{i}", read_once=False)) for i in range(runs)]
    return {
        "cli": statistics.median(cli), "engine": statistics.median(engine), "cli_commands": cli_commands,
        "buttons": statistics.median(t for t, _n in once), "buttons_commands": max(n for _t, n in once),
        "per_offer": statistics.median(t for t, _n in per), "per_offer_commands": max(n for _t, n in per),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--delay", type=float, default=0.1, help="seconds added before every host command's answer")
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)  # "failover test not ready before the fix" is expected here
    tmp = Path(tempfile.mkdtemp(prefix="bondbot-bench-buttons-"))
    server = start_sshd(replay=host_table())
    results: list[tuple[float, dict[str, Any]]] = []
    try:
        for delay in sorted({0.0, args.delay}):
            results.append((delay, measure(server, tmp / f"delay-{delay:g}", delay, args.runs)))
    finally:
        server.stop()
    print(f"/bond triage -> buttons vs `bondbot triage` on the same replayed host (medians of {args.runs}; "
          f"target buttons <= {TARGET:g}x cli)\n")
    print(f"{'delay/cmd':>9}  {'cli':>7}  {'engine':>7}  {'buttons':>8}  {'ratio':>6}  {'vs engine':>9}  "
          f"{'per-offer':>9}  {'ratio':>6}  commands: cli / buttons / per-offer")
    ok = True
    for delay, r in results:
        ratio, per_ratio = r["buttons"] / r["cli"], r["per_offer"] / r["cli"]
        ok = ok and ratio <= TARGET
        print(f"{delay * 1000:>7.0f}ms  {r['cli']:>6.2f}s  {r['engine']:>6.2f}s  {r['buttons']:>7.2f}s  {ratio:>5.2f}x  "
              f"{r['buttons'] / r['engine']:>8.2f}x  {r['per_offer']:>8.2f}s  {per_ratio:>5.2f}x  "
              f"{r['cli_commands']} / {r['buttons_commands']} / {r['per_offer_commands']}")
    print(f"\nRESULT {'ok' if ok else 'OVER TARGET'}: buttons within {TARGET:g}x of `bondbot triage` at every delay")


if __name__ == "__main__":
    main()
