"""Parser for ``/proc/net/bonding/<bond>``: the bonding driver's own view of a bond.

Format (reference: the kernel's ``drivers/net/bonding/bond_procfs.c``; ``bond_info_show_master`` and
``bond_info_show_slave``). The file is ``Key: value`` lines in three parts:

1. The driver line ``Ethernet Channel Bonding Driver: <version>``. Up to ~5.x mainline the version
   is the fixed ``v3.7.1 (April 27, 2011)`` (RHEL 7/8 keep it while back-porting newer fields);
   newer kernels print the kernel release (``v6.6.83``). Never infer the feature set from it.
2. The bond section, in this order, each line only where the kernel prints it:
   ``Bonding Mode: <description>`` (active-backup may add `` (fail_over_mac active|follow)``);
   ``Transmit Hash Policy: <policy> (<n>)`` (balance-xor, 802.3ad, and balance-tlb/alb on kernels
   where they hash); ``Primary Slave: <if>|None`` with `` (primary_reselect <policy>)`` since ~3.x,
   and ``Currently Active Slave: <if>|None`` (active-backup, balance-tlb, balance-alb);
   ``MII Status: up|down`` (the bond's carrier); ``MII Polling Interval (ms)``, ``Up Delay (ms)``,
   ``Down Delay (ms)``; ``Peer Notification Delay (ms)`` (5.3+); only when ARP monitoring is on:
   ``ARP Polling Interval (ms)``, ``ARP Missed Max`` (5.18+), ``ARP IP target/s (n.n.n.n form):``
   followed by `` a.b.c.d`` comma-separated (empty when none), ``NS IPv6 target/s (xx::xx form):``
   (6.0+, IPv6 kernels).
   For 802.3ad a blank line, ``802.3ad info``, ``LACP active: on|off`` (5.15+), ``LACP rate``,
   ``Min links`` (3.x+), ``Aggregator selection policy (ad_select)``; then, on kernels that guard
   it only when the reader has CAP_NET_ADMIN: ``System priority``, ``System MAC address`` and either
   ``bond <bond> has no active aggregator`` or ``Active Aggregator Info:`` with TAB-indented
   ``Aggregator ID``, ``Number of ports``, ``Actor Key``, ``Partner Key``, ``Partner Mac Address``.
   Older kernels print the aggregator part unguarded and without the system lines.
3. Per slave, after a blank line: ``Slave Interface: <if>``, ``MII Status: up|going down|down|going
   back`` (the bonding driver's link state, not the NIC's carrier), ``Speed: <n> Mbps|Unknown`` and
   ``Duplex: full|half|Unknown`` (absent before ~3.0; ``Unknown`` since ~4.x), ``Link Failure
   Count``, ``Permanent HW addr``, ``Slave queue ID`` (2.6.35+). For 802.3ad: ``Aggregator ID:
   <n>|N/A``, then (4.x+) ``Actor/Partner Churn State: none|monitoring|churned``, ``Actor/Partner
   Churned Count`` and, with CAP_NET_ADMIN only, ``details actor lacp pdu:`` / ``details partner
   lacp pdu:`` blocks of 4-space-indented lowercase fields whose ``port state`` is the LACP state
   byte (decoded by :class:`LacpPortState`).

Vendor kernels add lines (``Slave active``, ``Slave sm_vars``...): unknown keys are kept in
``extra`` and never fail the parse. Indentation is not trusted (published copies re-indent the
aggregator block), so sections are tracked by their header lines instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .errors import ParseError

__all__ = [
    "MODE_NAMES",
    "AggregatorInfo",
    "Ad8023Info",
    "LacpPduDetails",
    "LacpPortState",
    "ProcBonding",
    "ProcSlave",
    "parse_proc_bonding",
]

SOURCE = "/proc/net/bonding"

#: Kernel mode descriptions (``bond_mode_name``) -> the short names used by sysfs, ip and nmcli.
MODE_NAMES: dict[str, str] = {
    "load balancing (round-robin)": "balance-rr",
    "fault-tolerance (active-backup)": "active-backup",
    "load balancing (xor)": "balance-xor",
    "fault-tolerance (broadcast)": "broadcast",
    "IEEE 802.3ad Dynamic link aggregation": "802.3ad",
    "transmit load balancing": "balance-tlb",
    "adaptive load balancing": "balance-alb",
}

_DRIVER_PREFIX = "Ethernet Channel Bonding Driver:"
_UNKNOWN_SPEEDS = {-1, 0, 65535, 4294967295}  # SPEED_UNKNOWN as printed by kernels that used %d/%u
_MII_STATES = {"up", "down", "going down", "going back", "unknown"}


@dataclass(frozen=True)
class LacpPortState:
    """The LACP port state byte (IEEE 802.1AX ``Actor_State``/``Partner_State``), decoded.

    A healthy aggregated port has activity, aggregation, synchronization, collecting and
    distributing set (61 or 63); ``defaulted`` means no LACPDU was ever received from the partner.
    """

    value: int

    _BITS = (
        "lacp_activity",
        "lacp_timeout",
        "aggregation",
        "synchronization",
        "collecting",
        "distributing",
        "defaulted",
        "expired",
    )

    def _bit(self, n: int) -> bool:
        return bool(self.value >> n & 1)

    @property
    def lacp_activity(self) -> bool:
        return self._bit(0)

    @property
    def lacp_timeout(self) -> bool:
        """Short (fast) timeout."""
        return self._bit(1)

    @property
    def aggregation(self) -> bool:
        return self._bit(2)

    @property
    def synchronization(self) -> bool:
        return self._bit(3)

    @property
    def collecting(self) -> bool:
        return self._bit(4)

    @property
    def distributing(self) -> bool:
        return self._bit(5)

    @property
    def defaulted(self) -> bool:
        return self._bit(6)

    @property
    def expired(self) -> bool:
        return self._bit(7)

    @property
    def in_use(self) -> bool:
        """Synchronized, collecting and distributing: the port carries traffic."""
        return self.synchronization and self.collecting and self.distributing

    def flags(self) -> list[str]:
        return [name for n, name in enumerate(self._BITS) if self._bit(n)]

    def __str__(self) -> str:
        return f"{self.value} ({', '.join(self.flags()) or 'no bits set'})"


@dataclass
class LacpPduDetails:
    """One ``details actor lacp pdu:`` or ``details partner lacp pdu:`` block.

    ``key`` is the actor's ``port key`` or the partner's ``oper key``. Edited copies may carry only
    some fields, hence every field is optional.
    """

    system_priority: int | None = None
    system_mac: str | None = None
    key: int | None = None
    port_priority: int | None = None
    port_number: int | None = None
    port_state: LacpPortState | None = None
    lines: dict[str, str] = field(default_factory=dict)


@dataclass
class AggregatorInfo:
    """The ``Active Aggregator Info:`` block."""

    aggregator_id: int | None = None
    number_of_ports: int | None = None
    actor_key: int | None = None
    partner_key: int | None = None
    partner_mac: str | None = None
    lines: dict[str, str] = field(default_factory=dict)


@dataclass
class Ad8023Info:
    """The ``802.3ad info`` block of the bond section."""

    lacp_active: bool | None = None
    lacp_rate: str | None = None
    min_links: int | None = None
    ad_select: str | None = None
    system_priority: int | None = None
    system_mac: str | None = None
    active_aggregator: AggregatorInfo | None = None
    no_active_aggregator: bool = False
    lines: dict[str, str] = field(default_factory=dict)


@dataclass
class ProcSlave:
    """One ``Slave Interface:`` section. ``None`` means the kernel did not print the field."""

    name: str
    mii_status: str | None = None
    speed_mbps: int | None = None  # None also when the kernel says Unknown
    duplex: str | None = None  # "full" | "half" | "unknown"
    link_failure_count: int | None = None
    permanent_hw_addr: str | None = None
    queue_id: int | None = None
    aggregator_id: int | None = None  # None when absent or "N/A"
    actor_churn_state: str | None = None
    partner_churn_state: str | None = None
    actor_churned_count: int | None = None
    partner_churned_count: int | None = None
    actor_lacp: LacpPduDetails | None = None
    partner_lacp: LacpPduDetails | None = None
    extra: dict[str, str] = field(default_factory=dict)
    lines: dict[str, str] = field(default_factory=dict)

    @property
    def mii_up(self) -> bool:
        return self.mii_status == "up"


@dataclass
class ProcBonding:
    """The whole file. ``lines`` maps a field name to the exact line it came from (evidence)."""

    driver_version: str
    mode: str  # short name: balance-rr, active-backup, balance-xor, broadcast, 802.3ad, ...
    mode_description: str
    fail_over_mac: str | None = None
    xmit_hash_policy: str | None = None
    primary_slave: str | None = None  # None when the kernel prints "None" or omits the line
    primary_reselect: str | None = None
    active_slave: str | None = None
    mii_status: str | None = None
    miimon: int | None = None
    updelay_ms: int | None = None
    downdelay_ms: int | None = None
    peer_notification_delay_ms: int | None = None
    arp_interval: int = 0  # the kernel prints the ARP lines only when arp_interval > 0
    arp_missed_max: int | None = None
    arp_targets: tuple[str, ...] = ()
    ns_targets: tuple[str, ...] = ()
    ad_info: Ad8023Info | None = None
    slaves: list[ProcSlave] = field(default_factory=list)
    extra: dict[str, str] = field(default_factory=dict)
    lines: dict[str, str] = field(default_factory=dict)

    def slave(self, name: str) -> ProcSlave | None:
        for s in self.slaves:
            if s.name == name:
                return s
        return None

    @property
    def uses_primary(self) -> bool:
        """Modes where the kernel prints Primary/Currently Active Slave."""
        return self.mode in ("active-backup", "balance-tlb", "balance-alb")

    @property
    def lacp_privileged(self) -> bool | None:
        """Whether the 802.3ad block shows what only a CAP_NET_ADMIN reader sees.

        None when the bond is not 802.3ad. False when neither the aggregator lines, the system
        lines nor any ``details ... lacp pdu`` block is present: the kernel hid them, so partner
        information cannot be checked from this file.
        """
        if self.ad_info is None:
            return None
        ad = self.ad_info
        if ad.active_aggregator or ad.no_active_aggregator or ad.system_priority is not None:
            return True
        if ad.system_mac is not None:
            return True
        return any(s.actor_lacp or s.partner_lacp for s in self.slaves)


class _Parser:
    def __init__(self, text: str, source: str) -> None:
        self.source = source
        self.lines = text.splitlines()
        self.n = 0
        self.line = ""

    def fail(self, message: str) -> ParseError:
        return ParseError(self.source, self.n, self.line, message)

    def int_(self, value: str, what: str) -> int:
        try:
            return int(value.strip())
        except ValueError:
            raise self.fail(f"{what} is not a number") from None

    def mac(self, value: str, what: str) -> str:
        value = value.strip()
        if not re.fullmatch(r"[0-9A-Za-z]{1,2}(?::[0-9A-Za-z]{1,2})*|", value):
            raise self.fail(f"{what} is not a hardware address")
        return value.lower()

    def parse(self) -> ProcBonding:
        first = next(((i, ln) for i, ln in enumerate(self.lines) if ln.strip()), None)
        if first is None:
            raise ParseError(self.source, 0, "", "empty input: not a /proc/net/bonding file")
        self.n, self.line = first[0] + 1, first[1]
        if not first[1].startswith(_DRIVER_PREFIX):
            raise self.fail(
                "not a /proc/net/bonding file: the first line must be "
                f"'{_DRIVER_PREFIX} <version>'"
            )
        bond = ProcBonding(driver_version=first[1][len(_DRIVER_PREFIX):].strip(), mode="",
                           mode_description="")
        bond.lines["driver"] = first[1]
        section = "bond"  # bond | ad | agg | slave | actor | partner
        slave: ProcSlave | None = None
        pdu: LacpPduDetails | None = None

        for idx in range(first[0] + 1, len(self.lines)):
            self.n, raw = idx + 1, self.lines[idx]
            self.line = raw
            stripped = raw.strip()
            if not stripped:
                if section in ("agg", "ad"):
                    section = "ad"
                continue
            key, sep, value = stripped.partition(":")
            key = key.rstrip()
            if not sep or not key:
                if stripped == "802.3ad info":
                    if slave is not None or bond.ad_info is not None:
                        raise self.fail("'802.3ad info' out of place")
                    bond.ad_info = Ad8023Info(lines={"header": raw})
                    section = "ad"
                elif stripped.startswith("bond ") and stripped.endswith(" has no active aggregator"):
                    if bond.ad_info is None or slave is not None:
                        raise self.fail("'has no active aggregator' outside the 802.3ad block")
                    bond.ad_info.no_active_aggregator = True
                    bond.ad_info.lines["no_active_aggregator"] = raw
                else:
                    # A bare word (edited copies have them). Keep it; never guess what it meant.
                    (slave.extra if slave else bond.extra)[f"line {self.n}"] = stripped
                continue
            value = value.strip()
            if key == "Ethernet Channel Bonding Driver":
                raise self.fail("a second driver line: more than one bond in one input")

            if key == "Slave Interface":
                if not value:
                    raise self.fail("slave interface without a name")
                slave = ProcSlave(name=value, lines={"name": raw})
                bond.slaves.append(slave)
                section, pdu = "slave", None
                continue

            if slave is None:
                if section in ("ad", "agg") and bond.ad_info is not None:
                    section = self._ad_line(bond.ad_info, key, value, raw, section)
                    continue
                self._bond_line(bond, key, value, raw)
                continue

            if key in ("details actor lacp pdu", "details partner lacp pdu"):
                pdu = LacpPduDetails(lines={"header": raw})
                if key.startswith("details actor"):
                    slave.actor_lacp, section = pdu, "actor"
                else:
                    slave.partner_lacp, section = pdu, "partner"
                continue
            if section in ("actor", "partner") and pdu is not None and key[:1].islower():
                self._pdu_line(pdu, key, value, raw)
                continue
            section, pdu = "slave", None
            self._slave_line(slave, key, value, raw)

        if not bond.mode:
            raise ParseError(self.source, 0, "", "no 'Bonding Mode:' line: not a complete "
                             "/proc/net/bonding file")
        return bond

    def _bond_line(self, bond: ProcBonding, key: str, value: str, raw: str) -> None:
        if key == "Bonding Mode":
            mode_desc = value
            fom = re.search(r"\s*\(fail_over_mac ([^)]*)\)\s*$", value)
            if fom:
                bond.fail_over_mac = fom.group(1)
                mode_desc = value[: fom.start()]
            for desc, short in MODE_NAMES.items():
                if mode_desc.startswith(desc):
                    bond.mode, bond.mode_description = short, desc
                    break
            else:
                raise self.fail("unknown bonding mode")
            bond.lines["mode"] = raw
        elif key == "Transmit Hash Policy":
            bond.xmit_hash_policy = re.sub(r"\s*\(\d+\)$", "", value)
            bond.lines["xmit_hash_policy"] = raw
        elif key == "Primary Slave":
            m = re.fullmatch(r"(\S+)(?:\s+\(primary_reselect (\S+)\))?", value)
            if not m:
                raise self.fail("cannot read the primary slave")
            bond.primary_slave = None if m.group(1) == "None" else m.group(1)
            bond.primary_reselect = m.group(2)
            bond.lines["primary_slave"] = raw
        elif key == "Currently Active Slave":
            bond.active_slave = None if value in ("None", "") else value
            bond.lines["active_slave"] = raw
        elif key == "MII Status":
            bond.mii_status = self._mii(value)
            bond.lines["mii_status"] = raw
        elif key == "MII Polling Interval (ms)":
            bond.miimon = self.int_(value, key)
            bond.lines["miimon"] = raw
        elif key == "Up Delay (ms)":
            bond.updelay_ms = self.int_(value, key)
            bond.lines["updelay"] = raw
        elif key == "Down Delay (ms)":
            bond.downdelay_ms = self.int_(value, key)
            bond.lines["downdelay"] = raw
        elif key == "Peer Notification Delay (ms)":
            bond.peer_notification_delay_ms = self.int_(value, key)
            bond.lines["peer_notification_delay"] = raw
        elif key == "ARP Polling Interval (ms)":
            bond.arp_interval = self.int_(value, key)
            bond.lines["arp_interval"] = raw
        elif key == "ARP Missed Max":
            bond.arp_missed_max = self.int_(value, key)
            bond.lines["arp_missed_max"] = raw
        elif key.startswith("ARP IP target/s"):
            bond.arp_targets = tuple(t.strip() for t in value.split(",") if t.strip())
            for t in bond.arp_targets:
                if not re.fullmatch(r"\d{1,3}(?:\.\d{1,3}){3}", t):
                    raise self.fail(f"ARP target {t!r} is not an IPv4 address")
            bond.lines["arp_targets"] = raw
        elif key.startswith("NS IPv6 target/s"):
            # The key itself contains colons ("xx::xx form"); re-split on the closing paren.
            _, _, rest = raw.partition("form):")
            bond.ns_targets = tuple(t.strip() for t in rest.split(",") if t.strip())
            bond.lines["ns_targets"] = raw
        else:
            bond.extra[key] = value
            bond.lines[f"extra:{key}"] = raw

    def _ad_line(self, ad: Ad8023Info, key: str, value: str, raw: str, section: str) -> str:
        if key == "Active Aggregator Info":
            ad.active_aggregator = AggregatorInfo(lines={"header": raw})
            ad.lines["active_aggregator"] = raw
            return "agg"
        agg = ad.active_aggregator if section == "agg" else None
        if agg is not None:
            if key == "Aggregator ID":
                agg.aggregator_id = self.int_(value, key)
            elif key == "Number of ports":
                agg.number_of_ports = self.int_(value, key)
            elif key == "Actor Key":
                agg.actor_key = self.int_(value, key)
            elif key == "Partner Key":
                agg.partner_key = self.int_(value, key)
            elif key == "Partner Mac Address":
                agg.partner_mac = self.mac(value, key)
            else:
                ad.lines[f"extra:{key}"] = raw
                return "agg"
            agg.lines[key] = raw
            return "agg"
        if key == "LACP active":
            if value not in ("on", "off"):
                raise self.fail("LACP active must be on or off")
            ad.lacp_active = value == "on"
        elif key == "LACP rate":
            ad.lacp_rate = value
        elif key == "Min links":
            ad.min_links = self.int_(value, key)
        elif key == "Aggregator selection policy (ad_select)":
            ad.ad_select = value
        elif key == "System priority":
            ad.system_priority = self.int_(value, key)
        elif key == "System MAC address":
            ad.system_mac = self.mac(value, key)
        else:
            ad.lines[f"extra:{key}"] = raw
            return "ad"
        ad.lines[key] = raw
        return "ad"

    def _slave_line(self, s: ProcSlave, key: str, value: str, raw: str) -> None:
        if key == "MII Status":
            s.mii_status = self._mii(value)
            s.lines["mii_status"] = raw
        elif key == "Speed":
            m = re.fullmatch(r"(-?\d+) Mbps", value)
            if m:
                speed = int(m.group(1))
                s.speed_mbps = None if speed in _UNKNOWN_SPEEDS else speed
            elif value.lower() == "unknown":
                s.speed_mbps = None
            else:
                raise self.fail("speed is neither '<n> Mbps' nor 'Unknown'")
            s.lines["speed"] = raw
        elif key == "Duplex":
            if value.lower() not in ("full", "half", "unknown"):
                raise self.fail("duplex is neither full, half nor Unknown")
            s.duplex = value.lower()
            s.lines["duplex"] = raw
        elif key == "Link Failure Count":
            s.link_failure_count = self.int_(value, key)
            s.lines["link_failure_count"] = raw
        elif key == "Permanent HW addr":
            s.permanent_hw_addr = value or None  # emptied by some published copies
            s.lines["permanent_hw_addr"] = raw
        elif key == "Slave queue ID":
            s.queue_id = self.int_(value, key)
            s.lines["queue_id"] = raw
        elif key == "Aggregator ID":
            s.aggregator_id = None if value == "N/A" else self.int_(value, key)
            s.lines["aggregator_id"] = raw
        elif key in ("Actor Churn State", "Partner Churn State"):
            state = value.lower()
            if key.startswith("Actor"):
                s.actor_churn_state = state
                s.lines["actor_churn_state"] = raw
            else:
                s.partner_churn_state = state
                s.lines["partner_churn_state"] = raw
        elif key == "Actor Churned Count":
            s.actor_churned_count = self.int_(value, key)
            s.lines["actor_churned_count"] = raw
        elif key == "Partner Churned Count":
            s.partner_churned_count = self.int_(value, key)
            s.lines["partner_churned_count"] = raw
        else:
            s.extra[key] = value
            s.lines[f"extra:{key}"] = raw

    def _pdu_line(self, pdu: LacpPduDetails, key: str, value: str, raw: str) -> None:
        if key == "system priority":
            pdu.system_priority = self.int_(value, key)
        elif key == "system mac address":
            pdu.system_mac = self.mac(value, key)
        elif key in ("port key", "oper key"):
            pdu.key = self.int_(value, key)
            key = "key"
        elif key == "port priority":
            pdu.port_priority = self.int_(value, key)
        elif key == "port number":
            pdu.port_number = self.int_(value, key)
        elif key == "port state":
            state = self.int_(value, key)
            if not 0 <= state <= 255:
                raise self.fail("LACP port state must be one byte (0-255)")
            pdu.port_state = LacpPortState(state)
        pdu.lines[key] = raw

    def _mii(self, value: str) -> str:
        v = value.lower()
        if v not in _MII_STATES:
            raise self.fail("MII status must be up, down, going down, going back or unknown")
        return v


def parse_proc_bonding(text: str, source: str = SOURCE) -> ProcBonding:
    """Parse the text of ``/proc/net/bonding/<bond>``.

    ``source`` names the input in errors (a file name or the command). Raises :class:`ParseError`
    when the text is not such a file or a known field holds an impossible value.
    """
    return _Parser(text, source).parse()
