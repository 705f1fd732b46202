"""Injection: whatever host, bond or interface name comes in, nothing unvalidated is executed.

The test sshd logs every command string it receives. For arbitrary input (quotes, ``;``, ``$()``,
newlines, unicode, very long), either the value is rejected before anything connects, or it
passed validation and every received command splits (as a shell would) into exactly the
intended words.
"""

from __future__ import annotations

import asyncio
import re
import shlex
import threading
from collections.abc import Awaitable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runbooks.engine import load_runbook, render_command, run_triage
from runbooks.validation import InvalidValue
from ssh_exec import HostNotAllowed, SshPool, load_inventory
from tests.ssh.fixtures import seed_replay
from tests.sshd import SshServer
from tests.triage_replay import BONDING_MASTERS, NM_LIST, SYSFS_SLAVES

SAFE = re.compile(r"[A-Za-z0-9_.@-]{1,15}")
HOSTILE = ["'", '"', ";", "$(reboot)", "`id`", "\n", "\r", "\x00", "|", "&", ">", "<", " ", "\t", "*", "~",
           "é", "\u200b", "ǅ", "/", ":", "..", "-", "\\", "{{ bond }}", "%s"]

values = st.one_of(
    st.text(max_size=40),
    st.text(max_size=2000),
    st.from_regex(r"[A-Za-z0-9_.:@-]{1,17}", fullmatch=True),
    st.builds(lambda a, m, b: a + m + b, st.sampled_from(["bond0", "eth", "", "-"]), st.sampled_from(HOSTILE),
              st.sampled_from(["", "x", "bond0", "; rm -rf /", "'$(id)'"])),
)

COMMON = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@COMMON
@given(value=values)
def test_rendered_commands_split_into_the_intended_words(value: str) -> None:
    params = load_runbook().parameters
    try:
        cmd = render_command("ethtool {{ slave }}", {"slave": value}, params)
    except InvalidValue:
        assert not SAFE.fullmatch(value) or value in {".", ".."} or value.startswith("-")
        return
    assert SAFE.fullmatch(value) and not value.startswith("-")
    assert shlex.split(cmd) == ["ethtool", value]


def _setup(server: SshServer, tmp: Path) -> tuple[Path, Path]:
    known = server.write_known_hosts(tmp / "known_hosts")
    inv = server.write_inventory(tmp / "inventory.yaml")
    return known, inv


T = TypeVar("T")


class _Remote:
    """One event loop in a thread with one pool, so examples reuse one SSH connection (speed)."""

    def __init__(self, server: SshServer, tmp: Path) -> None:
        known, inv = _setup(server, tmp)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.pool = SshPool(load_inventory(inv), known_hosts=known)

    def run(self, coro: Awaitable[T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(60)  # type: ignore[arg-type]

    def close(self) -> None:
        self.run(self.pool.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture(scope="module")
def remote(sshd_server: SshServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Remote]:
    r = _Remote(sshd_server, tmp_path_factory.mktemp("injection"))
    yield r
    r.close()


DISCOVERY = [shlex.split(c) for c in (BONDING_MASTERS, SYSFS_SLAVES, NM_LIST)]


@COMMON
@given(bond=values)
def test_bond_argument_over_ssh(sshd_server: SshServer, remote: _Remote, bond: str) -> None:
    sshd_server.set_replay({})
    sshd_server.clear_log()

    async def go() -> Any:
        try:
            await run_triage(remote.pool, "test-host", bond=bond, diagnose=False)
        except InvalidValue:
            return

    remote.run(go())
    received = sshd_server.commands()
    if not received:
        assert not SAFE.fullmatch(bond) or bond.startswith("-") or bond in {".", ".."}
        return
    assert SAFE.fullmatch(bond)
    assert sorted(shlex.split(c) for c in received) == sorted(
        [["cat", f"/proc/net/bonding/{bond}"], ["ip", "-d", "-j", "link", "show", bond], *DISCOVERY])


@settings(COMMON, max_examples=40)  # each example is a whole triage over SSH
@given(slave=values)
def test_slave_names_reported_by_the_host(sshd_server: SshServer, remote: _Remote, slave: str) -> None:
    # The ports come from sysfs (and from /proc/net/bonding when that read fails): hostile in both.
    for sysfs_fails in (False, True):
        table = seed_replay()
        proc = table["cat /proc/net/bonding/bond0"][1]
        table["cat /proc/net/bonding/bond0"] = (0, proc.replace("Slave Interface: eno2", f"Slave Interface: {slave}"), "")
        table[SYSFS_SLAVES] = (2, "", "grep: denied\n") if sysfs_fails else (
            0, f"/sys/class/net/bond0/bonding/slaves:eno1 {slave}\n", "")
        sshd_server.set_replay(table)
        sshd_server.clear_log()
        remote.run(run_triage(remote.pool, "test-host", diagnose=False))
        for command in sshd_server.commands():
            words = shlex.split(command)
            if words in DISCOVERY:
                continue
            assert words[:-1] in (["cat"], ["ip", "-d", "-j", "link", "show"], ["nmcli", "-t", "con", "show", "uuid"],
                                  ["ip", "link", "show"], ["ethtool"]), command
            last = words[-1].removeprefix("/proc/net/bonding/")
            assert (re.fullmatch(r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}", last) if words[0] == "nmcli"
                    else SAFE.fullmatch(last)), command


@COMMON
@given(host=values)
def test_host_argument_is_refused_unless_listed(sshd_server: SshServer, tmp_path: Path, host: str) -> None:
    _, inv_path = _setup(sshd_server, tmp_path)
    inv = load_inventory(inv_path)
    try:
        inv.get(host)
        raise AssertionError(f"{host!r} accepted")
    except (HostNotAllowed, InvalidValue):
        pass
    inv.allow_unlisted_hosts = True
    try:
        h = inv.get(host)
    except InvalidValue:
        return
    assert re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", h.name) and h.address == host
