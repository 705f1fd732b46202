"""The rules for the values that go into a command: interface names, connection UUIDs, hosts.

A value reaches a shell on a production host as root, so it is checked against what it claims to
be before any template sees it, and quoted after (``runbooks.render``, which maps each declared
value type to its rule and quotes every value). Validation is the safety; quoting is the belt on
top: a valid interface name never needs quotes, but gets them if it ever did.
"""

from __future__ import annotations

import re

from ssh_exec.errors import InvalidValue
from ssh_exec.inventory import Host, Inventory, validate_host_name

__all__ = [
    "InvalidValue",
    "IFNAMSIZ",
    "validate_interface_name",
    "interface_name_problem",
    "validate_uuid",
    "validate_host",
]

IFNAMSIZ = 16  # the kernel's buffer, including the terminating NUL: names are 1-15 bytes
_IFNAME_CHARS = re.compile(r"[A-Za-z0-9_.@-]+")


def interface_name_problem(value: object) -> str | None:
    """Why ``value`` is not a network interface name, or None when it is one.

    The project's one definition of an interface name: the runbook engine (the ``interface``
    parameter type), the Slack command parser and the CLI all ask this function, so what one of
    them accepts the others accept. It is the kernel's rule (``dev_valid_name``), and then some.
    Kernel: 1-15 bytes, not ``.`` or ``..``, no ``/``, ``:`` or whitespace. We also allow only
    ``A-Z a-z 0-9 _ . @ -`` (no quoting surprises, no unicode look-alikes) and refuse a leading
    ``-``, which ``ip`` and ``ethtool`` would read as an option. ``:`` is allowed by that character set
    but the kernel itself refuses it in device names (``eth0:1`` is an address label).
    """
    if not isinstance(value, str):
        return "expected a string"
    size = len(value.encode("utf-8"))
    if size == 0 or size >= IFNAMSIZ:
        return f"must be 1 to {IFNAMSIZ - 1} bytes long (is {size})"
    if value in {".", ".."}:
        return "'.' and '..' are not interface names"
    if "/" in value or ":" in value or any(c.isspace() for c in value):
        return "'/', ':' and whitespace are not allowed by the kernel"
    if not _IFNAME_CHARS.fullmatch(value):
        return "only A-Z a-z 0-9 _ . @ - are allowed"
    if value.startswith("-"):
        return "must not start with '-' (it would read as an option)"
    return None


def validate_interface_name(value: object) -> str:
    """``value`` if it is a network interface name (see ``interface_name_problem``), else ``InvalidValue``."""
    problem = interface_name_problem(value)
    if problem is not None:
        shown = value if not isinstance(value, str) or len(value) <= 40 else value[:40] + "..."
        raise InvalidValue(f"invalid interface name {shown!r}: {problem}")
    assert isinstance(value, str)
    return value


_UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def validate_uuid(value: object) -> str:
    """A NetworkManager connection UUID in its canonical 8-4-4-4-12 hex form.

    UUIDs come from the host (``nmcli`` output) and go back into ``nmcli ... uuid <UUID>``: only
    hex digits and dashes pass, so the value can never be an option, a glob or a second word.
    """
    if not isinstance(value, str) or not _UUID_RE.fullmatch(value):
        shown = value if not isinstance(value, str) or len(value) <= 40 else value[:40] + "..."
        raise InvalidValue(f"invalid connection UUID {shown!r}: expected 8-4-4-4-12 hex digits")
    return value


def validate_host(value: object, inventory: Inventory) -> Host:
    """A host the inventory lists (or, if it allows unlisted hosts, a well-formed name)."""
    return inventory.get(validate_host_name(value))

