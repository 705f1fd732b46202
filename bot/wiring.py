"""The bot's seams, implemented over the real domain: the runbook engine and the remediation.

``EngineTriage`` runs ``runbooks.engine.run_triage`` for any runbook of the registry (bonding by
default) through one shared ``ssh_exec.SshPool`` and writes every step (command, status, output)
to the incident log with ``runbooks.recording``.
``EngineRemediation`` plans and applies the fix with ``runbooks.bonding.remediation`` and runs the
failover test with ``runbooks.bonding.failover``. Nothing here runs a command or parses output itself.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bot.domain import OnStep, RawOutput, RunbookInfo, StepProgress, SubjectListing, TriageReport, UnknownTarget

__all__ = ["DomainPlan", "DomainResult", "EngineRemediation", "EngineTriage", "FailoverNotReady", "LinkControl"]

#: Seconds a subject list read just before a triage stands in for the triage's own read of it.
_LISTING_TTL = 10.0


def _step_status(status: str) -> str:
    return {"ok": "ok", "partial": "ok", "skipped": "skipped", "running": "running"}.get(status, "failed")


class EngineTriage:
    """``TriageService`` over the runbook engine. ``store`` receives a ``triage_step`` per step.

    ``runbook`` is the default runbook (bonding); others are found by name among the built-in
    runbooks and on ``runbooks``, the caller's search path (``serve`` passes ``BONDBOT_RUNBOOKS``),
    never by a path typed in chat.
    """

    def __init__(self, pool: Any, store: Any, *, runbook: str | None = None, runbooks: str = "") -> None:
        from runbooks.engine import load_runbook

        self.pool = pool
        self.store = store
        self.runbooks = runbooks
        self.default = load_runbook(runbook, search=runbooks)
        self._listed: dict[tuple[str, str], tuple[float, Any]] = {}  # (runbook, host) -> (when, the listing read)

    def _runbook(self, name: str | None) -> Any:
        from runbooks.engine import RunbookError, load_runbook

        if name is None or name == self.default.name:
            return self.default
        if "/" in name or name.endswith((".yaml", ".yml")) or name.startswith("."):
            raise UnknownTarget(f"`{name[:80]}` is not a runbook name (runbooks are picked by name, not by path)")
        try:
            return load_runbook(name, search=self.runbooks)
        except RunbookError as exc:
            raise UnknownTarget(str(exc)) from None

    def runbook(self, name: str | None = None) -> RunbookInfo:
        rb = self._runbook(name)
        data = tuple(name for name, a in rb.actions.items() if a.plan is None and a.spec.get("steps"))
        return RunbookInfo(rb.name, rb.title, rb.subject.param, rb.subject.noun, rb.subject.plural,
                           rb.subject.discover is not None, tuple(rb.actions), data)

    def resolve(self, host: str, subject: str | None, *, runbook: str | None = None) -> tuple[str, str | None]:
        from runbooks.engine import resolve_subject
        from runbooks.validation import InvalidValue
        from ssh_exec import SshExecError

        rb = self._runbook(runbook)
        try:
            h = self.pool.host(host)
            return h.name, resolve_subject(h, subject, rb)
        except (SshExecError, InvalidValue) as exc:
            raise UnknownTarget(str(exc)) from None

    async def subjects(self, host: str, *, runbook: str | None = None) -> SubjectListing:
        """The subjects the host has (one read: bonding's /sys/class/net/bonding_masters); never raises."""
        from runbooks.engine import discover_subjects
        from ssh_exec import SshExecError

        rb = self._runbook(runbook)
        if rb.subject.discover is None:
            return SubjectListing(None, error=f"runbook {rb.name} does not list its {rb.subject.plural or 'subjects'}")
        try:
            found, record = await discover_subjects(self.pool, host, runbook=rb)
        except SshExecError as exc:
            return SubjectListing(None, error=str(exc), unreachable=True)
        # The triages that follow use this read instead of reading the list again (and log it).
        self._listed[(rb.name, host)] = (time.monotonic(), (found, record))
        return SubjectListing(found.names, error=found.error, why_none=found.why_none)

    async def bonds(self, host: str) -> SubjectListing:
        return await self.subjects(host)

    def step_names(self, host: str, subject: str | None, *, runbook: str | None = None) -> list[str]:
        from runbooks.engine import render_command

        rb = self._runbook(runbook)
        values = rb.subject_of(subject)
        # The subject list is read before the incident opens (``subjects``): not a pending step of it.
        names = [d.command for d in rb.discover if d.name != rb.subject.discover]
        for step in rb.triage:
            if step.for_each:
                names.append(step.command.replace("{{ " + step.for_each + " }}", f"<each {step.for_each}>"))
            elif step.needs:
                what = rb.parameters[step.needs].description or step.needs  # the runbook's own words
                names.append(step.command.replace("{{ " + step.needs + " }}", f"<{what}>"))
            else:
                names.append(render_command(step.command, values, rb.parameters))
        return names

    def group_hosts(self, group: str | None, *, runbook: str | None = None) -> list[tuple[str, str | None]]:
        from runbooks.engine import resolve_subject
        from ssh_exec import SshExecError

        rb = self._runbook(runbook)
        try:
            hosts = self.pool.inventory.select([group] if group else [])
        except SshExecError as exc:
            raise UnknownTarget(str(exc)) from None
        return [(h.name, resolve_subject(h, None, rb)) for h in hosts]

    def plan_action(self, runbook: str, action: str, host: str, subject: Mapping[str, str]) -> Any:
        """A data action of the runbook, planned by ``runbooks.actions`` (None: not a data action)."""
        from runbooks.actions import plan_action

        rb = self._runbook(runbook)
        if action not in self.runbook(runbook).data_actions:
            return None
        return plan_action(rb, action, host=self.pool.host(host).name, subject=subject)

    async def run_action(self, plan: Any, *, incident_id: str, actor: str) -> Any:
        """Run an approved data action by role (``runbooks.actions.run_plan``); commands logged."""
        from runbooks.actions import run_plan

        return await run_plan(self.pool, plan, store=self.store, incident_id=incident_id, actor=actor)

    async def run(self, host: str, subject: str | None, *, incident_id: str, actor: str, on_step: OnStep,
                  runbook: str | None = None) -> TriageReport:
        from runbooks.engine import StepEvent, SubjectSelectionError, run_triage
        from runbooks.recording import record_connect_failure, record_steps
        from ssh_exec import SshExecError

        rb = self._runbook(runbook)
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
            listed = self._listed.get((rb.name, host))
            known = listed[1] if listed is not None and time.monotonic() - listed[0] < _LISTING_TTL else None
            result = await run_triage(self.pool, host, subject=subject, runbook=rb, progress=progress,
                                      known_subjects=known)
        except (SubjectSelectionError, SshExecError) as exc:  # the subject went away since it was listed
            queue.put_nowait(None)
            await relay_task
            if incident_id:
                await asyncio.to_thread(record_connect_failure, self.store, incident_id, str(exc), actor=actor)
            return TriageReport(None, (), (), error=str(exc))
        queue.put_nowait(None)
        await relay_task

        outputs: list[RawOutput] = []
        steps: list[StepProgress] = []
        for record in result.steps:
            steps.append(StepProgress(record.command, _step_status(record.status), record.reason or ""))  # type: ignore[arg-type]
            if record.result is not None:
                outputs.append(RawOutput(record.command, record.result.stdout, record.exit_status))
        if incident_id:
            # The diagnosis is recorded by the bot after its own progress note (``record_diagnosis``).
            await asyncio.to_thread(record_steps, self.store, incident_id, result.steps, actor=actor)
        error = f"diagnosis failed: {result.diagnosis_error}" if result.diagnosis_error else None
        return TriageReport(result.diagnosis, tuple(outputs), tuple(steps), error=error)


@dataclass(frozen=True)
class DomainPlan:
    """A remediation plan as the bot shows it: ``plan`` is the one ``runbooks.plan.Plan`` shown,
    hashed (``plan.digest`` == ``plan_hash``), approved and run; ``domain`` the runbook's own view
    of it (``FixPlan`` / ``FailoverPlan``), which runs exactly ``plan``'s steps. ``commands`` and
    ``rollback`` are views of ``plan.steps`` for the older message layout."""

    host: str
    bond: str
    commands: tuple[str, ...]
    rollback: tuple[str, ...]
    title: str
    method: str
    plan_hash: str
    domain: Any = field(compare=False, repr=False)
    plan: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class DomainResult:
    ok: bool
    summary: str


@dataclass(frozen=True)
class HostReading:
    """One reading of a host's bond (``runbooks.bonding.bond_state.BondState``) and of the tools the
    failover test needs (the command's result): what every offer made together is planned from."""

    host: str
    bond: str
    state: Any = field(repr=False)
    tools: Any = field(repr=False)


class FailoverNotReady(Exception):
    """The failover test's preconditions do not hold now (e.g. no link monitoring before the fix);
    the message says which, and is what the channel shows instead of the buttons."""


#: How each method cuts the port, as the message and the confirm dialog say it.
_METHOD_TEXT = {
    "lab": "the lab switch port of {port} is shut through QEMU (QMP set_link): a real carrier loss",
    "manual": "you shut the switch port of {port} when the bot says so in the thread; it measures and "
              "waits for you to re-enable it",
    "host": "'ip link set {port} down' on the host, restored by itself (an administrative down, not a "
            "carrier loss: it does not prove a dead switch port is detected)",
}

#: A function that shuts (False) or re-enables (True) the switch port of a lab interface.
LinkControl = Callable[[str, bool], Any]


class EngineRemediation:
    """``bot.remediation.Remediation`` over ``runbooks.bonding.remediation`` and ``.failover``.

    ``link_control`` (e.g. the lab VM's ``LabSession.link`` / ``LabVM.link``) enables the ``lab``
    failover method; the caller passes it, so the bot never imports the lab. ``hold_seconds`` is how
    long the test keeps the port down.
    """

    def __init__(self, pool: Any, store: Any, *, link_control: LinkControl | None = None,
                 hold_seconds: float = 3.0, manual_timeout: float = 300.0) -> None:
        self.pool = pool
        self.store = store
        self.link_control = link_control
        self.hold_seconds = hold_seconds
        self.manual_timeout = manual_timeout
        # The run's token (fix: the undo's run id; failover test: the sampler's token) of the plan
        # last offered per (action, host, bond, method): planning again at click time with it gives
        # the same digest on an unchanged host. Dropped once the plan has run.
        self._tokens: dict[tuple[str, str, str, str], str] = {}

    def _token(self, key: tuple[str, str, str, str], like: Any, param: str) -> str | None:
        plan = getattr(like, "plan", like)
        if plan is not None and hasattr(plan, "param"):
            return plan.param(param) or None
        return self._tokens.get(key)

    def failover_methods(self) -> tuple[str, ...]:
        return ("lab", "manual", "host") if self.link_control is not None else ("manual", "host")

    async def read_state(self, host: str, bond: str) -> HostReading:
        """Read the host once (the bond's state and the failover test's tools, read-only) for every
        offer made together: pass it as ``state=`` to :meth:`plan_fix` and :meth:`plan_failover_test`.
        A click plans again without it, so the host is read afresh right before anything runs."""
        from runbooks.bonding.bond_state import read_bond_state
        from runbooks.bonding.failover import read_failover_tools

        session = self.pool.session(host)
        state, tools = await asyncio.gather(read_bond_state(session, bond), read_failover_tools(session))
        return HostReading(host=host, bond=state.bond, state=state, tools=tools)

    @staticmethod
    def _reading(state: HostReading | None, host: str, bond: str) -> HostReading | None:
        if state is not None and (state.host, state.bond) != (host, bond):
            raise ValueError(f"the reading is of {state.host} {state.bond}, not {host} {bond}")
        return state

    async def plan_fix(self, host: str, bond: str, *, like: Any = None,
                       state: HostReading | None = None) -> DomainPlan | None:
        """The fix's plan for the host as it is now. ``like``: a plan shown before (its run id is
        reused, so an unchanged host gives the same digest); else the one last offered here.
        ``state``: a :meth:`read_state` of this host and bond made just now (else the host is read)."""
        from runbooks.bonding import remediation

        key = ("fix", host, bond, "")
        reading = self._reading(state, host, bond)
        # PlanRefused ("miimon is already 100; nothing to change", "no gateway found") propagates:
        # its message is what the channel shows instead of a button.
        plan = await remediation.plan_fix(self.pool.session(host), bond, host=host,
                                          run_id=self._token(key, like, "run"),
                                          state=reading.state if reading is not None else None)
        self._tokens[key] = plan.run_id
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
            plan=plan.plan,
        )

    async def apply_fix(self, plan: Any, *, incident_id: str, actor: str, approved_hash: str) -> DomainResult:
        from runbooks.bonding import remediation

        # approved_hash is the hash shown to the approver; apply_fix refuses if the re-planned
        # plan (read from the host just now) differs from it.
        self._tokens.pop(("fix", plan.domain.host, plan.domain.bond, ""), None)  # a new plan gets a new run id
        result = await remediation.apply_fix(
            plan.domain, pool=self.pool, actor=actor, incident_store=self.store,
            incident_id=incident_id, approved_hash=approved_hash,
        )
        return DomainResult(result.ok, result.render_text())

    async def compare_with_rollback_note(self, host: str, bond: str, before: dict[str, Any]) -> list[str]:
        """Re-read the bond (read-only) and list how it differs from a fix's rollback note
        (``before``: runtime values, profile, bond.options); empty when the host is as before.

        For the recovery of a fix cut off by a crash (``bot.recovery``): it tells "rolled back or
        never changed" from "changed" without running anything but the plan's own reads.
        """
        from runbooks.bonding.bond_options import format_bond_options
        from runbooks.bonding.bond_state import fingerprint_differences, read_bond_state

        state = await read_bond_state(self.pool.session(host), bond)
        now = state.fingerprint()
        then_profile = (before.get("nm_profile") or {}).get("uuid")
        diffs = fingerprint_differences(
            {"runtime": before.get("runtime_before") or {}, "nm_uuid": then_profile, "bond_options": None},
            {"runtime": now["runtime"], "nm_uuid": now["nm_uuid"] if then_profile is not None else None,
             "bond_options": None},
        )
        was = before.get("bond_options_before")
        if was is not None:
            is_now = format_bond_options(now["bond_options"]) if now["bond_options"] is not None else None
            if is_now != was:
                diffs.append(f"bond.options: was {was!r}, now {is_now!r}")
        return diffs

    async def plan_failover_test(self, host: str, bond: str, method: str, *, like: Any = None,
                                 state: HostReading | None = None) -> DomainPlan | None:
        """The failover test's plan (see :meth:`plan_fix` for ``like`` and ``state``): the sampler's
        token, script and deadline (with ``manual_timeout`` for the manual method) are fixed in it."""
        from runbooks.bonding.failover import plan_failover_test

        if method not in self.failover_methods():
            raise FailoverNotReady(f"method {method!r} is not available here: one of {', '.join(self.failover_methods())}")
        key = ("failover_test", host, bond, method)
        reading = self._reading(state, host, bond)
        plan = await plan_failover_test(self.pool.session(host), bond, method, host=host,
                                        hold_seconds=self.hold_seconds, manual_timeout=self.manual_timeout,
                                        token=self._token(key, like, "token"),
                                        state=reading.state if reading is not None else None,
                                        tools=reading.tools if reading is not None else None)
        self._tokens[key] = plan.token
        if not plan.ready:
            # The detail's advice after " - " is the CLI's (--allow-unmonitored); the bot offers the fix.
            failed = "; ".join(f"{c.name}: {c.detail.split(' - ', 1)[0]}" for c in plan.preconditions if not c.ok)
            raise FailoverNotReady(f"preconditions not met ({failed}); apply the fix first, then it is offered")
        return DomainPlan(
            host=plan.host,
            bond=plan.bond,
            commands=tuple(command for _purpose, command in plan.commands),
            rollback=(plan.restore,),
            title=plan.plan.title,
            method=f"{method}: " + _METHOD_TEXT[method].format(port=plan.cut_slave),
            plan_hash=plan.plan_hash,
            domain=plan,
            plan=plan.plan,
        )

    async def run_failover_test(self, plan: Any, *, incident_id: str, actor: str, approved_hash: str,
                                notify: Callable[[str], Awaitable[None]]) -> DomainResult:
        from runbooks.bonding.failover import run_failover_test

        if approved_hash != plan.plan_hash:
            return DomainResult(False, "not run: the plan changed since it was approved; triage again")
        self._tokens.pop(("failover_test", plan.domain.host, plan.domain.bond, plan.domain.method), None)
        link_control = None
        if self.link_control is not None:
            control = self.link_control

            async def link_control(port: str, up: bool) -> None:
                # QMP is quick but blocking: keep the event loop (acks, other clicks) responsive.
                await asyncio.to_thread(control, port, up)

        # The approver confirmed the dialog that says the test needs a maintenance window; that
        # click is the confirmation (the bot offers no other way to run the test).
        report = await run_failover_test(
            plan.domain, pool=self.pool, actor=actor, maintenance_window_confirmed=True,
            link_control=link_control, notify=notify, incident_store=self.store,
            incident_id=incident_id,
        )
        return DomainResult(bool(report.passed), report.render_text())
