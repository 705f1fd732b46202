"""A runbook as data: its YAML read and checked, and the registry that finds runbooks by name.

A runbook is ``runbooks/<name>/runbook.yaml`` (built in), a file named in ``BONDBOT_RUNBOOKS``, or
any path. ``load_runbook`` checks everything it can before anything runs: unknown keys, parameter
types, output slots, that host-level reads hold no values, and that every ``module:function`` the
triage needs resolves (a runbook outside the package may keep its module beside its YAML). The
engine (``runbooks.engine``) runs what is loaded here; it knows no runbook in particular.
"""

from __future__ import annotations

import importlib
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runbooks.outputs import StepOutputs

__all__ = [
    "BONDING_RUNBOOK",
    "BUILTIN_DIR",
    "DEFAULT_RUNBOOK",
    "Action",
    "DiscoverStep",
    "Param",
    "Runbook",
    "RunbookError",
    "Step",
    "SubjectSpec",
    "builtin_runbooks",
    "find_runbook",
    "load_runbook",
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


def _registry(search: str | None = None) -> dict[str, Path]:
    """Built-in runbooks, then those on the caller's ``search`` path (``os.pathsep``-separated
    runbook files or folders holding ``<name>/runbook.yaml`` or ``runbook.yaml``; the CLI and the
    bot pass ``BONDBOT_RUNBOOKS``). This layer reads no environment of its own."""
    import os

    found = builtin_runbooks()
    for entry in filter(None, (search or "").split(os.pathsep)):
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
    """The runbook file for a name (built-in, or on the ``search`` path: see ``_registry``) or a path
    to a runbook file or to a folder holding ``runbook.yaml``. Unknown: ``RunbookError`` listing the names."""
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
                           f"(more with BONDBOT_RUNBOOKS)")
    return known[text]


_LOADED: dict[tuple[str, float], Runbook] = {}


def load_runbook(path: str | Path | None = None, *, search: str | None = None) -> Runbook:
    """Read and check a runbook (a name, a path, or the default; names also on ``search``, see
    ``_registry``): unknown keys, types, slots and references are errors here, not at run time."""
    p = find_runbook(path, search=search)
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


def _render(template: str, values: Mapping[str, object], params: Mapping[str, Param]) -> str:
    from runbooks.render import TemplateError, render_command

    try:
        return render_command(template, values, params)
    except TemplateError as exc:
        raise RunbookError(str(exc)) from None


def _check_type(where: str, type_name: str) -> None:
    from runbooks.render import TemplateError, validate_value

    try:
        validate_value(type_name, object())
    except TemplateError as exc:
        raise RunbookError(f"{where}: {exc}") from None
    except (TypeError, ValueError):  # a known type refusing the probe value (InvalidValue is one): as it should
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
            _render(spec["command"], {}, params)  # host-level: no values at all
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
