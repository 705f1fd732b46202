"""The one renderer of shell commands in the project: jinja2, StrictUndefined, every value typed.

Every command bondbot runs or shows comes from a template in a runbook's YAML, rendered here: each
value is first validated by the type its runbook declares for it (an interface name, a UUID, an
IPv4 address, a path...), then shell-quoted. A plain ``{{ value }}`` is quoted (``finalize``); the
``q`` filter says it explicitly and never quotes twice. Validation is the safety; quoting is the
belt on top, so a hostile host-sourced string stays one word even if a validator were too lax.

A command rendered here is a :class:`Rendered` string: shell code this renderer produced. It may
be given to another template as a value of type ``command``: ``{{ cmd }}`` inserts it as code
(``a; b``), ``{{ cmd | q }}`` as one quoted word (``sh -c {{ script | q }}``). A plain ``str``
is never accepted as a command, so no text built elsewhere can reach a shell through here.

Two entry points: :func:`render_command` (the triage engine: one line, values checked against the
runbook's ``parameters``) and :class:`TemplateSet` (a runbook's remediation templates by dotted
key, with their declared value types). :meth:`TemplateSet.text` renders operator instructions
(not shell: values validated, not quoted).
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from runbooks.validation import InvalidValue, validate_interface_name, validate_uuid

if TYPE_CHECKING:
    from runbooks.plan import PlanStep

__all__ = [
    "Rendered",
    "TemplateError",
    "TemplateSet",
    "TypeSpec",
    "build_steps",
    "register_type",
    "render_command",
    "used_names",
    "validate_value",
]


class TemplateError(Exception):
    """A template that cannot render (undefined or undeclared value, syntax): a bug in the runbook."""


class Rendered(str):
    """A command produced by this renderer: shell code, trusted as a ``command`` value."""


class _Quoted(str):
    """A value already shell-quoted by the ``q`` filter (so it is not quoted twice)."""


def _finalize(value: object) -> str:
    if isinstance(value, _Quoted | Rendered):
        return str(value)
    return shlex.quote(str(value))


def _q(value: object) -> str:
    if isinstance(value, _Quoted):
        return value
    return _Quoted(shlex.quote(str(value)))


_ENV: Any = None
_TEXT_ENV: Any = None


def _env() -> Any:
    global _ENV
    if _ENV is None:
        import jinja2

        _ENV = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False, finalize=_finalize,
                                  keep_trailing_newline=False)
        _ENV.filters["q"] = _q
    return _ENV


def _text_env() -> Any:
    """For operator instructions (never run): strict, but values are shown as they are."""
    global _TEXT_ENV
    if _TEXT_ENV is None:
        import jinja2

        _TEXT_ENV = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False,
                                       keep_trailing_newline=False)
    return _TEXT_ENV


_TEMPLATES: dict[tuple[bool, str], Any] = {}


def _compiled(template: str, *, text: bool = False) -> Any:
    """Compiling a template costs about a millisecond; an audit renders the same seven 7,000 times."""
    compiled = _TEMPLATES.get((text, template))
    if compiled is None:
        import jinja2

        try:
            compiled = (_text_env() if text else _env()).from_string(template)
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(f"bad template {template!r}: {exc}") from None
        _TEMPLATES[(text, template)] = compiled
    return compiled


# --- value types ----------------------------------------------------------------------------------

_UNIT_RE = re.compile(r"[A-Za-z0-9_.@:-]{1,200}")
_PATH_RE = re.compile(r"/[A-Za-z0-9_.@:+,/-]{0,4000}")
_HEX_RE = re.compile(r"[0-9a-f]{1,128}")


def _int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidValue(f"invalid number {value!r}: expected an integer")
    return value


def _number(value: object) -> int | float:
    import math

    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidValue(f"invalid number {value!r}: expected a finite number")
    return value


def _ipv4(value: object) -> str:
    try:
        return str(ipaddress.IPv4Address(str(value)))
    except ValueError:
        raise InvalidValue(f"invalid IPv4 address {value!r}") from None


def _path(value: object) -> str:
    if not isinstance(value, str) or not _PATH_RE.fullmatch(value) or "/../" in value or value.endswith("/.."):
        raise InvalidValue(f"invalid path {value!r}: an absolute path of A-Z a-z 0-9 _ . @ : + , / -")
    return value


def _unit(value: object) -> str:
    if not isinstance(value, str) or not _UNIT_RE.fullmatch(value) or value.startswith("-"):
        raise InvalidValue(f"invalid unit or tag name {value!r}")
    return value


def _hex(value: object) -> str:
    if not isinstance(value, str) or not _HEX_RE.fullmatch(value):
        raise InvalidValue(f"invalid token {value!r}: expected lower-case hex digits")
    return value


def _text(value: object) -> str:
    """Any text (file content, a NetworkManager profile name): never trusted, always quoted."""
    if not isinstance(value, str) or "\0" in value:
        raise InvalidValue(f"invalid text {value!r}: expected a string without NUL")
    return value


def _command(value: object) -> Rendered:
    if not isinstance(value, Rendered):
        raise InvalidValue("a command value must come from the renderer, not from a plain string: "
                           f"{str(value)[:60]!r}")
    return value


_VALIDATORS: dict[str, Callable[[object], object]] = {
    "interface": validate_interface_name,
    "int": _int,
    "number": _number,
    "uuid": validate_uuid,
    "ipv4": _ipv4,
    "path": _path,
    "unit": _unit,
    "hex": _hex,
    "text": _text,
    "command": _command,
}


def register_type(name: str, validator: Callable[[object], object]) -> None:
    """Add a value type (a runbook's own, e.g. a D-Bus object path); its validator raises InvalidValue."""
    existing = _VALIDATORS.get(name)
    if existing is not None and existing is not validator:
        raise ValueError(f"value type {name!r} is already registered")
    _VALIDATORS[name] = validator


def validate_value(type_name: str, value: object) -> object:
    """``value`` checked as ``type_name``; ``list[T]`` checks each item (and returns a tuple)."""
    if type_name.startswith("list[") and type_name.endswith("]"):
        if isinstance(value, str | bytes) or not isinstance(value, Iterable):
            raise InvalidValue(f"invalid value {value!r}: expected a list of {type_name[5:-1]}")
        return tuple(validate_value(type_name[5:-1], v) for v in value)
    try:
        validator = _VALIDATORS[type_name]
    except KeyError:
        raise TemplateError(f"unknown value type {type_name!r}; known: {sorted(_VALIDATORS)}") from None
    return validator(value)


class TypeSpec(Protocol):
    """Anything with a declared ``type`` (the engine's ``Param``)."""

    @property
    def type(self) -> str: ...


def _type_of(spec: TypeSpec | str) -> str:
    return spec if isinstance(spec, str) else spec.type


def _render(template: str, values: Mapping[str, object], types: Mapping[str, TypeSpec | str], *,
            what: str, strip: bool = False) -> Rendered:
    import jinja2

    checked: dict[str, object] = {}
    for key, value in values.items():
        if key not in types:
            raise TemplateError(f"value {key!r} has no declared type in the runbook")
        checked[key] = validate_value(_type_of(types[key]), value)
    try:
        text = _compiled(template).render(**checked)
        return Rendered(text.strip() if strip else text)
    except jinja2.UndefinedError as exc:
        raise TemplateError(f"cannot render {what}: {exc.message}") from None
    except jinja2.TemplateError as exc:
        raise TemplateError(f"bad template {what}: {exc}") from None


def render_command(template: str, values: Mapping[str, object], params: Mapping[str, TypeSpec | str]) -> Rendered:
    """Render one command line: every value validated by its declared type, then shell-quoted.

    Raises ``InvalidValue`` for a value that fails validation and :class:`TemplateError` for a
    template that uses a value not given or not declared, or renders to more than one line.
    Nothing is rendered half-way.
    """
    rendered = _render(template, values, params, what=repr(template))
    if "\n" in rendered or "\r" in rendered or "\0" in rendered:
        raise TemplateError(f"rendered command contains a line break or NUL: {rendered!r}")
    return rendered


class TemplateSet:
    """A runbook's command templates by dotted key, with the declared type of every value.

    ``templates`` is the YAML mapping (nested sections of strings); ``types`` maps each value
    name used in them to its type. :meth:`render` gives a command; :meth:`text` an operator
    instruction (validated, not quoted, never run).
    """

    def __init__(self, templates: Mapping[str, Any], types: Mapping[str, str]) -> None:
        self.templates = templates
        self.types = dict(types)
        for name, type_name in self.types.items():
            base = type_name[5:-1] if type_name.startswith("list[") else type_name
            if base not in _VALIDATORS and base not in ("monitor", "bool"):
                raise TemplateError(f"value {name!r} has an unknown type {type_name!r}")

    def source(self, key: str) -> str:
        node: Any = self.templates
        for part in key.split("."):
            if not isinstance(node, Mapping) or part not in node:
                raise TemplateError(f"no template {key!r}")
            node = node[part]
        if not isinstance(node, str):
            raise TemplateError(f"{key!r} is a section, not a template")
        return node

    def template_keys(self) -> list[str]:
        """Every template's dotted key."""
        out: list[str] = []

        def walk(node: Mapping[str, Any], prefix: str) -> None:
            for k, v in node.items():
                if isinstance(v, Mapping):
                    walk(v, f"{prefix}{k}.")
                elif isinstance(v, str):
                    out.append(prefix + k)

        walk(self.templates, "")
        return out

    def render(self, key: str, **values: object) -> Rendered:
        """The command at ``key``, every value validated and quoted."""
        return _render(self.source(key), values, self.types, what=key, strip=True)

    def text(self, key: str, **values: object) -> str:
        """An operator instruction at ``key`` (shown, never run): values validated, shown as they are."""
        return self.text_from(self.source(key), values, what=key)

    def text_from(self, template: str, values: Mapping[str, object], *, what: str) -> str:
        """Text (a purpose, an instruction) from ``template``: the values it uses validated, not quoted."""
        import jinja2

        used = used_names(template)
        checked: dict[str, object] = {}
        for name, value in values.items():
            if name not in used:
                continue
            type_name = self.types.get(name)
            if type_name is None:
                raise TemplateError(f"value {name!r} has no declared type in the runbook")
            if type_name not in ("monitor", "bool"):
                validate_value(type_name, value)
            checked[name] = value
        try:
            return str(_compiled(template, text=True).render(**checked))
        except jinja2.UndefinedError as exc:
            raise TemplateError(f"cannot render {what}: {exc.message}") from None


def build_steps(specs: Iterable[Mapping[str, Any]], templates: TemplateSet, values: Mapping[str, Any],
                conditions: Iterable[str]) -> tuple[PlanStep, ...]:
    """An action's steps from its YAML list (see remediation.yaml ``fix:``): every step whose
    ``when`` conditions all hold, its command rendered from its template with ``values`` (``with``
    renames), repeated over ``each``, wrapped by ``shell.sh_c`` when ``shell`` is true, its purpose
    and instruction rendered as text. The result is what a :class:`runbooks.plan.Plan` holds."""
    from runbooks.plan import ROLES, PlanStep

    held = set(conditions)
    steps: list[PlanStep] = []
    for spec in specs:
        name, role = str(spec["name"]), str(spec["role"])
        if role not in ROLES:
            raise TemplateError(f"step {name!r}: unknown role {role!r}")
        if not all(c in held for c in spec.get("when", ())):
            continue
        local = dict(values)
        for key, source in (spec.get("with") or {}).items():
            local[key] = values[source]
        purpose = templates.text_from(str(spec.get("purpose", "")), local, what=f"{name}.purpose").strip()
        if role == "operator":
            instruction = templates.text_from(str(spec["instruction"]), local, what=f"{name}.instruction").strip()
            steps.append(PlanStep(role, purpose, instruction=instruction, name=name))
            continue
        if "each" in spec:
            commands = [validate_value("command", c) for c in values[str(spec["each"])]]
        else:
            used = used_names(templates.source(str(spec["command"])))
            commands = [templates.render(str(spec["command"]), **{k: v for k, v in local.items() if k in used})]
        for command in commands:
            if spec.get("shell"):
                command = templates.render("shell.sh_c", script=command)
            steps.append(PlanStep(role, purpose, str(command), name=name))
    return tuple(steps)


def used_names(template: str) -> set[str]:
    """The names a template reads (so a step validates only the values it uses)."""
    from jinja2 import meta

    return set(meta.find_undeclared_variables(_env().parse(template)))
