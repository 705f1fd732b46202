"""Replay tables for the triage as it is sent today, built from outputs recorded the older way.

The written seed fixtures and the first lab recordings hold the outputs of the seven per-bond
commands (``nmcli -t con show bond0`` included). The triage now also reads the host first
(``cat /sys/class/net/bonding_masters``, the ports in sysfs, NetworkManager's profile list) and
reads the bond's profile by UUID. ``with_discovery`` adds those answers, derived from the same
recorded outputs (the kernel's slave list, the profile's own ``connection.uuid``/``connection.id``/
``GENERAL.DEVICES``), and keeps recorded answers where a recording has them: a table recorded from a
real host (``bondbot lab record`` or ``tests/runbook_engine/record_discovery.py``) is used as is.
"""

from __future__ import annotations

from collections.abc import Mapping

from runbooks.bonding.parsers import parse_nmcli, parse_proc_bonding

__all__ = ["BONDING_MASTERS", "NM_LIST", "SYSFS_SLAVES", "with_discovery", "nm_list_line"]

BONDING_MASTERS = "cat /sys/class/net/bonding_masters"
SYSFS_SLAVES = "grep -H . /sys/class/net/*/bonding/slaves"
NM_LIST = "nmcli -t -f UUID,TYPE,DEVICE,NAME connection show"

Table = dict[str, tuple[int, str, str]]


def _escape(field: str) -> str:
    return field.replace("\\", "\\\\").replace(":", "\\:")


def nm_list_line(uuid: str, type_: str, device: str, name: str) -> str:
    """One line of ``nmcli -t -f UUID,TYPE,DEVICE,NAME connection show`` (terse escaping)."""
    return ":".join(_escape(f) for f in (uuid, type_, device, name))


def with_discovery(table: Mapping[str, tuple[int, str, str]], bonds: tuple[str, ...] = ("bond0",)) -> Table:
    """``table`` plus the discovery reads and the by-UUID profile read, for ``bonds``."""
    out: Table = dict(table)
    out.setdefault(BONDING_MASTERS, (0, " ".join(bonds) + "\n", ""))
    slave_lines: list[str] = []
    nm_lines: list[str] = []
    nm_missing: tuple[int, str, str] | None = None
    for bond in bonds:
        proc = table.get(f"cat /proc/net/bonding/{bond}")
        if proc and proc[0] == 0:
            names = [s.name for s in parse_proc_bonding(proc[1]).slaves]
            if names:
                slave_lines.append(f"/sys/class/net/{bond}/bonding/slaves:{' '.join(names)}")
        nm = table.get(f"nmcli -t con show {bond}")
        if nm and nm[0] == 0:
            conn = parse_nmcli(nm[1])
            if conn.uuid:
                device = conn.properties.get("GENERAL.DEVICES", "")
                nm_lines.append(nm_list_line(conn.uuid, conn.type or "bond", device, conn.id or ""))
                out.setdefault(f"nmcli -t con show uuid {conn.uuid}", nm)
        elif nm is not None:
            nm_missing = nm
    out.setdefault(SYSFS_SLAVES, (0 if slave_lines else 1, "".join(ln + "\n" for ln in slave_lines), ""))
    if NM_LIST not in out:
        if nm_missing is not None and not nm_lines:
            out[NM_LIST] = nm_missing
        else:
            out[NM_LIST] = (0, "".join(ln + "\n" for ln in nm_lines), "")
    return out
