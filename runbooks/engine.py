"""The runbook engine: run any runbook's triage over SSH, its commands rendered safely.

It knows no runbook in particular and nothing of Slack: ``bondbot triage``, ``bondbot audit`` and the
bot all call ``run_host_triage`` (every subject of a host, or the one named) or ``run_triage``
(exactly one subject) and show their ``HostTriage`` / ``TriageResult``. Everything about what is
triaged comes from the runbook's YAML (see ``load_runbook``): its parameters and which of them name
the *subject* (bonding: ``bond``), the host-level reads that discover the subjects (bonding: the
host's bonds, then each bond's ports), the steps and the output slot each fills, the Python
callables (``module:function``, next to the runbook) that read discovery output, find per-step
values or run a step that needs more than one command, the diagnosis, and the actions. Loading
and checking a runbook is ``runbooks.runbook``; what a triage found is ``runbooks.results``; both
are re-exported here.

A failing step (not privileged, a timeout, output that does not parse) is recorded and the triage
goes on; the diagnosis sees what could not be checked in ``outputs.failed_steps`` and calls the
subject *inconclusive* instead of concluding from silence. Nothing is ever guessed: a subject the
host does not have is an error that lists what it has.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runbooks.findings import Diagnosis
from runbooks.outputs import SourceOutput, StepOutputs
from runbooks.results import (
    NO_BOND,
    NO_SUBJECT,
    HostTriage,
    StepEvent,
    StepRecord,
    TriageResult,
    _subject_text,
    bonds_text,
    subjects_text,
)
from runbooks.runbook import (
    BONDING_RUNBOOK,
    DEFAULT_RUNBOOK,
    Action,
    DiscoverStep,
    Param,
    Runbook,
    RunbookError,
    Step,
    SubjectSpec,
    builtin_runbooks,
    find_runbook,
    load_runbook,
)
from runbooks.validation import InvalidValue
from ssh_exec import CommandResult, Host, HostSession, SshPool

__all__ = [
    "BONDING_RUNBOOK",
    "DEFAULT_RUNBOOK",
    "NO_BOND",
    "NO_SUBJECT",
    "Action",
    "BondNotFound",
    "BondSelectionError",
    "DiscoverStep",
    "HostTriage",
    "Param",
    "Read",
    "Runbook",
    "RunbookError",
    "Skip",
    "SourceOutput",
    "Step",
    "StepEvent",
    "StepOutputs",
    "StepRecord",
    "SubjectContext",
    "SubjectList",
    "SubjectNotFound",
    "SubjectSelectionError",
    "SubjectSpec",
    "TriageResult",
    "bonds_text",
    "builtin_runbooks",
    "discover_bonds",
    "discover_subjects",
    "find_runbook",
    "load_runbook",
    "render_command",
    "resolve_bond",
    "resolve_subject",
    "run_host_triage",
    "run_triage",
    "subjects_text",
]


# --- rendering ------------------------------------------------------------------------------------


# One renderer for every command in the project (runbooks.render): validated, quoted, strict.


def render_command(template: str, values: Mapping[str, object], params: Mapping[str, Param]) -> str:
    """Render one command: every value validated by its declared type, then shell-quoted.

    Raises ``InvalidValue`` for a value that fails validation and ``RunbookError`` for a template
    that uses a value not given or not declared. Nothing is rendered half-way.
    """
    from runbooks.render import TemplateError
    from runbooks.render import render_command as _render

    try:
        return _render(template, values, params)
    except TemplateError as exc:
        raise RunbookError(str(exc)) from None

# --- running --------------------------------------------------------------------------------------


class SubjectSelectionError(Exception):
    """Which subject(s) to triage could not be settled: the named one is not on the host, the host
    has none, or it has several where one was needed. ``subjects`` is what the host has (None: the
    list could not be read). ``bond``/``bonds``: the same, read-only, for the bonding runbook's callers."""

    def __init__(self, message: str, *, host: str, subject: str | None = None,
                 subjects: tuple[str, ...] | None = None, bond: str | None = None,
                 bonds: tuple[str, ...] | None = None) -> None:
        super().__init__(message)
        self.host = host
        self.subject = subject if subject is not None else bond
        self.subjects = subjects if subjects is not None else bonds

    @property
    def bond(self) -> str | None:
        return self.subject

    @property
    def bonds(self) -> tuple[str, ...] | None:
        return self.subjects


class SubjectNotFound(SubjectSelectionError):
    """A subject was named (command or inventory) that the host does not have."""


#: The names the bonding runbook's callers know these by.
BondSelectionError = SubjectSelectionError
BondNotFound = SubjectNotFound


@dataclass(frozen=True)
class Read:
    """What a discover step's ``read`` callable makes of its output: a value for later hooks and
    the step's status (ok | failed | skipped) with why."""

    value: Any
    status: str = "ok"
    reason: str | None = None


@dataclass(frozen=True)
class SubjectList:
    """The subjects a host has. ``names`` None: they could not be listed (``error``); empty: none
    (``why_none`` says what was seen). Any object with these three attributes will do."""

    names: tuple[str, ...] | None
    error: str | None = None
    why_none: str = ""


class Skip(Exception):
    """Raised by a ``values`` callable: the step cannot run for this subject. ``failed``: it hides
    something the diagnosis needed (a failed step); otherwise there was simply nothing to read."""

    def __init__(self, reason: str, *, failed: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.failed = failed


def resolve_subject(host: Host, value: str | None, runbook: Runbook) -> str | None:
    """The subject named (command line), else the inventory's parameter for this runbook, else None
    (discover); validated by the parameter's type. Never a guess."""
    param = runbook.subject.param
    if param is None:
        if value is not None:
            raise InvalidValue(f"runbook {runbook.name} triages the host itself: it takes no subject (got {value!r})")
        return None
    if value is None:
        value = host.params_for(runbook.name).get(param)
    if value is None:
        return None
    from runbooks.render import validate_value

    return str(validate_value(runbook.parameters[param].type, value))


def resolve_bond(host: Host, bond: str | None, runbook: Runbook | None = None) -> str | None:
    """``resolve_subject`` for the bonding runbook (its callers' name for it)."""
    return resolve_subject(host, bond, runbook or load_runbook())


class _Runner:
    """Runs steps over the host's one connection and reports progress."""

    def __init__(self, session: HostSession, host: Host, progress: Callable[[StepEvent], None] | None,
                 subject_keys: tuple[str, ...]) -> None:
        self.session = session
        self.host = host
        self.progress = progress
        self.subject_keys = subject_keys
        self.shared: dict[str, asyncio.Future[StepRecord]] = {}  # by key: one read per host

    def start(self, label: str, command: str, subject: dict[str, str] | None, timeout: float | None,
              settle: Callable[[StepRecord], None] | None = None) -> asyncio.Future[StepRecord]:
        record = StepRecord(step=label, command=command, status="running", subject=subject,
                            subject_keys=self.subject_keys)

        async def go() -> StepRecord:
            if self.progress:
                self.progress(StepEvent("start", self.host.name, record))
            result = await self.session.run(command, timeout=timeout)
            record.result = result
            if settle is not None:
                settle(record)
            else:
                record.status, record.reason = ("ok", None) if result.failure_reason is None else ("failed", result.failure_reason)
            if self.progress:
                self.progress(StepEvent("done", self.host.name, record))
            return record

        return asyncio.ensure_future(go())


class SubjectContext:
    """What a runbook's callables (``values``, a step's ``run``) may use for one subject: the
    discovery reads and the subject's own steps (awaited only when asked for, so a step waits only
    for what it needs), the renderer, the host's one connection, and the outputs."""

    def __init__(self, *, runbook: Runbook, host: Host, subject: dict[str, str], outputs: Any,
                 records: list[StepRecord], runner: _Runner,
                 discovered: Mapping[str, Callable[[], Awaitable[Any]]],
                 steps: Mapping[str, asyncio.Future[StepRecord]]) -> None:
        self.runbook = runbook
        self.host = host
        self.subject = subject
        self.outputs = outputs
        self.records = records
        self._runner = runner
        self._discovered = discovered
        self._steps = steps

    async def discovered(self, name: str) -> Any:
        """The ``Read.value`` of discover step ``name`` (waits for the read)."""
        return await self._discovered[name]()

    async def step(self, name: str) -> StepRecord:
        """The record of this subject's own step ``name`` (waits for it)."""
        return await self._steps[name]

    def render(self, step: Step, values: Mapping[str, object]) -> str:
        return render_command(step.command, {**self.subject, **values}, self.runbook.parameters)

    def run(self, label: str, command: str, *, timeout: float | None = None, key: str | None = None) -> asyncio.Future[StepRecord]:
        """Run a command over the host's connection; with ``key``, once per host (subjects share it)."""
        if key is not None and key in self._runner.shared:
            return self._runner.shared[key]
        future = self._runner.start(label, command, dict(self.subject), timeout)
        if key is not None:
            self._runner.shared[key] = future
        return future

    def file(self, step: Step, record: StepRecord) -> None:
        """File a finished read as ``step``'s output (or its failure as a failed step)."""
        result = record.result
        assert result is not None
        reason = result.failure_reason
        if reason is not None:
            record.status, record.reason = "failed", reason
            self.outputs.failed_steps[step.name] = reason
            return
        record.status = "ok"
        setattr(self.outputs, step.output, SourceOutput(command=record.command, text=result.stdout))

    def skip(self, step: Step, reason: str, *, failed: bool) -> None:
        """The step did not run: a failed step (it hides something) or not applicable."""
        if failed:
            self.outputs.failed_steps[step.name] = reason
        else:
            self.outputs.not_applicable[step.name] = reason
        self.records.append(StepRecord(step=step.name, command=step.command, status="skipped", reason=reason,
                                       subject=dict(self.subject), subject_keys=self._runner.subject_keys))


async def run_host_triage(
    pool: SshPool,
    host: Host | str,
    *,
    subject: str | None = None,
    bond: str | None = None,
    runbook: Runbook | str | Path | None = None,
    progress: Callable[[StepEvent], None] | None = None,
    diagnose: bool = True,
    known_subjects: tuple[Any, StepRecord] | None = None,
    known_bonds: tuple[Any, StepRecord] | None = None,
) -> HostTriage:
    """Find the host's subjects, triage the named one or each one, and diagnose what they printed.

    ``subject`` is the value of the runbook's subject parameter (``bond`` is the same for the
    bonding runbook's callers). Validated before connecting: an invalid value or an unlisted host
    raises ``InvalidValue`` / ``HostNotAllowed`` and nothing is sent. Connection failures raise the
    ``SshExecError`` that says why. A named subject the host does not have raises
    :class:`SubjectNotFound` listing what it has. Step failures are recorded in the results; a host
    with no subject, or whose subjects could not be listed, is said in ``no_subject`` / ``error``.

    Round trips: the discovery reads run first, all at once (with a named subject, its plain steps
    run beside them); then every other step of every subject at once, each waiting only for the
    read it needs. For bonding that is two rounds, the same a named bond always took.
    """
    rb = runbook if isinstance(runbook, Runbook) else load_runbook(runbook)
    spec = rb.subject
    keys = spec.params
    h = pool.host(host)
    named = resolve_subject(h, subject if subject is not None else bond, rb)
    known = known_subjects if known_subjects is not None else known_bonds
    plain_steps = [s for s in rb.triage if not s.for_each and not s.run]
    run_steps = [s for s in rb.triage if s.run]
    each_steps = [s for s in rb.triage if s.for_each]
    host_level = not keys
    early_subject = {} if host_level else (rb.subject_of(named) if named is not None else None)
    early_commands = (
        {s.name: render_command(s.command, early_subject, rb.parameters) for s in plain_steps}
        if early_subject is not None else {}
    )
    discover_commands = {d.name: render_command(d.command, {}, rb.parameters) for d in rb.discover}
    started = time.monotonic()
    session = pool.session(h)
    await session.connect()
    runner = _Runner(session, h, progress, keys)
    reads: dict[str, Read] = {}

    def settle_discovery(record: StepRecord) -> None:
        result = record.result
        assert result is not None
        d = rb.discover_step(record.step.removeprefix("discover "))
        if d.read is None:
            read = Read(result, *(("ok", None) if result.failure_reason is None else ("failed", result.failure_reason)))
        else:
            read = rb.callable(d.read)(result)
        reads[d.name] = read
        record.status, record.reason = read.status, read.reason

    discover_tasks: dict[str, asyncio.Future[StepRecord]] = {
        d.name: runner.start(f"discover {d.name}", discover_commands[d.name], None, d.timeout, settle_discovery)
        for d in rb.discover if not (known is not None and d.name == spec.discover)
    }
    if known is not None and spec.discover is not None:  # read just before by discover_subjects: not again
        done: asyncio.Future[StepRecord] = asyncio.get_running_loop().create_future()
        done.set_result(known[1])
        reads[spec.discover] = Read(known[0], known[1].status, known[1].reason)
        discover_tasks = {spec.discover: done, **discover_tasks}
    discovery_order = [discover_tasks[d.name] for d in rb.discover if d.name in discover_tasks]
    outputs_by_subject: dict[str, Any] = {}
    early: dict[str, asyncio.Future[StepRecord]] = {}
    if early_subject is not None:
        out = outputs_by_subject[named or ""] = rb.new_outputs(early_subject)
        for s in plain_steps:
            early[s.name] = runner.start(s.name, early_commands[s.name], dict(early_subject), s.timeout,
                                         _settler(s, h, out))

    async def finish_all() -> None:
        await asyncio.gather(*discover_tasks.values(), *early.values())

    listing: Any = None
    if spec.discover is not None:
        try:
            await discover_tasks[spec.discover]
        except BaseException:
            await asyncio.gather(*discover_tasks.values(), *early.values(), return_exceptions=True)
            raise
        listing = reads[spec.discover].value
    names: tuple[str, ...] | None = getattr(listing, "names", None) if listing is not None else None

    def host_result(**kw: Any) -> HostTriage:
        return HostTriage(h, names, [], [t.result() for t in discovery_order], time.monotonic() - started,
                          named=named, runbook=rb.name, noun=spec.noun, plural=spec.plural, **kw)

    targets: list[dict[str, str]]
    if host_level:
        targets = [{}]
    elif named is not None:
        if listing is not None and names is not None and named not in names:
            await finish_all()
            raise SubjectNotFound(
                f"{h.name} has no {spec.noun} {named}: "
                f"{subjects_text(names, listing.why_none, noun=spec.noun, plural=spec.plural)}",
                host=h.name, subject=named, subjects=names)
        targets = [rb.subject_of(named)]
    else:
        if spec.discover is None:
            await finish_all()
            raise SubjectSelectionError(f"runbook {rb.name} cannot list a host's {spec.plural}: name the {spec.noun}",
                                        host=h.name)
        if names is None:
            await finish_all()
            return host_result(error=getattr(listing, "error", None) or f"the {spec.plural} could not be listed")
        if not names:
            await finish_all()
            return host_result(no_subject=f"no {spec.noun} on this host: {listing.why_none}")
        targets = [rb.subject_of(n) for n in names]

    def waiter(name: str) -> Callable[[], Awaitable[Any]]:
        async def wait() -> Any:
            await discover_tasks[name]
            return reads[name].value
        return wait

    discovered = {name: waiter(name) for name in discover_tasks}

    async def triage_subject(subj: dict[str, str]) -> TriageResult:
        key = _subject_text(subj)
        outputs = outputs_by_subject.setdefault(key, None) or rb.new_outputs(subj)
        outputs_by_subject[key] = outputs
        is_early = early_subject is not None and key == (named or "")
        tasks: dict[str, asyncio.Future[StepRecord]] = dict(early) if is_early else {
            s.name: runner.start(s.name, render_command(s.command, subj, rb.parameters), dict(subj), s.timeout,
                                 _settler(s, h, outputs))
            for s in plain_steps
        }
        records: list[StepRecord] = []
        ctx = SubjectContext(runbook=rb, host=h, subject=subj, outputs=outputs, records=records, runner=runner,
                             discovered=discovered, steps=tasks)
        run_futures = [asyncio.ensure_future(rb.callable(s.run or "")(ctx, s)) for s in run_steps]

        each_tasks: list[asyncio.Future[StepRecord]] = []
        values_cache: dict[str, list[str] | Skip] = {}
        for step in each_steps:
            param = step.for_each
            assert param is not None
            if param not in values_cache:
                try:
                    values_cache[param] = list(await rb.callable(rb.parameters[param].values or "")(ctx))
                except Skip as skip:
                    values_cache[param] = skip
            values = values_cache[param]
            if isinstance(values, Skip):
                if values.failed:
                    outputs.failed_steps[step.name] = f"not run: {values.reason}"
                records.append(StepRecord(step=step.name, command=step.command, status="skipped",
                                          reason=values.reason, subject=dict(subj), subject_keys=keys))
                continue
            for value in values:
                command = render_command(step.command, {**subj, param: value}, rb.parameters)
                each_tasks.append(runner.start(f"{step.name} {value}", command, dict(subj), step.timeout,
                                               _settler(step, h, outputs)))
        done_records = await asyncio.gather(*tasks.values(), *each_tasks)
        await asyncio.gather(*run_futures)
        records.extend(done_records)
        diagnosis: Diagnosis | None = None
        diagnosis_error: str | None = None
        if diagnose and rb.diagnosis:
            try:
                diagnosis = rb.callable(rb.diagnosis)(outputs)
            except Exception as exc:  # noqa: BLE001  (the report still shows every step's output and status)
                diagnosis_error = f"{type(exc).__name__}: {exc}"
        order = {s.name: i for i, s in enumerate(rb.triage)}
        records.sort(key=lambda r: (order.get(r.step.split(" ")[0], 99), r.step))
        # Each subject's duration runs from the start of the host's triage: its discovery is part of it.
        return TriageResult(h, subj, outputs, [t.result() for t in discovery_order] + records, diagnosis,
                            time.monotonic() - started, diagnosis_error, runbook=rb.name)

    try:
        results = list(await asyncio.gather(*(triage_subject(t) for t in targets)))
    finally:
        await asyncio.gather(*discover_tasks.values(), *early.values(), *runner.shared.values(),
                             return_exceptions=True)
    return HostTriage(h, names, results, [t.result() for t in discovery_order], time.monotonic() - started,
                      named=named, runbook=rb.name, noun=spec.noun, plural=spec.plural)


def _settler(step: Step, host: Host, outputs: Any) -> Callable[[StepRecord], None]:
    def settle(record: StepRecord) -> None:
        assert record.result is not None
        _settle(step, record.step, record, record.result, host, outputs)

    return settle


async def run_triage(
    pool: SshPool,
    host: Host | str,
    *,
    subject: str | None = None,
    bond: str | None = None,
    runbook: Runbook | str | Path | None = None,
    progress: Callable[[StepEvent], None] | None = None,
    diagnose: bool = True,
    known_subjects: tuple[Any, StepRecord] | None = None,
    known_bonds: tuple[Any, StepRecord] | None = None,
) -> TriageResult:
    """One subject's triage: the named one, or the host's only one. Raises
    :class:`SubjectSelectionError` when the host has none, several (name one), or its subjects
    could not be listed and none was named."""
    ht = await run_host_triage(pool, host, subject=subject, bond=bond, runbook=runbook, progress=progress,
                               diagnose=diagnose, known_subjects=known_subjects if known_subjects is not None else known_bonds)
    if len(ht.results) == 1:
        return ht.results[0]
    if ht.no_subject:
        raise SubjectSelectionError(f"{ht.host.name}: {ht.no_subject}", host=ht.host.name, subjects=ht.subjects)
    if ht.error:
        raise SubjectSelectionError(f"{ht.host.name}: {ht.error}; name the {ht.noun}", host=ht.host.name,
                                    subjects=ht.subjects)
    raise SubjectSelectionError(f"{ht.host.name} has several {ht.plural} ({', '.join(ht.subjects or ())}): name one",
                                host=ht.host.name, subjects=ht.subjects)


def _settle(step: Step, label: str, record: StepRecord, result: CommandResult, host: Host, outputs: Any) -> None:
    """Record the step's status and file its output where the diagnosis will look for it."""
    if result.privilege_denied:
        record.status, record.reason = "not-privileged", result.failure_reason
        outputs.failed_steps[label] = record.reason or "not privileged"
        return
    reason = result.failure_reason
    if reason is not None:
        record.status, record.reason = "failed", reason
        outputs.failed_steps[label] = reason
        return
    source = SourceOutput(command=record.command, text=result.stdout)
    if step.for_each:
        value = label.split(" ", 1)[1]
        getattr(outputs, step.output)[value] = source
    else:
        setattr(outputs, step.output, source)
    record.status = "ok"
    matters = step.privileged_when is None or re.search(step.privileged_when, result.stdout, re.MULTILINE)
    if step.privileged and not host.privileged and matters:
        record.status = "partial"
        record.reason = f"not privileged: {step.unprivileged or 'this step needs root'}"
        outputs.failed_steps[f"{label} (privileged details)"] = record.reason


async def discover_subjects(pool: SshPool, host: Host | str, *,
                            runbook: Runbook | str | Path | None = None) -> tuple[Any, StepRecord]:
    """Only the subject list of ``host`` (the read ``subject.discover`` names): ``(its value, its
    StepRecord)``, for a caller that must know the subjects before it opens anything (the bot opens
    one incident per subject). Hand the pair to ``run_host_triage(known_subjects=...)`` so the
    triage does not read the list again and its incident still shows the read."""
    rb = runbook if isinstance(runbook, Runbook) else load_runbook(runbook)
    if rb.subject.discover is None:
        raise RunbookError(f"runbook {rb.name} does not discover its subjects")
    step = rb.discover_step(rb.subject.discover)
    h = pool.host(host)
    session = pool.session(h)
    await session.connect()
    command = render_command(step.command, {}, rb.parameters)
    result = await session.run(command, timeout=step.timeout)
    read = rb.callable(step.read)(result) if step.read else Read(SubjectList(None, "no read for the subject list"), "failed")
    record = StepRecord(step=f"discover {step.name}", command=command, status=read.status, reason=read.reason,
                        result=result, subject_keys=rb.subject.params)
    return read.value, record


async def discover_bonds(pool: SshPool, host: Host | str, *, runbook: Runbook | None = None) -> tuple[Any, StepRecord]:
    """``discover_subjects`` for the bonding runbook (its callers' name for it)."""
    return await discover_subjects(pool, host, runbook=runbook)
