"""Parser for ``nmcli -t con show <profile>`` and plain ``nmcli con show <profile>``.

Format (NetworkManager's ``nmcli`` property dump): one ``<setting>.<property>:<value>`` line per
property. Terse (``-t``) output has no padding and escapes ``:`` and ``\\`` inside values with a
backslash (``802-3-ethernet.cloned-mac-address:AA\\:BB...``); plain output pads the value with
spaces after the colon and prints ``--`` for an empty value. An active profile adds upper-case
``GENERAL.*``/``IP4.*`` lines (``GENERAL.STATE:activated``). Pretty output (``-p``) adds ``====``
and ``----`` rules and a title line, which are skipped.

The properties used here: ``connection.id``, ``connection.uuid``, ``connection.type``,
``connection.interface-name``, ``connection.autoconnect``, ``connection.master`` (before NM 1.46)
or ``connection.controller`` with ``connection.slave-type``/``connection.port-type`` (set on a
port profile), ``connection.autoconnect-slaves``/``-ports``, and ``bond.options``:
``key=value`` pairs, comma-separated (``mode=active-backup,miimon=100,primary=eno1``). Keys absent
from ``bond.options`` take NetworkManager's defaults, which are not the kernel's (NM enables
``miimon=100`` unless ARP monitoring is set), so "absent" is not "0".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .errors import ParseError

__all__ = ["NmcliConnection", "NmcliListRow", "parse_bond_options", "parse_nmcli", "parse_nmcli_list", "split_terse"]

_KEY_RE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]+|\[\d+\])+):(.*)$")
_RULE_RE = re.compile(r"^[=-]{5,}$")


@dataclass
class NmcliConnection:
    """A NetworkManager connection profile as printed by ``nmcli con show <profile>``."""

    id: str | None = None
    uuid: str | None = None
    type: str | None = None
    interface_name: str | None = None
    autoconnect: bool | None = None
    autoconnect_ports: str | None = None
    controller: str | None = None  # set on a port profile: the bond it belongs to
    port_type: str | None = None
    bond_options: dict[str, str] = field(default_factory=dict)
    active_state: str | None = None  # GENERAL.STATE when the profile is active
    terse: bool = False
    properties: dict[str, str] = field(default_factory=dict)
    lines: dict[str, str] = field(default_factory=dict)


def _unescape_terse(value: str) -> str:
    return re.sub(r"\\(.)", r"\1", value)


def parse_bond_options(value: str, source: str = "bond.options", line_number: int = 0,
                       line: str = "") -> dict[str, str]:
    """``mode=active-backup,miimon=100`` -> ``{"mode": "active-backup", "miimon": "100"}``.

    ``arp_ip_target`` may itself hold commas (``arp_ip_target=10.0.0.1,10.0.0.2``): a piece
    without ``=`` continues the previous value.
    """
    options: dict[str, str] = {}
    last: str | None = None
    for piece in value.split(","):
        piece = piece.strip()
        if not piece:
            continue
        key, eq, val = piece.partition("=")
        if not eq:
            if last is None:
                raise ParseError(source, line_number, line or value,
                                 f"bond option {piece!r} has no '=value'")
            options[last] += "," + piece
            continue
        key = key.strip()
        if not re.fullmatch(r"[a-z_0-9]+", key):
            raise ParseError(source, line_number, line or value,
                             f"bond option name {key!r} is not an option name")
        options[key] = val.strip()
        last = key
    return options


def parse_nmcli(text: str, source: str = "nmcli con show") -> NmcliConnection:
    """Parse one profile's properties; raises :class:`ParseError` for anything else."""
    conn = NmcliConnection()
    seen_property = False
    for n, raw in enumerate(text.splitlines(), start=1):
        line = raw.rstrip()
        if not line.strip() or _RULE_RE.match(line.strip()):
            continue
        m = _KEY_RE.match(line)
        if not m:
            if not seen_property and re.search(r"details \(.*\)$", line.strip()):
                continue  # the title of pretty (-p) output
            raise ParseError(source, n, raw,
                             "not nmcli con show output: expected '<setting>.<property>:<value>'")
        key, value = m.group(1), m.group(2)
        terse = not value.startswith(" ") and not value.startswith("\t")
        if not seen_property:
            conn.terse = terse
        seen_property = True
        value = _unescape_terse(value) if conn.terse else value.strip()
        if not conn.terse and value == "--":
            value = ""
        conn.properties[key] = value
        conn.lines[key] = raw
        if key == "connection.id":
            conn.id = value
        elif key == "connection.uuid":
            conn.uuid = value
        elif key == "connection.type":
            conn.type = value
        elif key == "connection.interface-name":
            conn.interface_name = value or None
        elif key == "connection.autoconnect":
            if value not in ("yes", "no"):
                raise ParseError(source, n, raw, "connection.autoconnect must be yes or no")
            conn.autoconnect = value == "yes"
        elif key in ("connection.autoconnect-slaves", "connection.autoconnect-ports"):
            conn.autoconnect_ports = value
        elif key in ("connection.master", "connection.controller"):
            conn.controller = value or None
        elif key in ("connection.slave-type", "connection.port-type"):
            conn.port_type = value or None
        elif key == "bond.options":
            conn.bond_options = parse_bond_options(value, source, n, raw)
        elif key == "GENERAL.STATE":
            conn.active_state = value
    if not seen_property:
        raise ParseError(source, 0, "", "empty input: no nmcli properties")
    if conn.id is None and conn.uuid is None and not conn.bond_options:
        raise ParseError(source, 0, "", "no connection.id, connection.uuid or bond.options: "
                         "not nmcli con show output of a profile")
    return conn


@dataclass(frozen=True)
class NmcliListRow:
    """One profile of ``nmcli -t -f UUID,TYPE,DEVICE,NAME connection show``.

    ``device`` is the device the profile is active on ("" when inactive): the device's active
    connection is the row whose ``device`` is the bond's name.
    """

    uuid: str
    type: str
    device: str
    name: str
    line: str


def split_terse(line: str) -> list[str]:
    """Split an ``nmcli -t`` line on unescaped ':' and unescape ``\\:`` and ``\\\\`` in each field."""
    fields, cur, esc = [], [], False
    for ch in line:
        if esc:
            cur.append(ch)
            esc = False
        elif ch == "\\":
            esc = True
        elif ch == ":":
            fields.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    fields.append("".join(cur))
    return fields


def parse_nmcli_list(text: str, source: str = "nmcli -t -f UUID,TYPE,DEVICE,NAME connection show") -> list[NmcliListRow]:
    """Parse the terse profile list (fields UUID, TYPE, DEVICE, NAME in that order).

    Format: one line per profile, four fields separated by ':'; a ':' or '\\' inside a field (a
    profile name such as ``Bond: "uplink"``) is escaped with a backslash. An empty list is valid.
    """
    rows: list[NmcliListRow] = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line:
            continue
        fields = split_terse(line)
        if len(fields) != 4:
            raise ParseError(source, n, line, f"expected 4 ':'-separated fields (UUID:TYPE:DEVICE:NAME), got {len(fields)}")
        uuid, type_, device, name = fields
        if not re.fullmatch(r"[0-9a-fA-F-]{36}", uuid):
            raise ParseError(source, n, line, f"{uuid!r} is not a connection UUID")
        rows.append(NmcliListRow(uuid, type_, device, name, line))
    return rows
