"""A runbook's actions that are pure data: planned from the YAML, run by role, for any runbook.

An action in a runbook's ``actions:`` either names its planner (``plan: module:function``, e.g.
bonding's fix, which reads the host first) or lists its steps as data::

    actions:
      sync:
        title: Flush the file system buffers
        steps:
          - {role: change, purpose: "write dirty pages to disk", command: "sync"}

:func:`plan_action` turns the data form into a :class:`runbooks.plan.Plan`: every command is a
template rendered by the one renderer (values validated by the runbook's declared types, then
quoted), so the digest covers exactly what will run. :func:`run_plan` runs a Plan's steps over the
host's one connection by role, never by command text: ``read`` ... ``confirm`` in order; when one
fails the ``rollback``/``restore`` steps run and the run is not ok; ``operator`` steps are shown, not
run. Approval is not here: the approvals service (``runbooks.approvals``) decides; this only runs
what was approved, and writes each command to the incident log when given one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from runbooks.engine import Runbook, RunbookError, render_command
from runbooks.plan import Plan, PlanStep

__all__ = ["PlanRun", "plan_action", "run_plan"]

_FORWARD = ("read", "precheck", "checkpoint", "change", "verify", "confirm")
_UNDO = ("rollback", "restore")
_STEP_KEYS = {"role", "purpose", "command", "instruction", "name"}


def plan_action(runbook: Runbook, action: str, *, host: str, subject: Mapping[str, str] | None = None,
                values: Mapping[str, object] | None = None) -> Plan:
    """The Plan of a data action of ``runbook`` for ``host`` and ``subject`` (the triaged one)."""
    spec = runbook.actions.get(action)
    if spec is None:
        raise RunbookError(f"runbook {runbook.name} has no action {action!r}; it has: "
                           f"{', '.join(sorted(runbook.actions)) or 'none'}")
    steps_raw = spec.spec.get("steps")
    if spec.plan is not None or not isinstance(steps_raw, list) or not steps_raw:
        raise RunbookError(f"action {action!r} of runbook {runbook.name} is not planned from data (it has "
                           f"{'its own planner ' + spec.plan if spec.plan else 'no steps'})")
    given = {**(subject or {}), **(values or {})}
    steps: list[PlanStep] = []
    for i, raw in enumerate(steps_raw):
        if not isinstance(raw, Mapping) or set(raw) - _STEP_KEYS:
            raise RunbookError(f"action {action!r} step {i + 1}: a mapping of {sorted(_STEP_KEYS)}")
        command = render_command(str(raw["command"]), given, runbook.parameters) if raw.get("command") else ""
        steps.append(PlanStep(role=str(raw.get("role", "")), purpose=str(raw.get("purpose", "")), command=command,
                              instruction=str(raw.get("instruction", "")), name=str(raw.get("name", ""))))
    return Plan(runbook=runbook.name, action=action, host=host, subject=tuple((subject or {}).items()),
                title=spec.title or action, steps=tuple(steps))


@dataclass(frozen=True)
class PlanRun:
    """How a run went: ``ok`` only when every forward step succeeded. ``steps``: (role, command,
    exit status, stdout, stderr) of each step run, in order."""

    ok: bool
    summary: str
    steps: tuple[tuple[str, str, int | None, str, str], ...] = field(default=())


async def run_plan(pool: Any, plan: Plan, *, store: Any = None, incident_id: str | None = None,
                   actor: str = "bondbot", timeout: float | None = 60.0) -> PlanRun:
    """Run an approved plan's steps by role over the host's connection (see the module's doc).

    With ``store`` and ``incident_id``, each command run is a ``command`` event carrying the
    plan's digest, so the log shows what ran under which approval.
    """
    import asyncio

    session = pool.session(plan.host)
    await session.connect()
    ran: list[tuple[str, str, int | None, str, str]] = []

    async def run(step: PlanStep) -> bool:
        result = await session.run(step.command, timeout=timeout)
        ran.append((step.role, step.command, result.exit_status, result.stdout, result.stderr))
        if store is not None and incident_id is not None:
            await asyncio.to_thread(store.append, incident_id, actor=actor, kind="command", payload={
                "command": step.command, "role": step.role, "purpose": step.purpose, "host": plan.host,
                "exit_status": result.exit_status, "stdout": result.stdout[:65536], "stderr": result.stderr[:65536],
                "action": plan.action, "plan_hash": plan.digest, "digest": plan.digest,
            })
        return result.failure_reason is None

    for step in plan.steps_for(*_FORWARD):
        if not await run(step):
            for undo in plan.steps_for(*_UNDO):
                await run(undo)
            return PlanRun(False, f"{plan.title}: '{step.command}' failed ({step.purpose}); "
                                  f"{len(plan.steps_for(*_UNDO))} undo step(s) run", tuple(ran))
    return PlanRun(True, f"{plan.title}: {len(ran)} step(s) ran on {plan.host}", tuple(ran))
