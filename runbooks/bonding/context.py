"""The parsed view of one triage that the diagnosis rules read.

Parsing happens once, here; rules only read typed fields and build evidence from the exact lines
the parsers kept, each named by the command that printed it (``SourceOutput.command``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from runbooks.findings import Evidence

from .outputs import SourceOutput, TriageOutputs
from .parsers import (
    BondDetails,
    EthtoolInfo,
    IpLink,
    NmcliConnection,
    ParseError,
    ProcBonding,
    ProcSlave,
    parse_ethtool,
    parse_ip_details,
    parse_ip_link,
    parse_nmcli,
    parse_proc_bonding,
)
from .parsers.ip_link import find_link

__all__ = ["TriageContext", "build_context"]


@dataclass
class TriageContext:
    """Everything the rules may look at. Any source may be missing (``None`` / absent key)."""

    bond: str
    proc: ProcBonding | None = None
    proc_cmd: str = ""
    details: BondDetails | None = None
    details_cmd: str = ""
    links: dict[str, IpLink] = field(default_factory=dict)
    link_cmds: dict[str, str] = field(default_factory=dict)
    ethtool: dict[str, EthtoolInfo] = field(default_factory=dict)
    ethtool_cmds: dict[str, str] = field(default_factory=dict)
    nmcli: NmcliConnection | None = None
    nmcli_cmd: str = ""
    failed_steps: dict[str, str] = field(default_factory=dict)
    parse_errors: dict[str, ParseError] = field(default_factory=dict)  # command -> error

    # -- evidence -------------------------------------------------------------------------
    def ev_proc(self, *lines: str | None) -> list[Evidence]:
        return [Evidence(self.proc_cmd, ln) for ln in lines if ln]

    def ev_details(self, *keys: str) -> list[Evidence]:
        if self.details is None:
            return []
        return [Evidence(self.details_cmd, self.details.lines[k]) for k in keys
                if k in self.details.lines]

    def ev_nmcli(self, key: str) -> list[Evidence]:
        if self.nmcli is None or key not in self.nmcli.lines:
            return []
        return [Evidence(self.nmcli_cmd, self.nmcli.lines[key])]

    def ev_slave(self, slave: ProcSlave, *keys: str) -> list[Evidence]:
        """The slave's ``Slave Interface`` line, then the named field lines."""
        out = self.ev_proc(slave.lines.get("name"))
        out += self.ev_proc(*(slave.lines.get(k) for k in keys))
        return out

    # -- the bond's effective configuration, from the best source available ---------------
    @property
    def mode(self) -> str:
        if self.proc is not None:
            return self.proc.mode
        if self.details is not None and self.details.mode:
            return self.details.mode
        if self.nmcli is not None and self.nmcli.bond_options.get("mode"):
            return self.nmcli.bond_options["mode"]
        return "unknown"

    @property
    def miimon(self) -> int | None:
        if self.proc is not None and self.proc.miimon is not None:
            return self.proc.miimon
        if self.details is not None:
            return self.details.miimon
        return None

    @property
    def arp_interval(self) -> int | None:
        if self.proc is not None:
            return self.proc.arp_interval
        if self.details is not None:
            return self.details.arp_interval
        return None

    @property
    def arp_targets(self) -> tuple[str, ...]:
        """IPv4 ARP targets and IPv6 NS targets: the ARP monitor probes both."""
        if self.proc is not None:
            return self.proc.arp_targets + self.proc.ns_targets
        if self.details is not None:
            ns = self.details.options.get("ns_ip6_target") or ()
            return self.details.arp_ip_targets + tuple(t for t in ns if isinstance(t, str))
        return ()

    def carrier_lost(self, name: str) -> list[Evidence]:
        """Evidence that the NIC itself has no carrier: ip link NO-CARRIER, ethtool 'no'."""
        out: list[Evidence] = []
        link = self.links.get(name)
        if link is not None and link.no_carrier:
            out.append(Evidence(self.link_cmds[name], link.lines["header"]))
        eth = self.ethtool.get(name)
        if eth is not None and eth.link_detected is False:
            out.append(Evidence(self.ethtool_cmds[name], eth.lines["Link detected"]))
        return out


def _parse(output: SourceOutput | None, parse, ctx: TriageContext, strict: bool):
    if output is None:
        return None
    try:
        return parse(output.text, output.command)
    except ParseError as exc:
        if strict:
            raise
        ctx.parse_errors[output.command] = exc
        return None


def build_context(outputs: TriageOutputs, *, strict: bool = False) -> TriageContext:
    """Parse every output. With ``strict`` the first :class:`ParseError` is raised; otherwise
    an unparseable output is recorded in ``parse_errors`` and left out (the diagnosis says so)."""
    ctx = TriageContext(bond=outputs.bond, failed_steps=dict(outputs.failed_steps))
    ctx.proc = _parse(outputs.proc_bonding, parse_proc_bonding, ctx, strict)
    if ctx.proc is not None:
        ctx.proc_cmd = outputs.proc_bonding.command  # type: ignore[union-attr]
    ctx.details = _parse(outputs.ip_details_json,
                         lambda text, src: parse_ip_details(text, src, bond=outputs.bond),
                         ctx, strict)
    if ctx.details is not None:
        ctx.details_cmd = outputs.ip_details_json.command  # type: ignore[union-attr]
    for name, out in outputs.ip_link.items():
        links = _parse(out, parse_ip_link, ctx, strict)
        link = find_link(links, name) if links else None
        if link is not None:
            ctx.links[name] = link
            ctx.link_cmds[name] = out.command
    for name, out in outputs.ethtool.items():
        info = _parse(out, parse_ethtool, ctx, strict)
        if info is not None:
            ctx.ethtool[name] = info
            ctx.ethtool_cmds[name] = out.command
    ctx.nmcli = _parse(outputs.nmcli, parse_nmcli, ctx, strict)
    if ctx.nmcli is not None:
        ctx.nmcli_cmd = outputs.nmcli.command  # type: ignore[union-attr]
    return ctx
