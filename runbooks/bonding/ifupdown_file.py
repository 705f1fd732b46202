"""The bond's stanza in an ifupdown interfaces(5) file: find it, set the link monitor, keep the rest.

Pure text in, text out, so the exact new content is part of the plan the operator approves and
is tested offline. interfaces(5): a stanza starts with ``iface NAME FAMILY METHOD`` and runs to
the next line that starts another stanza (``iface``, ``mapping``, ``auto``, ``allow-*``,
``source``, ``source-directory``, ``rename``, ``no-auto-down``, ``no-scripts``); its option lines
are ``name value...``. ifupdown reads ``bond-miimon`` and ``bond_miimon`` alike (both become
``IF_BOND_MIIMON`` for ifenslave). Comments, blank lines, indentation and every other option stay
as they are.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from runbooks.bonding.bond_options import RemediationError

__all__ = ["StanzaEdit", "set_mii_monitor", "parse_ifquery"]

_STANZA_START = re.compile(r"^\s*(iface|mapping|auto|allow-\S+|source|source-directory|rename|no-auto-down|no-scripts)\b")
#: With MII monitoring these belong to the other monitor and go (the kernel keeps only one).
_ARP_OPTIONS = ("arp-interval", "arp-ip-target", "arp-validate", "arp-all-targets", "arp-missed-max")


@dataclass(frozen=True)
class StanzaEdit:
    """The new file content and what changed, line by line (for the plan's text)."""

    content: str
    changes: tuple[str, ...]


def _option(line: str) -> tuple[str, str] | None:
    m = re.match(r"^\s*([A-Za-z0-9_-]+)\s*(.*)$", line)
    if not m or line.lstrip().startswith("#"):
        return None
    return m.group(1).replace("_", "-").lower(), m.group(2)


def set_mii_monitor(text: str, bond: str, miimon: int) -> StanzaEdit:
    """``text`` with ``bond-miimon MIIMON`` in the bond's stanza(s) and the ARP options removed.

    Every ``iface BOND ...`` stanza that has a miimon line gets the new value; if none has one,
    it is added after the last option of the first stanza, indented like its other options.
    Raises :class:`RemediationError` if the file has no stanza for ``bond``.
    """
    lines = text.splitlines(keepends=True)
    stanzas: list[tuple[int, int]] = []  # [start, end) of each "iface BOND" stanza
    head = re.compile(rf"^\s*iface\s+{re.escape(bond)}(\s|$)")
    i = 0
    while i < len(lines):
        if head.match(lines[i]):
            j = i + 1
            while j < len(lines) and not _STANZA_START.match(lines[j]):
                j += 1
            stanzas.append((i, j))
            i = j
        else:
            i += 1
    if not stanzas:
        raise RemediationError(f"no 'iface {bond}' stanza in the file")
    changes: list[str] = []
    drop: set[int] = set()
    has_miimon = False
    for start, end in stanzas:
        for n in range(start + 1, end):
            opt = _option(lines[n])
            if opt is None:
                continue
            name, value = opt
            if name == "bond-miimon":
                has_miimon = True
                if value.strip() != str(miimon):
                    m = re.match(r"^(\s*\S+\s+)", lines[n])
                    prefix = m.group(1) if m else "    bond-miimon "
                    new = f"{prefix}{miimon}" + ("\n" if lines[n].endswith("\n") else "")
                    changes.append(f"line {n + 1}: {lines[n].strip()} -> {new.strip()}")
                    lines[n] = new
            elif name in tuple(f"bond-{o}" for o in _ARP_OPTIONS):
                drop.add(n)
                changes.append(f"line {n + 1}: {lines[n].strip()} removed (ARP monitoring; exclusive with miimon)")
    if not has_miimon:
        start, end = stanzas[0]
        last = start
        indent = "    "
        for n in range(start + 1, end):
            if _option(lines[n]) is not None:
                last = n
                indent = re.match(r"^(\s*)", lines[n]).group(1) or indent  # type: ignore[union-attr]
        if not lines[last].endswith("\n"):
            lines[last] += "\n"
        lines.insert(last + 1, f"{indent}bond-miimon {miimon}\n")
        drop = {d + 1 if d > last else d for d in drop}
        changes.append(f"after line {last + 1}: bond-miimon {miimon} added")
    content = "".join(line for n, line in enumerate(lines) if n not in drop)
    return StanzaEdit(content, tuple(changes))


def parse_ifquery(text: str) -> dict[str, str]:
    """``ifquery IFACE`` (ifupdown): ``option: value`` lines -> {option with '-': value}."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() and " " not in key.strip():
            out[key.strip().replace("_", "-").lower()] = value.strip()
    return out
