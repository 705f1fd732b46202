"""Every command template of the bonding runbook, rendered with hostile values (property test).

For each template of remediation.yaml and each command of runbook.yaml, and each value it uses:
a hostile value (spaces, quotes, ``$()``, backticks, newlines, ``;``, unicode...) is either
refused by the value's declared type, or it stays exactly one word: the rendered command splits
(``shlex.split``) into the same words as with a harmless value, with only that value changed.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runbooks.bonding.bond_options import RemediationError, templates
from runbooks.render import Rendered, TemplateError, render_command, used_names
from runbooks.validation import InvalidValue

RUNBOOK_YAML = Path(__file__).resolve().parents[2] / "runbooks" / "bonding" / "runbook.yaml"

def _benign_of(type_name: str, n: int) -> Any:
    """A harmless, valid value of ``type_name``, different for each ``n`` (one per value name) and
    unlikely to appear in any template's own text."""
    return {
        "interface": f"zqa{n}", "int": 70 + n, "number": 70 + n,
        "uuid": f"0b9f3c7e-5d2a-5a55-9d47-6c1e2f3a4b{n:02d}", "ipv4": f"10.9.8.{70 + n}",
        "path": f"/zq/zqb{n}", "unit": f"zqunit{n}", "hex": f"abcdef{n:02d}", "text": f"zqtext{n}",
        "dbus_path": f"/org/freedesktop/NetworkManager/Devices/9{n}", "checkpoint_ref": "<checkpoint>",
        "option_name": f"zqopt{n}", "sysfs_value": f"zqval{n}", "bond_options": f"zqk{n}=zqv{n}",
        "command": Rendered(f"zqcmd{n}"),
    }[type_name]


#: Templates that are instructions for a person (rendered as text, never run).
TEXT_KEYS = ("persistence.", "failover.manual_")

NASTY = ["a b", "it's", 'say "hi"', "$(reboot)", "`reboot`", "x;reboot", "x\nreboot", "x\rreboot",
         "bond0 && reboot", "-rf", "--help", "~root", "*", "a|b", "a>b", "${IFS}", "é", "ｂｏｎｄ", "\u202e",
         "", " ", "'", "\\", "bond0\0", "10.0.0.1; id", "/etc/../etc/passwd", "<checkpoint>'"]
HOSTILE = st.one_of(st.sampled_from(NASTY), st.text(min_size=0, max_size=24),
                    st.builds(lambda a, b: a + b, st.sampled_from(NASTY), st.text(max_size=8)))


def _benign(type_name: str, n: int = 0) -> Any:
    if type_name.startswith("list["):
        return [_benign_of(type_name[5:-1], n)]
    return _benign_of(type_name, n)


def remediation_cases() -> list[tuple[str, str]]:
    ts = templates()
    cases = []
    for key in ts.template_keys():
        if key.startswith(TEXT_KEYS):
            continue
        for name in sorted(used_names(ts.source(key))):
            cases.append((key, name))
    return cases


def runbook_cases() -> list[tuple[str, str]]:
    spec = yaml.safe_load(RUNBOOK_YAML.read_text())
    commands: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "command" and isinstance(v, str):
                    commands.append(v)
                else:
                    walk(v)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(spec)
    return [(c, n) for c in commands for n in sorted(used_names(c))]


def _runbook_types() -> dict[str, str]:
    spec = yaml.safe_load(RUNBOOK_YAML.read_text())
    return {k: v["type"] for k, v in spec["parameters"].items()}


def _words_with(rendered_benign: str, rendered_hostile: str, benign: str, hostile: str) -> None:
    words = shlex.split(rendered_benign)
    expected = [w.replace(benign, hostile) for w in words]
    assert shlex.split(rendered_hostile) == expected, (rendered_hostile, hostile)


def _check(render: Any, types: dict[str, str], names: set[str], name: str, hostile: Any) -> None:
    type_name = types[name]
    order = sorted(names)
    values = {n: _benign(types[n], i) for i, n in enumerate(order)}
    base = render(values)
    benign = values[name]
    values[name] = [hostile] if type_name.startswith("list[") else hostile
    try:
        out = render(values)
    except (InvalidValue, RemediationError):
        return  # refused by its type: nothing rendered
    benign = benign[0] if isinstance(benign, list) else benign
    assert type_name not in ("command", "list[command]"), "a plain string was accepted as a command"
    _words_with(base, out, str(benign), str(values[name][0] if isinstance(values[name], list) else hostile))


@pytest.mark.parametrize(("key", "name"), remediation_cases())
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(hostile=HOSTILE)
def test_remediation_template_keeps_every_value_one_word(key: str, name: str, hostile: str) -> None:
    ts = templates()
    names = used_names(ts.source(key))
    if ts.types[name] in ("monitor", "bool"):
        pytest.skip("not a shell value")
    _check(lambda values: ts.render(key, **values), ts.types, names, name, hostile)


@pytest.mark.parametrize(("command", "name"), runbook_cases())
@settings(max_examples=40, deadline=None)
@given(hostile=HOSTILE)
def test_runbook_command_keeps_every_value_one_word(command: str, name: str, hostile: str) -> None:
    types = _runbook_types()
    names = used_names(command)
    try:
        _check(lambda values: render_command(command, values, types), types, names, name, hostile)
    except TemplateError as exc:  # a line break that survived validation is refused, never rendered
        assert "line break" in str(exc)


def test_every_template_value_has_a_declared_type() -> None:
    ts = templates()
    for key in ts.template_keys():
        missing = used_names(ts.source(key)) - set(ts.types) - {"loop"}
        assert not missing, (key, missing)


def test_a_plain_string_is_never_a_command() -> None:
    from runbooks.bonding.bond_options import render, sh_c

    with pytest.raises(RemediationError, match="must come from the renderer"):
        sh_c("reboot")
    assert sh_c(render("runtime.set_option", bond="bond0", option="miimon", value="100")) == \
        "sh -c 'echo 100 > /sys/class/net/bond0/bonding/miimon'"
