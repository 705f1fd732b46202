"""The failover test: cut the active port, measure what the bond does, always restore the port.

Public API::

    await plan_failover_test(session, bond, method, *, host=None, target=None, hold_seconds=3.0,
                             allow_unmonitored=False, manual_timeout=300.0, token=None,
                             state=None, tools=None) -> FailoverPlan
    await read_failover_tools(session)     # what ``tools=`` takes: one reading for every method
    plan.render_text(); plan.plan (runbooks.plan.Plan); plan.plan_hash (== plan.plan.digest);
    plan.preconditions (list of Check)
    await run_failover_test(plan, *, pool, actor, maintenance_window_confirmed,
                            link_control=None, notify=None, incident_store=None,
                            incident_id=None) -> FailoverReport   (sends exactly plan.plan's commands)
    analyze(collected, *, host, bond, method, cut_slave, primary, ...) -> FailoverReport   (pure)

Measurement happens on the host, with what a minimal host has: POSIX sh, iproute2 and iputils
ping (``failover.sampler_script`` in remediation.yaml; no python3, no perl). Nothing polls: the
sampler records ``ip -d -ts monitor link`` (every carrier change, every port's bonding state and
MII status, the bond's active port and its "BONDING FAILOVER" event, stamped by ip with the
realtime clock when it received them), ``ping -D -O -i 0.01`` through the bond to the gateway
(the realtime stamp of every reply; send time = reply - RTT), and the kernel log from /dev/kmsg
with the kernel's own microsecond stamps (the bonding driver's "link status definitely down" and
"making interface the new active one"). The kernel log's clock is not the realtime clock; marks
written into it between the creation of two files (shell builtins, no fork in between) give the
offset from the files' mtimes, to within about one kernel tick (1/HZ), and the report states that
uncertainty (see :func:`runbooks.bonding.failover_parse.clock_alignment`).

What the report takes from where:
- the cut (carrier lost) and the restore: the port's netlink events (realtime);
- detection (cut -> the bond's new active port): the kernel's "making interface X the new active
  one", aligned to realtime, when the kernel log and the marks are available; else the bond's
  netlink failover event. Both are reported; the lab tests check they agree;
- the kernel's own figure, "definitely down" -> "new active", on the kernel clock (microseconds);
- outage: from the pings (send time of the last answered echo before the gap to the first one
  after, less one interval), resolution one echo spacing (about 10 ms);
- the primary's return: kernel log, netlink or the final sysfs state.
Sampler and ping run detached, write under /run and stop by themselves, so a cut that also takes
the bot's SSH session (SSH through the bond, no monitoring) cannot lose the measurement.

Methods of cutting the active port:
- ``lab``: the lab VM's switch port, through QEMU's QMP ``set_link`` (``link_control``); the host
  sees carrier loss exactly as with a switch port shutdown.
- ``manual``: the operator shuts the switch port; bondbot waits for the host to see the carrier
  go, measures, and waits for the operator to bring it back.
- ``host``: ``ip link set dev PORT down`` on the host, run detached together with the ``up`` (so the
  port comes back even if the cut takes the bot's SSH session). Caveat (HOST_METHOD_CAVEAT): an
  administrative down, not a carrier loss at the switch, so it does not prove that a dead switch
  port is detected.

Pass: the bond moved to another port, the outage seen by the pings is at most 300 ms (the seed:
200-300 ms), and the primary port is active again after the restore.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from runbooks.bonding.bond_options import (
    RemediationError,
    action_steps,
    render,
    render_text,
    sh_c,
    validate_interface,
    validate_ipv4_target,
)
from runbooks.bonding.bond_state import BondState, read_bond_state, session_host_name
from runbooks.bonding.failover_parse import (
    KernelLine,
    clock_alignment,
    parse_kmsg,
    parse_link_events,
    parse_pings,
    parse_sections,
    parse_state_line,
)
from runbooks.bonding.records import Check, IncidentRecorder
from runbooks.plan import Plan, PlanStep

__all__ = [
    "METHODS",
    "PASS_OUTAGE_MS",
    "REQUIRED_TOOLS",
    "FailoverPlan",
    "FailoverReport",
    "plan_failover_test",
    "read_failover_tools",
    "run_failover_test",
    "analyze",
    "tool_checks",
    "sampler_script",
]

METHODS = ("lab", "manual", "host")
PASS_OUTAGE_MS = 300.0
PING_INTERVAL = 0.01
HOST_METHOD_CAVEAT = (
    "method host takes the port down on the host ('ip link set down'), it does not lose carrier at "
    "the switch: the kernel, the bonding driver and NetworkManager learn of it through another path "
    "(an administrative down), so a pass does not prove that a dead switch port or cable is "
    "detected; use --method lab or manual for that."
)
#: What the sampler cannot run without, and the package that has it on Debian / RHEL.
REQUIRED_TOOLS = {
    "ip": "iproute2 / iproute",
    "ping": "iputils-ping / iputils",
    "cat": "coreutils",
    "sed": "sed",
    "sleep": "coreutils",
    "mkdir": "coreutils",
    "rm": "coreutils",
}


def sampler_script() -> str:
    """The sampler (POSIX sh) as templated in remediation.yaml."""
    return render("failover.sampler_script")


def tool_checks(output: str) -> list[Check]:
    """Preconditions from ``failover.tools``' output: what the host has, what is missing.

    Required: iproute2's ``ip`` (``-ts monitor``), iputils ``ping`` (``-D -O``; busybox's has
    neither), cat/sed/sleep/mkdir/rm, and a way to run detached (systemd-run, else nohup). Optional,
    reported but not required: the kernel log (/dev/kmsg readable and writable) and ``date -r FILE +%N``,
    without which the kernel's own stamps cannot be aligned with the pings.
    """
    have: dict[str, str | None] = {}
    info: dict[str, str] = {}
    for line in output.splitlines():
        key, _, rest = line.partition(" ")
        if key == "tool":
            name, _, path = rest.partition(" ")
            have[name] = None if path.strip() in ("", "MISSING") else path.strip()
        elif key:
            info[key] = rest.strip()
    missing = [f"{t} ({pkg})" for t, pkg in REQUIRED_TOOLS.items() if not have.get(t)]
    wrong = []
    if have.get("ip") and "iproute2" not in info.get("ipver", ""):
        wrong.append(f"ip is not iproute2's (ip -V: {info.get('ipver', '')[:60]!r}); "
                     "the test needs 'ip -ts monitor link'")
    if have.get("ping") and "iputils" not in info.get("pingver", ""):
        wrong.append(f"ping is not iputils' (ping -V: {info.get('pingver', '')[:60]!r}); the test needs "
                     "'ping -D -O' (iputils-ping)")
    detach = have.get("systemd-run") or have.get("nohup")
    if not detach:
        missing.append("systemd-run or nohup (to run detached)")
    checks = [Check("host tools", not missing and not wrong,
                    "; ".join(([f"missing: {', '.join(missing)}"] if missing else []) + wrong)
                    or "sh, ip (iproute2), ping (iputils), cat, sed, sleep; detached with "
                       + ("systemd-run" if have.get("systemd-run") else "setsid nohup" if have.get("setsid") else "nohup"))]
    notes = []
    if info.get("kmsg") != "readable":
        notes.append("/dev/kmsg not readable: no kernel log lines")
    if info.get("kmsgw") != "writable":
        notes.append("/dev/kmsg not writable: the kernel log cannot be aligned with the pings")
    if not re.match(r"^\d+\.\d{9}$", info.get("date", "")):
        notes.append("date -r FILE +%s.%N prints no nanoseconds: the kernel log cannot be aligned with the pings")
    checks.append(Check("kernel log (optional)", True,
                        "; ".join(notes) + "; detection from netlink events only" if notes else
                        "/dev/kmsg readable and writable, date -r +%N: the bonding driver's own stamps are used"))
    return checks


@dataclass(frozen=True)
class FailoverPlan:
    """The failover test as the bonding runbook sees it: a :class:`runbooks.plan.Plan` (``plan``:
    every step shown, hashed and run, the sampler script, token and deadline included) and the
    state it was planned from. ``plan_hash`` is ``plan.digest``; ``commands`` and ``restore`` are
    views of ``plan.steps``."""

    host: str
    bond: str
    method: Literal["lab", "manual", "host"]
    cut_slave: str
    primary: str | None
    target: str
    hold_seconds: float
    preconditions: tuple[Check, ...]
    caveat: str | None
    allow_unmonitored: bool
    plan: Plan
    token: str = ""  # the run's workdir, unit names and kernel-log tag; fixed when the plan is made
    manual_timeout: float = 300.0
    max_seconds: int = 0  # the sampler's ping deadline

    @property
    def plan_hash(self) -> str:
        return self.plan.digest

    @property
    def ready(self) -> bool:
        return all(c.ok for c in self.preconditions)

    @property
    def commands(self) -> tuple[tuple[str, str], ...]:
        """(purpose, command) of every step but the restore; an operator step as its instruction."""
        return tuple((s.purpose, _shown(s)) for s in self.plan.steps if s.name != "restore")

    @property
    def restore(self) -> str:
        step = self.plan.step("restore")
        return _shown(step) if step is not None else ""

    def command(self, name: str) -> str:
        """The command of the step called ``name`` (what the run sends), from the plan."""
        step = self.plan.step(name)
        if step is None or not step.command:
            raise RemediationError(f"the failover plan has no command step {name!r}")
        return step.command

    def to_json(self) -> dict[str, Any]:
        return {
            "host": self.host, "bond": self.bond, "method": self.method, "cut_slave": self.cut_slave,
            "primary": self.primary, "target": self.target, "hold_seconds": self.hold_seconds,
            "preconditions": [c.to_json() for c in self.preconditions], "commands": [list(c) for c in self.commands],
            "restore": self.restore, "caveat": self.caveat, "allow_unmonitored": self.allow_unmonitored,
            "token": self.token, "manual_timeout": self.manual_timeout, "max_seconds": self.max_seconds,
            "plan_hash": self.plan_hash, "plan": self.plan.to_dict(),
        }

    def render_text(self) -> str:
        out = [f"Failover test {self.plan_hash[:12]}: {self.host} {self.bond}, method {self.method}: cut the "
               f"active port {self.cut_slave} for {self.hold_seconds:g} s, ping {self.target} through {self.bond}"]
        out.append("Preconditions:")
        out += [f"  [{'ok' if c.ok else 'NO'}] {c.name}: {c.detail}" for c in self.preconditions]
        if self.caveat:
            out.append(f"Caveat: {self.caveat}")
        out.append("Commands, in order:")
        out += [f"  - {cmd}\n      # {why}" for why, cmd in self.commands]
        out.append(f"Restore (always, also on error or timeout): {self.restore}")
        out.append(f"Pass: failover to another port, outage <= {PASS_OUTAGE_MS:g} ms, primary active again.")
        return "\n".join(out)


def _shown(step: PlanStep) -> str:
    return step.command or f"(operator) {step.instruction}"


@dataclass
class FailoverReport:
    """The measurement. Times are in ms from the cut (the port's carrier loss as netlink reported it)."""

    host: str
    bond: str
    method: str
    cut_slave: str
    primary: str | None
    passed: bool
    verdict: str
    failed_over: bool = False
    failed_over_to: str | None = None
    detection_ms: float | None = None  # cut -> the bond's new active port (source: detection_source)
    detection_source: str | None = None  # "kernel log" | "netlink"
    detection_netlink_ms: float | None = None  # cut -> the bond's BONDING FAILOVER netlink event
    detection_kernel_ms: float | None = None  # cut -> kernel's "new active one", aligned to realtime
    mii_down_ms: float | None = None  # cut -> the driver marked the port down (kernel log, else netlink)
    kernel_down_to_active_ms: float | None = None  # "definitely down" -> "new active", kernel clock
    kernel_lines: list[str] = field(default_factory=list)  # the bonding driver's lines of this run
    clock_alignment_ms: float | None = None  # +/- between the kernel log's clock and realtime
    clock_drift_ms: float | None = None  # offset change between the marks before and after the cut
    outage_ms: float | None = None  # longest run of unanswered echoes (send times), less one interval
    outage_resolution_ms: float | None = None  # the echoes' actual spacing
    outage_lower_ms: float | None = None  # lost echoes x interval: the outage is at least this
    detection_uncertainty_ms: float | None = None  # +/- of detection_ms (clock alignment and the cut's time)
    lost_pings: int | None = None
    pings_sent: int | None = None
    ping_interval_ms: float = PING_INTERVAL * 1000
    cut_seen: bool = False
    cut_source: str | None = None  # where the cut's time is from: netlink | pings (...) | kernel log (NIC driver)
    cut_uncertainty_ms: float | None = None
    restored: bool = False
    primary_returned: bool | None = None
    primary_return_ms: float | None = None  # link back -> primary active again
    timeline: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    caveat: str | None = None
    raw: dict[str, str] = field(default_factory=dict, repr=False)  # what the sampler wrote, as read

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("raw")
        return data

    def render_text(self) -> str:
        def ms(v: float | None, digits: int = 0) -> str:
            return "-" if v is None else f"{v:.{digits}f} ms"

        out = [f"{'PASS' if self.passed else 'FAIL'}: {self.verdict}"]
        out.append(f"  cut {self.cut_slave} ({self.method}); failover: "
                   + (f"yes, to {self.failed_over_to} after {ms(self.detection_ms, 1)} ({self.detection_source}"
                      + (f", +/-{self.detection_uncertainty_ms:.1f} ms" if self.detection_uncertainty_ms else "") + ")"
                      if self.failed_over else "NO"))
        if self.detection_netlink_ms is not None and self.detection_source != "netlink":
            out.append(f"  netlink: the bond's failover event received {ms(self.detection_netlink_ms, 1)} after the cut")
        if self.kernel_down_to_active_ms is not None:
            out.append(f"  kernel: 'link status definitely down' -> 'new active one' "
                       f"{ms(self.kernel_down_to_active_ms, 3)} (kernel clock, 1 us)")
        out.append(f"  outage {ms(self.outage_ms)} (resolution {ms(self.outage_resolution_ms, 1)}); lost pings "
                   f"{self.lost_pings} of {self.pings_sent} (every {self.ping_interval_ms:g} ms)")
        out.append(f"  link restored: {'yes' if self.restored else 'NO'}; primary {self.primary or '-'} back: "
                   f"{'yes' if self.primary_returned else 'no' if self.primary_returned is False else '-'}"
                   + (f" after {ms(self.primary_return_ms)}" if self.primary_return_ms is not None else ""))
        res = ["netlink and ping stamps 1 us (when received)"]
        if self.cut_source and self.cut_source != "netlink":
            res.append(f"cut from {self.cut_source}"
                       + (f" +/-{self.cut_uncertainty_ms:.1f} ms" if self.cut_uncertainty_ms is not None else ""))
        if self.clock_alignment_ms is not None:
            res.append(f"kernel log aligned to them within +/-{self.clock_alignment_ms:.1f} ms")
        out.append("  measured on the host: " + "; ".join(res))
        out += [f"  note: {n}" for n in self.notes]
        if self.caveat:
            out.append(f"  caveat: {self.caveat}")
        out += [f"  error: {e}" for e in self.errors]
        return "\n".join(out)


_DOWN_RES = (r"^{bond}: \(slave (\S+)\): link status definitely down", r"^{bond}: link status definitely down for interface ([^\s,]+)")
_ACTIVE_RES = (r"^{bond}: \(slave (\S+)\): making interface the new active one", r"^{bond}: making interface (\S+) the new active one")
_UP_RES = (r"^{bond}: \(slave (\S+)\): link status definitely up", r"^{bond}: link status definitely up for interface ([^\s,]+)")


def _kernel_events(lines: list[KernelLine], bond: str) -> list[tuple[str, str, KernelLine]]:
    """The bonding driver's lines about ``bond``: (kind, port, line); kinds down / up / active / none."""
    b = re.escape(bond)
    found: list[tuple[str, str, KernelLine]] = []
    for line in lines:
        for kind, pats in (("down", _DOWN_RES), ("active", _ACTIVE_RES), ("up", _UP_RES)):
            for pat in pats:
                m = re.match(pat.format(bond=b), line.text)
                if m:
                    found.append((kind, m.group(1), line))
                    break
            else:
                continue
            break
        else:
            if re.match(rf"^{b}: now running without any active interface", line.text):
                found.append(("none", "", line))
    return found


def _nic_link_down(text: str, port: str) -> bool:
    """A NIC driver's own carrier-loss line for ``port`` (e1000e/igb/ixgbe "NIC Link is Down",
    mlx5 "Link down", tg3 "Link is down"); never the bonding driver's "link status" lines."""
    return bool(re.search(rf"(^|[\s:]){re.escape(port)}(:|\s).*\blink (is )?down\b", text, re.I)) \
        and "link status" not in text


_RAW_RECORD_CAP = 512 * 1024  # a 2 s cut at 10 ms pings collects ~60 KB; a manual test's wait, more


def _cut_from_pings(pings: Any, t_netlink: float, interval: float) -> tuple[float, float] | None:
    """Where the echoes put the carrier loss: after the last answered echo's send time, before the
    first lost echo was reported unanswered (``ping -O``), for the run of lost echoes around the cut."""
    seqs = sorted(pings.send_times)
    for a, b in itertools.pairwise(seqs):
        if b - a > 1 and pings.send_times[a] <= t_netlink + 1.0 and pings.send_times[b] >= t_netlink - 1.0:
            lost_reported = pings.no_answer.get(a + 1)
            if lost_reported is None:
                return None
            return pings.send_times[a], max(pings.send_times[a], lost_reported - interval)
    return None


def _cut_without_loss(pings: Any, t_failover: float) -> tuple[float, float] | None:
    """Where the cut was when no echo was lost around the failover: after the send time of the last
    echo sent before it (that echo was answered, so it left through a live port), and before the
    failover itself. ``None`` unless that echo and the next one were both answered."""
    before = [seq for seq, t in pings.send_times.items() if t < t_failover]
    if not before:
        return None
    last = max(before, key=lambda seq: pings.send_times[seq])
    if last + 1 not in pings.send_times or last + 1 in pings.no_answer or last in pings.no_answer:
        return None  # an echo went unanswered here: the lost-echo bracket applies, or nothing does
    return pings.send_times[last], t_failover


def analyze(collected: str, *, host: str, bond: str, method: str, cut_slave: str, primary: str | None,
            errors: list[str] | None = None, tag: str | None = None,
            interval: float = PING_INTERVAL) -> FailoverReport:
    """Turn what the sampler wrote (``failover.read``'s output) into the report (pure).

    Tested on output recorded from the lab VMs (tests/remediation/data/).
    """
    sec = parse_sections(collected)
    events = parse_link_events(sec.get("link.txt", ""))
    pings = parse_pings(sec.get("ping.txt", ""))
    kernel = parse_kmsg(sec.get("kmsg", ""))
    _, end_ports = parse_state_line(sec.get("end", ""))
    end_state, _ = parse_state_line(sec.get("end", ""))
    align, why_not = clock_alignment(sec.get("marks", ""), kernel, tag)
    report = FailoverReport(host=host, bond=bond, method=method, cut_slave=cut_slave, primary=primary,
                            passed=False, verdict="", errors=list(errors or []),
                            caveat=HOST_METHOD_CAVEAT if method == "host" else None,
                            ping_interval_ms=interval * 1000)
    if "kmsg" not in sec or not kernel:
        report.notes.append("no kernel log was read (/dev/kmsg): detection from netlink events only")
    elif align is None:
        report.notes.append(f"kernel log not aligned: {why_not}; its figures are on the kernel clock only")
    else:
        report.clock_alignment_ms = round(align.uncertainty * 1000, 3)
        if align.drift is not None:
            report.clock_drift_ms = round(align.drift * 1000, 3)

    port_events = [e for e in events if e.ifname == cut_slave]
    cut = next((e for e in port_events if not e.carrier), None)
    restore = next((e for e in port_events if cut and e.t > cut.t and e.carrier and "UP" in e.flags), None)
    report.cut_seen = cut is not None
    kev = _kernel_events(kernel, bond)
    report.kernel_lines = [f"[{line.t:.6f}] {line.text}" for _, _, line in kev]
    if cut is None:
        report.verdict = f"the host never saw {cut_slave} go down: nothing was measured"
        report.restored = True
        return report
    report.restored = restore is not None
    t0, report.cut_source = cut.t, "netlink"
    # ip stamps the carrier loss when it reads it, which under load is late: a NIC driver's own
    # kernel line, or echoes already lost before that stamp, put it earlier.
    nic = next((ln for ln in kernel if _nic_link_down(ln.text, cut_slave)), None)
    if nic is not None and align is not None:
        t0, report.cut_source = align.to_realtime(nic.t), "kernel log (NIC driver)"
        report.cut_uncertainty_ms = report.clock_alignment_ms
    else:
        bracket = _cut_from_pings(pings, cut.t, interval)
        if bracket is not None and bracket[1] < cut.t:
            lo, hi = bracket
            t0, report.cut_source = (lo + hi) / 2, "pings (the netlink stamp came later)"
            report.cut_uncertainty_ms = round((hi - lo) / 2 * 1000, 1)
            report.notes.append(f"echoes were lost up to {(cut.t - hi) * 1000:.0f} ms before ip reported the carrier "
                                f"loss: the cut is placed between the last answered and the first lost echo")

    # The kernel's lines: the first "definitely down" of the cut port, the first new active port after it.
    k_down = next((ln for kind, port, ln in kev if kind == "down" and port == cut_slave), None)
    k_active = next((ln for kind, port, ln in kev if kind == "active" and port != cut_slave
                     and (k_down is None or ln.t >= k_down.t)), None)
    cut_unknown = False
    if report.cut_source == "netlink" and align is not None and k_active is not None \
            and align.to_realtime(k_active.t) <= cut.t + align.uncertainty:
        # The kernel failed over before ip stamped the carrier loss: ip reads netlink in batches
        # under load, so that stamp is late by an unknown amount and a detection measured from
        # it would read as ~0 or negative. Place the cut from the echoes, or measure no detection.
        k_active_rt = align.to_realtime(k_active.t)
        bracket = _cut_from_pings(pings, cut.t, interval)
        if bracket is not None and bracket[0] < k_active_rt:
            lo, hi = bracket[0], min(bracket[1], k_active_rt)
            t0, report.cut_source = (lo + hi) / 2, "pings (ip read the carrier loss after the failover)"
            report.cut_uncertainty_ms = round((hi - lo) / 2 * 1000, 1)
        elif (bracket := _cut_without_loss(pings, k_active_rt)) is not None:
            lo, hi = bracket
            t0, report.cut_source = (lo + hi) / 2, "pings (no echo lost: the cut came after the last echo sent)"
            report.cut_uncertainty_ms = round((hi - lo) / 2 * 1000, 1)
        else:
            cut_unknown = True
        report.notes.append("the kernel logged the failover before ip reported the carrier loss: ip's stamp "
                            "is late, so the cut is " + ("placed between the last answered and the first lost echo"
                                                          if not cut_unknown else
                                                          "not known and the detection time is not measured"))

    def rel(t: float) -> float:
        return round((t - t0) * 1000, 3)

    # The bond's own netlink events: failover (first new active port while the cut lasts), return.
    bond_events = [e for e in events if e.ifname == bond and e.active_slave]
    nl_failover = next((e for e in bond_events if e.t >= t0 and e.active_slave != cut_slave
                        and (restore is None or e.t <= restore.t)), None)
    nl_mii_down = next((e for e in port_events if e.t >= t0 and (e.mii_status or "").upper() == "DOWN"), None)
    if nl_failover is not None and not cut_unknown:
        report.detection_netlink_ms = rel(nl_failover.t)
    if k_down is not None and k_active is not None:
        report.kernel_down_to_active_ms = round((k_active.t - k_down.t) * 1000, 3)
    k_active_port = next((port for kind, port, ln in kev if ln is k_active), None) if k_active else None
    if nic is not None and k_active is not None and k_active.t >= nic.t:
        report.detection_kernel_ms = round((k_active.t - nic.t) * 1000, 3)  # one clock: the kernel's
    elif align is not None and k_active is not None and not cut_unknown:
        report.detection_kernel_ms = rel(align.to_realtime(k_active.t))
    if report.detection_kernel_ms is not None:
        report.failed_over, report.failed_over_to = True, k_active_port
        report.detection_ms, report.detection_source = report.detection_kernel_ms, "kernel log"
    elif nl_failover is not None:
        report.failed_over, report.failed_over_to = True, nl_failover.active_slave
        report.detection_ms, report.detection_source = report.detection_netlink_ms, "netlink"
    elif k_active is not None and (k_down is not None or cut_unknown):
        report.failed_over, report.failed_over_to = True, k_active_port
        report.notes.append("failover seen in the kernel log only; its time could not be related to the cut")
    if report.detection_ms is not None:
        parts = [report.cut_uncertainty_ms or 0.0]
        if report.detection_source == "kernel log" and nic is None:
            parts.append(report.clock_alignment_ms or 0.0)
        report.detection_uncertainty_ms = round(sum(parts), 1) or None
    if report.detection_kernel_ms is not None and report.detection_netlink_ms is not None \
            and report.clock_alignment_ms is not None \
            and report.detection_kernel_ms > report.detection_netlink_ms + report.clock_alignment_ms + 1.0:
        # ip stamps an event when it reads it, never before the kernel made it.
        report.notes.append(f"the kernel log puts the failover {report.detection_kernel_ms:.1f} ms after the cut, "
                            f"netlink at {report.detection_netlink_ms:.1f} ms: the clocks' alignment is off")
    if cut_unknown:
        pass  # no cut time to measure from
    elif align is not None and k_down is not None:
        report.mii_down_ms = rel(align.to_realtime(k_down.t))
    elif nl_mii_down is not None:
        report.mii_down_ms = rel(nl_mii_down.t)

    if restore is not None and primary:
        back = [e.t for e in bond_events if e.t >= restore.t and e.active_slave == primary]
        if align is not None:
            back += [align.to_realtime(ln.t) for kind, port, ln in kev
                     if kind == "active" and port == primary and align.to_realtime(ln.t) >= restore.t - 0.05]
        if back:
            report.primary_returned = True
            report.primary_return_ms = round((min(back) - restore.t) * 1000, 1)
        elif end_state.get("active") == primary:
            report.primary_returned = True
            report.notes.append(f"the primary's return is from the final sysfs state (active={primary})")
        else:
            report.primary_returned = False

    # The timeline: netlink events of the bond and its ports, and the driver's lines, from the cut.
    timeline: list[dict[str, Any]] = []
    for e in events:
        if e.ifname != bond and e.ifname != cut_slave and not e.slave_state:
            continue
        what = (f"{e.ifname}: active {e.active_slave}" + (f" ({e.event})" if e.event else "")) if e.ifname == bond \
            else f"{e.ifname}: {'carrier' if e.carrier else 'no carrier'}, {e.slave_state or '-'}, mii {e.mii_status or '-'}"
        timeline.append({"t_ms": rel(e.t), "source": "netlink", "event": what})
    for _kind, _port, ln in kev:
        entry: dict[str, Any] = {"source": "kernel", "event": ln.text, "kernel_t": round(ln.t, 6)}
        entry["t_ms"] = rel(align.to_realtime(ln.t)) if align is not None else None
        timeline.append(entry)
    timeline.sort(key=lambda d: (d["t_ms"] is None, d["t_ms"] or 0.0))
    report.timeline = timeline[:80]

    if pings.send_times:
        seqs = sorted(pings.send_times)
        sends = pings.send_times
        report.pings_sent = pings.transmitted if pings.transmitted is not None else seqs[-1]
        first, last = seqs[0], seqs[-1]
        report.lost_pings = (last - first + 1) - len(seqs)
        spacing = pings.spacing()
        report.outage_resolution_ms = round(max(interval, spacing or interval) * 1000, 1)
        # For each run of unanswered echoes: from the last answered echo's send time to the next
        # answered one's, less one interval. Gaps without a lost echo are not outages (a guest that
        # was merely not scheduled sent nothing and lost nothing).
        outage, worst = 0.0, None
        for a, b in itertools.pairwise(seqs):
            if b - a > 1 and sends[b] - sends[a] - interval > outage:
                outage, worst = sends[b] - sends[a] - interval, (a, b)
        if worst is not None:
            # ping -O reports an echo unanswered just before it sends the next one: those stamps are
            # the lost echoes' send times. A long pause between them means ping itself was not
            # running; the connection's state during that pause was not measured.
            a, b = worst
            times = [sends[a], *(pings.no_answer[n] for n in range(a + 1, b) if n in pings.no_answer), sends[b]]
            pause = max(y - x for x, y in itertools.pairwise(times)) - interval
            report.outage_lower_ms = round((b - a - 1) * interval * 1000, 1)
            if pause > 3 * max(interval, spacing or interval):
                report.notes.append(f"ping sent nothing for {pause * 1000:.0f} ms during the outage (not scheduled): "
                                    f"the outage is at most {outage * 1000:.0f} ms and at least "
                                    f"{report.outage_lower_ms:.0f} ms ({b - a - 1} echoes lost)")
        if report.pings_sent is not None and report.pings_sent > last + 1 and sends[last] >= t0 - 1.0 \
                and (restore is None or sends[last] < restore.t):
            # Nothing answered after the cut until ping stopped.
            outage = max(outage, (restore.t if restore else sends[last]) - sends[last])
            report.lost_pings += report.pings_sent - last - 1
        report.outage_ms = round(max(0.0, outage) * 1000, 1)
    else:
        report.errors.append("no ping replies at all: the target did not answer before the cut either")

    problems = []
    if not report.failed_over:
        problems.append(f"no failover: {bond} kept the dead port {cut_slave} active")
    if report.outage_ms is None or report.outage_ms > PASS_OUTAGE_MS:
        problems.append(f"outage {report.outage_ms} ms > {PASS_OUTAGE_MS:g} ms")
    if not report.restored:
        problems.append(f"{cut_slave} did not come back")
    if primary and report.restored and not report.primary_returned:
        problems.append(f"the primary {primary} did not become active again")
    report.passed = not problems and not report.errors
    report.verdict = ("; ".join(problems + report.errors) if not report.passed else
                      f"failed over from {cut_slave} to {report.failed_over_to} "
                      + (f"in {report.detection_ms:.1f} ms ({report.detection_source})"
                         if report.detection_ms is not None else "(detection time not measured)")
                      + f", outage {report.outage_ms:.0f} ms, primary back")
    return report


async def read_failover_tools(session: Any) -> Any:
    """Which tools the test needs are on the host (the command's result; ``tool_checks`` reads it)."""
    return await session.run(sh_c(render("failover.tools")), timeout=20)


async def plan_failover_test(session: Any, bond: str, method: str, *, host: str | None = None,
                             target: str | None = None, hold_seconds: float = 3.0,
                             allow_unmonitored: bool = False, manual_timeout: float = 300.0,
                             token: str | None = None, state: BondState | None = None,
                             tools: Any = None) -> FailoverPlan:
    """Read the bond and the host's tools; say what the test will do and whether it can.

    The steps are remediation.yaml's ``failover_test:`` list for ``method``, rendered with every
    value the run uses: the sampler script, the ping deadline (``hold_seconds`` + 40 s, plus
    ``manual_timeout`` for the manual method) and ``token`` (hex; a fresh random one when not
    given: pass a shown plan's token to plan again and compare digests).

    ``state`` (``read_bond_state``) and ``tools`` (:func:`read_failover_tools`): readings made just
    now, so that one reading serves every method (and the fix) offered together; each one not
    given is read here. The same readings give the same plan.
    """
    if method not in METHODS:
        raise RemediationError(f"unknown failover test method {method!r}: one of {', '.join(METHODS)}")
    if not 0.5 <= hold_seconds <= 60:
        raise RemediationError("hold time must be 0.5-60 seconds")
    if not 1 <= manual_timeout <= 3600:
        raise RemediationError("the manual method's wait must be 1-3600 seconds")
    token = token or secrets.token_hex(4)
    if not re.fullmatch(r"[0-9a-f]{4,32}", token):
        raise RemediationError(f"invalid failover test token {token!r}: hex digits")
    bond = validate_interface(bond, "bond")
    name = session_host_name(session, host)
    if state is not None and state.bond != bond:
        raise RemediationError(f"the state given is of {state.bond}, not {bond}")
    if state is None and tools is None:
        state, tools = await asyncio.gather(read_bond_state(session, bond), read_failover_tools(session))
    elif tools is None:
        tools = await read_failover_tools(session)
    if state is None:
        state = await read_bond_state(session, bond)
    target = validate_ipv4_target(target or state.nm_gateway or state.route_gateway or "")
    cut = state.active_slave
    primary = state.runtime.get("primary") or None
    up = [s for s, st in state.slaves.items() if st == "up"]
    if tools.exit_status != 0:
        tool_list = [Check("host tools", False, f"could not list the host's tools: {tools.failure_reason}")]
    else:
        tool_list = tool_checks(tools.stdout)
    checks = [
        *tool_list,
        Check("link monitoring on", state.monitoring or allow_unmonitored,
              f"miimon={state.miimon} arp_interval={state.arp_interval}"
              + ("" if state.monitoring else (" (allowed: the test will show the outage; the port comes back after "
                                              f"{hold_seconds:g} s)" if allow_unmonitored else
                                              " - without a monitor the bond cannot fail over; fix first, or "
                                              "--allow-unmonitored to demonstrate the outage"))),
        Check("two or more ports up", len(up) >= 2, ", ".join(f"{s}: {st}" for s, st in state.slaves.items())),
        Check("an active port to cut", cut is not None, f"active port {cut or 'none'}"),
    ]
    cut_name = validate_interface(cut, "port") if cut else "none"
    max_seconds = int(hold_seconds + (manual_timeout if method == "manual" else 0) + 40)
    workdir = render("failover.workdir", token=token)
    values: dict[str, Any] = {
        "bond": bond, "target": target, "token": token, "tag": token, "workdir": workdir, "slave": cut_name,
        "interval": PING_INTERVAL, "max_seconds": max_seconds, "hold": hold_seconds,
        "timeout": int(manual_timeout),
        "sampler_unit": render("failover.sampler_unit", token=token), "sampler_script": sampler_script(),
        "cut_unit": render("failover.cut_unit", token=token),
        "cut_script": render("failover.host_cut_script", slave=cut_name, hold=hold_seconds),
    }
    values["cut_text"] = render_text("failover.manual_cut", slave=cut_name, timeout=int(manual_timeout))
    values["restore_text"] = render_text("failover.manual_restore", slave=cut_name)
    steps = action_steps("failover_test", values, {method})
    caveat = HOST_METHOD_CAVEAT if method == "host" else None
    params: list[tuple[str, str]] = [
        ("method", method), ("cut", cut_name), ("primary", primary or ""), ("target", target),
        ("hold_seconds", f"{hold_seconds:g}"), ("max_seconds", str(max_seconds)), ("token", token),
        ("allow_unmonitored", "yes" if allow_unmonitored else "no"),
    ]
    if method == "manual":
        params.append(("manual_timeout", f"{manual_timeout:g}"))
    params += [("precondition", f"{c.name}: {'ok' if c.ok else 'NO'}: {c.detail}") for c in checks]
    if caveat:
        params.append(("caveat", caveat))
    plan = Plan(runbook="bonding", action="failover-test", host=name, subject=(("bond", bond),),
                title=(f"cut the active port {cut_name} for {hold_seconds:g} s while pinging {target} through "
                       f"{bond}; pass: failover, outage <= {PASS_OUTAGE_MS:g} ms, primary back"),
                steps=steps, params=tuple(params),
                context={"preconditions": [c.to_json() for c in checks], "ready": all(c.ok for c in checks)})
    return FailoverPlan(host=name, bond=bond, method=method, cut_slave=cut_name, primary=primary,  # type: ignore[arg-type]
                        target=target, hold_seconds=hold_seconds, preconditions=tuple(checks), caveat=caveat,
                        allow_unmonitored=allow_unmonitored, plan=plan, token=token,
                        manual_timeout=manual_timeout, max_seconds=max_seconds)


LinkControl = Callable[[str, bool], Awaitable[None] | None]


async def run_failover_test(plan: FailoverPlan, *, pool: Any, actor: str, maintenance_window_confirmed: bool,
                            link_control: LinkControl | None = None,
                            notify: Callable[[str], Awaitable[None] | None] | None = None,
                            incident_store: Any = None, incident_id: str | None = None,
                            manual_timeout: float | None = None) -> FailoverReport:
    """Run an approved failover test. The port is restored in every case (``finally``).

    Every command it sends is a step of ``plan.plan`` (the token, the sampler script and its
    deadline were fixed when the plan was made); the manual method waits ``plan.manual_timeout``.
    ``manual_timeout``, if given, must be the plan's (it is shown and hashed with it).
    """
    rec = IncidentRecorder(incident_store, incident_id, actor)

    def refuse(reason: str) -> FailoverReport:
        rec.event("refusal", {"reason": reason, "plan_hash": plan.plan_hash})
        return FailoverReport(plan.host, plan.bond, plan.method, plan.cut_slave, plan.primary, False,
                              f"not run: {reason}", errors=[reason])

    if not maintenance_window_confirmed:
        return refuse("the operator has not confirmed a maintenance window")
    if plan.method == "lab" and link_control is None:
        return refuse("method lab needs the lab's link control (QMP)")
    if manual_timeout is not None and manual_timeout != plan.manual_timeout:
        return refuse(f"the manual wait {manual_timeout:g} s is not the plan's {plan.manual_timeout:g} s")
    manual_timeout = plan.manual_timeout
    session = pool.session(plan.host, budget=plan.hold_seconds + manual_timeout + 300)
    # Preconditions again: the state may have changed since the plan.
    now = await plan_failover_test(session, plan.bond, plan.method, host=plan.host, target=plan.target,
                                   hold_seconds=plan.hold_seconds, allow_unmonitored=plan.allow_unmonitored,
                                   manual_timeout=plan.manual_timeout, token=plan.token)
    if now.plan_hash != plan.plan_hash:
        failed = [f"{c.name}: {c.detail}" for c in now.preconditions if not c.ok]
        return refuse("the bond changed since the plan was made" + (f" ({'; '.join(failed)})" if failed else
                                                                     f" (active port now {now.cut_slave})"))
    if not now.ready:
        return refuse("; ".join(f"{c.name}: {c.detail}" for c in now.preconditions if not c.ok))

    async def say(text: str) -> None:
        if notify is not None:
            r = notify(text)
            if asyncio.iscoroutine(r):
                await r

    async def run(purpose: str, command: str, timeout: float = 20.0) -> Any:
        res = await session.run(command, timeout=timeout)
        rec.event("command", {"purpose": purpose, "command": command, "exit_status": res.exit_status,
                              "stdout": res.stdout[-4000:], "stderr": res.stderr[-2000:]})
        return res

    token = plan.token
    start_cmd, read_cmd, cleanup_cmd = (plan.command(n) for n in ("start_sampler", "collect", "cleanup"))
    probe_cmd, stop_cmd, finished_cmd = (plan.command(n) for n in ("probe", "stop", "finished"))
    errors: list[str] = []
    rec.event("note", {"text": f"failover test {plan.plan_hash[:12]} starting: {plan.method} cut of {plan.cut_slave}"})
    res = await run("start the sampler", start_cmd)
    if res.exit_status != 0:
        await run("clean up", cleanup_cmd)
        return refuse(f"could not start the sampler: {res.failure_reason}")
    # Wait until the sampler runs and the target answers through the bond.
    ready = False
    deadline = time.monotonic() + 20  # ping's output is block-buffered in a file: allow for it
    while not ready and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        r = await session.run(probe_cmd, timeout=10)
        m = re.search(r"^replies (\d+)", r.stdout, re.M)
        ready = r.stdout.startswith("ready ") and m is not None and int(m.group(1)) > 0
    if not ready:
        await session.run(stop_cmd, timeout=10)
        await asyncio.sleep(1)
        await run("clean up", cleanup_cmd)
        return refuse(f"the target {plan.target} does not answer pings through {plan.bond} before the cut")
    await asyncio.sleep(1.0)  # a baseline before the cut

    cut_done = False
    try:
        if plan.method == "lab":
            assert link_control is not None
            cut_done = True
            r = link_control(plan.cut_slave, False)
            if asyncio.iscoroutine(r):
                await r
            await asyncio.sleep(plan.hold_seconds)
        elif plan.method == "host":
            cut_done = True
            await run("cut and restore on the host, detached", plan.command("cut"))
            await asyncio.sleep(plan.hold_seconds + 0.5)
        else:
            await say(f"Shut the switch port of {plan.host} {plan.cut_slave} now. bondbot is measuring and "
                      f"waits up to {manual_timeout:.0f} s for the carrier to go.")
            seen = await _wait_oper(session, plan, want_up=False, timeout=manual_timeout)
            if not seen:
                errors.append(f"the carrier of {plan.cut_slave} never went down within {manual_timeout:.0f} s")
            else:
                cut_done = True
                await asyncio.sleep(plan.hold_seconds)
                await say(f"Re-enable the switch port of {plan.host} {plan.cut_slave} now.")
    except BaseException as exc:  # noqa: BLE001 - recorded; the restore below always runs
        errors.append(f"during the cut: {exc or type(exc).__name__}")
        if not isinstance(exc, Exception):
            raise
    finally:
        restored = await _restore(plan, session, link_control, cut_done, manual_timeout, errors, run)
        rec.event("note", {"text": f"{plan.cut_slave} restore: {'done' if restored else 'NOT confirmed'}"})
    await asyncio.sleep(3.0)  # let the primary come back and ping recover
    await session.run(stop_cmd, timeout=10)
    collected = ""
    finished = False
    for _ in range(30):
        f = await session.run(finished_cmd, timeout=10)
        if f.exit_status == 0:
            finished = True
            break
        await asyncio.sleep(0.5)
    r = await session.run(read_cmd, timeout=30)
    collected = r.stdout
    # The raw measurement goes on the record, so every figure of the report can be re-derived.
    rec.event("command", {"purpose": "collect the measurements", "command": read_cmd,
                          "exit_status": r.exit_status, "stdout": collected[-_RAW_RECORD_CAP:],
                          "stderr": r.stderr[-2000:], "truncated": len(collected) > _RAW_RECORD_CAP})
    await run("clean up", cleanup_cmd)
    if not finished:
        errors.append("the sampler did not finish")
    report = analyze(collected, host=plan.host, bond=plan.bond, method=plan.method,
                     cut_slave=plan.cut_slave, primary=plan.primary, errors=errors, tag=token)
    report.raw = {"collected": collected}
    rec.event("verification", {"failover_test": {k: v for k, v in report.to_json().items() if k != "timeline"},
                               "timeline_head": report.timeline[:40]})
    return report


async def _wait_oper(session: Any, plan: FailoverPlan, *, want_up: bool, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    command = plan.command("operstate")
    while time.monotonic() < deadline:
        r = await session.run(command, timeout=10)
        if (r.stdout.strip() == "up") == want_up and r.exit_status == 0:
            return True
        await asyncio.sleep(0.2)
    return False


async def _restore(plan: FailoverPlan, session: Any, link_control: LinkControl | None,
                   cut_done: bool, manual_timeout: float, errors: list[str], run: Any) -> bool:
    """Bring the port back; shielded so that even a cancelled test restores it."""

    async def restore() -> bool:
        if plan.method == "lab" and link_control is not None:
            for attempt in range(3):
                try:
                    r = link_control(plan.cut_slave, True)
                    if asyncio.iscoroutine(r):
                        await r
                    break
                except Exception as exc:  # noqa: BLE001
                    errors.append(f"restore attempt {attempt + 1} failed: {exc}")
                    await asyncio.sleep(1)
            return await _wait_oper(session, plan, want_up=True, timeout=30)
        if plan.method == "host":
            up = await _wait_oper(session, plan, want_up=True, timeout=plan.hold_seconds + 10)
            if not up:
                await run("restore the port", plan.command("restore"))
                up = await _wait_oper(session, plan, want_up=True, timeout=10)
            return up
        if not cut_done:
            return True
        up = await _wait_oper(session, plan, want_up=True, timeout=manual_timeout)
        if not up:
            errors.append(f"{plan.cut_slave}'s carrier is still down: re-enable the switch port")
        return up

    try:
        return await asyncio.shield(restore())
    except Exception as exc:  # noqa: BLE001
        errors.append(f"restore: {exc}")
        return False
