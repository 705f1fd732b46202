"""The bot's seams, implemented over the real domain: the runbook engine and the remediation.

``EngineTriage`` runs ``runbooks.engine.run_triage`` through one shared ``ssh_exec.SshPool`` and
writes every step (command, status, output) to the incident log. ``EngineRemediation`` plans and
applies the fix with ``runbooks.bonding.remediation`` and the failover test with the failover
module once it exists. Nothing here runs a command or parses output itself.
"""

from __future__ import annotations

import asyncio
import importlib
from dataclasses import dataclass, field
from typing import Any

from bot.domain import OnStep, RawOutput, StepProgress, TriageReport, UnknownTarget

__all__ = ["DomainPlan", "DomainResult", "EngineRemediation", "EngineTriage"]

#: Raw output kept per step in the incident log (the exported timeline shows it).
_LOGGED_OUTPUT_LIMIT = 256 * 1024


def _step_status(status: str) -> str:
    return {"ok": "ok", "partial": "ok", "skipped": "skipped", "running": "running"}.get(status, "failed")


class EngineTriage:
    """``TriageService`` over the runbook engine. ``store`` receives a ``triage_step`` per step."""

    def __init__(self, pool: Any, store: Any) -> None:
        from runbooks.engine import load_runbook

        self.pool = pool
        self.store = store
        self.runbook = load_runbook()

    def resolve(self, host: str, bond: str | None) -> tuple[str, str]:
        from runbooks.engine import resolve_bond
        from runbooks.validation import InvalidValue
        from ssh_exec import SshExecError

        try:
            h = self.pool.host(host)
            return h.name, resolve_bond(h, bond, self.runbook)
        except (SshExecError, InvalidValue) as exc:
            raise UnknownTarget(str(exc)) from None

    def step_names(self, host: str, bond: str) -> list[str]:
        from runbooks.engine import render_command

        names = []
        for step in self.runbook.triage:
            if step.for_each:
                names.append(step.command.replace("{{ " + step.for_each + " }}", "<each slave>"))
            else:
                names.append(render_command(step.command, {"bond": bond}, self.runbook.parameters))
        return names

    def group_hosts(self, group: str | None) -> list[tuple[str, str]]:
        from runbooks.engine import resolve_bond
        from ssh_exec import SshExecError

        try:
            hosts = self.pool.inventory.select([group] if group else [])
        except SshExecError as exc:
            raise UnknownTarget(str(exc)) from None
        return [(h.name, resolve_bond(h, None, self.runbook)) for h in hosts]

    async def run(self, host: str, bond: str, *, incident_id: str, actor: str, on_step: OnStep) -> TriageReport:
        from runbooks.engine import StepEvent, run_triage
        from ssh_exec import SshExecError

        queue: asyncio.Queue[StepProgress | None] = asyncio.Queue()

        def progress(event: StepEvent) -> None:
            record = event.record
            status = "running" if event.kind == "start" else _step_status(record.status)
            queue.put_nowait(StepProgress(record.command, status, record.reason or ""))  # type: ignore[arg-type]

        async def relay() -> None:
            while (item := await queue.get()) is not None:
                await on_step(item)

        relay_task = asyncio.create_task(relay())
        try:
            result = await run_triage(self.pool, host, bond=bond, runbook=self.runbook, progress=progress)
        except SshExecError as exc:
            queue.put_nowait(None)
            await relay_task
            if incident_id:
                await asyncio.to_thread(
                    self.store.append, incident_id, actor=actor, kind="triage_step",
                    payload={"step": "connect", "status": "failed", "reason": str(exc)},
                )
            return TriageReport(None, (), (), error=str(exc))
        queue.put_nowait(None)
        await relay_task

        outputs: list[RawOutput] = []
        steps: list[StepProgress] = []
        for record in result.steps:
            stdout = record.result.stdout if record.result else ""
            steps.append(StepProgress(record.command, _step_status(record.status), record.reason or ""))  # type: ignore[arg-type]
            if record.result is not None:
                outputs.append(RawOutput(record.command, stdout, record.exit_status))
            if incident_id:
                payload = record.to_json() | {"stdout": stdout[:_LOGGED_OUTPUT_LIMIT]}
                await asyncio.to_thread(self.store.append, incident_id, actor=actor, kind="triage_step", payload=payload)
        error = f"diagnosis failed: {result.diagnosis_error}" if result.diagnosis_error else None
        return TriageReport(result.diagnosis, tuple(outputs), tuple(steps), error=error)


@dataclass(frozen=True)
class DomainPlan:
    """A remediation plan as the bot shows it (``PlanLike``), with the domain's own plan inside."""

    host: str
    bond: str
    commands: tuple[str, ...]
    rollback: tuple[str, ...]
    title: str
    method: str
    plan_hash: str
    domain: Any = field(compare=False, repr=False)


@dataclass(frozen=True)
class DomainResult:
    ok: bool
    summary: str


class EngineRemediation:
    """``bot.remediation.Remediation`` over ``runbooks.bonding.remediation`` (and the failover test)."""

    def __init__(self, pool: Any, store: Any) -> None:
        self.pool = pool
        self.store = store

    async def plan_fix(self, host: str, bond: str) -> DomainPlan | None:
        from runbooks.bonding import remediation

        # PlanRefused ("miimon is already 100; nothing to change", "no gateway found") propagates:
        # its message is what the channel shows instead of a button.
        plan = await remediation.plan_fix(self.pool.session(host), bond, host=host)
        commands = tuple(s.command for s in plan.steps)
        if plan.fallback:
            commands += tuple(f"(only if reapply is refused) {s.command}" for s in plan.fallback)
        return DomainPlan(
            host=plan.host,
            bond=plan.bond,
            commands=commands,
            rollback=tuple(c.command for c in plan.rollback),
            title=f"enable {plan.monitor.describe()}",
            method=f"{plan.backend}; verified over a new SSH connection",
            plan_hash=plan.plan_hash,
            domain=plan,
        )

    async def apply_fix(self, plan: Any, *, incident_id: str, actor: str) -> DomainResult:
        from runbooks.bonding import remediation

        result = await remediation.apply_fix(
            plan.domain, pool=self.pool, actor=actor, incident_store=self.store,
            incident_id=incident_id, approved_hash=plan.plan_hash,
        )
        return DomainResult(result.ok, result.render_text())

    def _failover(self) -> Any | None:
        try:
            return importlib.import_module("runbooks.bonding.failover")
        except ModuleNotFoundError:
            return None

    async def plan_failover_test(self, host: str, bond: str) -> Any | None:
        module = self._failover()
        if module is None or not hasattr(module, "plan_failover_test"):
            return None
        plan = await module.plan_failover_test(self.pool.session(host), bond, host=host)
        if plan is None:
            return None
        return DomainPlan(
            host=plan.host,
            bond=plan.bond,
            commands=tuple(getattr(s, "command", str(s)) for s in plan.steps),
            rollback=tuple(getattr(c, "command", str(c)) for c in plan.rollback),
            title=plan.summary() if callable(getattr(plan, "summary", None)) else "failover test",
            method=str(getattr(plan, "method", "")),
            plan_hash=plan.plan_hash,
            domain=plan,
        )

    async def run_failover_test(self, plan: Any, *, incident_id: str, actor: str) -> DomainResult:
        module = self._failover()
        if module is None:
            return DomainResult(False, "the failover test is not available in this version")
        result = await module.run_failover_test(
            plan.domain, pool=self.pool, actor=actor, incident_store=self.store,
            incident_id=incident_id, approved_hash=plan.plan_hash,
        )
        return DomainResult(bool(result.ok), result.render_text())
