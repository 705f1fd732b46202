"""Commands over the pool against a real sshd: results, timeouts, caps, sudo, reuse, jump hosts."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ssh_exec import ExecLimits, SshPool
from tests.ssh.fixtures import SshTestHost, load_inventory
from tests.sshd import SshServer, sshd_available, start_sshd


def _pool(ssh_host: SshTestHost, **limits: float) -> SshPool:
    return SshPool(ssh_host.inventory(), known_hosts=ssh_host.known_hosts_path, limits=ExecLimits(**limits))  # type: ignore[arg-type]


async def test_replayed_result_keeps_status_stdout_stderr(ssh_host: SshTestHost) -> None:
    ssh_host.server.set_replay({"nmcli -t con show bond0": (10, "", "Error: bond0 - no such connection profile.\n")})
    async with _pool(ssh_host) as pool:
        r = await pool.run("test-host", "nmcli -t con show bond0")
    assert (r.exit_status, r.stdout, r.stderr) == (10, "", "Error: bond0 - no such connection profile.\n")
    assert not r.ok and r.failure_reason == "exit status 10: Error: bond0 - no such connection profile."
    assert 0 < r.duration < 5 and not r.timed_out and not r.truncated


async def test_commands_share_one_connection_and_run_concurrently(ssh_host: SshTestHost) -> None:
    ssh_host.server.set_exec()
    async with _pool(ssh_host) as pool:
        session = pool.session("test-host")
        started = time.monotonic()
        results = await session.run_many(["sleep 0.4; echo $SSH_CLIENT"] * 7)
        elapsed = time.monotonic() - started
        later = await pool.run("test-host", "echo $SSH_CLIENT")  # a follow-up reuses the connection
    client_ports = {r.stdout.split()[1] for r in results + [later]}
    assert all(r.ok for r in results)
    assert len(client_ports) == 1, client_ports
    assert elapsed < 7 * 0.4, f"7 x 0.4 s sleeps took {elapsed:.2f} s: not concurrent"


async def test_idle_connection_is_closed_then_reopened(ssh_host: SshTestHost) -> None:
    ssh_host.server.set_exec()
    async with _pool(ssh_host, idle_timeout=0.2) as pool:
        first = await pool.run("test-host", "echo $SSH_CLIENT")
        await asyncio.sleep(0.6)
        assert "test-host" not in pool._entries
        second = await pool.run("test-host", "echo $SSH_CLIENT")
    assert first.stdout.split()[1] != second.stdout.split()[1]


async def test_hanging_command_times_out(ssh_host: SshTestHost) -> None:
    ssh_host.server.set_exec()
    async with _pool(ssh_host) as pool:
        started = time.monotonic()
        r = await pool.run("test-host", "sleep 5", timeout=0.5)
        ok = await pool.run("test-host", "echo still usable")
    assert r.timed_out and r.exit_status is None and time.monotonic() - started < 10
    assert 0.5 <= r.duration < 5
    assert r.failure_reason and r.failure_reason.startswith("timed out after 0.5")
    assert ok.stdout == "still usable\n"


async def test_host_budget_bounds_everything(ssh_host: SshTestHost) -> None:
    ssh_host.server.set_exec()
    async with _pool(ssh_host, command_timeout=30) as pool:
        session = pool.session("test-host", budget=0.8)
        started = time.monotonic()
        results = await session.run_many(["sleep 5", "echo quick"])
    assert results[0].timed_out and results[1].ok
    assert time.monotonic() - started < 3


async def test_output_larger_than_cap_is_cut_and_marked(ssh_host: SshTestHost) -> None:
    ssh_host.server.set_exec()
    async with _pool(ssh_host, output_cap=100_000) as pool:
        started = time.monotonic()
        r = await pool.run("test-host", "yes 0123456789")  # endless output
    assert r.truncated and r.exit_status is None and not r.ok
    assert len(r.stdout) == 100_000 and r.stdout.startswith("0123456789\n")
    assert "output cut at 100000 bytes" in r.stderr
    assert time.monotonic() - started < 5


async def test_output_under_cap_is_whole(ssh_host: SshTestHost) -> None:
    ssh_host.server.set_exec()
    async with _pool(ssh_host, output_cap=100_000) as pool:
        r = await pool.run("test-host", "head -c 99999 /dev/zero | tr '\\0' x")
    assert r.ok and len(r.stdout) == 99_999 and not r.truncated


@pytest.mark.skipif(shutil.which("sudo") is None, reason="sudo not installed (apt-get install sudo)")
async def test_sudo_refusal_is_reported_as_privilege(ssh_host: SshTestHost) -> None:
    ssh_host.server.set_exec()
    inv = ssh_host.rewrite_inventory(sudo=True)
    assert inv.hosts["test-host"].user != "root"
    async with SshPool(inv, known_hosts=ssh_host.known_hosts_path) as pool:
        r = await pool.run("test-host", "cat /proc/net/bonding/bond0")
    assert r.command == "sudo -n cat /proc/net/bonding/bond0"
    assert ssh_host.server.commands() == ["sudo -n cat /proc/net/bonding/bond0"]
    assert r.privilege_denied, r.stderr
    assert r.failure_reason and r.failure_reason.startswith("not privileged: sudo -n refused: sudo:")


async def test_jump_host(ssh_host: SshTestHost) -> None:
    ssh_host.server.set_exec()
    server = ssh_host.server
    ssh_host.server.write_inventory(
        ssh_host.inventory_path,
        extra_hosts={"behind": server.inventory_entry(jump="test-host")},
    )
    async with SshPool(ssh_host.inventory(), known_hosts=ssh_host.known_hosts_path) as pool:
        r = await pool.run("behind", "echo through")
        assert r.stdout == "through\n"
        assert {"test-host", "behind"} <= set(pool._entries)


@contextlib.contextmanager
def _sshd_with_max_sessions(tmp_path: Path, max_sessions: int,
                            limits: ExecLimits | None = None) -> Iterator[tuple[SshServer, SshPool]]:
    """A test sshd of its own with ``max_sessions`` (the shared one allows 32), and a pool on it."""
    if sshd_available():
        pytest.skip(sshd_available())
    server = start_sshd(max_sessions=max_sessions)
    try:
        server.set_exec()
        inventory = load_inventory(server.write_inventory(tmp_path / "inventory.yaml"))
        yield server, SshPool(inventory, known_hosts=server.write_known_hosts(tmp_path / "known_hosts"),
                              limits=limits)
    finally:
        server.stop()


async def test_a_host_with_fewer_sessions_than_we_open_still_runs_every_command(tmp_path: Path) -> None:
    """A hardened sshd (MaxSessions 2) refuses our 3rd..8th concurrent channel with "open failed";
    nothing ran for those, so each is retried when a slot frees: all 8 commands run, once each.
    (Seen in the lab too: under load sshd frees a session a moment after the client saw it close.)"""
    with _sshd_with_max_sessions(tmp_path, 2) as (server, pool):
        async with pool:
            results = await pool.session("test-host").run_many([f"sleep 0.2; echo {n}" for n in range(8)])
        assert [r.stdout.strip() for r in results] == [str(n) for n in range(8)]
        assert all(r.ok and not r.open_refused for r in results), [r.stderr for r in results]
        assert sorted(server.commands()) == sorted(f"sleep 0.2; echo {n}" for n in range(8))  # each ran once


async def test_a_refusal_that_lasts_the_whole_budget_says_why(tmp_path: Path) -> None:
    with _sshd_with_max_sessions(tmp_path, 1, ExecLimits(host_timeout=2.0)) as (server, pool):
        async with pool:
            session = pool.session("test-host")
            hold, refused = await asyncio.gather(session.run("sleep 5"), session.run("echo never"))
        assert refused.open_refused and refused.exit_status is None
        assert "the host refused a new SSH session" in refused.stderr and "MaxSessions" in refused.stderr
        assert "echo never" not in server.commands()
