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
from pathlib import Path

from runbooks.bonding.parsers import parse_nmcli, parse_proc_bonding

__all__ = ["BONDING_MASTERS", "NM_LIST", "SYSFS_SLAVES", "host_table", "nm_list_line", "persona_bond", "with_discovery"]

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
        sysfs = table.get(f"cat /sys/class/net/{bond}/bonding/slaves")  # recorded per bond (lab persona 2)
        if sysfs and sysfs[0] == 0:
            if sysfs[1].split():
                slave_lines.append(f"/sys/class/net/{bond}/bonding/slaves:{' '.join(sysfs[1].split())}")
        elif proc and proc[0] == 0:
            names = [s.name for s in parse_proc_bonding(proc[1]).slaves]
            if names:
                slave_lines.append(f"/sys/class/net/{bond}/bonding/slaves:{' '.join(names)}")
        device = table.get(f"nmcli -t -f GENERAL.CONNECTION,GENERAL.CON-UUID device show {bond}")
        if device and device[0] == 0:  # recorded: the device's active connection, as nmcli names it
            fields = dict(line.split(":", 1) for line in device[1].splitlines() if ":" in line)
            uuid, name = fields.get("GENERAL.CON-UUID", ""), fields.get("GENERAL.CONNECTION", "")
            if uuid and uuid != "--":
                nm_lines.append(nm_list_line(uuid, "bond", bond, name))
            continue
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


def _recorded(folder: Path) -> Table:
    import yaml

    entries = yaml.safe_load((folder / "commands.yaml").read_text(encoding="utf-8")) or []
    return {e["command"]: (int(e["exit_status"]), e.get("stdout") or "", e.get("stderr") or "") for e in entries}


LAB = Path(__file__).resolve().parent / "fixtures" / "lab"


def _escape_terse(value: str) -> str:
    return value.replace("\\", "\\\\").replace(":", "\\:")


def persona_bond(scenario: str, bond: str = "uplink0", ports: tuple[str, str] = ("ens4", "ens5"),
                 profile: str | None = "bond-uplink0", uuid: str = "0b7d1c3e-5f60-4a1b-9c2d-3e4f5a6b7c8d",
                 active: bool = True) -> Table:
    """A lab recording of bond0 on eno1/eno2 (profile bond0), renamed to ``bond`` on ``ports`` with
    NetworkManager profile ``profile`` (None: no NetworkManager profile at all)."""
    names = {"bond0": bond, "eno1": ports[0], "eno2": ports[1]}
    table: Table = {}
    for command, (rc, out, err) in _recorded(LAB / scenario).items():
        for old, new in names.items():
            command, out, err = command.replace(old, new), out.replace(old, new), err.replace(old, new)
        if command.startswith("nmcli"):
            if profile is None:
                continue
            out = out.replace("7715b6b9-8050-56f2-9890-4321a9126319", uuid)
            out = out.replace(f"connection.id:{bond}", f"connection.id:{_escape_terse(profile)}")
            out = out.replace(f"GENERAL.NAME:{bond}", f"GENERAL.NAME:{_escape_terse(profile)}")
            if not active:
                out = "\n".join(ln for ln in out.splitlines() if not ln.startswith(("GENERAL.", "IP4.", "IP6.")))
        table[command] = (rc, out, err)
    return table


def host_table(*bonds: Table, nm_extra: tuple[str, ...] = ()) -> Table:
    """One host with the given bonds: their outputs, the discovery reads, NetworkManager's list."""
    merged: Table = {}
    names: list[str] = []
    for t in bonds:
        proc = next(c for c in t if c.startswith("cat /proc/net/bonding/"))
        names.append(proc.removeprefix("cat /proc/net/bonding/"))
        merged.update(with_discovery(t, (names[-1],)))
    # The discovery reads of the whole host (with_discovery made them per bond).
    slave_lines = "".join(with_discovery(t, (n,))[SYSFS_SLAVES][1] for t, n in zip(bonds, names, strict=True))
    merged[BONDING_MASTERS] = (0, " ".join(names) + "\n", "")
    merged[SYSFS_SLAVES] = (0 if slave_lines else 1, slave_lines, "")
    nm_lines = "".join(with_discovery(t, (n,))[NM_LIST][1] for t, n in zip(bonds, names, strict=True)
                       if with_discovery(t, (n,))[NM_LIST][0] == 0)
    nm_lines += "".join(line + "\n" for line in nm_extra)
    merged[NM_LIST] = (0, nm_lines, "")
    return merged


