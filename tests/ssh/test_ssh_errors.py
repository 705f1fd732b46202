"""Every way a connection can fail, against a real sshd, each with the message operators see."""

from __future__ import annotations

import socket

import asyncssh
import pytest

from ssh_exec import (
    AuthenticationFailed,
    ConnectionRefused,
    ConnectTimeout,
    ExecLimits,
    HostKeyChanged,
    HostKeyUnknown,
    HostNotAllowed,
    NameNotResolved,
    SshPool,
    fingerprint,
)
from tests.ssh.fixtures import SshTestHost


async def _connect(ssh_host: SshTestHost, limits: ExecLimits | None = None) -> None:
    async with SshPool(ssh_host.inventory(), known_hosts=ssh_host.known_hosts_path, limits=limits) as pool:
        await pool.session("test-host").run("uname -r")


async def test_name_not_resolved(ssh_host: SshTestHost) -> None:
    ssh_host.rewrite_inventory(address="no-such-host.invalid")
    with pytest.raises(NameNotResolved) as err:
        await _connect(ssh_host)
    msg = str(err.value)
    assert "test-host" in msg and "'no-such-host.invalid' could not be resolved" in msg
    assert "Check 'address'" in msg


async def test_connection_refused(ssh_host: SshTestHost) -> None:
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens on it
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ssh_host.rewrite_inventory(port=port)
    with pytest.raises(ConnectionRefused) as err:
        await _connect(ssh_host)
    assert f"connection refused by 127.0.0.1:{port}" in str(err.value)
    assert "Is sshd running" in str(err.value)


async def test_connect_timeout_when_nothing_answers(ssh_host: SshTestHost) -> None:
    # A socket that listens but never speaks: the TCP handshake completes, the SSH banner never comes.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        ssh_host.rewrite_inventory(port=silent.getsockname()[1])
        with pytest.raises(ConnectTimeout) as err:
            await _connect(ssh_host, ExecLimits(connect_timeout=0.5))
    assert "no SSH answer from 127.0.0.1" in str(err.value) and "within 0.5 s" in str(err.value)


async def test_authentication_failed(ssh_host: SshTestHost) -> None:
    stranger = asyncssh.generate_private_key("ssh-ed25519")
    key = ssh_host.tmp / "stranger_key"
    stranger.write_private_key(str(key))
    ssh_host.rewrite_inventory(key=str(key))
    with pytest.raises(AuthenticationFailed) as err:
        await _connect(ssh_host)
    msg = str(err.value)
    assert f"authentication failed for user '{ssh_host.server.user}'" in msg and str(key) in msg
    assert "authorized_keys" in msg
    assert ssh_host.server.commands() == []


async def test_missing_key_file(ssh_host: SshTestHost) -> None:
    ssh_host.rewrite_inventory(key=str(ssh_host.tmp / "absent"))
    with pytest.raises(AuthenticationFailed, match="does not exist"):
        await _connect(ssh_host)


async def test_unknown_host_key_shows_fingerprint_and_trust_hint(ssh_host: SshTestHost) -> None:
    ssh_host.known_hosts_path.write_text("")
    with pytest.raises(HostKeyUnknown) as err:
        await _connect(ssh_host)
    msg = str(err.value)
    assert err.value.fingerprint == ssh_host.server.fingerprint()
    assert ssh_host.server.fingerprint() in msg
    assert "bondbot hosts trust test-host" in msg and "nothing was run" in msg
    assert ssh_host.server.commands() == []


async def test_missing_known_hosts_file_trusts_nothing(ssh_host: SshTestHost) -> None:
    ssh_host.known_hosts_path.unlink()
    with pytest.raises(HostKeyUnknown):
        await _connect(ssh_host)


async def test_changed_host_key(ssh_host: SshTestHost) -> None:
    impostor = asyncssh.generate_private_key("ssh-ed25519")
    blob = impostor.export_public_key().decode().split()[1]
    ssh_host.known_hosts_path.write_text(f"[127.0.0.1]:{ssh_host.server.port} ssh-ed25519 {blob}\n")
    with pytest.raises(HostKeyChanged) as err:
        await _connect(ssh_host)
    msg = str(err.value)
    assert "HOST KEY CHANGED" in msg and "man-in-the-middle" in msg
    assert ssh_host.server.fingerprint() in msg  # what the server presented
    assert fingerprint(impostor) in msg  # what we had recorded
    assert ssh_host.server.commands() == []


async def test_key_for_another_port_is_not_trusted(ssh_host: SshTestHost) -> None:
    algo_blob = " ".join(ssh_host.server.host_public_key.split()[:2])
    ssh_host.known_hosts_path.write_text(f"[127.0.0.1]:{ssh_host.server.port + 1} {algo_blob}\n")
    with pytest.raises(HostKeyUnknown):
        await _connect(ssh_host)


async def test_unlisted_host_refused_before_connecting(ssh_host: SshTestHost) -> None:
    async with SshPool(ssh_host.inventory(), known_hosts=ssh_host.known_hosts_path) as pool:
        with pytest.raises(HostNotAllowed) as err:
            pool.session("127.0.0.1")
    assert "not in the inventory" in str(err.value) and "allow_unlisted_hosts" in str(err.value)
    assert ssh_host.server.commands() == []


async def test_unlisted_host_allowed_when_configured(ssh_host: SshTestHost) -> None:
    inv = ssh_host.rewrite_inventory()
    inv.allow_unlisted_hosts = True
    async with SshPool(inv, known_hosts=ssh_host.known_hosts_path) as pool:
        host = pool.host("localhost")
        assert host.address == "localhost" and host.port == 22
