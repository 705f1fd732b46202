"""One SSH connection per host, commands as concurrent channels, kept briefly for follow-ups.

Triage sends seven short commands to one host: opening seven connections would cost seven key
exchanges, so each host gets one connection and every command its own channel on it, all in
flight together. A connection stays open ``idle_timeout`` seconds after its last command so that
the follow-up (the fix, its verification, the failover test) starts without a new handshake.

Host keys are checked strictly against bondbot's own known_hosts file; an unknown or changed key
fails the connection with the fingerprint seen and the command that records it after review.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import asyncssh

from ssh_exec import known_hosts as kh
from ssh_exec.errors import (
    AuthenticationFailed,
    ConnectError,
    ConnectionRefused,
    ConnectTimeout,
    HostKeyChanged,
    HostKeyUnknown,
    NameNotResolved,
    SshExecError,
)
from ssh_exec.inventory import Host, Inventory
from ssh_exec.result import CommandResult, ExecLimits

__all__ = ["SshPool", "HostSession"]

_MAX_CHANNELS = 8  # OpenSSH's MaxSessions defaults to 10 channels per connection


class _Client(asyncssh.SSHClient):
    """Remembers the host key the server presented when it was not trusted (for the message)."""

    def __init__(self) -> None:
        self.presented_key: asyncssh.SSHKey | None = None
        self.encrypted_keys: list[Path] = []  # named keys that need a passphrase (used via the agent)

    def validate_host_public_key(self, host: str, addr: str, port: int, key: asyncssh.SSHKey) -> bool:
        self.presented_key = key
        return False  # never accept a key that is not already in known_hosts


class _Collector(asyncssh.SSHClientSession[bytes]):
    """Collects a channel's output up to a cap; past the cap it closes the channel."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.out = bytearray()
        self.err = bytearray()
        self.truncated = False
        self.exit_status: int | None = None
        self.error: str | None = None
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.chan: asyncssh.SSHClientChannel[bytes] | None = None

    def connection_made(self, chan: asyncssh.SSHClientChannel[bytes]) -> None:
        self.chan = chan

    def data_received(self, data: bytes, datatype: asyncssh.DataType) -> None:
        buf = self.err if datatype == asyncssh.EXTENDED_DATA_STDERR else self.out
        room = self.cap - len(buf)
        if len(data) > room:
            buf += data[: max(room, 0)]
            if not self.truncated:
                self.truncated = True
                if self.chan is not None:
                    self.chan.close()
        else:
            buf += data

    def exit_status_received(self, status: int) -> None:
        self.exit_status = status

    def exit_signal_received(self, signal: str, core_dumped: bool, msg: str, lang: str) -> None:
        self.error = f"killed by signal {signal}"

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None and not self.truncated:
            self.error = f"connection lost: {exc}"
        if not self.done.done():
            self.done.set_result(None)


@dataclass
class _Entry:
    task: asyncio.Task[asyncssh.SSHClientConnection]
    channels: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(_MAX_CHANNELS))
    users: int = 0
    pinned: bool = False  # a jump host in use by other connections
    idle: asyncio.TimerHandle | None = None


class SshPool:
    """Connections to inventory hosts. Use as ``async with SshPool(inventory, known_hosts=path) as pool:``."""

    def __init__(
        self,
        inventory: Inventory | None = None,
        *,
        known_hosts: Path,
        limits: ExecLimits | None = None,
    ) -> None:
        """``known_hosts``: bondbot's own known_hosts file (the entry point's setting; required, so
        no caller trusts a default it did not choose)."""
        self.inventory = inventory or Inventory()
        self.known_hosts_path = known_hosts
        self.limits = limits or ExecLimits()
        self._entries: dict[str, _Entry] = {}
        self._keys: dict[Path, tuple[int, asyncssh.SSHKey | None]] = {}

    async def __aenter__(self) -> SshPool:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def host(self, host: Host | str) -> Host:
        return host if isinstance(host, Host) else self.inventory.get(host)

    def session(self, host: Host | str, *, budget: float | None = None) -> HostSession:
        """Run commands on ``host`` within ``budget`` seconds in all (default: ``host_timeout``)."""
        h = self.host(host)
        return HostSession(self, h, time.monotonic() + (budget if budget is not None else self.limits.host_timeout))

    async def run(self, host: Host | str, command: str, *, timeout: float | None = None) -> CommandResult:
        return await self.session(host).run(command, timeout=timeout)

    async def close_host(self, host: Host | str) -> None:
        """Close ``host``'s connection now (audit does this to keep 1,000 hosts in little memory)."""
        name = host.name if isinstance(host, Host) else host
        entry = self._entries.pop(name, None)
        if entry is not None:
            await self._close_entry(entry)

    async def close(self) -> None:
        entries, self._entries = list(self._entries.values()), {}
        for entry in entries:
            await self._close_entry(entry)

    async def fetch_host_key(self, host: Host | str) -> asyncssh.SSHKey:
        """The key ``host`` presents, without trusting it (for ``bondbot hosts trust``)."""
        h = self.host(host)
        tunnel: object = ()
        if h.jump:
            tunnel = await self._acquire(self.inventory.jump_host(h.jump), time.monotonic() + self.limits.connect_timeout,
                                         pin=True)
        try:
            key = await asyncio.wait_for(
                asyncssh.get_server_host_key(h.address, h.port, tunnel=tunnel, config=None),  # type: ignore[arg-type]
                self.limits.connect_timeout,
            )
        except (TimeoutError, OSError, asyncssh.Error) as exc:
            raise self._map_error(exc, h, None) from None
        if key is None:
            raise ConnectError(f"{h.name}: the server at {h.address}:{h.port} presented no host key", host=h.name)
        return key

    # --- internals -------------------------------------------------------------------------------

    async def _close_entry(self, entry: _Entry) -> None:
        if entry.idle is not None:
            entry.idle.cancel()
        if not entry.task.done():
            entry.task.cancel()
            try:
                await entry.task
            except BaseException:
                pass
            return
        if entry.task.cancelled() or entry.task.exception() is not None:
            return
        conn = entry.task.result()
        conn.close()
        try:
            await asyncio.wait_for(conn.wait_closed(), 2.0)
        except (TimeoutError, OSError, asyncssh.Error):
            pass

    async def _acquire(self, host: Host, deadline: float, *, pin: bool = False) -> asyncssh.SSHClientConnection:
        entry = self._entries.get(host.name)
        if entry is not None and entry.task.done():
            failed = entry.task.cancelled() or entry.task.exception() is not None
            if failed or entry.task.result().is_closed():
                self._entries.pop(host.name, None)
                entry = None
        if entry is None:
            entry = _Entry(asyncio.ensure_future(self._connect(host, deadline)))
            self._entries[host.name] = entry
        entry.pinned |= pin
        if entry.idle is not None:
            entry.idle.cancel()
            entry.idle = None
        try:
            return await asyncio.shield(entry.task)
        except BaseException:
            if self._entries.get(host.name) is entry and entry.task.done():
                self._entries.pop(host.name, None)
            raise

    def _release(self, host: Host) -> None:
        entry = self._entries.get(host.name)
        if entry is None or entry.users > 0 or entry.pinned:
            return
        loop = asyncio.get_running_loop()
        entry.idle = loop.call_later(self.limits.idle_timeout, self._expire, host.name, entry)

    def _expire(self, name: str, entry: _Entry) -> None:
        if self._entries.get(name) is entry and entry.users == 0:
            del self._entries[name]
            asyncio.ensure_future(self._close_entry(entry))

    async def _connect(self, host: Host, deadline: float) -> asyncssh.SSHClientConnection:
        timeout = max(0.0, min(self.limits.connect_timeout, deadline - time.monotonic()))
        tunnel: object = ()
        if host.jump:
            # every hop is a connection of its own, its host key checked against bondbot's known_hosts
            tunnel = await self._acquire(self.inventory.jump_host(host.jump), deadline, pin=True)
        known = kh.load_known_hosts(self.known_hosts_path)
        client = _Client()
        options = self._auth_options(host, client)
        try:
            conn, _ = await asyncio.wait_for(
                asyncssh.create_connection(
                    lambda: client,
                    host.address,
                    host.port,
                    username=host.user,
                    known_hosts=known,
                    config=None,
                    tunnel=tunnel,
                    password_auth=False,
                    kbdint_auth=False,
                    agent_forwarding=False,
                    keepalive_interval=self.limits.keepalive_interval,
                    **options,
                ),
                timeout,
            )
        except (TimeoutError, OSError, asyncssh.Error, ValueError) as exc:
            raise self._map_error(exc, host, client, timeout) from None
        return conn

    def _load_key(self, path: Path) -> asyncssh.SSHKey | None:
        """The private key at ``path``, or None when it needs a passphrase (cached by mtime)."""
        st = path.stat()
        cached = self._keys.get(path)
        if cached is not None and cached[0] == st.st_mtime_ns:
            return cached[1]
        try:
            key: asyncssh.SSHKey | None = asyncssh.read_private_key(str(path))
        except asyncssh.KeyImportError as exc:
            if "passphrase" not in str(exc).lower():
                raise
            key = None
        self._keys[path] = (st.st_mtime_ns, key)
        return key

    def _auth_options(self, host: Host, client: _Client) -> dict[str, object]:
        """Keys named for ``host`` (in order) plus ssh-agent's when SSH_AUTH_SOCK is set.

        Like ssh: missing key files are passed over; keys with a passphrase are used through the
        agent (which must hold them: bondbot never asks for a passphrase). Agent forwarding is off.
        """
        agent = os.environ.get("SSH_AUTH_SOCK") or None
        if not host.keys:
            return {}  # asyncssh's defaults: ~/.ssh/id_* without a passphrase, and the agent
        present = [k for k in host.keys if k.is_file()]
        if not present and agent is None:
            named = ", ".join(str(k) for k in host.keys)
            raise AuthenticationFailed(
                f"{host.name}: the private key {named} named in the inventory does not exist or is not a "
                "file, and no ssh-agent is available (SSH_AUTH_SOCK is not set). Fix 'key:' for this host.",
                host=host.name,
            )
        loaded: list[asyncssh.SSHKey] = []
        for k in present:
            try:
                key = self._load_key(k)
            except (OSError, asyncssh.KeyImportError) as exc:
                raise AuthenticationFailed(f"{host.name}: cannot read the private key {k}: {exc}.", host=host.name) from None
            if key is None:
                client.encrypted_keys.append(k)
            else:
                loaded.append(key)
        if not loaded and client.encrypted_keys and agent is None:
            named = ", ".join(str(k) for k in client.encrypted_keys)
            raise AuthenticationFailed(
                f"{host.name}: the private key {named} is protected by a passphrase and no ssh-agent is "
                "available (SSH_AUTH_SOCK is not set); bondbot never asks for passphrases. Start an agent and "
                f"add the key (eval \"$(ssh-agent)\"; ssh-add {client.encrypted_keys[0]}), then run bondbot "
                "where SSH_AUTH_SOCK is set.",
                host=host.name,
            )
        return {"client_keys": loaded, "agent_path": agent}

    def _map_error(self, exc: BaseException, host: Host, client: _Client | None, timeout: float = 0.0) -> SshExecError:
        where = f"{host.address}:{host.port}"
        name = host.name
        if isinstance(exc, socket.gaierror):
            return NameNotResolved(
                f"{name}: the name {host.address!r} could not be resolved ({exc.strerror}). Check 'address' "
                f"for this host in the inventory ({self.inventory.source or 'inventory'}) and your DNS.",
                host=name,
            )
        if isinstance(exc, ConnectionRefusedError):
            return ConnectionRefused(
                f"{name}: connection refused by {where}. Is sshd running there and listening on port "
                f"{host.port}? Check 'port' for this host in the inventory.",
                host=name,
            )
        if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
            return ConnectTimeout(
                f"{name}: no SSH answer from {where} within {timeout:.1f} s. Check that the host is up and "
                f"that firewalls let TCP port {host.port} through.",
                host=name,
            )
        if isinstance(exc, asyncssh.PermissionDenied):
            agent = " and the ssh-agent's keys" if os.environ.get("SSH_AUTH_SOCK") else ""
            if host.keys:
                key = ("the key " if len(host.keys) == 1 else "the keys ") + ", ".join(str(k) for k in host.keys) + agent
            else:
                key = "the default keys (~/.ssh/id_*" + (", ssh-agent)" if agent else ")")
            hint = ""
            if client is not None and client.encrypted_keys:
                hint = (f" {', '.join(str(k) for k in client.encrypted_keys)} has a passphrase and the agent does "
                        f"not hold it: add it with ssh-add {client.encrypted_keys[0]}.")
            return AuthenticationFailed(
                f"{name}: authentication failed for user {host.user!r} at {where} with {key}.{hint} Check 'user' "
                f"and 'key' in the inventory and that the public key is in ~{host.user}/.ssh/authorized_keys "
                "on the host.",
                host=name,
            )
        if isinstance(exc, (asyncssh.HostKeyNotVerifiable, asyncssh.KeyExchangeFailed)) and client is not None:
            return self._host_key_error(host, client, exc)
        if isinstance(exc, OSError):
            return ConnectError(f"{name}: could not connect to {where}: {exc.strerror or exc}.", host=name)
        return ConnectError(f"{name}: SSH connection to {where} failed: {exc}.", host=name)

    def _host_key_error(self, host: Host, client: _Client, exc: BaseException) -> SshExecError:
        name = host.name
        trusted = kh.trusted_keys(host, self.known_hosts_path)
        seen = client.presented_key
        seen_fp = kh.fingerprint(seen) if seen is not None else None
        seen_desc = f"{seen.get_algorithm()} key {seen_fp}" if seen is not None else "a key of another type"
        if trusted:
            old = ", ".join(f"{k.get_algorithm()} {kh.fingerprint(k)}" for k in trusted)
            return HostKeyChanged(
                f"{name}: HOST KEY CHANGED. {host.known_hosts_pattern} presented {seen_desc}, but bondbot's "
                f"known_hosts ({self.known_hosts_path}) has {old}. This may be a man-in-the-middle attack; "
                f"nothing was run. If the host was reinstalled and you have verified the new key out of band, "
                f"run `bondbot hosts trust {shlex.quote(name)}` to replace it.",
                host=name,
                fingerprint=seen_fp,
            )
        if seen is None:
            return ConnectError(f"{name}: SSH key exchange with {host.address}:{host.port} failed: {exc}.", host=name)
        return HostKeyUnknown(
            f"{name}: host key unknown. {host.known_hosts_pattern} presented {seen_desc}, which is not in "
            f"bondbot's known_hosts ({self.known_hosts_path}); nothing was run. Check the fingerprint on "
            f"the host (ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub), then run `bondbot hosts trust {shlex.quote(name)}`.",
            host=name,
            fingerprint=seen_fp,
        )


class HostSession:
    """Commands on one host under one time budget; created by ``SshPool.session``."""

    def __init__(self, pool: SshPool, host: Host, deadline: float) -> None:
        self.pool = pool
        self.host = host
        self.deadline = deadline

    def remaining(self) -> float:
        return max(0.0, self.deadline - time.monotonic())

    async def connect(self) -> None:
        """Open (or reuse) the connection now; raises the ``SshExecError`` that says why not."""
        await self.pool._acquire(self.host, self.deadline)
        self.pool._release(self.host)

    async def run(self, command: str, *, timeout: float | None = None) -> CommandResult:
        """Run one command; command failures are results, connection failures are exceptions."""
        pool = self.pool
        conn = await pool._acquire(self.host, self.deadline)
        entry = pool._entries[self.host.name]
        entry.users += 1
        try:
            delay = 0.05
            while True:
                async with entry.channels:
                    result = await self._exec(conn, command, timeout)
                # sshd refuses a session past its MaxSessions ("open failed"), and it frees a slot
                # a moment after the client saw that channel close: under load, or on a host set
                # below our 8, a refusal is transient while other channels run. Wait and retry
                # (within the budget); nothing ran on the host for a refused channel.
                if not result.open_refused or self.remaining() <= delay:
                    return result
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
        finally:
            entry.users -= 1
            pool._release(self.host)

    async def run_many(self, commands: Sequence[str], *, timeout: float | None = None) -> list[CommandResult]:
        """Run ``commands`` concurrently on the one connection; results in the same order."""
        return list(await asyncio.gather(*(self.run(c, timeout=timeout) for c in commands)))

    async def _exec(self, conn: asyncssh.SSHClientConnection, command: str, timeout: float | None) -> CommandResult:
        limits = self.pool.limits
        budget = min(timeout if timeout is not None else limits.command_timeout, self.remaining())
        sudo = self.host.sudo
        wire = f"sudo -n {command}" if sudo else command
        start = time.monotonic()
        collector: _Collector | None = None
        chan: asyncssh.SSHClientChannel[bytes] | None = None
        timed_out = False
        refused = False
        error: str | None = None
        try:
            async with asyncio.timeout(budget):
                chan, session = await conn.create_session(lambda: _Collector(limits.output_cap), wire, encoding=None)
                collector = session  # type: ignore[assignment]
                await asyncio.shield(collector.done)  # type: ignore[union-attr]
        except TimeoutError:
            timed_out = True
            if chan is not None:
                chan.close()
        except asyncssh.ChannelOpenError as exc:
            refused = True
            error = (f"could not run the command: the host refused a new SSH session ({exc.reason or exc}); "
                     f"its sshd MaxSessions may be below the {_MAX_CHANNELS} sessions bondbot opens at once")
        except (asyncssh.Error, OSError) as exc:
            error = f"could not run the command: {exc}"
        duration = time.monotonic() - start
        out = bytes(collector.out) if collector else b""
        err = bytes(collector.err) if collector else b""
        stderr = err.decode("utf-8", "replace")
        error = error or (collector.error if collector else None)
        if error:
            stderr = (stderr + ("\n" if stderr and not stderr.endswith("\n") else "") + f"[bondbot] {error}\n")
        if timed_out:
            stderr += f"[bondbot] no answer within {budget:.1f} s; the channel was closed\n"
        truncated = bool(collector and collector.truncated)
        if truncated:
            stderr += f"[bondbot] output cut at {limits.output_cap} bytes; the channel was closed\n"
        return CommandResult(
            command=wire,
            exit_status=None if (timed_out or truncated or collector is None) else collector.exit_status,
            stdout=out.decode("utf-8", "replace"),
            stderr=stderr,
            duration=duration,
            truncated=truncated,
            timed_out=timed_out,
            sudo=sudo,
            open_refused=refused,
        )
