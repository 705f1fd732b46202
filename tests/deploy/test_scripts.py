"""The deploy scripts, through shellcheck (warnings and errors fail), including the bondbot-admin
wrapper that install.sh writes."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
SHELLCHECK = shutil.which("shellcheck")
pytestmark = pytest.mark.skipif(SHELLCHECK is None, reason="shellcheck not installed (Debian: shellcheck)")


@pytest.mark.parametrize("script", sorted(p.name for p in DEPLOY.glob("*.sh")))
def test_script_passes_shellcheck(script: str) -> None:
    result = subprocess.run([SHELLCHECK, "-S", "warning", str(DEPLOY / script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_admin_wrapper_passes_shellcheck(tmp_path: Path) -> None:
    text = (DEPLOY / "install.sh").read_text()
    body = re.search(r'bondbot-admin\.new" <<\'EOF\'\n(.*?)\nEOF\n', text, re.S)
    assert body, "install.sh no longer writes the wrapper with a quoted here-document"
    wrapper = tmp_path / "bondbot-admin"
    wrapper.write_text(body.group(1) + "\n")
    result = subprocess.run([SHELLCHECK, "-S", "warning", "-s", "sh", str(wrapper)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout
