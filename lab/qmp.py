"""A minimal QMP (QEMU Machine Protocol) client: one command per connection, synchronous.

The lab needs only a handful of commands (``set_link``, ``query-status``, ``quit``,
``system_reset``), so a small client over the UNIX socket is simpler than a dependency.
Protocol: the server greets with ``{"QMP": ...}``; the client must send ``qmp_capabilities``
before any other command; replies are ``{"return": ...}`` or ``{"error": {...}}``, interleaved
with asynchronous ``{"event": ...}`` messages, which are skipped here.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

from lab.errors import QMPError

__all__ = ["QMPClient", "qmp_command"]


class QMPClient:
    """A connected QMP session; use as a context manager."""

    def __init__(self, path: Path, timeout: float = 10.0) -> None:
        self.path = path
        self.timeout = timeout
        self._sock: socket.socket | None = None
        self._buffer = b""

    def __enter__(self) -> QMPClient:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(str(self.path))
        except OSError as exc:
            sock.close()
            raise QMPError(f"cannot reach QEMU's monitor at {self.path}: {exc}") from None
        self._sock = sock
        greeting = self._read_message()
        if "QMP" not in greeting:
            raise QMPError(f"unexpected QMP greeting: {greeting!r}")
        self.execute("qmp_capabilities")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _read_message(self) -> dict[str, Any]:
        assert self._sock is not None
        while b"\n" not in self._buffer:
            try:
                chunk = self._sock.recv(65536)
            except OSError as exc:
                raise QMPError(f"QEMU's monitor did not answer: {exc}") from None
            if not chunk:
                raise QMPError("QEMU's monitor closed the connection (has the VM stopped?)")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)

    def execute(self, command: str, arguments: dict[str, Any] | None = None) -> Any:
        """Run ``command``; return its ``return`` value or raise :class:`QMPError` with QEMU's words."""
        assert self._sock is not None, "use QMPClient as a context manager"
        message: dict[str, Any] = {"execute": command}
        if arguments:
            message["arguments"] = arguments
        self._sock.sendall(json.dumps(message).encode() + b"\n")
        while True:
            reply = self._read_message()
            if "event" in reply:
                continue
            if "error" in reply:
                err = reply["error"]
                raise QMPError(f"QEMU refused {command}: {err.get('desc', err)}")
            return reply.get("return")


def qmp_command(path: Path, command: str, arguments: dict[str, Any] | None = None,
                timeout: float = 10.0) -> Any:
    """Connect, run one command, disconnect."""
    with QMPClient(path, timeout) as client:
        return client.execute(command, arguments)
