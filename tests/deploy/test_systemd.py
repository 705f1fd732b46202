"""The systemd unit, checked by systemd's own tools: ``systemd-analyze verify`` and ``security``.

``verify`` runs against a staged root (the unit in /etc/systemd/system, an executable at the
ExecStart path, systemd's own units copied from this machine) so that it checks the unit as
installed, not this machine's /opt. ``deploy/install.sh`` itself is run by the slow test at the end.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"

UNIT = DEPLOY / "bondbot.service"
ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze not installed (Debian: systemd)")
SYSTEMD_UNITS = Path("/usr/lib/systemd/system")


def _directives(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")) and "=" in line:
            key, _, value = line.partition("=")
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def _staged_root(tmp_path: Path, unit_text: str) -> Path:
    root = tmp_path / "root"
    exec_start = _directives(unit_text)["ExecStart"][-1].split()[0]
    exe = root / exec_start.lstrip("/")
    exe.parent.mkdir(parents=True)
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    (root / "etc/systemd/system").mkdir(parents=True)
    (root / "etc/systemd/system/bondbot.service").write_text(unit_text)
    if not SYSTEMD_UNITS.is_dir():
        pytest.skip(f"{SYSTEMD_UNITS} not found: systemd's own units are needed to verify against")
    shutil.copytree(SYSTEMD_UNITS, root / "usr/lib/systemd/system", symlinks=True)
    return root


def _verify(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([ANALYZE, "verify", f"--root={root}", "bondbot.service"],
                          capture_output=True, text=True, timeout=60)


@needs_analyze
def test_unit_verifies_clean(tmp_path: Path) -> None:
    result = _verify(_staged_root(tmp_path, UNIT.read_text()))
    assert result.returncode == 0 and result.stdout == "" and result.stderr == "", result.stderr


@needs_analyze
def test_verify_would_catch_a_broken_unit(tmp_path: Path) -> None:
    """The oracle is not blind: an unknown directive and a missing binary are both reported."""
    text = UNIT.read_text().replace("UMask=0077", "UMask=0077\nProtectEverything=yes")
    root = _staged_root(tmp_path, text)
    assert "Unknown key 'ProtectEverything'" in _verify(root).stderr
    (root / "opt/bondbot/venv/bin/bondbot").unlink()
    assert _verify(root).returncode != 0


@needs_analyze
def test_unit_exposure_is_at_most_3() -> None:
    result = subprocess.run([ANALYZE, "security", "--offline=true", "--no-pager", str(UNIT)],
                            capture_output=True, text=True, timeout=60)
    found = re.search(r"Overall exposure level for bondbot\.service: (\d+\.\d+)", result.stdout + result.stderr)
    assert found, result.stdout + result.stderr
    assert float(found.group(1)) <= 3.0, result.stdout


def test_unit_has_the_hardening_and_no_secrets_in_the_environment() -> None:
    d = _directives(UNIT.read_text())
    expect = {
        "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes", "NoNewPrivileges": "yes",
        "CapabilityBoundingSet": "", "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
        "UMask": "0077", "StateDirectory": "bondbot", "ConfigurationDirectory": "bondbot",
        "User": "bondbot", "TimeoutStopSec": "40",
    }
    for key, value in expect.items():
        assert d.get(key, [None])[0] == value, key
    assert "@system-service" in d["SystemCallFilter"]
    assert "EnvironmentFile" not in d
    creds = dict(v.split(":", 1) for v in d["LoadCredential"])
    assert set(creds) == {"SLACK_BOT_TOKEN", "SLACK_APP_TOKEN"}
    assert all(p.startswith("/etc/bondbot/credentials/") for p in creds.values())
    env = dict(v.split("=", 1) for v in d["Environment"])
    assert not any(k.startswith("SLACK_") for k in env), "tokens must come from LoadCredential"
    # The paths the unit gives bondbot are the ones install.sh creates.
    assert d["ExecStart"][0].split()[0] == "/opt/bondbot/venv/bin/bondbot"
    assert env["BONDBOT_DATA_DIR"] == "/var/lib/bondbot" and env["BONDBOT_KNOWN_HOSTS"].startswith("/var/lib/bondbot/")
    assert env["BONDBOT_INVENTORY"] == "/etc/bondbot/inventory.yaml"
    assert env["BONDBOT_SLACK_AUTHZ"] == "/etc/bondbot/authz.yaml"


slow = pytest.mark.skipif(
    os.environ.get("BONDBOT_DEPLOY_SLOW") != "1",
    reason="runs deploy/install.sh for real (venv + pip install from the lock, 15-60 s): set BONDBOT_DEPLOY_SLOW=1",
)


@slow
def test_install_sh_stages_a_working_install(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("install.sh creates a user and sets owners: run as root")
    prefix = tmp_path / "root"
    env = {**os.environ, "SLACK_BOT_TOKEN": "xoxb-test", "SLACK_APP_TOKEN": "xapp-test"}
    t0 = time.monotonic()
    result = subprocess.run([str(DEPLOY / "install.sh"), "--prefix", str(prefix)], capture_output=True, text=True,
                            env=env, timeout=600)
    print(f"install.sh: {time.monotonic() - t0:.1f} s")
    assert result.returncode == 0, result.stderr[-3000:]
    passwd = (prefix / "etc/passwd").read_text()
    assert re.search(r"^bondbot:x:\d+:\d+:[^:]*:/var/lib/bondbot:/usr/sbin/nologin$", passwd, re.M)
    venv = prefix / "opt/bondbot/venv"
    assert venv.is_symlink() and (venv / "bin/bondbot").exists()
    for name in ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN"):
        f = prefix / "etc/bondbot/credentials" / name
        assert stat.S_IMODE(f.stat().st_mode) == 0o600 and f.read_text() == env[name] + "\n"
    assert stat.S_IMODE((prefix / "etc/bondbot/credentials").stat().st_mode) == 0o700
    assert stat.S_IMODE((prefix / "var/lib/bondbot").stat().st_mode) == 0o700
    # the venv holds exactly the locked versions
    frozen = subprocess.run([str(venv / "bin/pip"), "freeze", "--all"], capture_output=True, text=True, check=True).stdout
    locked = set(re.findall(r"^([A-Za-z0-9_.-]+)(?:\[[^]]*\])?==([^ ;\\]+)", (DEPLOY / "requirements.lock").read_text(), re.M))
    installed = {(n.lower().replace("_", "-"), v) for n, v in re.findall(r"^([^=\s]+)==(\S+)$", frozen, re.M)}
    missing = {(n.lower(), v) for n, v in locked if n.lower() not in ("colorama", "tzdata")} - installed
    assert not missing, missing
    # a second run upgrades: a new release, the old one kept for rollback, config untouched
    (prefix / "etc/bondbot/authz.yaml").write_text("approve: {users: [U0ADMIN]}\n")
    again = subprocess.run([str(DEPLOY / "install.sh"), "--prefix", str(prefix)], capture_output=True, text=True,
                           timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert len(list((prefix / "opt/bondbot/releases").iterdir())) == 2
    assert (prefix / "etc/bondbot/authz.yaml").read_text() == "approve: {users: [U0ADMIN]}\n"
    # an upgrade that fails half-way (no package index) leaves the running release in place
    current = os.readlink(venv)
    offline = {**os.environ, "PIP_CONFIG_FILE": "/dev/null", "PIP_INDEX_URL": "http://127.0.0.1:9/simple",
               "PIP_FIND_LINKS": "", "PIP_NO_CACHE_DIR": "1", "PIP_RETRIES": "0", "PIP_TIMEOUT": "1"}
    failed = subprocess.run([str(DEPLOY / "install.sh"), "--prefix", str(prefix)], capture_output=True, text=True,
                            env=offline, timeout=600)
    assert failed.returncode != 0
    assert os.readlink(venv) == current and len(list((prefix / "opt/bondbot/releases").iterdir())) == 2
    assert (REPO / "deploy/install.sh").stat().st_mode & 0o111
