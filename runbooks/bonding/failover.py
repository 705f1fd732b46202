"""The failover test: cut the active port, measure what the bond does, always restore the port.

Public API::

    await plan_failover_test(session, bond, method, *, host=None, target=None, hold_seconds=3.0,
                             allow_unmonitored=False) -> FailoverPlan
    plan.render_text(); plan.plan_hash; plan.preconditions (list of Check)
    await run_failover_test(plan, *, pool, actor, maintenance_window_confirmed,
                            link_control=None, notify=None, incident_store=None,
                            incident_id=None) -> FailoverReport
    analyze(samples_text, ping_text, *, cut_slave, primary, ...) -> FailoverReport   (pure)

Measurement happens on the host, with the host's clock: a python3 sampler reads the bond's
active port and every port's operstate and MII status every few milliseconds, and runs
``ping -D`` (every reply timestamped) to the gateway through the bond. Both run detached, write
under /run and stop by themselves, so a cut that also takes the bot's SSH session (SSH through the
bond, no monitoring) cannot lose the measurement.

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
import hashlib
import json
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from runbooks.bonding.bond_options import (
    RemediationError,
    render,
    sh_c,
    validate_interface,
    validate_ipv4_target,
)
from runbooks.bonding.bond_state import read_bond_state, session_host_name
from runbooks.bonding.records import Check, IncidentRecorder

__all__ = [
    "METHODS",
    "PASS_OUTAGE_MS",
    "FailoverPlan",
    "FailoverReport",
    "plan_failover_test",
    "run_failover_test",
    "analyze",
    "SAMPLER_SCRIPT",
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

#: Runs on the host (python3 standard library only; the lab image has python3-minimal).
#: argv: bond target ping_interval max_seconds workdir. Writes samples.txt (format: parse_samples) and ping.txt.
SAMPLER_SCRIPT = r"""
import os, signal, subprocess, sys, time
bond, target, interval, max_s, wd = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), sys.argv[5]
base = "/sys/class/net/%s/bonding/" % bond
def rd(p):
    try:
        with open(p) as f:
            return f.read().strip() or "-"
    except OSError:
        return "?"
slaves = rd(base + "slaves").split()
out = open(os.path.join(wd, "samples.txt"), "w", buffering=1)
ping = subprocess.Popen(["ping", "-D", "-n", "-i", interval, "-W", "1", "-w", str(int(max_s) + 1),
                         "-I", bond, target], stdout=open(os.path.join(wd, "ping.txt"), "w"),
                        stderr=subprocess.STDOUT)
last = None; n = 0; gaps = []; prev = None; start = time.time()
out.write("ready %.6f slaves=%s primary=%s miimon=%s arp_interval=%s\n" % (
    start, ",".join(slaves), rd(base + "primary"), rd(base + "miimon"), rd(base + "arp_interval")))
try:
    while True:
        t = time.time()
        if prev is not None:
            gaps.append(t - prev)
        prev = t
        state = rd(base + "active_slave") + " " + " ".join(
            "%s:%s:%s" % (s, rd("/sys/class/net/%s/operstate" % s), rd("/sys/class/net/%s/bonding_slave/mii_status" % s))
            for s in slaves)
        n += 1
        if state != last:
            out.write("s %.6f %s\n" % (t, state))
            last = state
        if t - start > max_s or os.path.exists(os.path.join(wd, "stop")):
            break
        time.sleep(0.003)
finally:
    ping.send_signal(signal.SIGINT)
    try:
        ping.wait(5)
    except Exception:
        ping.kill()
    gaps.sort()
    g = lambda q: "%.2f" % (1000 * gaps[min(len(gaps) - 1, int(len(gaps) * q))]) if gaps else "-"
    out.write("end %.6f samples=%d median_gap_ms=%s p99_gap_ms=%s max_gap_ms=%s\n" % (
        time.time(), n, g(0.5), g(0.99), g(1.0)))
    out.close()
"""

_PING_RE = re.compile(r"^\[(\d+\.\d+)\] \d+ bytes from [^:]+: icmp_seq=(\d+)(?:.*? time=([\d.]+) ms)?")
_SENT_RE = re.compile(r"(\d+) packets transmitted, (\d+) received")


@dataclass(frozen=True)
class FailoverPlan:
    """What the operator approves: the method, the port cut, the exact commands, the preconditions."""

    host: str
    bond: str
    method: Literal["lab", "manual", "host"]
    cut_slave: str
    primary: str | None
    target: str
    hold_seconds: float
    preconditions: tuple[Check, ...]
    commands: tuple[tuple[str, str], ...]  # (purpose, command)
    restore: str
    caveat: str | None
    allow_unmonitored: bool
    plan_hash: str = ""

    @property
    def ready(self) -> bool:
        return all(c.ok for c in self.preconditions)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["preconditions"] = [c.to_json() for c in self.preconditions]
        return data

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


@dataclass
class FailoverReport:
    """The measurement. Times are in ms, measured on the host's clock."""

    host: str
    bond: str
    method: str
    cut_slave: str
    primary: str | None
    passed: bool
    verdict: str
    failed_over: bool = False
    failed_over_to: str | None = None
    detection_ms: float | None = None  # carrier lost -> bond changed its active port
    mii_down_ms: float | None = None  # carrier lost -> bonding driver marked the port down
    outage_ms: float | None = None  # longest gap in ping replies minus the ping interval
    lost_pings: int | None = None
    pings_sent: int | None = None
    ping_interval_ms: float = PING_INTERVAL * 1000
    cut_seen: bool = False
    restored: bool = False
    primary_returned: bool | None = None
    primary_return_ms: float | None = None  # link back -> primary active again
    sampler_median_ms: float | None = None
    sampler_max_ms: float | None = None
    timeline: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    caveat: str | None = None
    raw: dict[str, str] = field(default_factory=dict, repr=False)  # samples.txt and ping.txt as read

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("raw")
        return data

    def render_text(self) -> str:
        def ms(v: float | None) -> str:
            return "-" if v is None else f"{v:.0f} ms"

        out = [f"{'PASS' if self.passed else 'FAIL'}: {self.verdict}"]
        out.append(f"  cut {self.cut_slave} ({self.method}); failover: "
                   + (f"yes, to {self.failed_over_to} after {ms(self.detection_ms)}" if self.failed_over else "NO"))
        out.append(f"  outage {ms(self.outage_ms)}; lost pings {self.lost_pings} of {self.pings_sent} "
                   f"(every {self.ping_interval_ms:g} ms)")
        out.append(f"  link restored: {'yes' if self.restored else 'NO'}; primary {self.primary or '-'} back: "
                   f"{'yes' if self.primary_returned else 'no' if self.primary_returned is False else '-'}"
                   + (f" after {ms(self.primary_return_ms)}" if self.primary_return_ms is not None else ""))
        out.append(f"  sampler: every {ms(self.sampler_median_ms)} (max gap {ms(self.sampler_max_ms)})")
        if self.caveat:
            out.append(f"  caveat: {self.caveat}")
        out += [f"  error: {e}" for e in self.errors]
        return "\n".join(out)


def parse_samples(text: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The sampler's lines -> (state changes, end statistics). Format (one line each)::

        ready <t> slaves=eno1,eno2 primary=eno1 miimon=0 arp_interval=0
        s <t> <active port or -> <port>:<operstate>:<bonding mii_status> ...
        end <t> samples=<n> median_gap_ms=<ms> p99_gap_ms=<ms> max_gap_ms=<ms>
    """
    samples: list[dict[str, Any]] = []
    end: dict[str, Any] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 2:
            continue
        try:
            t = float(parts[1])
        except ValueError:
            continue
        if parts[0] == "s" and len(parts) >= 3:
            oper, mii = {}, {}
            for item in parts[3:]:
                name, _, rest = item.partition(":")
                o, _, m = rest.partition(":")
                oper[name], mii[name] = o, m
            active = parts[2] if parts[2] not in ("-", "?") else None
            samples.append({"t": t, "active": active, "oper": oper, "mii": mii})
        elif parts[0] == "end":
            end["t"] = t
            for item in parts[2:]:
                key, _, value = item.partition("=")
                try:
                    end[key] = float(value)
                except ValueError:
                    end[key] = None
    return samples, end


def analyze(samples_text: str, ping_text: str, *, host: str, bond: str, method: str, cut_slave: str,
            primary: str | None, errors: list[str] | None = None) -> FailoverReport:
    """Turn the sampler's and ping's output into the report (pure; tested on recorded output)."""
    samples, end = parse_samples(samples_text)
    replies: dict[int, float] = {}
    sent: int | None = None
    for line in ping_text.splitlines():
        m = _PING_RE.match(line)
        if m:
            # When the echo was sent: received minus round-trip time (same host clock).
            rtt = float(m.group(3)) / 1000 if m.group(3) else 0.0
            replies.setdefault(int(m.group(2)), float(m.group(1)) - rtt)
        s = _SENT_RE.search(line)
        if s:
            sent = int(s.group(1))
    report = FailoverReport(host=host, bond=bond, method=method, cut_slave=cut_slave, primary=primary,
                            passed=False, verdict="", errors=list(errors or []),
                            caveat=HOST_METHOD_CAVEAT if method == "host" else None,
                            sampler_median_ms=end.get("median_gap_ms"), sampler_max_ms=end.get("max_gap_ms"))
    cut_t = restore_t = None
    for s in samples:
        oper = s.get("oper", {}).get(cut_slave)
        if cut_t is None and oper not in ("up", None):
            cut_t = s["t"]
        elif cut_t is not None and restore_t is None and oper == "up":
            restore_t = s["t"]
    report.cut_seen = cut_t is not None
    if cut_t is None:
        report.verdict = f"the host never saw {cut_slave} go down: nothing was measured"
        report.restored = True
        return report
    report.restored = restore_t is not None
    t0 = cut_t

    def rel(t: float) -> float:
        return round((t - t0) * 1000, 1)

    for s in samples:
        report.timeline.append({"t_ms": rel(s["t"]), "active": s.get("active"), "oper": s.get("oper"),
                                "mii": s.get("mii")})
    for s in samples:
        if s["t"] < cut_t:
            continue
        if report.mii_down_ms is None and s.get("mii", {}).get(cut_slave) not in ("up", None):
            report.mii_down_ms = rel(s["t"])
        active = s.get("active")
        if not report.failed_over and active not in (cut_slave, "", "?", None) and (restore_t is None or s["t"] <= restore_t):
            report.failed_over, report.failed_over_to = True, active
            report.detection_ms = rel(s["t"])
    if restore_t is not None and primary:
        for s in samples:
            if s["t"] >= restore_t and s.get("active") == primary:
                report.primary_returned = True
                report.primary_return_ms = round((s["t"] - restore_t) * 1000, 1)
                break
        else:
            report.primary_returned = False

    if replies:
        seqs = sorted(replies)
        report.pings_sent = sent if sent is not None else seqs[-1]
        first, last = seqs[0], seqs[-1]
        report.lost_pings = (last - first + 1) - len(seqs)
        # The outage: for each run of unanswered echoes, from the last answered echo's send time to
        # the next answered one's, less one interval. Gaps without a lost echo are not outages
        # (a guest that was merely not scheduled sent nothing and lost nothing).
        outage = 0.0
        for a, b in zip(seqs, seqs[1:]):
            if b - a > 1:
                outage = max(outage, replies[b] - replies[a] - PING_INTERVAL)
        if sent is not None and sent > last + 1 and replies[last] >= cut_t - 1.0:
            # Nothing answered after the cut until ping stopped.
            outage = max(outage, (restore_t or replies[last]) - replies[last])
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
                      f"failed over from {cut_slave} to {report.failed_over_to} in {report.detection_ms:.0f} ms, "
                      f"outage {report.outage_ms:.0f} ms, primary back")
    return report


def _hash(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


async def plan_failover_test(session: Any, bond: str, method: str, *, host: str | None = None,
                             target: str | None = None, hold_seconds: float = 3.0,
                             allow_unmonitored: bool = False) -> FailoverPlan:
    """Read the bond and say what the test will do and whether its preconditions hold."""
    if method not in METHODS:
        raise RemediationError(f"unknown failover test method {method!r}: one of {', '.join(METHODS)}")
    if not 0.5 <= hold_seconds <= 60:
        raise RemediationError("hold time must be 0.5-60 seconds")
    bond = validate_interface(bond, "bond")
    name = session_host_name(session, host)
    state = await read_bond_state(session, bond)
    target = validate_ipv4_target(target or state.nm_gateway or state.route_gateway or "")
    cut = state.active_slave
    primary = state.runtime.get("primary") or None
    up = [s for s, st in state.slaves.items() if st == "up"]
    checks = [
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
    token = "{token}"
    workdir = render("failover.workdir", token=token)
    cmds: list[tuple[str, str]] = [
        ("start the sampler and ping on the host (detached; stops by itself; run through sh -c)",
         (render("failover.start_sampler", workdir=workdir, unit=f"bondbot-failover-{token}",
                               script="<SAMPLER_SCRIPT of failover.py>", bond=bond, target=target, interval=PING_INTERVAL,
                               max_seconds=int(hold_seconds + 40)))),
    ]
    if method == "lab":
        cmds.append(("cut: QMP set_link on the lab switch port", f"bondbot lab link {cut_name} down"))
        restore = f"bondbot lab link {cut_name} up"
    elif method == "host":
        cmds.append(("cut and restore on the host, detached (run through sh -c)",
                     render("failover.host_cut", unit=f"bondbot-cut-{token}",
                            script=render("failover.host_cut_script", slave=cut_name, hold=hold_seconds))))
        restore = render("failover.host_restore", slave=cut_name)
    else:
        cmds.append(("cut: YOU shut the switch port of " + cut_name, "(operator, on the switch)"))
        restore = f"(operator) re-enable the switch port of {cut_name}; bondbot waits for its carrier"
    cmds.append(("collect the measurements", render("failover.read", workdir=workdir)))
    cmds.append(("clean up", render("failover.cleanup", workdir=workdir)))
    plan = FailoverPlan(host=name, bond=bond, method=method, cut_slave=cut_name, primary=primary,  # type: ignore[arg-type]
                        target=target, hold_seconds=hold_seconds, preconditions=tuple(checks),
                        commands=tuple(cmds), restore=restore,
                        caveat=HOST_METHOD_CAVEAT if method == "host" else None,
                        allow_unmonitored=allow_unmonitored)
    from dataclasses import replace

    return replace(plan, plan_hash=_hash({k: v for k, v in plan.to_json().items() if k != "plan_hash"}))


LinkControl = Callable[[str, bool], Awaitable[None] | None]


async def run_failover_test(plan: FailoverPlan, *, pool: Any, actor: str, maintenance_window_confirmed: bool,
                            link_control: LinkControl | None = None,
                            notify: Callable[[str], Awaitable[None] | None] | None = None,
                            incident_store: Any = None, incident_id: str | None = None,
                            manual_timeout: float = 300.0) -> FailoverReport:
    """Run an approved failover test. The port is restored in every case (``finally``)."""
    rec = IncidentRecorder(incident_store, incident_id, actor)

    def refuse(reason: str) -> FailoverReport:
        rec.event("refusal", {"reason": reason, "plan_hash": plan.plan_hash})
        return FailoverReport(plan.host, plan.bond, plan.method, plan.cut_slave, plan.primary, False,
                              f"not run: {reason}", errors=[reason])

    if not maintenance_window_confirmed:
        return refuse("the operator has not confirmed a maintenance window")
    if plan.method == "lab" and link_control is None:
        return refuse("method lab needs the lab's link control (QMP)")
    session = pool.session(plan.host, budget=plan.hold_seconds + manual_timeout + 300)
    # Preconditions again: the state may have changed since the plan.
    now = await plan_failover_test(session, plan.bond, plan.method, host=plan.host, target=plan.target,
                                   hold_seconds=plan.hold_seconds, allow_unmonitored=plan.allow_unmonitored)
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

    token = secrets.token_hex(4)
    workdir = render("failover.workdir", token=token)
    max_seconds = int(plan.hold_seconds + (manual_timeout if plan.method == "manual" else 0) + 40)
    start_cmd = sh_c(render("failover.start_sampler", workdir=workdir, unit=f"bondbot-failover-{token}",
                            script=SAMPLER_SCRIPT, bond=plan.bond, target=plan.target,
                            interval=PING_INTERVAL, max_seconds=max_seconds))
    errors: list[str] = []
    rec.event("note", {"text": f"failover test {plan.plan_hash[:12]} starting: {plan.method} cut of {plan.cut_slave}"})
    res = await run("start the sampler", start_cmd)
    if res.exit_status != 0:
        return refuse(f"could not start the sampler: {res.failure_reason}")
    # Wait until the sampler runs and the target answers through the bond.
    ready = False
    deadline = time.monotonic() + 20  # ping's output is block-buffered in a file: allow for it
    while not ready and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        r = await session.run(render("failover.read", workdir=workdir), timeout=10)
        ready = r.stdout.startswith("ready ") and any(_PING_RE.match(ln) for ln in r.stdout.splitlines())
    if not ready:
        await session.run(render("failover.stop", workdir=workdir), timeout=10)
        await asyncio.sleep(1)
        await run("clean up", render("failover.cleanup", workdir=workdir))
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
            script = render("failover.host_cut_script", slave=plan.cut_slave, hold=plan.hold_seconds)
            await run("cut and restore on the host, detached",
                      sh_c(render("failover.host_cut", unit=f"bondbot-cut-{token}", script=script)))
            await asyncio.sleep(plan.hold_seconds + 0.5)
        else:
            await say(f"Shut the switch port of {plan.host} {plan.cut_slave} now. bondbot is measuring and "
                      f"waits up to {manual_timeout:.0f} s for the carrier to go.")
            seen = await _wait_oper(session, workdir, plan.cut_slave, want_up=False, timeout=manual_timeout)
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
        restored = await _restore(plan, session, link_control, workdir, cut_done, manual_timeout, errors, run)
        rec.event("note", {"text": f"{plan.cut_slave} restore: {'done' if restored else 'NOT confirmed'}"})
    await asyncio.sleep(3.0)  # let the primary come back and ping recover
    await session.run(render("failover.stop", workdir=workdir), timeout=10)
    samples_text = ping_text = ""
    for _ in range(20):
        r = await session.run(f"cat {workdir}/samples.txt", timeout=10)
        if "\nend " in r.stdout:
            samples_text = r.stdout
            break
        await asyncio.sleep(0.5)
    p = await session.run(f"cat {workdir}/ping.txt", timeout=10)
    ping_text = p.stdout
    await run("clean up", render("failover.cleanup", workdir=workdir))
    if not samples_text:
        errors.append("the sampler did not finish")
    report = analyze(samples_text, ping_text, host=plan.host, bond=plan.bond, method=plan.method,
                     cut_slave=plan.cut_slave, primary=plan.primary, errors=errors)
    report.raw = {"samples.txt": samples_text, "ping.txt": ping_text}
    rec.event("verification", {"failover_test": {k: v for k, v in report.to_json().items() if k != "timeline"},
                               "timeline_head": report.timeline[:40]})
    return report


async def _wait_oper(session: Any, workdir: str, slave: str, *, want_up: bool, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = await session.run(f"cat /sys/class/net/{slave}/operstate", timeout=10)
        if (r.stdout.strip() == "up") == want_up and r.exit_status == 0:
            return True
        await asyncio.sleep(0.2)
    return False


async def _restore(plan: FailoverPlan, session: Any, link_control: LinkControl | None, workdir: str,
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
            return await _wait_oper(session, workdir, plan.cut_slave, want_up=True, timeout=30)
        if plan.method == "host":
            up = await _wait_oper(session, workdir, plan.cut_slave, want_up=True, timeout=plan.hold_seconds + 10)
            if not up:
                await run("restore the port", render("failover.host_restore", slave=plan.cut_slave))
                up = await _wait_oper(session, workdir, plan.cut_slave, want_up=True, timeout=10)
            return up
        if not cut_done:
            return True
        up = await _wait_oper(session, workdir, plan.cut_slave, want_up=True, timeout=manual_timeout)
        if not up:
            errors.append(f"{plan.cut_slave}'s carrier is still down: re-enable the switch port")
        return up

    try:
        return await asyncio.shield(restore())
    except Exception as exc:  # noqa: BLE001
        errors.append(f"restore: {exc}")
        return False
