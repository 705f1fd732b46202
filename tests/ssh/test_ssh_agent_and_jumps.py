"""Keys, ssh-agent and ProxyJump chains against the real loopback sshd and a real ssh-agent.

The agent is OpenSSH's own ``ssh-agent``, started by the test on a socket in tmp_path; the
passphrase key is made by ``ssh-keygen -N`` and loaded with ``ssh-add`` (passphrase through
SSH_ASKPASS), exactly as a user would.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ssh_exec import AuthenticationFailed, HostKeyUnknown, SshPool
from tests.ssh.fixtures import SshTestHost, load_inventory

needs_agent = pytest.mark.skipif(shutil.which("ssh-agent") is None or shutil.which("ssh-add") is None,
                                 reason="openssh-client (ssh-agent, ssh-add) not installed")


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[Path]:
    """A real ssh-agent on a socket of its own; stopped (by its pid) at the end."""
    sock = tmp_path / "agent.sock"
    proc = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not sock.exists():
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            pytest.fail("ssh-agent did not start")
        time.sleep(0.02)
    try:
        yield sock
    finally:
        proc.terminate()
        proc.wait(5)


def _ssh_add(sock: Path, key: Path, passphrase: str, tmp: Path) -> None:
    askpass = tmp / "askpass.sh"
    askpass.write_text(f"#!/bin/sh\necho '{passphrase}'\n")
    askpass.chmod(0o700)
    env = dict(os.environ, SSH_AUTH_SOCK=str(sock), SSH_ASKPASS=str(askpass), SSH_ASKPASS_REQUIRE="force",
               DISPLAY=":0")
    out = subprocess.run(["ssh-add", str(key)], env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                         timeout=20)
    assert out.returncode == 0, out.stderr


@pytest.fixture
def passphrase_key(ssh_host: SshTestHost) -> Iterator[Path]:
    """A key with a passphrase (``ssh-keygen -N``), authorized on the test sshd for this test."""
    key = ssh_host.tmp / "id_secret"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "s3cret pass", "-C", "secret", "-f", str(key)],
                   check=True, capture_output=True)
    authorized = ssh_host.server.workdir / "authorized_keys" / ssh_host.server.user
    before = authorized.read_text()
    authorized.write_text(before + (key.with_suffix(".pub")).read_text())
    try:
        yield key
    finally:
        authorized.write_text(before)


async def _run(ssh_host: SshTestHost, command: str = "echo ok", host: str = "test-host") -> str:
    async with SshPool(load_inventory(ssh_host.inventory_path), known_hosts=ssh_host.known_hosts_path) as pool:
        r = await pool.run(host, command)
    assert r.ok, r.stderr
    return r.stdout


@needs_agent
async def test_passphrase_key_works_through_a_real_agent(ssh_host: SshTestHost, agent: Path, passphrase_key: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    ssh_host.server.set_exec()
    ssh_host.rewrite_inventory(key=str(passphrase_key))
    _ssh_add(agent, passphrase_key, "s3cret pass", ssh_host.tmp)
    monkeypatch.setenv("SSH_AUTH_SOCK", str(agent))
    assert await _run(ssh_host, "echo through-agent") == "through-agent\n"


@needs_agent
async def test_passphrase_key_without_agent_names_the_key(ssh_host: SshTestHost, passphrase_key: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    ssh_host.rewrite_inventory(key=str(passphrase_key))
    with pytest.raises(AuthenticationFailed) as err:
        await _run(ssh_host)
    msg = str(err.value)
    assert str(passphrase_key) in msg and "passphrase" in msg and f"ssh-add {passphrase_key}" in msg
    assert "SSH_AUTH_SOCK is not set" in msg
    assert ssh_host.server.commands() == []


@needs_agent
async def test_passphrase_key_not_in_the_agent_says_ssh_add(ssh_host: SshTestHost, agent: Path, passphrase_key: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSH_AUTH_SOCK", str(agent))  # an agent, but it does not hold the key
    ssh_host.rewrite_inventory(key=str(passphrase_key))
    with pytest.raises(AuthenticationFailed) as err:
        await _run(ssh_host)
    assert f"has a passphrase and the agent does not hold it: add it with ssh-add {passphrase_key}" in str(err.value)


@needs_agent
async def test_agent_is_used_alongside_a_named_key_and_never_forwarded(
        ssh_host: SshTestHost, agent: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncssh

    ssh_host.server.set_exec()
    stranger = ssh_host.tmp / "stranger"
    asyncssh.generate_private_key("ssh-ed25519").write_private_key(str(stranger))
    ssh_host.rewrite_inventory(key=str(stranger))  # the named key is not authorized...
    _ssh_add(agent, ssh_host.server.client_key, "", ssh_host.tmp)  # ...the agent's key is
    monkeypatch.setenv("SSH_AUTH_SOCK", str(agent))
    # sshd allows agent forwarding by default: SSH_AUTH_SOCK would be set there if bondbot asked for it
    assert await _run(ssh_host, 'echo "agent=${SSH_AUTH_SOCK:-none}"') == "agent=none\n"


def _chain_config(ssh_host: SshTestHost) -> Path:
    s = ssh_host.server
    config = ssh_host.tmp / "ssh_config"
    config.write_text(
        f"Host hop1\n  HostName {s.address}\n  Port {s.port}\n"
        f"Host target\n  HostName {s.address}\n  Port {s.port}\n"
        f"  ProxyJump hop1,{s.user}@{s.address}:{s.port}\n"
        f"Host *\n  User {s.user}\n  IdentityFile {s.client_key}  # every hop uses the test key\n"
    )
    return config


async def test_proxyjump_chain_each_hop_its_own_connection(ssh_host: SshTestHost) -> None:
    ssh_host.server.set_exec()
    inv = load_inventory(_chain_config(ssh_host))
    s = ssh_host.server
    async with SshPool(inv, known_hosts=ssh_host.known_hosts_path) as pool:
        r = await pool.run("target", "echo $SSH_CLIENT")
        assert r.ok, r.stderr
        hop2 = f"{s.user}@{s.address}:{s.port} via hop1"
        assert set(pool._entries) == {"hop1", hop2, "target"}
    # three SSH connections, three key exchanges; only the target ran a command
    assert ssh_host.server.commands() == ["echo $SSH_CLIENT"]


async def test_proxyjump_hop_host_key_checked_strictly(ssh_host: SshTestHost) -> None:
    inv = load_inventory(_chain_config(ssh_host))
    ssh_host.known_hosts_path.write_text("")  # nothing trusted: the first hop must stop it
    async with SshPool(inv, known_hosts=ssh_host.known_hosts_path) as pool:
        with pytest.raises(HostKeyUnknown) as err:
            await pool.run("target", "echo never")
    assert err.value.host == "hop1" and "bondbot hosts trust hop1" in str(err.value)
    assert ssh_host.server.commands() == []
