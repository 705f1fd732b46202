"""The layers hold: import-linter's contracts (``[tool.importlinter]`` in pyproject.toml) are kept.

bondbot (CLI, settings) > bot | lab > runbooks > ssh_exec | incidents: nothing imports upward,
nothing imports bondbot but bondbot, no package's modules import each other in a cycle, only the
demo imports ``bot.testing``, nothing below the bot imports Slack, and the runbook engine's own
modules never import a runbook (``runbooks.bonding``).

The second test proves the check can fail: it runs the same contracts on a copy of the packages
with one violation of each kind injected, and expects each contract broken, naming the import.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("bondbot", "bot", "runbooks", "ssh_exec", "incidents", "lab")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` on the packages under ``root`` (first on the path), with ``root``'s pyproject."""
    env = dict(os.environ, PYTHONPATH=str(root))
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", "--no-logo", str(root / "pyproject.toml")],
                          cwd=root, env=env, capture_output=True, text=True, timeout=120)


def test_the_import_contracts_are_kept() -> None:
    proc = _lint_imports(REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(r"Contracts: [5-9]\d* kept, 0 broken\.", proc.stdout), proc.stdout


def test_the_check_fails_on_each_kind_of_violation(tmp_path: Path) -> None:
    for pkg in PACKAGES:
        shutil.copytree(REPO / pkg, tmp_path / pkg, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    # The ways the layers broke before (or could): a lower layer reading bondbot's settings, the
    # store and its export importing each other, the bot using its own test support, Slack in the engine.
    (tmp_path / "ssh_exec" / "injected_upward.py").write_text("from bondbot import settings\n")
    (tmp_path / "incidents" / "injected_cycle_a.py").write_text("import incidents.injected_cycle_b\n")
    (tmp_path / "incidents" / "injected_cycle_b.py").write_text(
        "def later() -> None:\n    import incidents.injected_cycle_a\n")  # a lazy import is still a cycle
    (tmp_path / "bot" / "injected_testing.py").write_text("from bot.testing.standin import SlackStandin\n")
    (tmp_path / "runbooks" / "injected_slack.py").write_text("import slack_sdk\n")
    (tmp_path / "runbooks" / "injected_bonding.py").write_text("from runbooks.bonding import rules\n")

    proc = _lint_imports(tmp_path)
    out = proc.stdout
    assert proc.returncode != 0, out
    assert re.search(r"Contracts: \d+ kept, 5 broken\.", out), out
    assert "ssh_exec.injected_upward -> bondbot.settings" in out, out
    assert "No cycles are allowed in incidents." in out and "injected_cycle" in out, out
    assert "bot.injected_testing -> bot.testing.standin" in out, out
    assert "runbooks.injected_slack -> slack_sdk" in out, out  # (the injected modules exist only in the copy)
    assert "runbooks.injected_bonding is not allowed to import runbooks.bonding" in out, out
