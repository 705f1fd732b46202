"""Parsers for iproute2's ``ip link show``: the kernel's link state, independent of the bond.

Two formats are read (reference: iproute2 ``ip/ipaddress.c`` and ``ip/iplink_bond.c``):

* Text, as ``ip link show <if>``, ``ip -d link show [<if>]`` and with ``-s``: per link a header
  ``<index>: <name>[@<peer>]: <FLAG,FLAG,...> mtu <n> qdisc <q> [master <bond>] state <STATE>
  mode <MODE> group <g> qlen <n>`` followed by indented lines: ``link/ether <mac> brd <mac>
  [permaddr <mac>]``, with ``-d`` the bond's option line ``bond mode <mode> [active_slave <if>]
  miimon <n> ... [arp_ip_target a,b] ... [ad_aggregator <n> ad_num_ports <n> ... ad_partner_mac
  <mac>] ...`` or a port's ``bond_slave state ACTIVE|BACKUP mii_status UP|DOWN|GOING_DOWN|GOING_BACK
  link_failure_count <n> perm_hwaddr <mac> queue_id <n> [prio <n>] [ad_aggregator_id <n>
  ad_actor_oper_port_state <n> ad_partner_oper_port_state <n>]``, and statistics with ``-s``.
  ``NO-CARRIER`` in the flags (and no ``LOWER_UP``) means the NIC has lost its carrier, while
  ``UP`` only means the interface is administratively up: the seed incident shows ``UP`` and
  ``NO-CARRIER`` together. Option names vary with the iproute2 version (``lacp_active`` 5.15+,
  ``arp_missed_max`` 5.18+, ``coupled_control`` 6.9+); unknown ones are kept, never fatal.
* JSON, as ``ip -d -j link show <bond>``: a list of objects (``ifname``, ``flags``, ``operstate``,
  ``master``, ``linkinfo.info_kind == "bond"`` with ``linkinfo.info_data`` holding the same options
  under JSON names: ``ad_lacp_rate`` for ``lacp_rate``, ``num_peer_notif`` for ``num_grat_arp``,
  ``arp_ip_target`` as a list, ``arp_validate`` as null when ``none``, ``ad_info`` as an object).

Evidence from JSON is the exact ``"key":value`` fragment as iproute2 prints it (compact JSON),
because the whole object is one long line.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from .errors import ParseError
from .proc_bonding import LacpPortState

__all__ = [
    "BondDetails",
    "BondSlaveDetails",
    "IpLink",
    "find_link",
    "parse_ip_details",
    "parse_ip_link",
]

_HEADER_RE = re.compile(
    r"^(?P<index>\d+):\s+(?P<name>[^\s:@]+)(?:@(?P<peer>[^\s:]+))?:\s+<(?P<flags>[^>]*)>(?P<rest>.*)$"
)
# Text option names that iproute2 prints differently in JSON.
_TEXT_TO_JSON = {"lacp_rate": "ad_lacp_rate", "lacp_active": "ad_lacp_active",
                 "num_grat_arp": "num_peer_notif"}
_AD_INFO_TEXT = {"ad_aggregator": "aggregator", "ad_num_ports": "num_ports",
                 "ad_actor_key": "actor_key", "ad_partner_key": "partner_key",
                 "ad_partner_mac": "partner_mac"}
_INT_OPTIONS = {"miimon", "updelay", "downdelay", "peer_notify_delay", "use_carrier",
                "arp_interval", "arp_missed_max", "resend_igmp", "num_peer_notif",
                "all_slaves_active", "min_links", "lp_interval", "packets_per_slave",
                "ad_actor_sys_prio", "ad_user_port_key", "tlb_dynamic_lb"}


@dataclass
class BondDetails:
    """The bond's options as the kernel reports them over netlink (``ip -d``)."""

    ifname: str | None
    mode: str | None = None
    flags: tuple[str, ...] = ()
    operstate: str | None = None
    active_slave: str | None = None
    miimon: int | None = None
    updelay: int | None = None
    downdelay: int | None = None
    arp_interval: int | None = None
    arp_ip_targets: tuple[str, ...] = ()
    primary: str | None = None
    primary_reselect: str | None = None
    fail_over_mac: str | None = None
    xmit_hash_policy: str | None = None
    ad_info: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)  # every option, JSON names
    lines: dict[str, str] = field(default_factory=dict)  # option -> evidence text

    @property
    def admin_up(self) -> bool:
        return "UP" in self.flags

    @property
    def lower_up(self) -> bool:
        return "LOWER_UP" in self.flags


@dataclass
class BondSlaveDetails:
    """A port's ``bond_slave`` line (``ip -d link show <port>``)."""

    state: str | None = None  # ACTIVE | BACKUP
    mii_status: str | None = None  # UP | DOWN | GOING_DOWN | GOING_BACK
    link_failure_count: int | None = None
    perm_hwaddr: str | None = None
    ad_aggregator_id: int | None = None
    ad_actor_oper_port_state: LacpPortState | None = None
    ad_partner_oper_port_state: LacpPortState | None = None
    options: dict[str, str] = field(default_factory=dict)


@dataclass
class IpLink:
    """One link of ``ip link show`` text output. ``lines`` holds the header and detail lines."""

    index: int | None
    name: str | None  # None for an excerpt that lost its header line
    flags: tuple[str, ...] = ()
    peer: str | None = None
    mtu: int | None = None
    master: str | None = None
    state: str | None = None  # operstate: UP, DOWN, UNKNOWN, LOWERLAYERDOWN...
    link_type: str | None = None
    address: str | None = None
    permaddr: str | None = None
    bond: BondDetails | None = None
    bond_slave: BondSlaveDetails | None = None
    lines: dict[str, str] = field(default_factory=dict)

    @property
    def no_carrier(self) -> bool:
        """The NIC reports no carrier (cable out, switch port shut)."""
        return "NO-CARRIER" in self.flags

    @property
    def admin_up(self) -> bool:
        return "UP" in self.flags

    @property
    def lower_up(self) -> bool:
        return "LOWER_UP" in self.flags


def _pairs(tokens: list[str]) -> dict[str, str]:
    return {tokens[i]: tokens[i + 1] for i in range(0, len(tokens) - 1, 2)}


def _int_or_fail(value: Any, key: str, fail) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise fail(f"option {key} is not a number") from None


def _fill_bond(details: BondDetails, options: dict[str, Any], fail) -> None:
    for key, value in options.items():
        if key in _INT_OPTIONS and value is not None:
            options[key] = _int_or_fail(value, key, fail)
    details.options = options
    details.mode = options.get("mode")
    details.active_slave = options.get("active_slave")
    details.miimon = options.get("miimon")
    details.updelay = options.get("updelay")
    details.downdelay = options.get("downdelay")
    details.arp_interval = options.get("arp_interval")
    targets = options.get("arp_ip_target") or ()
    if isinstance(targets, str):
        targets = [t for t in targets.split(",") if t]
    if not isinstance(targets, (list, tuple)) or not all(isinstance(t, str) for t in targets):
        raise fail("arp_ip_target is not a list of addresses")
    details.arp_ip_targets = tuple(targets)
    details.primary = options.get("primary")
    details.primary_reselect = options.get("primary_reselect")
    details.fail_over_mac = options.get("fail_over_mac")
    details.xmit_hash_policy = options.get("xmit_hash_policy")
    ad = options.get("ad_info") or {}
    if not isinstance(ad, dict):
        raise fail("ad_info is not an object")
    details.ad_info = ad
    for name in ("mode", "active_slave", "primary", "primary_reselect", "fail_over_mac",
                 "xmit_hash_policy"):
        if details.__dict__[name] is not None and not isinstance(details.__dict__[name], str):
            raise fail(f"option {name} is not a string")


def _parse_bond_text(line: str, details: BondDetails, fail) -> None:
    tokens = line.split()[1:]  # drop the leading "bond"
    raw = _pairs(tokens)
    options: dict[str, Any] = {}
    ad_info: dict[str, Any] = {}
    for key, value in raw.items():
        if key in _AD_INFO_TEXT:
            ad_key = _AD_INFO_TEXT[key]
            ad_info[ad_key] = value if ad_key == "partner_mac" else _int_or_fail(value, key, fail)
        else:
            options[_TEXT_TO_JSON.get(key, key)] = value
    if ad_info:
        options["ad_info"] = ad_info
    _fill_bond(details, options, fail)
    for key in raw:
        details.lines[_TEXT_TO_JSON.get(key, key)] = line
        if key in _AD_INFO_TEXT:
            details.lines[f"ad_info.{_AD_INFO_TEXT[key]}"] = line


def _parse_slave_text(line: str, fail) -> BondSlaveDetails:
    raw = _pairs(line.split()[1:])
    sd = BondSlaveDetails(options=raw, state=raw.get("state"), mii_status=raw.get("mii_status"),
                          perm_hwaddr=raw.get("perm_hwaddr"))
    if "link_failure_count" in raw:
        sd.link_failure_count = _int_or_fail(raw["link_failure_count"], "link_failure_count", fail)
    if "ad_aggregator_id" in raw:
        sd.ad_aggregator_id = _int_or_fail(raw["ad_aggregator_id"], "ad_aggregator_id", fail)
    for key in ("ad_actor_oper_port_state", "ad_partner_oper_port_state"):
        if key in raw:
            v = _int_or_fail(raw[key], key, fail)
            if not 0 <= v <= 255:
                raise fail(f"{key} must be one byte (0-255)")
            setattr(sd, key, LacpPortState(v))
    return sd


def parse_ip_link(text: str, source: str = "ip link show") -> list[IpLink]:
    """Parse ``ip [-d] [-s] link show [<if>]`` text into its links, in order.

    Tolerates an excerpt whose first header line was lost (its details then belong to a link with
    ``name=None``). Raises :class:`ParseError` on a non-indented line that is not a link header.
    """
    links: list[IpLink] = []
    current: IpLink | None = None
    for n, raw in enumerate(text.splitlines(), start=1):

        def fail(message: str, n: int = n, raw: str = raw) -> ParseError:
            return ParseError(source, n, raw, message)

        if not raw.strip():
            continue
        m = _HEADER_RE.match(raw)
        if m:
            current = IpLink(index=int(m["index"]), name=m["name"], peer=m["peer"],
                             flags=tuple(f for f in m["flags"].split(",") if f),
                             lines={"header": raw})
            rest = _pairs(m["rest"].split())
            if "mtu" in rest:
                current.mtu = _int_or_fail(rest["mtu"], "mtu", fail)
            current.master = rest.get("master")
            current.state = rest.get("state")
            links.append(current)
            continue
        if not raw[:1].isspace():
            raise fail("not ip link output: expected '<index>: <name>: <FLAGS> ...' "
                       "or an indented detail line")
        if current is None:
            current = IpLink(index=None, name=None)
            links.append(current)
        words = raw.split()
        if words[0].startswith("link/"):
            current.link_type = words[0][5:]
            kv = _pairs(words)
            current.address = kv.get(words[0])
            current.permaddr = kv.get("permaddr")
            current.lines["link"] = raw
        elif words[0] == "bond" and len(words) > 1 and words[1] == "mode":
            current.bond = BondDetails(ifname=current.name, flags=current.flags,
                                       operstate=current.state)
            _parse_bond_text(raw, current.bond, fail)
            if "header" in current.lines:
                for key in ("header", "flags", "operstate"):
                    current.bond.lines[key] = current.lines["header"]
            current.lines["bond"] = raw
        elif words[0] == "bond_slave":
            current.bond_slave = _parse_slave_text(raw, fail)
            current.lines["bond_slave"] = raw
    if not links:
        raise ParseError(source, 0, "", "empty input: no link in ip link output")
    return links


def find_link(links: list[IpLink], name: str) -> IpLink | None:
    """The link called ``name``; a single headless excerpt counts as the one asked for."""
    for link in links:
        if link.name == name:
            return link
    if len(links) == 1 and links[0].name is None:
        return links[0]
    return None


def _json_fragment(key: str, value: Any) -> str:
    return json.dumps({key: value}, separators=(",", ":"))[1:-1]


def _parse_details_json(text: str, source: str, bond: str | None) -> BondDetails:
    def fail(message: str, n: int = 1) -> ParseError:
        lines = text.splitlines() or [""]
        return ParseError(source, n, lines[min(n, len(lines)) - 1], message)

    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise fail(f"invalid JSON: {exc.msg}", exc.lineno) from None
    if not isinstance(data, list) or not all(isinstance(o, dict) for o in data):
        raise fail("not ip -j output: expected a JSON list of link objects")
    candidates = [o for o in data if isinstance(o.get("linkinfo"), dict)
                  and o["linkinfo"].get("info_kind") == "bond"]
    if bond is not None:
        named = [o for o in candidates if o.get("ifname") == bond]
        candidates = named or candidates
    if not candidates:
        raise fail("no bond in this ip -j output (no linkinfo with info_kind \"bond\"; "
                   "was -d given?)")
    obj = candidates[0]
    info = obj["linkinfo"].get("info_data") or {}
    if not isinstance(info, dict):
        raise fail("linkinfo.info_data is not an object")
    flags = obj.get("flags") or []
    if not isinstance(flags, list) or not all(isinstance(f, str) for f in flags):
        raise fail("flags is not a list of strings")
    ifname = obj.get("ifname")
    operstate = obj.get("operstate")
    if not isinstance(ifname, (str, type(None))) or not isinstance(operstate, (str, type(None))):
        raise fail("ifname/operstate is not a string")
    details = BondDetails(ifname=ifname, flags=tuple(flags), operstate=operstate)
    _fill_bond(details, dict(info), fail)
    for key, value in info.items():
        details.lines[key] = _json_fragment(key, value)
        if key == "ad_info" and isinstance(value, dict):
            for k, v in value.items():
                details.lines[f"ad_info.{k}"] = _json_fragment(k, v)
    details.lines["flags"] = _json_fragment("flags", flags)
    if operstate is not None:
        details.lines["operstate"] = _json_fragment("operstate", operstate)
    return details


def parse_ip_details(text: str, source: str = "ip -d -j link show",
                     bond: str | None = None) -> BondDetails:
    """The bond's options from ``ip -d -j link show <bond>`` (JSON) or ``ip -d link show <bond>``.

    The format is detected from the first character. With several links in the output, the one
    named ``bond`` (else the first bond) is returned. Raises :class:`ParseError` when the output
    holds no bond.
    """
    if text.lstrip().startswith(("[", "{")):
        return _parse_details_json(text, source, bond)
    links = parse_ip_link(text, source)
    bonds = [link for link in links if link.bond is not None]
    if bond is not None:
        bonds = [link for link in bonds if link.name in (bond, None)] or bonds
    if not bonds:
        raise ParseError(source, 0, "", "no 'bond mode ...' line: not ip -d link output of a bond")
    return bonds[0].bond  # type: ignore[return-value]
