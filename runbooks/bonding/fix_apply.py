"""Running an approved fix plan: precheck, rollback note, change, verify, confirm or roll back.

The order and the reasons for it are described at the top of ``runbooks.bonding.remediation``
(the public facade). This module holds the part that touches the host; the plan it runs is built
by ``fix_plan`` and never changed here: a plan altered after hashing is refused.
"""

from __future__ import annotations

import asyncio
import secrets
import shlex
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from runbooks.bonding.bond_options import (
    RemediationError,
    format_bond_options,
    merge_bond_options,
    remediation_spec,
    render,
    validate_ipv4_target,
)
from runbooks.bonding.bond_state import fingerprint_differences, parse_busctl_path, read_bond_state
from runbooks.bonding.fix_plan import (
    CHECKPOINT_PLACEHOLDER,
    RUN_PLACEHOLDER,
    WATCHDOG_GRACE,
    FixPlan,
    with_hash,
)
from runbooks.bonding.records import Check, IncidentRecorder, StepRecord

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

    ``approved_hash``, when given, must equal ``plan.plan_hash`` (the bot passes the hash the
    approver clicked).
    """
    started = time.monotonic()
    rec = IncidentRecorder(incident_store, incident_id, actor)
    result = FixResult(plan_hash=plan.plan_hash, host=plan.host, bond=plan.bond, status="failed", message="")
    if approved_hash is not None and approved_hash != plan.plan_hash:
        result.status, result.message = "refused", "the approved plan hash does not match this plan; nothing was changed"
        rec.event("refusal", {"reason": result.message, "plan_hash": plan.plan_hash})
        return result
    if with_hash(plan).plan_hash != plan.plan_hash:
        result.status, result.message = "refused", "the plan was altered after it was hashed; nothing was changed"
        rec.event("refusal", {"reason": result.message, "plan_hash": plan.plan_hash})
        return result

    session = pool.session(plan.host, budget=plan.checkpoint_timeout * 3 + 120)

    run_id = secrets.token_hex(4)

    async def step(purpose: str, command: str, *, timeout: float = COMMAND_TIMEOUT, sess: Any = None) -> Any:
        command = command.replace(RUN_PLACEHOLDER, run_id)
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
        confirms = [p for p in plan.steps if p.purpose.startswith("confirm:")]
        confirm_cmd = next((p.command for p in confirms if "CheckpointDestroy" not in p.command), None)
        for planned in plan.steps:
            if planned in confirms:
                continue  # confirmation comes after verification
            if "CheckpointCreate" in planned.command or planned.purpose.startswith("arm the host's own undo"):
                res = await step(planned.purpose, planned.command)
                if res.exit_status != 0:
                    raise RemediationError(f"{planned.purpose.split(':')[0]} failed: {res.failure_reason}")
                if "CheckpointCreate" in planned.command:
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
                if planned.command.startswith("nmcli device reapply") and plan.fallback:
                    await _bounce(plan, step, result, session)
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
            if CHECKPOINT_PLACEHOLDER in command:
                if checkpoint is None:
                    continue
                command = render("checkpoint.destroy", checkpoint=checkpoint)
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


async def _bounce(plan: FixPlan, step: Any, result: FixResult, session: Any) -> None:
    """The fallback: down/up detached on the host, then wait until the bond is back."""
    result.fallback_used = True
    res = await step(plan.fallback[0].purpose, plan.fallback[0].command)
    if res.exit_status != 0:
        raise RemediationError(f"the detached down/up could not be started: {res.failure_reason}")
    await asyncio.sleep(3)


async def _verify(plan: FixPlan, pool: Any, step: Any) -> list[Check]:
    from runbooks.bonding.parsers import parse_nmcli, parse_proc_bonding

    session = pool.session(plan.host, budget=plan.checkpoint_timeout)
    checks: list[Check] = []
    deadline = time.monotonic() + 10
    # The bonding driver needs a few monitor intervals to report fresh MII states after a change.
    while True:
        proc = await step("verify: bonding driver state", render("read_state.proc", bond=plan.bond),
                          sess=session, timeout=15)
        if proc.exit_status != 0:
            return [Check("bond", False, f"cannot read /proc/net/bonding/{plan.bond}: {proc.failure_reason}")]
        parsed = parse_proc_bonding(proc.stdout)
        down = [s.name for s in parsed.slaves if not s.mii_up]
        if not down or time.monotonic() > deadline:
            break
        await asyncio.sleep(1)
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
    if plan.backend == "networkmanager":
        uuid = plan.state.nm_uuid or ""
        prof = await step("verify: the saved profile", f"nmcli -t connection show uuid {shlex.quote(uuid)}",
                          sess=session)
        saved = parse_nmcli(prof.stdout).bond_options if prof.exit_status == 0 else {}
        wanted = merge_bond_options(plan.state.bond_options or {}, m)[0]
        checks.append(Check("profile has the options", saved == wanted,
                            f"bond.options={format_bond_options(saved)}"))
        if plan.state.nm_file:
            per = await step("verify: the profile on disk", render("read_state.persisted", filename=plan.state.nm_file),
                             sess=session)
            needle = f"miimon={m.miimon}" if m.kind == "miimon" else f"arp_interval={m.arp_interval}"
            checks.append(Check("persisted on disk", needle in per.stdout,
                                f"{plan.state.nm_file}: {' '.join(per.stdout.split()) or 'no monitor line'}"))
    if plan.backend == "ifupdown":
        from runbooks.bonding.ifupdown_file import parse_ifquery

        ifq = await step("verify: ifupdown's configuration", render("read_state.ifquery", bond=plan.bond), sess=session)
        seen = parse_ifquery(ifq.stdout).get("bond-miimon") if ifq.exit_status == 0 else None
        checks.append(Check("persisted for ifupdown (ifquery)", seen == str(m.miimon),
                            f"ifquery {plan.bond}: bond-miimon {seen or '(none)'}"
                            + ("" if ifq.exit_status == 0 else f" ({ifq.failure_reason})")))
    target = plan.target
    ping = await step("verify: the gateway answers",
                      render("verify.gateway", count=remediation_spec()["defaults"]["verify_pings"], bond=plan.bond,
                             target=validate_ipv4_target(target)), sess=session, timeout=20)
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
            res = await session.run("true", timeout=10)
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
    elif checkpoint is not None:
        res = await step("roll back: NetworkManager checkpoint",
                         render("checkpoint.rollback", checkpoint=checkpoint), sess=session)
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
            if "Checkpoint" in cmd.command:
                continue
            if cmd.command.startswith("nmcli") and now_options == plan.before.get("bond_options"):
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
