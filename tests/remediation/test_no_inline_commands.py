"""No command text is built in Python: every command comes from a YAML template and the renderer.

An AST scan of the product packages for string literals (plain, f-string parts, concatenations)
that start like a shell command bondbot runs (``nmcli``, ``ip ``, ``ethtool``, ``cat /proc``...).
Python may name a command in prose (a docstring, an error message that does not start with it);
it may not hold one. The only places command text lives are the runbooks' YAML files and the
renderer (``runbooks/render.py``).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("ssh_exec", "runbooks", "incidents", "bot", "bondbot")
#: Files allowed to hold command text: the renderer itself.
ALLOWED = {"runbooks/render.py"}
#: How a command bondbot sends starts: the program, then what makes it a command line rather
#: than a name in prose (an option, a path, a subcommand), or a literal that ends right after the
#: program and a space (an f-string or a concatenation goes on with the arguments).
_ARGS = {
    "nmcli": r"(-|con\b|connection\b|dev\b|device\b|general\b|networking\b|monitor\b)",
    "ip": r"(-|link\b|addr\b|address\b|route\b|monitor\b|neigh\b|rule\b)",
    "ethtool": r"(-|[A-Za-z0-9_.@]+$)",
    "cat": r"/",
    "sed": r"(-|')",
    "grep": r"(-|')",
    "ifdown": r"\S",
    "ifup": r"\S",
    "ifquery": r"(-|[A-Za-z0-9_.@]+$)",
    "sh": r"-c\b",
    "/bin/sh": r"-c\b",
    "printf": r"\S",
    "echo": r"\S+\s*>",
    "busctl": r"\S",
    "systemd-run": r"-",
    "systemctl": r"\S",
    "setsid": r"(-|nohup\s+\S)",
    "nohup": r"/",
    "ping": r"-",
    "mkdir": r"-",
    "cp": r"-",
    "mv": r"-",
    "rm": r"-",
    "touch": r"/",
}
#: Commands named only with their arguments (``bondbot`` alone is the CLI's name in help texts).
_ARGS_ONLY = {"command": r"-v\b", "bondbot": r"lab\b"}
COMMAND_START = re.compile(
    r"^\s*(sudo\s+(-n\s+)?)?(" + "|".join(rf"{re.escape(w)}\s+({a}|$)" for w, a in _ARGS.items())
    + "".join(rf"|{re.escape(w)}\s+{a}" for w, a in _ARGS_ONLY.items())
    + r"|for\s+\w+\s+in\s|if\s+\[\s)"
)


def _labels(tree: ast.AST) -> set[int]:
    """Names of where a text came from (a parser's ``source``, a ``source(...)`` label): they
    name a command in the evidence shown to people; they never run one."""
    ids: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            args = node.args
            positional = args.posonlyargs + args.args
            for arg, default in zip(positional[len(positional) - len(args.defaults):], args.defaults, strict=True):
                if arg.arg == "source":
                    ids.add(id(default))
            for arg, kw_default in zip(args.kwonlyargs, args.kw_defaults, strict=True):
                if arg.arg == "source" and kw_default is not None:
                    ids.add(id(kw_default))
        if isinstance(node, ast.Call):
            ids.update(id(k.value) for k in node.keywords if k.arg == "source")
            if isinstance(node.func, ast.Name) and node.func.id == "source" and node.args:
                ids.add(id(node.args[0]))
    return ids


def _docstrings(tree: ast.AST) -> set[int]:
    ids: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                ids.add(id(first.value))
    return ids


def _literal_starts(node: ast.AST) -> str | None:
    """The text a string expression starts with, when it starts with literal text."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant):
        return str(node.values[0].value)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _literal_starts(node.left)
    return None


def scan_source(source: str, filename: str = "<src>") -> list[str]:
    """Every string expression in ``source`` that starts like a shell command (line: text)."""
    tree = ast.parse(source, filename)
    skip = _docstrings(tree) | _labels(tree)
    found: list[str] = []
    parts: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            parts.update(id(v) for v in node.values)
        if isinstance(node, ast.BinOp):
            parts.add(id(node.left))
    for node in ast.walk(tree):
        if id(node) in skip or id(node) in parts:
            continue
        text = _literal_starts(node)
        if text is not None and COMMAND_START.match(text):
            found.append(f"{filename}:{getattr(node, 'lineno', '?')}: {text[:60]!r}")
    return found


def product_files() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")
                  if "testing" not in p.relative_to(ROOT).parts)


@pytest.mark.parametrize("snippet", [
    'run("nmcli connection show")',
    'cmd = f"ip link set {dev} down"',
    'cmd = "ethtool " + dev',
    'x = "sh -c " + shlex.quote(s)',
    "cmd = f'cat /proc/net/bonding/{bond}'",
    'c = "echo 100 > /sys/class/net/bond0/bonding/miimon"',
    'run(sh_c("command -v systemd-run"))',
    'shown = f"bondbot lab link {port} down"',
    'c = "for t in $(cat /sys/x); do echo; done"',
])
def test_the_scan_finds_command_text(snippet: str) -> None:
    assert scan_source(snippet), snippet


@pytest.mark.parametrize("snippet", [
    '"""nmcli connection show is what we read."""',
    'raise ValueError(f"could not read {x}: nmcli failed")',
    'label = "ipv4.gateway"',
    'word = "ip"',  # a bare word is a name, not a command
    'tools = {"ip": "iproute2", "ping": "iputils"}',
    'msg = "ip is not iproute2\'s (ip -V: x)"',
    'detail = "systemd-run or nohup (to run detached)"',
    'def parse(text, source="ip link show"): pass',
    'parse(text, source=f"nmcli -t connection show uuid {u}")',
])
def test_the_scan_leaves_prose_and_names_alone(snippet: str) -> None:
    assert not scan_source(snippet), snippet


def test_the_scan_finds_what_the_code_held_before_issue_13() -> None:
    """The commands once built inline (bond_state, fix_plan, rules, bond_options, fix_apply)."""
    old = {
        "bond_state": 'prof = await run(f"nmcli -t connection show uuid {shlex.quote(nm_uuid)}")',
        "rules": 'commands = [f"nmcli con modify {conn} bond.options {shlex.quote(opts)}"]',
        "bond_options": 'return f"sh -c {shlex.quote(script)}"',
        "fix_apply": 'if planned.command.startswith("nmcli device reapply"): pass',
    }
    for name, snippet in old.items():
        assert scan_source(snippet), name


def test_no_command_text_in_the_product_packages() -> None:
    found: list[str] = []
    for path in product_files():
        rel = path.relative_to(ROOT).as_posix()
        if rel in ALLOWED:
            continue
        found += scan_source(path.read_text(encoding="utf-8"), rel)
    assert not found, "command text built in Python (put it in the runbook's YAML):\n" + "\n".join(found)
