"""Speed of the triage over SSH, side by side with its floor and with Ansible, in one run.

    .venv/bin/python bench/bench_triage.py [--audit-hosts 1000] [--ansible-subset 100] [--quick]

Everything runs against one real OpenSSH sshd on loopback (tests/sshd.py) that answers the ten
triage commands (three host-level discovery reads, seven for the bond) from the seed's recorded outputs, logged in as a test user whose login shell is
/bin/sh. Figures (medians):

  floor        bare asyncssh: connect, run the 10 commands concurrently (one round), close
  engine       bondbot's run_triage in-process (fresh pool: connect, discover bonds, ports and the
               NetworkManager profile, 10 commands in two rounds, diagnose); once with the bond in
               the inventory and once with none (discovered)
  cli          `bondbot triage HOST` as a whole command (process start-up included)
  ansible      `ansible-playbook` running the same 10 commands as `raw` tasks (ansible-core is
               installed into its own virtualenv under ~/.cache/bondbot-bench on first run)
  audit        `bondbot audit` of N inventory entries (all pointing at the test sshd), wall time and
               peak RSS; against `ansible-playbook -f 50` on a subset, extrapolated linearly (said so)

Needs root (sshd) and, for the Ansible figures, PyPI. It is not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.ssh.fixtures import seed_replay  # noqa: E402
from tests.sshd import SshServer, start_sshd  # noqa: E402

# What the triage sends: the three host-level discovery reads, the bond's two, its profile by
# UUID, two per port (the replay table also answers the old by-name nmcli read; never sent now).
COMMANDS = [c for c in seed_replay() if c != "nmcli -t con show bond0"]
ANSIBLE_VENV = Path.home() / ".cache" / "bondbot-bench" / "ansible-venv"
BONDBOT = Path(sys.executable).parent / "bondbot"


def median_time(fn, runs: int) -> float:  # type: ignore[no-untyped-def]
    fn()  # warm-up
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def floor_once(server: SshServer, known_hosts: Path) -> None:
    import asyncssh

    async def go() -> None:
        async with asyncssh.connect(server.address, server.port, username=server.user,
                                    client_keys=[str(server.client_key)], known_hosts=str(known_hosts),
                                    config=None, agent_path=None) as conn:
            results = await asyncio.gather(*(conn.run(c) for c in COMMANDS))
            assert all(r.exit_status == 0 for r in results)

    asyncio.run(go())


def engine_once(inventory: Path, known_hosts: Path) -> None:
    from runbooks.engine import run_triage
    from ssh_exec import SshPool, load_inventory

    inv = load_inventory(inventory)

    async def go() -> None:
        async with SshPool(inv, known_hosts=known_hosts) as pool:
            result = await run_triage(pool, "test-host")
            assert result.diagnosis is not None and result.diagnosis.root_cause is not None
            assert len(result.steps) == len(COMMANDS) and all(s.status == "ok" for s in result.steps)

    asyncio.run(go())


def compile_bytecode() -> None:
    """Byte-compile bondbot's packages, as `pip install` does for a real install.

    An editable checkout run with PYTHONDONTWRITEBYTECODE set (as some shells and CI set it)
    recompiles every module from source at each start, ~30 ms that no installed bondbot pays.
    """
    import compileall

    root = Path(__file__).resolve().parent.parent
    for package in ("bondbot", "runbooks", "ssh_exec", "incidents", "bot", "lab"):
        compileall.compile_dir(str(root / package), quiet=1)


def cli_once(env: dict[str, str]) -> None:
    p = subprocess.run([str(BONDBOT), "triage", "test-host", "--json"], env=env, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr


def ensure_ansible() -> Path | None:
    playbook = ANSIBLE_VENV / "bin" / "ansible-playbook"
    if playbook.exists():
        return playbook
    print("installing ansible-core into", ANSIBLE_VENV, "(first run only)...", flush=True)
    try:
        subprocess.run([sys.executable, "-m", "venv", str(ANSIBLE_VENV)], check=True)
        subprocess.run([str(ANSIBLE_VENV / "bin" / "pip"), "install", "-q", "ansible-core"], check=True)
    except subprocess.CalledProcessError as exc:
        print("  could not install ansible-core:", exc)
        return None
    return playbook


def write_ansible(tmp: Path, server: SshServer, names: list[str], module: str) -> tuple[Path, Path]:
    """An INI inventory and a playbook running the seven commands as ``raw`` or ``command`` tasks."""
    inv = tmp / f"ansible-hosts-{module}.ini"
    # ssh looks the key up under the alias, so one known_hosts line serves every inventory name
    known = tmp / "ansible_known_hosts"
    known.write_text("bondbot-bench-host " + " ".join(server.host_public_key.split()[:2]) + "\n")
    lines = ["[triage]"] + [
        f"{n} ansible_host={server.address} ansible_port={server.port} ansible_user={server.user} "
        f"ansible_ssh_private_key_file={server.client_key}" for n in names
    ]
    lines += ["[triage:vars]",
              f"ansible_ssh_common_args='-o UserKnownHostsFile={known} -o StrictHostKeyChecking=yes "
              "-o HostKeyAlias=bondbot-bench-host'",
              "ansible_pipelining=true",
              "ansible_python_interpreter=/usr/bin/python3"]
    inv.write_text("\n".join(lines) + "\n")
    play = tmp / f"triage-{module}.yml"
    # ``command`` runs the real commands (exec mode: no bonding driver here, so they fail fast; failed_when
    # keeps the play going); ``raw`` gets the recorded outputs like bondbot does.
    extra = "      failed_when: false\n" if module == "command" else ""
    tasks = "\n".join(f"    - name: {c}\n      ansible.builtin.{module}: {c}\n      changed_when: false\n{extra}"
                      for c in COMMANDS)
    play.write_text(f"- hosts: triage\n  gather_facts: false\n  tasks:\n{tasks}\n")
    return inv, play


def ansible_time(server: SshServer, playbook_bin: Path, tmp: Path, names: list[str], module: str, forks: int,
                 runs: int = 1) -> float:
    inv, play = write_ansible(tmp, server, names, module)
    if module == "command":
        server.set_exec()
    try:
        return statistics.median(run_ansible(playbook_bin, inv, play, forks, tmp) for _ in range(runs))
    finally:
        server.set_replay(seed_replay())


def run_ansible(playbook_bin: Path, inv: Path, play: Path, forks: int, tmp: Path) -> float:
    env = dict(os.environ, ANSIBLE_HOST_KEY_CHECKING="True", ANSIBLE_NOCOLOR="1",
               ANSIBLE_LOCAL_TEMP=str(tmp / "ansible-tmp"), ANSIBLE_SSH_CONTROL_PATH_DIR=str(tmp / "cp"))
    t = time.perf_counter()
    p = subprocess.run([str(playbook_bin), "-i", str(inv), str(play), "-f", str(forks)], env=env,
                       capture_output=True, text=True)
    elapsed = time.perf_counter() - t
    if p.returncode != 0:
        print(p.stdout[-3000:], p.stderr[-2000:])
        raise SystemExit("ansible-playbook failed")
    return elapsed


def run_audit(env: dict[str, str], concurrency: int) -> tuple[float, float, dict]:  # type: ignore[type-arg]
    import json

    t = time.perf_counter()
    proc = subprocess.Popen([str(BONDBOT), "audit", "--json", "--concurrency", str(concurrency)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    out = proc.stdout.read() if proc.stdout else b""
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - t
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"bondbot audit failed ({proc.returncode})")
    return elapsed, usage.ru_maxrss / 1024, json.loads(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--audit-hosts", type=int, default=1000)
    ap.add_argument("--ansible-subset", type=int, default=100)
    ap.add_argument("--concurrency", type=int, default=50)
    ap.add_argument("--quick", action="store_true", help="skip the audit comparison with Ansible")
    ap.add_argument("--no-ansible", action="store_true")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bondbot-bench-"))
    server = start_sshd(replay=seed_replay())
    try:
        known_hosts = server.write_known_hosts(tmp / "known_hosts")
        inventory = server.write_inventory(tmp / "inventory.yaml")
        env = dict(os.environ, BONDBOT_INVENTORY=str(inventory), BONDBOT_KNOWN_HOSTS=str(known_hosts),
                   BONDBOT_DATA_DIR=str(tmp / "data"), BONDBOT_CONFIG_DIR=str(tmp / "config"))
        print(f"sshd on 127.0.0.1:{server.port}, user {server.user} (login shell /bin/sh), "
              f"{len(COMMANDS)} commands, {os.cpu_count()} CPUs\n")

        floor = median_time(lambda: floor_once(server, known_hosts), args.runs)
        engine = median_time(lambda: engine_once(inventory, known_hosts), args.runs)
        unnamed = server.write_inventory(tmp / "inventory-unnamed.yaml", bond=None)
        engine_discovered = median_time(lambda: engine_once(unnamed, known_hosts), args.runs)
        compile_bytecode()
        cli = median_time(lambda: cli_once(env), max(5, args.runs // 3))
        ansible: dict[str, float] = {}
        playbook_bin = None if args.no_ansible else ensure_ansible()
        if playbook_bin:
            for module in ("raw", "command"):
                ansible[module] = ansible_time(server, playbook_bin, tmp, ["test-host"], module, 1, runs=3)

        print(f"One host, {len(COMMANDS)} triage commands (median)")
        print(f"  {'bare asyncssh (floor)':<38}{floor:8.3f} s")
        print(f"  {'bondbot engine, in-process':<38}{engine:8.3f} s   {engine / floor:5.2f}x floor (target <= 1.5x)")
        print(f"  {'  same, no bond named (discovered)':<38}{engine_discovered:8.3f} s   "
              f"{engine_discovered / floor:5.2f}x floor (discovery adds no round trip)")
        print(f"  {'bondbot triage (whole command)':<38}{cli:8.3f} s   (target well under 0.5 s)")
        for module, t in ansible.items():
            print(f"  {'ansible-playbook, ' + module + ' tasks':<38}{t:8.3f} s   "
                  f"engine {t / engine:5.1f}x faster (target >= 15x), "
                  f"bondbot triage {t / cli:4.1f}x faster (target >= 5x)")

        if args.quick:
            return
        names = [f"node-{i:04d}" for i in range(args.audit_hosts)]
        entry = server.inventory_entry()
        import yaml

        inventory.write_text(yaml.safe_dump({"hosts": {n: entry for n in names}}, sort_keys=False))
        print(f"\nAudit of {len(names)} inventory entries (all served by the one test sshd), concurrency {args.concurrency}")
        elapsed, rss_mb, data = run_audit(env, args.concurrency)
        load = os.getloadavg()[0]
        diagnosed = sum(1 for h in data["hosts"] if h["status"] == "diagnosed")  # root cause found
        print(f"  {'bondbot audit':<34}{elapsed:8.1f} s   peak RSS {rss_mb:.0f} MB   "
              f"({diagnosed}/{len(names)} diagnosed; targets < 30 s, < 200 MB)")
        print(f"  (load average during the run: {load:.1f} on {os.cpu_count()} CPUs; other work slows every figure)")
        if playbook_bin:
            subset = names[: args.ansible_subset]
            for module in ("raw", "command"):
                a = ansible_time(server, playbook_bin, tmp, subset, module, 50)
                projected = a * len(names) / len(subset)
                print(f"  {'ansible-playbook -f 50, ' + module:<34}{a:8.1f} s on {len(subset)} entries -> "
                      f"{projected:.0f} s for {len(names)} (extrapolated linearly, not measured): "
                      f"bondbot audit {projected / elapsed:4.1f}x faster (target >= 20x)")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
