"""A real OpenSSH ``sshd`` on loopback for tests and benchmarks, answering from recorded outputs.

This machine has no bonding driver, so the test host cannot run the triage for real. Instead
sshd's ``ForceCommand`` points at a small /bin/sh script that looks the received command up in a
*replay* table (exact match, the format of ``tests/fixtures/README.md``) and prints the recorded
stdout/stderr with the recorded exit status. Everything else is real: the TCP connection, the key
exchange, host-key checking, public-key authentication, channels and timeouts. In ``exec`` mode the
script runs the command for real (``sh -c``, bounded by ``timeout 60``) for hang, large-output and
sudo tests. Every command received is logged, in either mode, and ``commands()`` returns them.

Usage::

    from tests.sshd import start_sshd, replay_from_commands_yaml

    with start_sshd() as server:                       # replay mode, nothing recorded yet
        server.set_replay({"uname -r": (0, "6.1.0\n", "")})
        server.write_known_hosts(tmp / "known_hosts")  # trust its host key
        inv = server.write_inventory(tmp / "inventory.yaml", name="test-host", bond="bond0")
        ...
        assert server.commands() == ["uname -r"]

sshd needs root here (privilege separation). Commands run as ``bondbot-test`` (created on first use,
login shell /bin/sh so that no shell start-up files slow sessions down) unless ``user="root"``.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "TEST_USER",
    "SshServer",
    "Replay",
    "start_sshd",
    "ensure_test_user",
    "replay_from_commands_yaml",
    "sshd_available",
]

TEST_USER = "bondbot-test"
SSHD = shutil.which("sshd") or "/usr/sbin/sshd"

#: command -> (exit status, stdout, stderr)
Replay = Mapping[str, tuple[int, str, str]]

_FORCE_COMMAND = r"""#!/bin/sh
# bondbot test sshd: log the command, then replay its recorded output or run it (exec mode).
# Only shell builtins on the replay path: a thousand-host audit sends 7,000 commands.
d='@WORKDIR@'
cmd=$SSH_ORIGINAL_COMMAND
printf '%s\0' "$cmd" >> "$d/log/commands"
if [ -f "$d/mode-exec" ]; then
  exec timeout 60 /bin/sh -c "$cmd"
fi
. "$d/replay/table.sh"
printf 'replay: no recorded output for this command\n' >&2
exit 127
"""


def sshd_available() -> str | None:
    """None when a test sshd can start here, else the reason it cannot (for ``pytest.skip``)."""
    if not os.path.exists(SSHD):
        return f"OpenSSH server not installed ({SSHD} missing): apt-get install openssh-server"
    if os.geteuid() != 0:
        return "the test sshd needs root (privilege separation, a second user)"
    return None


def ensure_test_user(name: str = TEST_USER) -> str:
    """Create the unprivileged test user once: shell /bin/sh, no password, not locked."""
    try:
        pwd.getpwnam(name)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--create-home", "--home-dir", f"/var/lib/{name}", "--shell", "/bin/sh", name],
            check=True,
            capture_output=True,
        )
    # '*' = no password login possible, but not "locked" ('!'), which sshd would refuse outright.
    subprocess.run(["usermod", "-p", "*", name], check=True, capture_output=True)
    return name


def _sh_literal(text: str) -> str:
    """``text`` as one single-quoted shell word (also an exact-match ``case`` pattern)."""
    return "'" + text.replace("'", "'\\''") + "'"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _keygen(path: Path, comment: str) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
        capture_output=True,
    )


def replay_from_commands_yaml(path: Path) -> dict[str, tuple[int, str, str]]:
    """A replay table from a ``commands.yaml`` (lab recordings) or a folder holding one."""
    p = path / "commands.yaml" if path.is_dir() else path
    entries = yaml.safe_load(p.read_text(encoding="utf-8")) or []
    return {e["command"]: (int(e["exit_status"]), e.get("stdout") or "", e.get("stderr") or "") for e in entries}


@dataclass
class SshServer:
    """A running test sshd. Stop it with ``stop()`` or use it as a context manager."""

    port: int
    user: str
    workdir: Path
    client_key: Path
    host_public_key: str  # "ssh-ed25519 AAAA..."
    process: subprocess.Popen[bytes]
    address: str = "127.0.0.1"
    _replays: int = field(default=0, repr=False)

    # --- trust and inventory -------------------------------------------------------------------

    def known_hosts_line(self) -> str:
        algo, blob = self.host_public_key.split()[:2]
        return f"[{self.address}]:{self.port} {algo} {blob}"

    def fingerprint(self) -> str:
        out = subprocess.run(
            ["ssh-keygen", "-l", "-E", "sha256", "-f", str(self.workdir / "ssh_host_ed25519_key.pub")],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        return out.split()[1]

    def write_known_hosts(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.known_hosts_line() + "\n", encoding="utf-8")
        return path

    def inventory_entry(self, **overrides: Any) -> dict[str, Any]:
        """This server as a host of bondbot's YAML inventory."""
        entry: dict[str, Any] = {
            "address": self.address,
            "port": self.port,
            "user": self.user,
            "key": str(self.client_key),
            "sudo": False,
            "bond": "bond0",
            "groups": ["test"],
        }
        entry.update(overrides)
        return entry

    def write_inventory(self, path: Path, name: str = "test-host", *, extra_hosts: Mapping[str, Any] | None = None,
                        allow_unlisted_hosts: bool = False, **overrides: Any) -> Path:
        hosts = {name: self.inventory_entry(**overrides)}
        hosts.update(extra_hosts or {})
        data = {"hosts": hosts, "settings": {"allow_unlisted_hosts": allow_unlisted_hosts}}
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        return path

    # --- what the host answers -----------------------------------------------------------------

    def set_replay(self, table: Replay, *, delays: Mapping[str, float] | None = None, delay: float = 0.0) -> None:
        """Answer from ``table`` from now on (replaces the previous table atomically).

        ``delays`` makes the host slow: it waits that many seconds before answering a command
        (e.g. to stop or kill the bot in the middle of a triage or a change). ``delay`` makes every
        command (known or not) wait that many seconds first, like a slow or distant host.
        """
        if not 0 <= delay <= 60:
            raise ValueError(f"delay must be 0-60 seconds, not {delay!r}")
        self._replays += 1
        target = self.workdir / f"replay.{self._replays}"
        target.mkdir(mode=0o755)
        lines = [f"sleep {float(delay):.3f}"] if delay else []
        lines.append('case "$cmd" in')
        for command, (status, stdout, stderr) in table.items():
            lines.append(f"{_sh_literal(command)})")
            if delays and delays.get(command):
                lines.append(f"  sleep {float(delays[command]):.3f}")
            lines.append(f"  printf '%s' {_sh_literal(stdout)}")
            lines.append(f"  printf '%s' {_sh_literal(stderr)} >&2")
            lines.append(f"  exit {int(status)};;")
        lines.append("esac")
        (target / "table.sh").write_text("\n".join(lines) + "\n", encoding="utf-8")
        (target / "table.sh").chmod(0o644)
        link = self.workdir / "replay.new"
        link.unlink(missing_ok=True)
        link.symlink_to(target.name)
        link.replace(self.workdir / "replay")
        (self.workdir / "mode-exec").unlink(missing_ok=True)

    def set_exec(self) -> None:
        """Run received commands for real (as ``user``, through ``sh -c``) from now on."""
        (self.workdir / "mode-exec").touch(mode=0o644)

    def commands(self) -> list[str]:
        """Every command string received so far, exactly as sshd passed it on."""
        log = self.workdir / "log" / "commands"
        if not log.exists():
            return []
        return [c.decode("utf-8", "replace") for c in log.read_bytes().split(b"\0")[:-1]]

    def clear_log(self) -> None:
        (self.workdir / "log" / "commands").write_text("")

    # --- life cycle ----------------------------------------------------------------------------

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> SshServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _wait_ready(port: int, proc: subprocess.Popen[bytes], log: Path, deadline: float) -> None:
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"sshd exited with {proc.returncode}: {log.read_text(errors='replace')}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                if s.recv(64).startswith(b"SSH-"):
                    return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"sshd did not answer on port {port}")


def start_sshd(*, user: str | None = None, replay: Replay | None = None, exec_mode: bool = False,
               extra_config: str = "", max_sessions: int = 32) -> SshServer:
    """Start sshd on 127.0.0.1 on a free port; returns once it answers. Caller must ``stop()``.
    ``max_sessions``: sshd's MaxSessions (channels per connection; OpenSSH's default is 10)."""
    reason = sshd_available()
    if reason:
        raise RuntimeError(reason)
    user = user or ensure_test_user()
    pw = pwd.getpwnam(user)
    workdir = Path(tempfile.mkdtemp(prefix="bondbot-sshd-"))
    workdir.chmod(0o755)
    (workdir / "log").mkdir(mode=0o755)
    (workdir / "log" / "commands").touch(mode=0o666)
    os.chown(workdir / "log" / "commands", pw.pw_uid, pw.pw_gid)
    _keygen(workdir / "ssh_host_ed25519_key", "bondbot-test-host")
    _keygen(workdir / "id_ed25519", "bondbot-test-client")
    (workdir / "authorized_keys").mkdir(mode=0o755)
    shutil.copy(workdir / "id_ed25519.pub", workdir / "authorized_keys" / user)
    script = workdir / "force-command"
    script.write_text(_FORCE_COMMAND.replace("@WORKDIR@", str(workdir)), encoding="utf-8")
    script.chmod(0o755)
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation directory
    port = _free_port()
    config = workdir / "sshd_config"
    config.write_text(
        f"""Port {port}
ListenAddress 127.0.0.1
HostKey {workdir}/ssh_host_ed25519_key
PidFile {workdir}/sshd.pid
AuthorizedKeysFile {workdir}/authorized_keys/%u
StrictModes no
UsePAM no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
AllowUsers {user}
ForceCommand {script}
MaxStartups 1000
MaxSessions {max_sessions}
PrintMotd no
PrintLastLog no
UseDNS no
LogLevel ERROR
{extra_config}
""",
        encoding="utf-8",
    )
    with open(workdir / "sshd.log", "wb") as log:  # a file, not a pipe: a full pipe would block sshd
        proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdout=subprocess.DEVNULL, stderr=log)
    server = SshServer(
        port=port,
        user=user,
        workdir=workdir,
        client_key=workdir / "id_ed25519",
        host_public_key=(workdir / "ssh_host_ed25519_key.pub").read_text().strip(),
        process=proc,
    )
    try:
        _wait_ready(port, proc, workdir / "sshd.log", time.monotonic() + 10)
    except BaseException:
        server.stop()
        raise
    server.set_replay(replay or {})
    if exec_mode:
        server.set_exec()
    return server
