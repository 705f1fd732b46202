"""Parsers for the bonding driver's sysfs lists: which bonds a host has, and each bond's ports.

``cat /sys/class/net/bonding_masters``: the names of every bond, separated by single spaces, on one
line ending in a newline; a host with the bonding module loaded but no bond prints an empty line.
(The file does not exist when the module is not loaded: that is the command's failure, not this
parser's input.)

``grep -H . /sys/class/net/*/bonding/slaves``: one line per bond that has ports,
``/sys/class/net/<bond>/bonding/slaves:<port> <port>...``. A bond without ports has an empty
``slaves`` file, which ``grep .`` does not print: absent here means "no ports".
"""

from __future__ import annotations

import re

from .errors import ParseError

__all__ = ["parse_bonding_masters", "parse_sysfs_slaves"]

_SLAVES_RE = re.compile(r"^/sys/class/net/([^/\s]+)/bonding/slaves:(.*)$")


def parse_bonding_masters(text: str, source: str = "cat /sys/class/net/bonding_masters") -> list[str]:
    """The bond names, in the kernel's order; names are not validated here (the engine does)."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if len(lines) > 1:
        raise ParseError(source, 2, lines[1], "bonding_masters is one line of bond names")
    names = lines[0].split() if lines else []
    if len(set(names)) != len(names):
        raise ParseError(source, 1, lines[0], "a bond is listed twice")
    return names


def parse_sysfs_slaves(text: str, source: str = "grep -H . /sys/class/net/*/bonding/slaves") -> dict[str, list[str]]:
    """``{bond: [port, ...]}`` for every bond with ports, in the kernel's (enslaving) order."""
    out: dict[str, list[str]] = {}
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        m = _SLAVES_RE.match(line)
        if not m:
            raise ParseError(source, n, line, "expected '/sys/class/net/<bond>/bonding/slaves:<ports>'")
        out[m.group(1)] = m.group(2).split()
    return out
