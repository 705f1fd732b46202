"""The runbook engine: load a runbook, render its commands safely, run the triage over SSH.

It knows nothing of Slack: ``bondbot triage``, ``bondbot audit`` and the bot all call
``run_triage`` and show its ``TriageResult``. A failing step (no nmcli, not privileged, a timeout)
is recorded and the triage goes on; the diagnosis sees what could not be checked in
``TriageOutputs.failed_steps`` instead of concluding from silence.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runbooks.bonding.outputs import SourceOutput, TriageOutputs
from runbooks.findings import Diagnosis
from runbooks.validation import InvalidValue, validate_interface_name, validator_for
from ssh_exec import CommandResult, Host, HostSession, SshPool

__all__ = [
    "RunbookError",
    "Param",
    "Step",
    "Runbook",
    "StepRecord",
    "StepEvent",
    "TriageResult",
    "load_runbook",
    "render_command",
    "run_triage",
    "BONDING_RUNBOOK",
]

BONDING_RUNBOOK = Path(__file__).parent / "bonding" / "runbook.yaml"
_OUTPUT_FIELDS = {"proc_bonding", "ip_details_json", "ip_link", "ethtool", "nmcli"}
_PER_SLAVE_FIELDS = {"ip_link", "ethtool"}


class RunbookError(Exception):
    """The runbook file itself is wrong (a bug in the runbook, not in the host)."""


@dataclass(frozen=True)
class Param:
    name: str
    type: str
    default: Any = None
    description: str = ""


@dataclass(frozen=True)
class Step:
    name: str
    command: str  # jinja2 template
    output: str
    title: str = ""
    for_each: str | None = None
    privileged: bool = False
    unprivileged: str = ""
    privileged_when: str | None = None  # regex on stdout: privilege matters only if it matches
    timeout: float | None = None


@dataclass(frozen=True)
class Runbook:
    name: str
    title: str
    parameters: dict[str, Param]
    triage: tuple[Step, ...]
    slaves_from: str
    actions: dict[str, Any] = field(default_factory=dict)

    def step(self, name: str) -> Step:
        for s in self.triage:
            if s.name == name:
                return s
        raise KeyError(name)


def load_runbook(path: Path = BONDING_RUNBOOK) -> Runbook:
    """Read and check a runbook YAML: unknown keys, types and output fields are errors here."""
    import yaml

    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except (OSError, yaml.YAMLError) as exc:
        raise RunbookError(f"cannot read runbook {path}: {exc}") from None
    if not isinstance(data, dict):
        raise RunbookError(f"{path}: expected a mapping")
    params: dict[str, Param] = {}
    for pname, spec in (data.get("parameters") or {}).items():
        validator_for(spec["type"])  # unknown type: error now, not at run time
        params[pname] = Param(pname, spec["type"], spec.get("default"), spec.get("description", ""))
    steps: list[Step] = []
    allowed = {"name", "title", "command", "output", "for_each", "privileged", "unprivileged", "privileged_when", "timeout"}
    for raw in data.get("triage") or []:
        extra = set(raw) - allowed
        if extra:
            raise RunbookError(f"{path}: step {raw.get('name')!r}: unknown key(s) {sorted(extra)}")
        step = Step(
            name=raw["name"],
            command=raw["command"],
            output=raw["output"],
            title=raw.get("title", ""),
            for_each=raw.get("for_each"),
            privileged=bool(raw.get("privileged", False)),
            unprivileged=" ".join(str(raw.get("unprivileged", "")).split()),
            privileged_when=raw.get("privileged_when"),
            timeout=raw.get("timeout"),
        )
        if step.output not in _OUTPUT_FIELDS:
            raise RunbookError(f"{path}: step {step.name!r}: output {step.output!r} is not one of {sorted(_OUTPUT_FIELDS)}")
        if (step.for_each is not None) != (step.output in _PER_SLAVE_FIELDS):
            raise RunbookError(f"{path}: step {step.name!r}: per-slave outputs need for_each: slave, and only they")
        if step.for_each is not None and step.for_each not in params:
            raise RunbookError(f"{path}: step {step.name!r}: for_each {step.for_each!r} is not a declared parameter")
        steps.append(step)
    slaves_from = (data.get("discover") or {}).get("slaves", {}).get("from", "")
    if any(s.for_each for s in steps) and slaves_from not in {s.name for s in steps if not s.for_each}:
        raise RunbookError(f"{path}: discover.slaves.from must name a bond-level step")
    return Runbook(
        name=data.get("name", path.stem),
        title=data.get("title", ""),
        parameters=params,
        triage=tuple(steps),
        slaves_from=slaves_from,
        actions=data.get("actions") or {},
    )


# --- rendering ------------------------------------------------------------------------------------


class _Quoted(str):
    """A value already shell-quoted by the ``q`` filter (so it is not quoted twice)."""


def _finalize(value: object) -> str:
    import shlex

    if isinstance(value, _Quoted):
        return str(value)
    return shlex.quote(str(value))


_ENV = None


def _env() -> Any:
    global _ENV
    if _ENV is None:
        import shlex

        import jinja2

        _ENV = jinja2.Environment(
            undefined=jinja2.StrictUndefined,
            autoescape=False,
            finalize=_finalize,
            keep_trailing_newline=False,
        )
        _ENV.filters["q"] = lambda v: v if isinstance(v, _Quoted) else _Quoted(shlex.quote(str(v)))
    return _ENV


_TEMPLATES: dict[str, Any] = {}


def _compiled(template: str) -> Any:
    """Compiling a template costs about a millisecond; an audit renders the same seven 7,000 times."""
    compiled = _TEMPLATES.get(template)
    if compiled is None:
        compiled = _TEMPLATES[template] = _env().from_string(template)
    return compiled


def render_command(template: str, values: Mapping[str, object], params: Mapping[str, Param]) -> str:
    """Render one command: every value validated by its declared type, then shell-quoted.

    Raises ``InvalidValue`` for a value that fails validation and ``RunbookError`` for a template
    that uses a value not given or not declared. Nothing is rendered half-way.
    """
    import jinja2

    checked: dict[str, object] = {}
    for key, value in values.items():
        if key not in params:
            raise RunbookError(f"value {key!r} has no declared type in the runbook's parameters")
        checked[key] = validator_for(params[key].type)(value)
    try:
        rendered = _compiled(template).render(**checked)
    except jinja2.UndefinedError as exc:
        raise RunbookError(f"cannot render {template!r}: {exc.message}") from None
    except jinja2.TemplateError as exc:
        raise RunbookError(f"bad template {template!r}: {exc}") from None
    if "\n" in rendered or "\r" in rendered or "\0" in rendered:
        raise RunbookError(f"rendered command contains a line break or NUL: {rendered!r}")
    return rendered


# --- running --------------------------------------------------------------------------------------


@dataclass
class StepRecord:
    """What one step did, for display and the incident log."""

    step: str  # "ethtool eno1" for per-slave steps
    command: str  # as written in the runbook, rendered (what evidence cites)
    status: str  # ok | failed | not-privileged | partial | skipped
    reason: str | None = None
    result: CommandResult | None = None

    @property
    def exit_status(self) -> int | None:
        return self.result.exit_status if self.result else None

    @property
    def duration(self) -> float:
        return self.result.duration if self.result else 0.0

    @property
    def stderr(self) -> str:
        return self.result.stderr if self.result else ""

    def to_json(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "command": self.command,
            "sent": self.result.command if self.result else None,
            "status": self.status,
            "reason": self.reason,
            "exit_status": self.exit_status,
            "duration": round(self.duration, 4),
            "stderr": self.stderr,
            "truncated": bool(self.result and self.result.truncated),
            "timed_out": bool(self.result and self.result.timed_out),
        }


@dataclass(frozen=True)
class StepEvent:
    """Progress: ``kind`` is "start" (record has no result yet) or "done"."""

    kind: str
    host: str
    record: StepRecord


@dataclass
class TriageResult:
    host: Host
    bond: str
    outputs: TriageOutputs
    steps: list[StepRecord]
    diagnosis: Diagnosis | None
    duration: float
    diagnosis_error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "host": self.host.name,
            "bond": self.bond,
            "duration": round(self.duration, 4),
            "diagnosis": self.diagnosis.to_json() if self.diagnosis else None,
            "diagnosis_error": self.diagnosis_error,
            "failed_steps": dict(self.outputs.failed_steps),
            "steps": [s.to_json() for s in self.steps],
        }


def _discover_slaves(text: str) -> list[str]:
    """Slave names as the kernel lists them in /proc/net/bonding/<bond>, each validated."""
    from runbooks.bonding.parsers.proc_bonding import parse_proc_bonding

    return [validate_interface_name(s.name) for s in parse_proc_bonding(text).slaves]


def resolve_bond(host: Host, bond: str | None, runbook: Runbook) -> str:
    """``--bond``, else the inventory's ``bond:``, else the runbook's default; validated."""
    value = bond if bond is not None else (host.bond or runbook.parameters["bond"].default)
    return validate_interface_name(value)


async def run_triage(
    pool: SshPool,
    host: Host | str,
    *,
    bond: str | None = None,
    runbook: Runbook | None = None,
    progress: Callable[[StepEvent], None] | None = None,
    diagnose: bool = True,
) -> TriageResult:
    """Run the runbook's triage on ``host`` and diagnose what it printed.

    Everything is validated before connecting: an invalid bond or an unlisted host raises
    ``InvalidValue`` / ``HostNotAllowed`` and nothing is sent. Connection failures raise the
    ``SshExecError`` that says why; step failures are recorded in the result.
    """
    rb = runbook or load_runbook()
    h = pool.host(host)
    bond_name = resolve_bond(h, bond, rb)
    bond_steps = [s for s in rb.triage if not s.for_each]
    rendered = {s.name: render_command(s.command, {"bond": bond_name}, rb.parameters) for s in bond_steps}
    started = time.monotonic()
    session = pool.session(h)
    await session.connect()

    outputs = TriageOutputs(bond=bond_name)
    records: list[StepRecord] = []

    async def run_step(step: Step, label: str, command: str) -> StepRecord:
        record = StepRecord(step=label, command=command, status="running")
        records.append(record)
        if progress:
            progress(StepEvent("start", h.name, record))
        result = await session.run(command, timeout=step.timeout)
        record.result = result
        _settle(step, label, record, result, h, outputs)
        if progress:
            progress(StepEvent("done", h.name, record))
        return record

    tasks = {s.name: asyncio.ensure_future(run_step(s, s.name, rendered[s.name])) for s in bond_steps}
    per_slave = [s for s in rb.triage if s.for_each]
    slave_tasks: list[asyncio.Future[StepRecord]] = []
    if per_slave:
        source = await tasks[rb.slaves_from]
        slaves: list[str] = []
        why_not: str | None = None
        if source.status in {"ok", "partial"} and source.result is not None:
            try:
                slaves = _discover_slaves(source.result.stdout)
                if not slaves:
                    why_not = f"the bond has no slaves ({source.command})"
            except InvalidValue as exc:
                why_not = f"a slave name from the host failed validation: {exc}"
            except Exception as exc:  # ParseError: the text is not /proc/net/bonding output
                why_not = f"cannot read slave names from {source.command}: {exc}"
        else:
            why_not = f"slave names unknown: {source.step} {source.reason or 'failed'}"
        for step in per_slave:
            if why_not:
                outputs.failed_steps[step.name] = f"not run: {why_not}"
                records.append(StepRecord(step=step.name, command=step.command, status="skipped", reason=why_not))
                continue
            for slave in slaves:
                command = render_command(step.command, {"bond": bond_name, step.for_each or "slave": slave}, rb.parameters)
                slave_tasks.append(asyncio.ensure_future(run_step(step, f"{step.name} {slave}", command)))
    await asyncio.gather(*tasks.values(), *slave_tasks)
    duration = time.monotonic() - started

    diagnosis: Diagnosis | None = None
    diagnosis_error: str | None = None
    if diagnose:
        try:
            from runbooks.bonding.diagnosis import diagnose as run_diagnosis

            diagnosis = run_diagnosis(outputs)
        except Exception as exc:  # the report still shows every step's output and status
            diagnosis_error = f"{type(exc).__name__}: {exc}"
    order = {s.name: i for i, s in enumerate(rb.triage)}
    records.sort(key=lambda r: (order.get(r.step.split(" ")[0], 99), r.step))
    return TriageResult(h, bond_name, outputs, records, diagnosis, duration, diagnosis_error)


def _settle(step: Step, label: str, record: StepRecord, result: CommandResult, host: Host, outputs: TriageOutputs) -> None:
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
        slave = label.split(" ", 1)[1]
        getattr(outputs, step.output)[slave] = source
    else:
        setattr(outputs, step.output, source)
    record.status = "ok"
    import re

    matters = step.privileged_when is None or re.search(step.privileged_when, result.stdout, re.M)
    if step.privileged and not host.privileged and matters:
        record.status = "partial"
        record.reason = f"not privileged: {step.unprivileged or 'this step needs root'}"
        outputs.failed_steps[f"{label} (privileged details)"] = record.reason
