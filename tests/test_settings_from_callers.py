"""Settings come from the caller: below ``bondbot`` (the CLI and its settings), no module reads the
process environment for a setting of bondbot's own.

Why: a module that reads ``BONDBOT_*`` itself does one thing under the CLI and another under a
library caller, a test or a second replica configured in code, and its behaviour cannot be seen
from its arguments. ``bondbot.settings`` reads the environment; ``serve``, the CLI and the demo
pass what it read down as arguments (``load_inventory(ansible_inventory=)``,
``load_runbook(search=)``, ``EngineTriage(runbooks=)``, ``LabVM(qemu=, accel=)``,
``build_image(mirror=)``, ``SlackLimits.from_env(env)``, ``load_policy(path, env)``,
``BotDeps(team_id=)``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from bot.authz import load_policy
from bot.limits import LimitsConfigError, RateLimit, SlackLimits
from bot.recovery import LeaseSettings

REPO = Path(__file__).resolve().parent.parent
LOWER_LAYERS = ("ssh_exec", "runbooks", "incidents", "bot", "lab")

#: What a lower layer may read from the environment, and why.
ALLOWED = {
    # The user's ssh-agent, found where OpenSSH and asyncssh find it.
    ("ssh_exec/pool.py", "SSH_AUTH_SOCK"),
    # ansible-inventory runs with the user's Ansible environment, which its cache key must cover.
    ("ssh_exec/ansible_inventory.py", "ANSIBLE_CONFIG"),
    ("ssh_exec/ansible_inventory.py", "*"),
    # `python -m bot.health`: the container's HEALTHCHECK program, an entry point of its own.
    ("bot/health.py", "BONDBOT_HEALTH_PORT"),
    ("bot/health.py", "BONDBOT_HEALTH_URL"),
    # lab/testing.py is test support (the suite is its entry point), as bot/testing/ is.
    ("lab/testing.py", "CI"),
    ("lab/testing.py", "BONDBOT_QEMU"),
    ("lab/testing.py", "BONDBOT_LAB_ACCEL"),
}


def _environment_reads(path: Path) -> list[tuple[int, str]]:
    """``(line, variable)`` for each read of ``os.environ`` / ``os.getenv`` ("*": not one name)."""
    found: list[tuple[int, str]] = []
    tree = ast.parse(path.read_text(), str(path))
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "os" \
                and any(a.name in ("environ", "getenv", "getenvb") for a in node.names):
            found.append((node.lineno, "from os import"))  # never allowed: reads would go unseen
            continue
        is_environ = isinstance(node, ast.Attribute) and node.attr == "environ"
        is_getenv = isinstance(node, ast.Attribute) and node.attr in ("getenv", "getenvb")
        if not (is_environ or is_getenv):
            continue
        parent = parents.get(node)
        name = "*"
        call = parent if is_getenv else parents.get(parent) if isinstance(parent, ast.Attribute) else None
        if isinstance(call, ast.Call) and call.args and isinstance(call.args[0], ast.Constant):
            name = str(call.args[0].value)
        elif isinstance(parent, ast.Subscript) and isinstance(parent.slice, ast.Constant):
            name = str(parent.slice.value)
        found.append((node.lineno, name))
    return sorted(found)


def test_no_lower_layer_reads_a_setting_from_the_environment() -> None:
    offending = []
    for package in LOWER_LAYERS:
        for path in sorted((REPO / package).rglob("*.py")):
            rel = path.relative_to(REPO).as_posix()
            if rel.startswith("bot/testing/"):
                continue  # test support
            for line, name in _environment_reads(path):
                if (rel, name) not in ALLOWED:
                    offending.append(f"{rel}:{line} reads {name}")
    assert not offending, "settings must come from the caller (bondbot.settings):\n" + "\n".join(offending)


def test_the_guard_sees_each_form_of_a_read(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("import os\nos.environ.get('A')\nos.getenv('B')\nos.environ['C']\ndict(os.environ)\n"
                     "from os import environ\n")
    assert _environment_reads(probe) == [(2, "A"), (3, "B"), (4, "C"), (5, "*"), (6, "from os import")]


def test_bot_limits_are_parsed_from_the_mapping_given() -> None:
    assert SlackLimits.from_env({}) == SlackLimits()
    limits = SlackLimits.from_env({"BONDBOT_SLACK_UPDATE_INTERVAL": "2.5", "BONDBOT_TRIAGE_PER_USER": "3/30",
                                   "BONDBOT_TRIAGE_PER_CHANNEL": "0", "BONDBOT_AUDIT_CONNECTIONS": "7"})
    assert limits == SlackLimits(update_interval=2.5, triage_per_user=RateLimit(3, 30.0),
                                 triage_per_channel=RateLimit(0, 1.0), audit_connections=7)
    with pytest.raises(LimitsConfigError, match="BONDBOT_TRIAGE_PER_USER: expected N/SECONDS"):
        SlackLimits.from_env({"BONDBOT_TRIAGE_PER_USER": "lots"})
    with pytest.raises(LimitsConfigError, match="BONDBOT_AUDIT_CONNECTIONS >= 1"):
        SlackLimits.from_env({"BONDBOT_AUDIT_CONNECTIONS": "0"})


def test_policy_and_leases_read_only_what_they_are_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BONDBOT_TWO_PERSON_RULE", "false")
    monkeypatch.setenv("BONDBOT_LEASE_SECONDS", "5")
    assert load_policy(None).two_person_rule is True  # the process environment is not read
    assert load_policy(None, {"BONDBOT_TWO_PERSON_RULE": "false"}).two_person_rule is False
    assert LeaseSettings.from_env({}).ttl_s == 30.0
    assert LeaseSettings.from_env({"BONDBOT_LEASE_SECONDS": "12"}).ttl_s == 12.0
    with pytest.raises(ValueError, match="BONDBOT_LEASE_SECONDS must be a number of seconds"):
        LeaseSettings.from_env({"BONDBOT_LEASE_SECONDS": "soon"})
