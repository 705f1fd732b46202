"""One definition of an interface name: the engine, the bot and the CLI accept and refuse the same names.

``runbooks.validation.interface_name_problem`` is the rule; the runbook engine (the bonding
runbook's subject, a parameter of type ``interface``, through ``resolve_subject`` and the
renderer's value types), the Slack command parser (``/bond triage HOST BOND``) and ``bondbot
diagnose`` (``--bond``, ``--ip-link IF=FILE``) each ask it. These tests hold the three to one answer, on names
chosen to sit on every edge of the rule and on generated ones.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from bondbot.cli import app
from bot.commands import CommandError, parse_command
from runbooks.engine import load_runbook, resolve_subject
from runbooks.render import validate_value
from runbooks.validation import InvalidValue, interface_name_problem, validate_interface_name
from ssh_exec.inventory import Host

GOOD = ["bond0", "bond0.100", "uplink0", "b" * 15, "_b", ".x", "br-lan", "vlan@bond0", "eth0@x", "a"]
BAD = ["", "b" * 16, "bond0;reboot", "-x", "bond 0", "eth0:1", "bond/0", ".", "..", "bönd", "$(id)",
       "b`id`", "bond0\n", "é" * 8, "bond0'", "a|b", "<BOND>", "bond\t0", "\u200bbond0"]


_BONDING = load_runbook("bonding")
_HOST = Host("web-01", "192.0.2.1", user="ops")


def engine_accepts(name: str) -> bool:
    """The bonding runbook's subject as the engine resolves it, and the renderer's ``interface`` type."""
    try:
        by_subject = resolve_subject(_HOST, name, _BONDING) == name
    except InvalidValue:
        by_subject = False
    try:
        by_type = validate_value("interface", name) == name
    except InvalidValue:
        by_type = False
    assert by_subject == by_type, name
    return by_subject


def bot_accepts(name: str) -> bool:
    try:
        return parse_command(f"triage web-01 {name}").bond == name
    except CommandError:
        return False


_runner = CliRunner()


def _unboxed(output: str) -> str:
    """Typer's error panel without its frame and line wrapping."""
    return " ".join(output.replace("│", " ").split())


def cli_accepts(name: str, tmp: Path) -> bool:
    """``bondbot diagnose --bond NAME`` and ``--ip-link NAME=FILE``: refused before any file is read,
    or not refused (the run then stops at the missing --proc file, which is not the question)."""
    missing = str(tmp / "missing")
    by_bond = _runner.invoke(app, ["diagnose", "--proc", missing, f"--bond={name}"], env={"COLUMNS": "400"})
    by_pair = _runner.invoke(app, ["diagnose", "--proc", missing, f"--ip-link={name}={missing}"], env={"COLUMNS": "400"})
    refused_bond = by_bond.exit_code == 2 and "is not an interface name" in _unboxed(by_bond.output)
    refused_pair = by_pair.exit_code == 2 and "expected IF=FILE with a valid interface name" in _unboxed(by_pair.output)
    assert refused_bond == refused_pair, (name, by_bond.output, by_pair.output)
    return not refused_bond


@pytest.mark.parametrize("name", GOOD + BAD)
def test_the_engine_the_bot_and_the_cli_agree(name: str, tmp_path: Path) -> None:
    expected = name in GOOD
    assert (interface_name_problem(name) is None) is expected
    assert engine_accepts(name) is expected
    assert cli_accepts(name, tmp_path) is expected
    if not any(c.isspace() for c in name) and name:  # the bot splits its command text on whitespace
        assert bot_accepts(name) is expected
    else:
        assert not bot_accepts(name)


def test_a_refusal_says_why() -> None:
    with pytest.raises(InvalidValue, match=r"invalid interface name 'eth0:1': '/', ':' and whitespace"):
        validate_interface_name("eth0:1")
    with pytest.raises(InvalidValue, match=r"must be 1 to 15 bytes long \(is 16\)"):
        validate_interface_name("b" * 16)
    with pytest.raises(InvalidValue, match="expected a string"):
        validate_interface_name(7)


_NAMEISH = st.text(alphabet=st.sampled_from("ab09_.@-:/;$` \tñ\u200b"), min_size=0, max_size=17)


@settings(max_examples=300, deadline=None)
@given(_NAMEISH)
def test_generated_names_get_one_answer_from_engine_and_bot(name: str) -> None:
    one_word = bool(name) and name.split() == [name]
    assert engine_accepts(name) is (interface_name_problem(name) is None)
    if one_word:
        assert bot_accepts(name) is engine_accepts(name)


@settings(max_examples=40, deadline=None)
@given(name=_NAMEISH)
def test_generated_names_get_one_answer_from_engine_and_cli(tmp_path_factory: pytest.TempPathFactory, name: str) -> None:
    assert cli_accepts(name, tmp_path_factory.getbasetemp()) is engine_accepts(name)
