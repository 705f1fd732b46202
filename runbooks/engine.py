"""The runbook engine: load any runbook, render its commands safely, run its triage over SSH.

It knows no runbook in particular and nothing of Slack: ``bondbot triage``, ``bondbot audit`` and the
bot all call ``run_host_triage`` (every subject of a host, or the one named) or ``run_triage``
(exactly one subject) and show their ``HostTriage`` / ``TriageResult``. Everything about what is
triaged comes from the runbook's YAML (see ``load_runbook``): its parameters and which of them name
the *subject* (bonding: ``bond``), the host-level reads that discover the subjects (bonding: the
host's bonds, then each bond's ports), the steps and the output slot each fills, the Python
callables (``module:function``, next to the runbook) that read discovery output, find per-step
values or run a step that needs more than one command, the diagnosis, and the actions.

A failing step (not privileged, a timeout, output that does not parse) is recorded and the triage
goes on; the diagnosis sees what could not be checked in ``outputs.failed_steps`` and calls the
subject *inconclusive* instead of concluding from silence. Nothing is ever guessed: a subject the
host does not have is an error that lists what it has.
"""

from __future__ import annotations

import asyncio
import importlib
import re
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runbooks.findings import Diagnosis
from runbooks.outputs import SourceOutput, StepOutputs
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

#: Where the built-in runbooks live: ``runbooks/<name>/runbook.yaml``.
BUILTIN_DIR = Path(__file__).parent
DEFAULT_RUNBOOK = "bonding"
#: The built-in bonding runbook's file (kept for callers that load it by path).
BONDING_RUNBOOK = BUILTIN_DIR / "bonding" / "runbook.yaml"
#: Keys a triage result's JSON uses itself: a subject parameter may not be named like one.
_RESERVED_NAMES = {"host", "runbook", "subject", "verdict", "duration", "diagnosis", "diagnosis_error",
                   "failed_steps", "not_applicable", "steps", "error", "results", "discovery", "step",
                   "command", "status", "reason", "sent", "exit_status", "stderr", "truncated", "timed_out"}
_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


class RunbookError(Exception):
    """The runbook file itself is wrong (a bug in the runbook, not in the host)."""


@dataclass(frozen=True)
class Param:
    """A value a command may hold. ``values`` (``module:function``): how the values of a
    ``for_each`` parameter are found at run time (an async callable given a ``SubjectContext``)."""

    name: str
    type: str
    default: Any = None
    description: str = ""
    values: str | None = None


@dataclass(frozen=True)
class DiscoverStep:
    """A host-level read with no values in it, run once per host before or beside the subjects'
    steps. ``read`` (``module:function``) turns its ``CommandResult`` into a :class:`Read`."""

    name: str
    command: str
    title: str = ""
    timeout: float | None = None
    read: str | None = None


@dataclass(frozen=True)
class Step:
    """One triage step. ``output`` is the slot its stdout is filed in (``outputs:`` in the
    runbook); a ``for_each`` step runs once per value of that parameter; a step with ``run``
    (``module:function``) is carried out by that async callable (it may run several commands:
    bonding's profile read tries the active profile, then candidates by UUID)."""

    name: str
    command: str  # jinja2 template
    output: str
    title: str = ""
    for_each: str | None = None
    needs: str | None = None  # a value the step's command is rendered with, found by its ``run``
    run: str | None = None
    privileged: bool = False
    unprivileged: str = ""
    privileged_when: str | None = None  # regex on stdout: privilege matters only if it matches
    timeout: float | None = None


@dataclass(frozen=True)
class SubjectSpec:
    """What one triage is about. ``params``: the subject parameter(s) (bonding: ``("bond",)``;
    none: the host itself). ``discover``: the discover step whose read lists the subjects (its
    :class:`Read` value has ``names``, ``error`` and ``why_none``, like :class:`SubjectList`)."""

    params: tuple[str, ...] = ()
    discover: str | None = None
    noun: str = ""
    plural: str = ""

    @property
    def param(self) -> str | None:
        return self.params[0] if self.params else None


@dataclass(frozen=True)
class Action:
    """A change the runbook offers (the fix, a test): ``plan`` builds its Plan (``module:function``)."""

    name: str
    title: str = ""
    plan: str | None = None
    run: str | None = None
    spec: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Runbook:
    name: str
    title: str
    parameters: dict[str, Param]
    triage: tuple[Step, ...]
    subject: SubjectSpec = field(default_factory=SubjectSpec)
    actions: dict[str, Action] = field(default_factory=dict)
    discover: tuple[DiscoverStep, ...] = ()
    outputs: Mapping[str, str] = field(default_factory=dict)  # slot -> "one" | "each"
    outputs_type: str | None = None  # module:Class built with the subject's values as keywords
    diagnosis: str | None = None  # module:function, outputs -> Diagnosis
    path: Path | None = None
    description: str = ""

    def discover_step(self, name: str) -> DiscoverStep:
        for s in self.discover:
            if s.name == name:
                return s
        raise KeyError(name)

    def step(self, name: str) -> Step:
        for s in self.triage:
            if s.name == name:
                return s
        raise KeyError(name)

    def callable(self, ref: str) -> Callable[..., Any]:
        """The Python object a ``module:function`` reference names (imported on first use)."""
        return _resolve(ref, self.path)

    def new_outputs(self, subject: Mapping[str, str]) -> Any:
        if self.outputs_type:
            return self.callable(self.outputs_type)(**subject)
        return StepOutputs(subject=dict(subject), slots={k: ({} if v == "each" else None) for k, v in self.outputs.items()})

    def subject_of(self, value: str | None) -> dict[str, str]:
        """``{"bond": value}`` for a one-parameter subject; ``{}`` for a host-level runbook."""
        p = self.subject.param
        return {p: value} if p is not None and value is not None else {}


def _resolve(ref: str, base: Path | None) -> Any:
    """``pkg.module:attr``; a runbook outside the package may name a module beside its YAML."""
    module_name, _, attr = ref.partition(":")
    if not module_name or not attr:
        raise RunbookError(f"{ref!r} is not a module:function reference")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError:
        if base is None:
            raise RunbookError(f"cannot import {module_name!r} (named in the runbook)") from None
        module = _import_beside(module_name, base.parent)
    try:
        return getattr(module, attr)
    except AttributeError:
        raise RunbookError(f"{module_name} has no {attr!r} (named in the runbook)") from None


def _import_beside(module_name: str, folder: Path) -> Any:
    """Import ``module_name`` from the runbook's own folder (a runbook kept outside the package)."""
    import importlib.util

    key = f"_bondbot_runbook_{abs(hash(str(folder)))}_{module_name}"
    if key in sys.modules:
        return sys.modules[key]
    candidate = folder / (module_name.replace(".", "/") + ".py")
    if not candidate.is_file():
        raise RunbookError(f"cannot import {module_name!r}: not installed and no {candidate}")
    spec = importlib.util.spec_from_file_location(key, candidate)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[key] = module
    spec.loader.exec_module(module)
    return module


# --- the registry ---------------------------------------------------------------------------------


def builtin_runbooks() -> dict[str, Path]:
    """The runbooks shipped in the package: ``runbooks/<name>/runbook.yaml`` by folder name."""
    return {p.parent.name: p for p in sorted(BUILTIN_DIR.glob("*/runbook.yaml"))}


def _registry(extra: str | None = None) -> dict[str, Path]:
    """Built-in runbooks, then those in ``BONDBOT_RUNBOOKS`` (``os.pathsep``-separated runbook
    files or folders holding ``<name>/runbook.yaml`` or ``runbook.yaml``), then ``extra``."""
    import os

    found = builtin_runbooks()
    for entry in filter(None, ((os.environ.get("BONDBOT_RUNBOOKS") or "") + os.pathsep + (extra or "")).split(os.pathsep)):
        p = Path(os.path.expanduser(entry))
        if p.is_file():
            found[_name_in(p)] = p
        elif (p / "runbook.yaml").is_file():
            found[_name_in(p / "runbook.yaml")] = p / "runbook.yaml"
        elif p.is_dir():
            for f in sorted(p.glob("*/runbook.yaml")):
                found[_name_in(f)] = f
    return found


def _name_in(path: Path) -> str:
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return path.parent.name
    return str(data.get("name")) if isinstance(data, dict) and data.get("name") else path.parent.name


def find_runbook(name_or_path: str | Path | None = None, *, search: str | None = None) -> Path:
    """The runbook file for a name (built-in, ``BONDBOT_RUNBOOKS``, ``search``) or a path to a
    runbook file or to a folder holding ``runbook.yaml``. Unknown: ``RunbookError`` listing the names."""
    if name_or_path is None:
        name_or_path = DEFAULT_RUNBOOK
    text = str(name_or_path)
    p = Path(text).expanduser()
    if "/" in text or text.endswith((".yaml", ".yml")) or isinstance(name_or_path, Path):
        if p.is_dir():
            p = p / "runbook.yaml"
        if not p.is_file():
            raise RunbookError(f"no runbook file {p}")
        return p
    known = _registry(search)
    if text not in known:
        raise RunbookError(f"unknown runbook {text!r}; known: {', '.join(sorted(known)) or 'none'} "
                           f"(or give a path; more with BONDBOT_RUNBOOKS)")
    return known[text]


_LOADED: dict[tuple[str, float], Runbook] = {}


def load_runbook(path: str | Path | None = None) -> Runbook:
    """Read and check a runbook (a name, a path, or the default): unknown keys, types, slots and
    references are errors here, not at run time."""
    p = find_runbook(path)
    try:
        key = (str(p.resolve()), p.stat().st_mtime)
    except OSError as exc:
        raise RunbookError(f"cannot read runbook {p}: {exc}") from None
    if key not in _LOADED:
        _LOADED[key] = _load(p)
    return _LOADED[key]


def _keys(where: str, spec: Mapping[str, Any], allowed: set[str]) -> None:
    extra = set(spec) - allowed
    if extra:
        raise RunbookError(f"{where}: unknown key(s) {sorted(extra)}")


def _check_type(where: str, type_name: str) -> None:
    from runbooks.render import TemplateError, validate_value

    try:
        validate_value(type_name, object())
    except TemplateError as exc:
        raise RunbookError(f"{where}: {exc}") from None
    except (InvalidValue, TypeError, ValueError):  # a known type refusing the probe value: as it should
        return


def _load(path: Path) -> Runbook:
    import yaml

    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except (OSError, yaml.YAMLError) as exc:
        raise RunbookError(f"cannot read runbook {path}: {exc}") from None
    if not isinstance(data, dict):
        raise RunbookError(f"{path}: expected a mapping")
    _keys(str(path), data, {"version", "name", "title", "description", "subject", "parameters", "discover",
                            "outputs", "triage", "diagnosis", "actions"})
    params: dict[str, Param] = {}
    for pname, spec in (data.get("parameters") or {}).items():
        _keys(f"{path}: parameter {pname!r}", spec, {"type", "default", "description", "values"})
        if not isinstance(spec, dict) or "type" not in spec:
            raise RunbookError(f"{path}: parameter {pname!r} needs a type")
        _check_type(f"{path}: parameter {pname!r}", str(spec["type"]))  # unknown type: error now
        params[pname] = Param(pname, spec["type"], spec.get("default"), spec.get("description", ""), spec.get("values"))

    subject_raw = data.get("subject") or {}
    if isinstance(subject_raw, list):
        subject_raw = {"params": subject_raw}
    _keys(f"{path}: subject", subject_raw, {"params", "discover", "noun", "plural"})
    subject_params = tuple(subject_raw.get("params") or ())
    if len(subject_params) > 1:
        raise RunbookError(f"{path}: subject: at most one subject parameter is supported, got {list(subject_params)}")
    for sp in subject_params:
        if sp not in params:
            raise RunbookError(f"{path}: subject parameter {sp!r} is not a declared parameter")
        if sp in _RESERVED_NAMES or not _NAME_RE.match(sp):
            raise RunbookError(f"{path}: subject parameter {sp!r} clashes with a result field or is not a plain name")
    noun = str(subject_raw.get("noun") or (subject_params[0] if subject_params else ""))
    subject = SubjectSpec(subject_params, subject_raw.get("discover"), noun,
                          str(subject_raw.get("plural") or (noun + "s" if noun else "")))

    outputs_raw = data.get("outputs") or {}
    _keys(f"{path}: outputs", outputs_raw, {"type", "slots"})
    slots = {str(k): str(v) for k, v in (outputs_raw.get("slots") or {}).items()}
    for slot, kind in slots.items():
        if kind not in ("one", "each"):
            raise RunbookError(f"{path}: outputs.slots.{slot}: 'one' or 'each', got {kind!r}")

    steps: list[Step] = []
    allowed = {"name", "title", "command", "output", "for_each", "needs", "run", "privileged", "unprivileged",
               "privileged_when", "timeout"}
    for raw in data.get("triage") or []:
        _keys(f"{path}: step {raw.get('name')!r}", raw, allowed)
        step = Step(
            name=raw["name"],
            command=raw["command"],
            output=raw["output"],
            title=raw.get("title", ""),
            for_each=raw.get("for_each"),
            needs=raw.get("needs"),
            run=raw.get("run"),
            privileged=bool(raw.get("privileged", False)),
            unprivileged=" ".join(str(raw.get("unprivileged", "")).split()),
            privileged_when=raw.get("privileged_when"),
            timeout=raw.get("timeout"),
        )
        if step.output not in slots:
            raise RunbookError(f"{path}: step {step.name!r}: output {step.output!r} is not one of {sorted(slots)}")
        if (step.for_each is not None) != (slots[step.output] == "each"):
            raise RunbookError(f"{path}: step {step.name!r}: 'each' output slots need for_each, and only they")
        for ref_name in (step.for_each, step.needs):
            if ref_name is not None and ref_name not in params:
                raise RunbookError(f"{path}: step {step.name!r}: {ref_name!r} is not a declared parameter")
        if step.for_each is not None and not params[step.for_each].values:
            raise RunbookError(f"{path}: step {step.name!r}: parameter {step.for_each!r} has no 'values' (how its values are found)")
        if step.needs is not None and step.run is None:
            raise RunbookError(f"{path}: step {step.name!r}: needs {step.needs!r} but has no 'run' that finds it")
        steps.append(step)

    discover: list[DiscoverStep] = []
    for dname, spec in (data.get("discover") or {}).items():
        if not isinstance(spec, dict) or "command" not in spec:
            raise RunbookError(f"{path}: discover.{dname} needs a command")
        _keys(f"{path}: discover.{dname}", spec, {"command", "title", "timeout", "read"})
        try:
            render_command(spec["command"], {}, params)  # host-level: no values at all
        except RunbookError as exc:
            raise RunbookError(f"{path}: discover.{dname} must not use values: {exc}") from None
        discover.append(DiscoverStep(str(dname), spec["command"], spec.get("title", ""), spec.get("timeout"), spec.get("read")))
    if subject.discover is not None and subject.discover not in {d.name for d in discover}:
        raise RunbookError(f"{path}: subject.discover {subject.discover!r} is not a discover step")
    if subject.params and subject.discover is None:
        pass  # the subject must then be named (command line or inventory): nothing is guessed

    actions: dict[str, Action] = {}
    for aname, spec in (data.get("actions") or {}).items():
        spec = spec or {}
        actions[str(aname)] = Action(str(aname), str(spec.get("title", "")), spec.get("plan"), spec.get("run"),
                                     {k: v for k, v in spec.items() if k not in ("title", "plan", "run")})
    rb = Runbook(
        name=str(data.get("name") or path.parent.name),
        title=str(data.get("title", "")),
        parameters=params,
        triage=tuple(steps),
        subject=subject,
        actions=actions,
        discover=tuple(discover),
        outputs=slots,
        outputs_type=outputs_raw.get("type"),
        diagnosis=data.get("diagnosis"),
        path=path,
        description=" ".join(str(data.get("description", "")).split()),
    )
    # Every triage reference must resolve now: a typo is a runbook error, not a failure on a host.
    # (Actions are imported when offered: the remediation code is not needed to triage.)
    refs = [rb.outputs_type, rb.diagnosis, *(d.read for d in rb.discover), *(s.run for s in rb.triage),
            *(p.values for p in params.values())]
    for ref in filter(None, refs):
        rb.callable(ref)
    return rb


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


def subjects_text(subjects: tuple[str, ...] | None, why_none: str = "", *, noun: str = "bond",
                  plural: str = "") -> str:
    """What a host has, in words: "its bonds: bond0, bond1" / "it has no bond (...)"."""
    plural = plural or noun + "s"
    if subjects is None:
        return f"its {plural} could not be listed"
    if not subjects:
        return f"it has no {noun}" + (f" ({why_none})" if why_none else "")
    return (f"its {noun}: " if len(subjects) == 1 else f"its {plural}: ") + ", ".join(subjects)


def bonds_text(bonds: tuple[str, ...] | None, why_none: str = "") -> str:
    """``subjects_text`` in the bonding runbook's words."""
    return subjects_text(bonds, why_none, noun="bond")


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


def _subject_text(subject: Mapping[str, str] | None) -> str:
    return " ".join(subject.values()) if subject else ""


@dataclass
class StepRecord:
    """What one step did, for display and the incident log."""

    step: str  # "ethtool eno1" for per-value steps; "discover bonds" for host-level reads
    command: str  # as written in the runbook, rendered (what evidence cites)
    status: str  # ok | failed | not-privileged | partial | skipped
    reason: str | None = None
    result: CommandResult | None = None
    subject: dict[str, str] | None = None  # None: a host-level discovery read
    #: The runbook's subject parameters: to_json names each (``"bond": ...``), None on host reads.
    subject_keys: tuple[str, ...] = ()

    @property
    def bond(self) -> str | None:
        """The subject's ``bond`` (bonding runbook callers): read-only."""
        return (self.subject or {}).get("bond")

    @property
    def subject_text(self) -> str:
        return _subject_text(self.subject)

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
        data: dict[str, Any] = {"step": self.step}
        for key in self.subject_keys:
            data[key] = (self.subject or {}).get(key)
        data |= {
            "subject": dict(self.subject) if self.subject is not None else None,
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
        return data


@dataclass(frozen=True)
class StepEvent:
    """Progress: ``kind`` is "start" (record has no result yet) or "done"."""

    kind: str
    host: str
    record: StepRecord


@dataclass
class TriageResult:
    """One subject's triage. ``steps`` starts with the host-level discovery reads it relied on."""

    host: Host
    subject: dict[str, str]
    outputs: Any
    steps: list[StepRecord]
    diagnosis: Diagnosis | None
    duration: float
    diagnosis_error: str | None = None
    runbook: str = DEFAULT_RUNBOOK

    @property
    def bond(self) -> str:
        """The subject's ``bond`` (bonding runbook callers): read-only."""
        return self.subject.get("bond", "")

    @property
    def subject_text(self) -> str:
        return _subject_text(self.subject)

    @property
    def verdict(self) -> str:
        """diagnosed | healthy | inconclusive, or "error" when the diagnosis itself failed."""
        if self.diagnosis is None:
            return "error" if self.diagnosis_error else "inconclusive"
        return self.diagnosis.verdict

    def to_json(self) -> dict[str, Any]:
        return {
            "host": self.host.name,
            **self.subject,
            "runbook": self.runbook,
            "subject": dict(self.subject),
            "verdict": self.verdict,
            "duration": round(self.duration, 4),
            "diagnosis": self.diagnosis.to_json() if self.diagnosis else None,
            "diagnosis_error": self.diagnosis_error,
            "failed_steps": dict(self.outputs.failed_steps),
            "not_applicable": dict(self.outputs.not_applicable),
            "steps": [s.to_json() for s in self.steps],
        }


#: Host-level verdicts besides the per-subject ones (see ``HostTriage.verdict``).
NO_SUBJECT = "no-subject"
NO_BOND = "no-bond"
_VERDICT_ORDER = ("error", "inconclusive", "diagnosed", "healthy")


@dataclass
class HostTriage:
    """Everything one ``bondbot triage HOST`` learned: the host's subjects and one result per subject
    triaged (one incident per subject: each has its own root cause, fix, approvals and rollback)."""

    host: Host
    subjects: tuple[str, ...] | None  # what the host has; None when it could not be listed
    results: list[TriageResult]
    discovery: list[StepRecord]
    duration: float
    named: str | None = None
    no_subject: str | None = None  # "no bond on this host (...)"
    error: str | None = None  # nothing named and the subjects could not be listed: inconclusive
    runbook: str = DEFAULT_RUNBOOK
    noun: str = "bond"
    plural: str = "bonds"

    @property
    def bonds(self) -> tuple[str, ...] | None:
        """``subjects`` (bonding runbook callers): read-only."""
        return self.subjects

    @property
    def no_bond(self) -> str | None:
        """``no_subject`` (bonding runbook callers): read-only."""
        return self.no_subject

    @property
    def verdict(self) -> str:
        """no-<noun> | inconclusive | error | diagnosed | healthy: the worst over the subjects."""
        if self.no_subject is not None:
            return f"no-{self.noun}" if self.noun else NO_SUBJECT
        if self.error is not None or not self.results:
            return "inconclusive"
        verdicts = {r.verdict for r in self.results}
        return next(v for v in _VERDICT_ORDER if v in verdicts)

    def to_json(self) -> dict[str, Any]:
        found = list(self.subjects) if self.subjects is not None else None
        data: dict[str, Any] = {"host": self.host.name, "runbook": self.runbook, "verdict": self.verdict}
        if self.noun:  # in the runbook's words: bonds_found, bond_named, no_bond
            data |= {f"{self.plural}_found": found, f"{self.noun}_named": self.named, f"no_{self.noun}": self.no_subject}
        data |= {
            "subjects_found": found,
            "subject_named": self.named,
            "no_subject": self.no_subject,
            "error": self.error,
            "duration": round(self.duration, 4),
            "discovery": [s.to_json() for s in self.discovery],
            "results": [r.to_json() for r in self.results],
        }
        return data


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
