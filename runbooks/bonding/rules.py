"""Diagnosis rules for a bond, separate from the parsers and from the texts.

Each rule reads a :class:`~runbooks.bonding.context.TriageContext` and yields :class:`Hit` s: a
stable code's occurrence with its severity, its evidence lines and the facts its template needs.
The human texts live in ``templates/<CODE>.j2``; :mod:`runbooks.bonding.diagnosis` renders them.

``root_rank`` orders the codes that can explain an incident: the diagnosis picks the most severe
hit, then the highest rank. ``None`` means the code never is the root cause (configuration hygiene,
reminders, what could not be checked). Codes are stable: add new ones, never rename.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from runbooks.findings import Evidence, Severity

from .context import TriageContext

__all__ = ["FLAPPING_THRESHOLD", "RULES", "SLOW_MIIMON_MS", "Hit", "Rule", "rule", "run_rules"]

#: Link failures since the port was enslaved from which a port is called flapping.
FLAPPING_THRESHOLD = 10
#: MII polling slower than this (ms) delays failover noticeably (the seed recommends 100).
SLOW_MIIMON_MS = 500
SLOW_ARP_INTERVAL_MS = 1000
_SWITCH_MODES = ("balance-rr", "balance-xor", "broadcast", "802.3ad")
_MAC_RE = re.compile(r"[0-9a-f]{2}(?::[0-9a-f]{2}){5}")
_ZERO_MAC = "00:00:00:00:00:00"


@dataclass
class Hit:
    """One occurrence of a code."""

    severity: Severity
    evidence: list[Evidence] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Rule:
    code: str
    root_rank: int | None
    check: Callable[[TriageContext], Iterator[Hit]]


RULES: list[Rule] = []


def rule(code: str, root_rank: int | None = None):
    """Register a rule function under a stable code."""

    def register(fn: Callable[[TriageContext], Iterator[Hit]]):
        RULES.append(Rule(code, root_rank, fn))
        return fn

    return register


def _dedupe(evidence: list[Evidence]) -> list[Evidence]:
    seen: set[Evidence] = set()
    out = []
    for e in evidence:
        if e not in seen:
            seen.add(e)
            out.append(e)
    return out


# -- what the fix looks like ---------------------------------------------------------------

def _fix_facts(ctx: TriageContext) -> dict[str, Any]:
    """The commands that enable MII monitoring while keeping every other bond option.

    The NetworkManager profile is the one that owns the bond (found by device, read by UUID), named
    by its real ``connection.id``, shell-quoted: ``bond-uplink0``, ``'Bond connection 1'``. Every
    host-sourced value in a command shown to people is quoted (the option string too), so a
    copied command does what it says. Without a profile (NetworkManager absent or not managing the
    bond) the commands are the runtime change through sysfs, and the text says where to persist it.
    """
    if ctx.nmcli is not None and ctx.nmcli.bond_options:
        options = dict(ctx.nmcli.bond_options)
    else:
        options = {"mode": ctx.mode}
        primary = ctx.proc.primary_slave if ctx.proc else (ctx.details.primary if ctx.details
                                                            else None)
        if primary:
            options["primary"] = primary
    for arp_key in ("arp_interval", "arp_ip_target", "arp_validate", "arp_all_targets",
                    "arp_missed_max", "ns_ip6_target"):
        options.pop(arp_key, None)  # miimon and arp_interval are mutually exclusive
    options["miimon"] = "100"
    opts = ",".join(f"{k}={v}" for k, v in options.items())
    from runbooks.bonding.bond_options import render

    name = ctx.nmcli.id if ctx.nmcli is not None and ctx.nmcli.id else None
    commands: list[str] = []
    if name is not None:
        commands = [render("finding.nm_modify", profile_name=name, options_text=opts),
                    render("finding.nm_bounce", profile_name=name)]
    else:
        if ctx.arp_interval:
            commands.append(render("finding.sysfs_arp_off", bond_name=ctx.bond))
        commands.append(render("finding.sysfs_miimon", bond_name=ctx.bond))
    return {
        "connection": name,
        "connection_q": render("finding.profile_word", profile_name=name) if name is not None else None,
        "fix_options": opts,
        "fix_commands": commands,
    }


# -- bond-level rules ---------------------------------------------------------------------

@rule("NO_SLAVES", root_rank=110)
def no_slaves(ctx: TriageContext) -> Iterator[Hit]:
    if ctx.proc is not None and not ctx.proc.slaves:
        yield Hit(Severity.CRITICAL, ctx.ev_proc(ctx.proc.lines.get("mode"),
                                                 ctx.proc.lines.get("mii_status")))


@rule("NO_LINK_MONITORING", root_rank=100)
def no_link_monitoring(ctx: TriageContext) -> Iterator[Hit]:
    miimon, arp = ctx.miimon, ctx.arp_interval
    if miimon is None or miimon != 0:
        return
    arp_works = bool(arp) and bool(ctx.arp_targets)
    if arp_works:
        return
    ev: list[Evidence] = []
    if ctx.proc is not None:
        ev += ctx.ev_proc(ctx.proc.lines.get("mode"), ctx.proc.lines.get("miimon"),
                          ctx.proc.lines.get("arp_interval"), ctx.proc.lines.get("arp_targets"))
    ev += ctx.ev_details("miimon", "arp_interval")
    ev += ctx.ev_nmcli("bond.options")
    nm_opts = ctx.nmcli.bond_options if ctx.nmcli else {}
    active = _active_slave(ctx)
    dead_active = bool(active and ctx.carrier_lost(active))
    if dead_active and active:
        ev += ctx.carrier_lost(active)
    yield Hit(Severity.CRITICAL, ev, {
        "arp_interval": arp or 0,
        "nmcli_miimon": nm_opts.get("miimon"),
        "nmcli_has_options": bool(nm_opts),
        "active_slave": active,
        "dead_active": dead_active,
        **_fix_facts(ctx),
    })


@rule("BOND_DOWN", root_rank=80)
def bond_down(ctx: TriageContext) -> Iterator[Hit]:
    ev: list[Evidence] = []
    if ctx.proc is not None and ctx.proc.mii_status == "down":
        ev += ctx.ev_proc(ctx.proc.lines.get("mii_status"))
    d = ctx.details
    admin_down = False
    if d is not None and (not d.lower_up or d.operstate == "DOWN"):
        admin_down = not d.admin_up
        ev += ctx.ev_details("flags", "operstate")
    if ev:
        yield Hit(Severity.CRITICAL, ev, {"admin_down": admin_down})


@rule("MIIMON_AND_ARP_BOTH_SET", root_rank=60)
def miimon_and_arp(ctx: TriageContext) -> Iterator[Hit]:
    ev: list[Evidence] = []
    if (ctx.proc is not None and (ctx.proc.miimon or 0) > 0 and ctx.proc.arp_interval > 0):
        ev += ctx.ev_proc(ctx.proc.lines.get("miimon"), ctx.proc.lines.get("arp_interval"))
    if ctx.details is not None and (ctx.details.miimon or 0) > 0 and (ctx.details.arp_interval
                                                                      or 0) > 0:
        ev += ctx.ev_details("miimon", "arp_interval")
    opts = ctx.nmcli.bond_options if ctx.nmcli else {}
    if _int(opts.get("miimon")) > 0 and _int(opts.get("arp_interval")) > 0:
        ev += ctx.ev_nmcli("bond.options")
    if ev:
        yield Hit(Severity.WARNING, ev)


def _int(value: str | None) -> int:
    try:
        return int(value) if value is not None else 0
    except ValueError:
        return 0


@rule("ARP_MONITOR_NO_TARGETS", root_rank=92)
def arp_no_targets(ctx: TriageContext) -> Iterator[Hit]:
    ev: list[Evidence] = []
    if ctx.proc is not None and ctx.proc.arp_interval > 0 and not ctx.arp_targets:
        ev += ctx.ev_proc(ctx.proc.lines.get("arp_interval"), ctx.proc.lines.get("arp_targets"))
    elif ctx.proc is None and ctx.details is not None and (ctx.details.arp_interval or 0) > 0 \
            and not ctx.details.arp_ip_targets:
        ev += ctx.ev_details("arp_interval")
    opts = ctx.nmcli.bond_options if ctx.nmcli else {}
    if _int(opts.get("arp_interval")) > 0 and not opts.get("arp_ip_target"):
        ev += ctx.ev_nmcli("bond.options")
    if ev:
        yield Hit(Severity.CRITICAL, ev)


@rule("ARP_SINGLE_TARGET", root_rank=20)
def arp_single_target(ctx: TriageContext) -> Iterator[Hit]:
    if (ctx.arp_interval or 0) > 0 and len(ctx.arp_targets) == 1:
        ev = ctx.ev_proc(ctx.proc.lines.get("arp_targets")) if ctx.proc else \
            ctx.ev_details("arp_ip_target")
        yield Hit(Severity.WARNING, ev, {"target": ctx.arp_targets[0]})


@rule("SLOW_LINK_MONITOR")
def slow_link_monitor(ctx: TriageContext) -> Iterator[Hit]:
    miimon, arp = ctx.miimon or 0, ctx.arp_interval or 0
    if miimon > SLOW_MIIMON_MS:
        ev = ctx.ev_proc(ctx.proc.lines.get("miimon")) if ctx.proc else ctx.ev_details("miimon")
        yield Hit(Severity.WARNING, ev, {"what": "miimon", "interval": miimon,
                                         "limit": SLOW_MIIMON_MS})
    if arp > SLOW_ARP_INTERVAL_MS:
        ev = ctx.ev_proc(ctx.proc.lines.get("arp_interval")) if ctx.proc else \
            ctx.ev_details("arp_interval")
        yield Hit(Severity.WARNING, ev, {"what": "arp_interval", "interval": arp,
                                         "limit": SLOW_ARP_INTERVAL_MS})


@rule("SINGLE_SLAVE", root_rank=5)
def single_slave(ctx: TriageContext) -> Iterator[Hit]:
    if ctx.proc is not None and len(ctx.proc.slaves) == 1:
        s = ctx.proc.slaves[0]
        yield Hit(Severity.WARNING, ctx.ev_slave(s), {"slave": s.name})


@rule("SWITCH_CONFIG_REQUIRED")
def switch_config_required(ctx: TriageContext) -> Iterator[Hit]:
    if ctx.mode in _SWITCH_MODES:
        ev = ctx.ev_proc(ctx.proc.lines.get("mode")) if ctx.proc else ctx.ev_details("mode")
        yield Hit(Severity.INFO, ev, {"lacp": ctx.mode == "802.3ad"})


# -- active/primary slave -----------------------------------------------------------------

def _active_slave(ctx: TriageContext) -> str | None:
    if ctx.proc is not None and ctx.proc.uses_primary:
        return ctx.proc.active_slave
    if ctx.proc is None and ctx.details is not None:
        return ctx.details.active_slave
    return None


@rule("ACTIVE_SLAVE_NO_CARRIER", root_rank=90)
def active_slave_no_carrier(ctx: TriageContext) -> Iterator[Hit]:
    name = _active_slave(ctx)
    if not name:
        return
    carrier_ev = ctx.carrier_lost(name)
    if not carrier_ev:
        return
    slave = ctx.proc.slave(name) if ctx.proc else None
    if slave is not None and not (slave.mii_up or ctx.miimon == 0):
        return  # the bond has noticed: it is SLAVE_DOWN, not a bond blind to its active port
    ev = ctx.ev_proc(ctx.proc.lines.get("active_slave")) if ctx.proc else \
        ctx.ev_details("active_slave")
    if slave is not None:
        ev += ctx.ev_slave(slave, "mii_status")
    ev += carrier_ev
    yield Hit(Severity.CRITICAL, ev, {"slave": name, "miimon": ctx.miimon})


@rule("SLAVE_NO_CARRIER", root_rank=70)
def slave_no_carrier(ctx: TriageContext) -> Iterator[Hit]:
    if ctx.proc is None:
        return
    active = _active_slave(ctx)
    for s in ctx.proc.slaves:
        if s.name == active or not (s.mii_up or ctx.miimon == 0):
            continue
        carrier_ev = ctx.carrier_lost(s.name)
        if not carrier_ev:
            continue
        carries_traffic = not ctx.proc.uses_primary
        sev = Severity.CRITICAL if carries_traffic else Severity.WARNING
        yield Hit(sev, ctx.ev_slave(s, "mii_status") + carrier_ev,
                  {"slave": s.name, "carries_traffic": carries_traffic, "miimon": ctx.miimon})


@rule("SLAVE_DOWN", root_rank=40)
def slave_down(ctx: TriageContext) -> Iterator[Hit]:
    if ctx.proc is None:
        return
    for s in ctx.proc.slaves:
        if s.mii_status in ("down", "going down", "going back"):
            yield Hit(Severity.INFO if s.mii_status == "going back" else Severity.WARNING,
                      ctx.ev_slave(s, "mii_status", "link_failure_count") + ctx.carrier_lost(s.name),
                      {"slave": s.name, "state": s.mii_status,
                       "failures": s.link_failure_count,
                       "is_active": s.name == _active_slave(ctx)})


@rule("LINK_FLAPPING", root_rank=68)
def link_flapping(ctx: TriageContext) -> Iterator[Hit]:
    if ctx.proc is None:
        return
    flapping = [s for s in ctx.proc.slaves
                if (s.link_failure_count or 0) >= FLAPPING_THRESHOLD]
    if flapping:
        ev: list[Evidence] = []
        for s in flapping:
            ev += ctx.ev_slave(s, "link_failure_count")
        yield Hit(Severity.WARNING, ev, {
            "slaves": [(s.name, s.link_failure_count) for s in flapping],
            "threshold": FLAPPING_THRESHOLD, "miimon": ctx.miimon,
        })


@rule("PRIMARY_NOT_SET")
def primary_not_set(ctx: TriageContext) -> Iterator[Hit]:
    if ctx.proc is not None and ctx.proc.mode == "active-backup" and ctx.proc.slaves \
            and ctx.proc.primary_slave is None and "primary_slave" in ctx.proc.lines:
        yield Hit(Severity.INFO, ctx.ev_proc(ctx.proc.lines["primary_slave"]))


@rule("ACTIVE_NOT_PRIMARY", root_rank=35)
def active_not_primary(ctx: TriageContext) -> Iterator[Hit]:
    p = ctx.proc
    if p is None or not p.primary_slave or p.active_slave == p.primary_slave:
        return
    primary = p.slave(p.primary_slave)
    primary_up = primary is not None and primary.mii_up
    should_return = primary_up and p.primary_reselect in (None, "always", "better")
    ev = ctx.ev_proc(p.lines.get("primary_slave"), p.lines.get("active_slave"))
    if primary is not None:
        ev += ctx.ev_slave(primary, "mii_status")
    yield Hit(Severity.WARNING if should_return else Severity.INFO, ev,
              {"primary": p.primary_slave, "active": p.active_slave, "primary_up": primary_up,
               "reselect": p.primary_reselect})


# -- port properties ----------------------------------------------------------------------

@rule("SPEED_MISMATCH", root_rank=15)
def speed_mismatch(ctx: TriageContext) -> Iterator[Hit]:
    if ctx.proc is None:
        return
    known = [s for s in ctx.proc.slaves if s.speed_mbps is not None]
    if len({s.speed_mbps for s in known}) > 1:
        ev: list[Evidence] = []
        for s in known:
            ev += ctx.ev_slave(s, "speed")
        yield Hit(Severity.WARNING, ev, {"speeds": [(s.name, s.speed_mbps) for s in known],
                                         "mode": ctx.mode})


@rule("DUPLEX_MISMATCH", root_rank=15)
def duplex_mismatch(ctx: TriageContext) -> Iterator[Hit]:
    if ctx.proc is None:
        return
    known = [s for s in ctx.proc.slaves if s.duplex in ("full", "half")]
    if len({s.duplex for s in known}) > 1 or any(s.duplex == "half" for s in known):
        ev: list[Evidence] = []
        for s in known:
            ev += ctx.ev_slave(s, "duplex")
        yield Hit(Severity.WARNING, ev, {"duplexes": [(s.name, s.duplex) for s in known]})


@rule("DUPLICATE_PERM_HWADDR")
def duplicate_perm_hwaddr(ctx: TriageContext) -> Iterator[Hit]:
    if ctx.proc is None:
        return
    by_mac: dict[str, list] = {}
    for s in ctx.proc.slaves:
        mac = (s.permanent_hw_addr or "").lower()
        if _MAC_RE.fullmatch(mac) and mac != _ZERO_MAC:
            by_mac.setdefault(mac, []).append(s)
    for mac, slaves in by_mac.items():
        if len(slaves) > 1:
            ev: list[Evidence] = []
            for s in slaves:
                ev += ctx.ev_slave(s, "permanent_hw_addr")
            yield Hit(Severity.WARNING, ev, {"mac": mac, "slaves": [s.name for s in slaves]})


# -- 802.3ad --------------------------------------------------------------------------------

def _lacp_slaves_up(ctx: TriageContext):
    return [s for s in ctx.proc.slaves if s.mii_up] if ctx.proc else []


@rule("LACP_INFO_UNPRIVILEGED")
def lacp_unprivileged(ctx: TriageContext) -> Iterator[Hit]:
    if ctx.proc is not None and ctx.proc.lacp_privileged is False:
        ad = ctx.proc.ad_info
        yield Hit(Severity.INFO, ctx.ev_proc(ad.lines.get("header") if ad else None,
                                             ad.lines.get("Aggregator selection policy (ad_select)")
                                             if ad else None))


@rule("LACP_NO_ACTIVE_AGGREGATOR", root_rank=88)
def lacp_no_active_aggregator(ctx: TriageContext) -> Iterator[Hit]:
    p = ctx.proc
    if p is None or p.ad_info is None or not p.ad_info.no_active_aggregator:
        return
    up = _lacp_slaves_up(ctx)
    if not up:
        return  # no port is up: BOND_DOWN/SLAVE_DOWN say it better
    ev = ctx.ev_proc(p.ad_info.lines.get("no_active_aggregator"))
    for s in up:
        ev += ctx.ev_slave(s, "mii_status", "aggregator_id")
    yield Hit(Severity.CRITICAL, ev, {"slaves": [s.name for s in up]})


@rule("LACP_NO_PARTNER", root_rank=85)
def lacp_no_partner(ctx: TriageContext) -> Iterator[Hit]:
    if ctx.mode != "802.3ad":
        return
    p = ctx.proc
    up = _lacp_slaves_up(ctx)
    ev: list[Evidence] = []
    defaulted: list[str] = []
    if p is not None:
        if not up and p.slaves:
            return
        agg = p.ad_info.active_aggregator if p.ad_info else None
        if agg is not None and agg.partner_mac == _ZERO_MAC:
            ev += ctx.ev_proc(agg.lines.get("Partner Mac Address"))
        for s in up:
            partner_zero = s.partner_lacp is not None and s.partner_lacp.system_mac == _ZERO_MAC
            actor_state = s.actor_lacp.port_state if s.actor_lacp else None
            is_defaulted = actor_state is not None and actor_state.defaulted
            if partner_zero or is_defaulted:
                ev += ctx.ev_proc(s.lines.get("name"))
                if partner_zero:
                    ev += ctx.ev_proc(s.partner_lacp.lines.get("header"),
                                      s.partner_lacp.lines.get("system mac address"))
                if is_defaulted:
                    ev += ctx.ev_proc(s.actor_lacp.lines.get("header"),
                                      s.actor_lacp.lines.get("port state"))
                    defaulted.append(f"{s.name} ({actor_state})")
    elif ctx.details is not None and ctx.details.ad_info.get("partner_mac") == _ZERO_MAC:
        ev += ctx.ev_details("ad_info.partner_mac", "ad_info.num_ports")
    if not ev and ctx.details is not None and ctx.details.ad_info.get("partner_mac") == _ZERO_MAC \
            and (p is None or p.lacp_privileged is False):
        ev += ctx.ev_details("ad_info.partner_mac")
    if ev:
        yield Hit(Severity.CRITICAL, ev, {"defaulted": defaulted})


@rule("LACP_AGGREGATOR_SPLIT", root_rank=75)
def lacp_aggregator_split(ctx: TriageContext) -> Iterator[Hit]:
    p = ctx.proc
    if p is None or p.mode != "802.3ad":
        return
    up = [s for s in _lacp_slaves_up(ctx) if s.aggregator_id is not None]
    agg = p.ad_info.active_aggregator if p.ad_info else None
    active_id = agg.aggregator_id if agg else None
    ids = {s.aggregator_id for s in up}
    outside = [s for s in up if active_id is not None and s.aggregator_id != active_id]
    if len(ids) > 1 or outside:
        ev = ctx.ev_proc(agg.lines.get("Aggregator ID")) if agg else []
        for s in up:
            ev += ctx.ev_slave(s, "aggregator_id")
        yield Hit(Severity.WARNING, ev, {
            "active_id": active_id,
            "ports": [(s.name, s.aggregator_id) for s in up],
        })


@rule("LACP_NOT_DISTRIBUTING", root_rank=65)
def lacp_not_distributing(ctx: TriageContext) -> Iterator[Hit]:
    p = ctx.proc
    if p is None or p.mode != "802.3ad":
        return
    agg = p.ad_info.active_aggregator if p.ad_info else None
    for s in _lacp_slaves_up(ctx):
        if agg is not None and agg.aggregator_id is not None and s.aggregator_id != agg.aggregator_id:
            continue  # outside the active aggregator: LACP_AGGREGATOR_SPLIT covers it
        state = s.actor_lacp.port_state if s.actor_lacp else None
        if state is None or state.in_use:
            continue
        partner_state = s.partner_lacp.port_state if s.partner_lacp else None
        ev = ctx.ev_proc(s.lines.get("name"), s.actor_lacp.lines.get("header"),
                         s.actor_lacp.lines.get("port state"))
        if s.partner_lacp is not None:
            ev += ctx.ev_proc(s.partner_lacp.lines.get("header"),
                              s.partner_lacp.lines.get("port state"))
        yield Hit(Severity.WARNING, ev, {"slave": s.name, "actor_state": str(state),
                                         "partner_state": str(partner_state) if partner_state
                                         is not None else None})


@rule("LACP_CHURN", root_rank=30)
def lacp_churn(ctx: TriageContext) -> Iterator[Hit]:
    p = ctx.proc
    if p is None or p.mode != "802.3ad":
        return
    for s in _lacp_slaves_up(ctx):
        states = {s.actor_churn_state, s.partner_churn_state}
        counts = (s.actor_churned_count or 0) + (s.partner_churned_count or 0)
        keys = ("actor_churn_state", "partner_churn_state", "actor_churned_count",
                "partner_churned_count")
        if "churned" in states:
            yield Hit(Severity.WARNING, ctx.ev_slave(s, *keys),
                      {"slave": s.name, "kind": "churned"})
        elif "monitoring" in states and counts > 0:
            yield Hit(Severity.WARNING, ctx.ev_slave(s, *keys),
                      {"slave": s.name, "kind": "renegotiating"})
        elif counts > 0:
            yield Hit(Severity.INFO, ctx.ev_slave(s, "actor_churned_count",
                                                  "partner_churned_count"),
                      {"slave": s.name, "kind": "past"})


# -- what could not be checked ------------------------------------------------------------

@rule("STEP_FAILED")
def step_failed(ctx: TriageContext) -> Iterator[Hit]:
    for step, reason in ctx.failed_steps.items():
        yield Hit(Severity.INFO, [], {"step": step, "reason": reason})


@rule("OUTPUT_UNPARSEABLE")
def output_unparseable(ctx: TriageContext) -> Iterator[Hit]:
    for command, err in ctx.parse_errors.items():
        ev = [Evidence(command, err.line)] if err.line else []
        yield Hit(Severity.INFO, ev, {"command": command, "error": str(err)})


def run_rules(ctx: TriageContext) -> list[tuple[Rule, Hit]]:
    """Every hit of every registered rule, evidence de-duplicated, in registry order."""
    out = []
    for r in RULES:
        for hit in r.check(ctx):
            hit.evidence = _dedupe(hit.evidence)
            out.append((r, hit))
    return out
