"""Running an approved fix plan: precheck, rollback note, change, verify, confirm or roll back.

The order and the reasons for it are described at the top of ``runbooks.bonding.remediation``
(the public facade). This module holds the part that touches the host; the plan it runs is built
by ``fix_plan`` and never changed here: a plan altered after hashing is refused.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from runbooks.bonding.bond_options import (
    CHECKPOINT_PLACEHOLDER,
    RemediationError,
    format_bond_options,
    merge_bond_options,
    render,
    sh_c,
    step_spec,
)
from runbooks.bonding.bond_state import (
    fingerprint_differences,
    parse_busctl_path,
    read_bond_state,
)
from runbooks.bonding.fix_plan import WATCHDOG_GRACE, FixPlan, build_fix_plan
from runbooks.bonding.records import Check, IncidentRecorder, StepRecord
from runbooks.plan import PlanStep

__all__ = ["COMMAND_TIMEOUT", "FixResult", "apply_fix"]

#: Seconds one change or verification command may take. Short, because a command that hangs
#: usually means the change cut the bot's path; the checkpoint's timeout is the real deadline.
COMMAND_TIMEOUT = 15.0


@dataclass
class FixResult:
    """What happened. ``status``: verified | rolled_back | refused | failed (see ``message``)."""

    plan_hash: str
    host: str
    bond: str
    status: str
    message: str
    steps: list[StepRecord] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    checkpoint: str | None = None
    rolled_back: bool = False
    rolled_back_by: str | None = None  # "bondbot" | "host (checkpoint timeout)"
    host_as_before: bool | None = None
    differences: list[str] = field(default_factory=list)
    fallback_used: bool = False
    left_by_checkpoint: list[str] = field(default_factory=list)  # what NM's rollback did not restore
    duration: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == "verified"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["ok"] = self.ok
        return data

    def render_text(self) -> str:
        out = [f"{self.status.upper()}: {self.message}"]
        for c in self.checks:
            out.append(f"  [{'ok' if c.ok else 'FAIL'}] {c.name}: {c.detail}")
        if self.rolled_back:
            out.append(f"  rolled back by {self.rolled_back_by}; host as before: "
                       f"{'yes' if self.host_as_before else 'NO'}")
            out += [f"    differs: {d}" for d in self.differences]
        return "\n".join(out)


class _HostLost(Exception):
    """The host stopped answering during the change."""


async def apply_fix(plan: FixPlan, *, pool: Any, actor: str, incident_store: Any = None,
                    incident_id: str | None = None, approved_hash: str | None = None) -> FixResult:
    """Run an approved plan: precheck, rollback note, change, verify, confirm or roll back.

    ``approved_hash``, when given, must equal ``plan.plan_hash`` (``plan.plan.digest``: the bot
    passes the digest the approver clicked). The executor runs ``plan.plan``'s steps and
    dispatches on their roles (and YAML names), never on their text.
    """
    started = time.monotonic()
    rec = IncidentRecorder(incident_store, incident_id, actor)
    result = FixResult(plan_hash=plan.plan_hash, host=plan.host, bond=plan.bond, status="failed", message="")
    if approved_hash is not None and approved_hash != plan.plan_hash:
        result.status, result.message = "refused", "the approved plan hash does not match this plan; nothing was changed"
        rec.event("refusal", {"reason": result.message, "plan_hash": plan.plan_hash})
        return result
    if _rebuilt_digest(plan) != plan.plan_hash:
        result.status, result.message = "refused", "the plan's steps are not what its state gives; nothing was changed"
        rec.event("refusal", {"reason": result.message, "plan_hash": plan.plan_hash})
        return result

    session = pool.session(plan.host, budget=plan.checkpoint_timeout * 3 + 120)

    async def step(purpose: str, command: str, *, timeout: float = COMMAND_TIMEOUT, sess: Any = None) -> Any:
        res = await (sess or session).run(command, timeout=timeout)
        rec_ = StepRecord(purpose, command, res.exit_status, res.stdout, res.stderr, round(res.duration, 3))
        result.steps.append(rec_)
        rec.event("command", rec_.to_json())
        if res.exit_status is None and (res.timed_out or "connection lost" in res.stderr
                                        or "could not run" in res.stderr):
            raise _HostLost(f"{command}: {res.failure_reason or res.stderr.strip()}")
        return res

    # 1. precheck
    reads: list[Any] = []
    try:
        now = await read_bond_state(session, plan.bond, record=reads)
    except Exception as exc:
        result.status, result.message = "refused", f"precheck could not read the host: {exc}; nothing was changed"
        rec.event("refusal", {"reason": result.message, "plan_hash": plan.plan_hash})
        return result
    for res in reads:
        rec.event("command", {"purpose": "precheck: read the bond again", "command": res.command,
                              "exit_status": res.exit_status, "stdout": res.stdout, "stderr": res.stderr})
    diffs = fingerprint_differences(plan.before, now.fingerprint())
    if diffs:
        result.status = "refused"
        result.message = ("the bond changed since the plan was made; nothing was changed. Triage again. "
                          + "; ".join(diffs))
        result.differences = diffs
        rec.event("refusal", {"reason": result.message, "plan_hash": plan.plan_hash})
        return result

    # 2. the rollback note, before anything changes
    rec.rollback_note(plan)
    rec.status("fixing", f"applying plan {plan.plan_hash[:12]}")

    checkpoint: str | None = None
    checkpoint_deadline = 0.0
    armed = False
    confirm_cmd: str | None = None
    failure: str | None = None
    lost = False
    try:
        confirms = [p for p in plan.steps if p.role == "confirm"]
        confirm_cmd = next((p.command for p in confirms if not _needs_checkpoint(p)), None)
        fallbacks = {_fallback_for(p): p for p in plan.fallback}
        for planned in plan.steps:
            if planned.role == "confirm":
                continue  # confirmation comes after verification
            if planned.role == "checkpoint":
                res = await step(planned.purpose, planned.command)
                if res.exit_status != 0:
                    raise RemediationError(f"{planned.purpose.split(':')[0]} failed: {res.failure_reason}")
                if planned.name == "checkpoint":
                    checkpoint = parse_busctl_path(res.stdout)
                    result.checkpoint = checkpoint
                    rec.event("note", {"text": f"checkpoint {checkpoint} created; NetworkManager rolls back by "
                                               f"itself in {plan.checkpoint_timeout} s unless confirmed"})
                else:
                    armed = True
                if not checkpoint_deadline:
                    checkpoint_deadline = time.monotonic() + plan.checkpoint_timeout
                continue
            res = await step(planned.purpose, planned.command)
            if res.exit_status != 0:
                fallback = fallbacks.get(planned.name)
                if fallback is not None:
                    await _bounce(fallback, step, result)
                    continue
                raise RemediationError(f"{planned.command}: {res.failure_reason}")
        # 3. verify over a NEW connection
        await pool.close_host(plan.host)
        checks = await _verify(plan, pool, step)
        result.checks = checks
        rec.event("verification", {"checks": [c.to_json() for c in checks]})
        failed = [c for c in checks if not c.ok]
        if failed:
            raise RemediationError("verification failed: " + "; ".join(f"{c.name}: {c.detail}" for c in failed))
        if time.monotonic() >= checkpoint_deadline:
            raise _HostLost("verification finished after the rollback timeout: the host rolls back by itself")
        for planned in confirms:
            command = planned.command
            if _needs_checkpoint(planned):
                if checkpoint is None:
                    continue
                command = _with_checkpoint(planned, checkpoint)
            res = await step(planned.purpose, command)
            if res.exit_status != 0:
                raise RemediationError(f"could not confirm ({planned.purpose}): {res.failure_reason}")
    except _HostLost as exc:
        failure, lost = str(exc), True
    except Exception as exc:  # noqa: BLE001 - any failure leads to a rollback and a report
        failure = str(exc) or type(exc).__name__
        from ssh_exec.errors import SshExecError

        lost = isinstance(exc, SshExecError)

    if failure is None:
        result.status = "verified"
        result.message = f"{plan.monitor.describe()} is on for {plan.bond} and verified"
        if plan.persistence:
            result.message += "; apply the persistence steps to keep it after a reboot"
        elif plan.backend == "ifupdown":
            result.message += f"; persisted in {plan.state.ifupdown_file} (backup first; ifquery reads it)"
        rec.status("verified", result.message)
        result.duration = round(time.monotonic() - started, 2)
        return result

    # 4. roll back
    rec.event("note", {"text": f"change failed: {failure}; rolling back"})
    await _rollback(plan, pool, result, rec, step, checkpoint, checkpoint_deadline, lost, armed, confirm_cmd)
    result.message = (f"{failure}. Rolled back by {result.rolled_back_by}; host "
                      + ("is as before" if result.host_as_before else "is NOT as before: " + "; ".join(result.differences)))
    result.status = "rolled_back" if result.host_as_before else "failed"
    rec.event("rollback", {"by": result.rolled_back_by, "host_as_before": result.host_as_before,
                           "differences": result.differences, "reason": failure})
    rec.status("rolled_back", result.message)
    result.duration = round(time.monotonic() - started, 2)
    return result


def _rebuilt_digest(plan: FixPlan) -> str:
    """The digest of the plan its own state gives: a FixPlan whose steps were changed differs."""
    try:
        return build_fix_plan(plan.host, plan.state, plan.monitor, target=plan.target,
                              checkpoint_timeout=plan.checkpoint_timeout, run_id=plan.run_id).plan_hash
    except RemediationError:
        return ""


def _spec(step: PlanStep) -> dict[str, Any]:
    specs = step_spec("fix", step.name)
    if not specs:
        raise RemediationError(f"plan step {step.name!r} is not a step of remediation.yaml's fix")
    return specs[0]


def _fallback_for(step: PlanStep) -> str:
    return str(_spec(step).get("fallback_for") or "")


def _needs_checkpoint(step: PlanStep) -> bool:
    """The step names NetworkManager's checkpoint, whose path is only known once it is created."""
    from runbooks.bonding.bond_options import templates

    spec = _spec(step)
    return "command" in spec and "checkpoint" in _template_names(templates().source(str(spec["command"])))


def _template_names(source: str) -> set[str]:
    from runbooks.render import used_names

    return used_names(source)


def _with_checkpoint(step: PlanStep, checkpoint: str) -> str:
    """The step's command with NetworkManager's checkpoint path: its template rendered again, once
    with the placeholder (it must give exactly the command shown) and once with the path."""
    spec = _spec(step)

    def rendered(value: str) -> str:
        command = render(str(spec["command"]), checkpoint=value)
        return str(sh_c(command) if spec.get("shell") else command)

    if rendered(CHECKPOINT_PLACEHOLDER) != step.command:
        raise RemediationError(f"plan step {step.name!r} is not its template's command")
    return rendered(checkpoint)


async def _bounce(fallback: PlanStep, step: Any, result: FixResult) -> None:
    """The fallback: down/up detached on the host, then wait until the bond is back."""
    result.fallback_used = True
    res = await step(fallback.purpose, fallback.command)
    if res.exit_status != 0:
        raise RemediationError(f"the detached down/up could not be started: {res.failure_reason}")
    await asyncio.sleep(3)


async def _verify(plan: FixPlan, pool: Any, step: Any) -> list[Check]:
    """Run the plan's verify steps (by name) over ``pool``'s new connection and judge them."""
    from runbooks.bonding.parsers import parse_nmcli, parse_proc_bonding

    session = pool.session(plan.host, budget=plan.checkpoint_timeout)
    shown = {s.name: s for s in plan.verify}

    async def run(name: str, timeout: float = COMMAND_TIMEOUT) -> Any:
        planned = shown[name]
        return await step("verify: " + planned.purpose, planned.command, sess=session, timeout=timeout)

    checks: list[Check] = []
    deadline = time.monotonic() + 10
    # The bonding driver needs a few monitor intervals to report fresh MII states after a change.
    while True:
        proc = await run("proc", timeout=15)
        if proc.exit_status != 0:
            return [Check("bond", False, f"cannot read /proc/net/bonding/{plan.bond}: {proc.failure_reason}")]
        parsed = parse_proc_bonding(proc.stdout)
        down = [s.name for s in parsed.slaves if not s.mii_up]
        if not down or time.monotonic() > deadline:
            break
        await asyncio.sleep(1)
    if "sysfs" in shown:
        await run("sysfs")  # shown in the plan; recorded with the verification
    m = plan.monitor
    if m.kind == "miimon":
        ok = parsed.miimon == m.miimon and parsed.arp_interval == 0
        detail = parsed.lines.get("miimon", f"MII Polling Interval (ms): {parsed.miimon}")
    else:
        ok = parsed.arp_interval == m.arp_interval and set(parsed.arp_targets) == set(m.arp_targets) \
            and not parsed.miimon
        detail = f"arp_interval={parsed.arp_interval} targets={','.join(parsed.arp_targets)} miimon={parsed.miimon}"
    checks.append(Check("monitor on", ok, detail))
    checks.append(Check("every port up", not down and bool(parsed.slaves),
                        ", ".join(f"{s.name}: MII {s.mii_status}" for s in parsed.slaves)))
    if "profile" in shown:
        prof = await run("profile")
        saved = parse_nmcli(prof.stdout).bond_options if prof.exit_status == 0 else {}
        wanted = merge_bond_options(plan.state.bond_options or {}, m)[0]
        checks.append(Check("profile has the options", saved == wanted,
                            f"bond.options={format_bond_options(saved)}"))
    if "persisted" in shown:
        per = await run("persisted")
        needle = f"miimon={m.miimon}" if m.kind == "miimon" else f"arp_interval={m.arp_interval}"
        checks.append(Check("persisted on disk", needle in per.stdout,
                            f"{plan.state.nm_file}: {' '.join(per.stdout.split()) or 'no monitor line'}"))
    if "ifquery" in shown:
        from runbooks.bonding.ifupdown_file import parse_ifquery

        ifq = await run("ifquery")
        seen = parse_ifquery(ifq.stdout).get("bond-miimon") if ifq.exit_status == 0 else None
        checks.append(Check("persisted for ifupdown (ifquery)", seen == str(m.miimon),
                            f"{ifq.command}: bond-miimon {seen or '(none)'}"
                            + ("" if ifq.exit_status == 0 else f" ({ifq.failure_reason})")))
    if "ifupdown_check" in shown:
        await run("ifupdown_check")  # shown in the plan; recorded with the verification
    target = plan.target
    ping = await run("gateway", timeout=20)
    last = ping.stdout.strip().splitlines()[-2:] if ping.stdout.strip() else [ping.stderr.strip()]
    checks.append(Check("gateway answers", ping.exit_status == 0, f"{target}: {' / '.join(last)}"))
    return checks


async def _rollback(plan: FixPlan, pool: Any, result: FixResult, rec: IncidentRecorder, step: Any,
                    checkpoint: str | None, checkpoint_deadline: float, lost: bool, armed: bool,
                    disarm: str | None) -> None:
    result.rolled_back = True
    result.rolled_back_by = "bondbot"
    await pool.close_host(plan.host)
    session = pool.session(plan.host, budget=plan.checkpoint_timeout * 2 + 120)

    async def reachable() -> bool:
        try:
            res = await session.run(render("shell.reachable"), timeout=10)
            return res.exit_status == 0
        except Exception:  # noqa: BLE001 - unreachable for any reason
            return False

    if lost or not await reachable():
        # The host's own safety nets: NetworkManager's checkpoint at the deadline, then the armed
        # undo for the runtime values. Wait for both, then come back over a new connection.
        nets = [n for n, on in (("NetworkManager's checkpoint", checkpoint is not None),
                                ("bondbot's armed undo", armed)) if on]
        result.rolled_back_by = "the host itself (" + " and ".join(nets) + ")" if nets else "nobody"
        rec.event("note", {"text": "host unreachable; waiting for its own rollback: " + (", ".join(nets) or "none armed")})
        ready_at = checkpoint_deadline + (WATCHDOG_GRACE + 2 if armed else 2)
        until = max(ready_at, time.monotonic()) + 90
        while time.monotonic() < until:
            await asyncio.sleep(max(0.0, min(3.0, ready_at - time.monotonic())) or 3.0)
            if time.monotonic() < ready_at:
                continue
            await pool.close_host(plan.host)
            session = pool.session(plan.host, budget=plan.checkpoint_timeout * 2 + 120)
            if await reachable():
                break
        else:
            result.host_as_before = False
            result.differences = ["the host did not answer again after its rollback timeout"]
            return
        rec.event("note", {"text": "the host answers again after its own rollback"})
        armed = False  # it has fired
    elif checkpoint is not None and (undo := next((s for s in plan.rollback if _needs_checkpoint(s)), None)):
        res = await step("roll back: NetworkManager checkpoint", _with_checkpoint(undo, checkpoint), sess=session)
        if res.exit_status != 0:
            rec.event("note", {"text": f"checkpoint rollback refused ({res.failure_reason}); "
                                       "restoring with the note's commands"})
    # Wait for NetworkManager's reactivation to settle, then restore whatever still differs with
    # the note's commands, and say so: the report must not credit the checkpoint with more than it did.
    diffs = await _settled_differences(plan, session)
    if diffs:
        result.left_by_checkpoint = list(diffs)
        rec.event("note", {"text": "after the checkpoint rollback still different: " + "; ".join(diffs)
                                   + "; running the rollback note's commands"})
        now_options = None
        try:
            now_options = (await read_bond_state(session, plan.bond)).bond_options
        except Exception:  # noqa: BLE001 - then the nmcli restore runs too
            pass
        for cmd in plan.rollback:
            if _needs_checkpoint(cmd):
                continue  # NetworkManager's own rollback, tried above
            if _spec(cmd).get("skip_if") == "profile_as_before" and now_options == plan.before.get("bond_options"):
                continue
            await step("roll back: " + cmd.purpose, cmd.command, sess=session)
        result.rolled_back_by = f"{result.rolled_back_by}, completed by the rollback note's commands"
        diffs = await _settled_differences(plan, session)
    if armed and disarm:  # rolled back by bondbot: the host's own undo is no longer needed
        await step("disarm the host's own undo", disarm, sess=session)
    result.differences = diffs
    result.host_as_before = not diffs


async def _settled_differences(plan: FixPlan, session: Any, *, tries: int = 5) -> list[str]:
    """Differences from the plan's "before" state, once they stop changing (NM may be reactivating)."""
    previous: list[str] | None = None
    diffs: list[str] = ["the bond could not be read"]
    for _ in range(tries):
        try:
            now = await read_bond_state(session, plan.bond)
            diffs = fingerprint_differences(plan.before, now.fingerprint())
        except Exception as exc:  # noqa: BLE001
            diffs = [f"could not read the bond: {exc}"]
        if not diffs or diffs == previous:
            return diffs
        previous = diffs
        await asyncio.sleep(2)
    return diffs
