"""The ways a remote command can fail before it runs, each with what happened and what to do.

Operators read these messages in a terminal or in Slack at 3 a.m.: every message names the host,
says what went wrong in plain words and ends with the next step to take. Callers catch
``SshExecError`` for "the host could not be reached or used" and show ``str(error)``.
"""

from __future__ import annotations

__all__ = [
    "SshExecError",
    "InventoryError",
    "HostNotAllowed",
    "HostSkipped",
    "InvalidValue",
    "ConnectError",
    "NameNotResolved",
    "ConnectionRefused",
    "ConnectTimeout",
    "AuthenticationFailed",
    "HostKeyError",
    "HostKeyUnknown",
    "HostKeyChanged",
]


class SshExecError(Exception):
    """Base of every error ssh_exec raises on purpose; ``str()`` is the operator-facing message."""

    #: A short stable label, used by ``bondbot audit`` to group unreachable hosts.
    kind: str = "error"

    def __init__(self, message: str, *, host: str | None = None) -> None:
        super().__init__(message)
        self.host = host


class InventoryError(SshExecError):
    """The inventory file cannot be read or says something invalid; nothing was contacted."""

    kind = "inventory"


class HostNotAllowed(SshExecError):
    """The host is not in the inventory and the inventory does not allow unlisted hosts."""

    kind = "not-in-inventory"


class HostSkipped(HostNotAllowed):
    """The inventory names the host, but its entry was skipped (the message says where and why).

    A subclass of ``HostNotAllowed``: callers that refuse unlisted hosts refuse these the same way
    (bad input, nothing contacted)."""

    kind = "skipped-in-inventory"


class InvalidValue(SshExecError, ValueError):
    """A value meant for a command or a connection failed validation; nothing was sent."""

    kind = "invalid-value"


class ConnectError(SshExecError):
    """The SSH connection could not be set up."""

    kind = "connect"


class NameNotResolved(ConnectError):
    kind = "name-not-resolved"


class ConnectionRefused(ConnectError):
    kind = "connection-refused"


class ConnectTimeout(ConnectError):
    kind = "timeout"


class AuthenticationFailed(ConnectError):
    kind = "auth-failed"


class HostKeyError(ConnectError):
    """The server's host key is not the one bondbot trusts for this host."""

    kind = "host-key"

    def __init__(self, message: str, *, host: str | None = None, fingerprint: str | None = None) -> None:
        super().__init__(message, host=host)
        #: SHA256 fingerprint of the key the server presented, e.g. ``SHA256:abc...``.
        self.fingerprint = fingerprint


class HostKeyUnknown(HostKeyError):
    kind = "host-key-unknown"


class HostKeyChanged(HostKeyError):
    kind = "host-key-changed"
