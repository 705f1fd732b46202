"""deploy/compose.yaml: normalised by podman-compose itself, then each wiring checked.

``podman-compose config`` (PyPI's podman-compose, in the dev extras; Debian's 1.0.3 has no
``config``) parses and resolves the file as ``up`` would: anchors merged, paths made absolute.
The checks then run on what it printed; without it they run on the raw YAML (and say so).
``docker compose config`` needs the compose plugin, which this machine's docker client lacks.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
PATH_VARS = ("BONDBOT_INVENTORY", "BONDBOT_SLACK_AUTHZ", "BONDBOT_KNOWN_HOSTS", "BONDBOT_CONFIG_DIR", "BONDBOT_DATA_DIR")


def _podman_compose() -> str | None:
    """podman-compose with a ``config`` command, and podman, which it runs first (``podman version``)."""
    if shutil.which("podman") is None:
        return None
    local = Path(sys.executable).parent / "podman-compose"
    for exe in (str(local), shutil.which("podman-compose")):
        if exe and Path(exe).exists():
            probe = subprocess.run([exe, "config", "--help"], capture_output=True, text=True)
            if probe.returncode == 0:
                return exe
    return None


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    exe = _podman_compose()
    if exe is None:
        print("podman-compose with 'config' not found: checking the raw YAML only")
        return yaml.safe_load(COMPOSE.read_text())
    result = subprocess.run([exe, "-f", str(COMPOSE), "config"], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def _bots(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: s for name, s in compose["services"].items()
            if s.get("build", {}).get("dockerfile") == "deploy/Containerfile"}


def _mounts(service: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """(source, target, read_only) for each short-syntax volume."""
    out = []
    for v in service.get("volumes", []):
        parts = v.split(":")
        out.append((parts[0], parts[1], len(parts) > 2 and "ro" in parts[2].split(",")))
    return out


def test_podman_compose_accepts_it() -> None:
    exe = _podman_compose()
    if exe is None:
        pytest.skip("podman-compose with 'config' (pip install podman-compose) or podman (apt-get install podman) missing")
    broken = COMPOSE.read_text().replace("condition: service_healthy", "condition: service_happy")
    bad = DEPLOY / ".compose-broken-test.yaml"
    bad.write_text(broken)
    try:
        refused = subprocess.run([exe, "-f", str(bad), "config"], capture_output=True, text=True, timeout=60)
    finally:
        bad.unlink()
    assert refused.returncode != 0 and "service_happy" in refused.stderr  # the oracle reads what we wrote


def test_two_bot_replicas_share_one_postgres(compose: dict[str, Any]) -> None:
    bots = _bots(compose)
    assert len(bots) == 2
    pg = compose["services"]["postgres"]
    assert "@sha256:" in pg["image"] and pg["image"].startswith("docker.io/library/postgres:16.")
    assert "pg_isready" in pg["healthcheck"]["test"]
    (data,) = [m for m in _mounts(pg) if m[1] == "/var/lib/postgresql/data"]
    assert data[0] in compose["volumes"], "PostgreSQL's data is a named volume"
    assert pg["environment"]["POSTGRES_PASSWORD_FILE"] == "/run/secrets/postgres_password"
    assert "postgres_password" in pg["secrets"]
    for name, bot in bots.items():
        assert bot["depends_on"]["postgres"]["condition"] == "service_healthy", name
        assert "BONDBOT_DATABASE_URL" in bot["secrets"], name
        assert bot["stop_grace_period"] == "40s"
        assert bot["read_only"] is True and bot["cap_drop"] == ["ALL"]
        assert "no-new-privileges:true" in bot["security_opt"]
    assert len({tuple(b["secrets"]) for b in bots.values()}) == 1, "both replicas get the same database"


def test_every_path_the_bot_is_given_is_mounted_and_read(compose: dict[str, Any], tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from bondbot import settings

    for name, bot in _bots(compose).items():
        env = {k: str(v) for k, v in bot["environment"].items()}
        mounts = _mounts(bot)
        for var in PATH_VARS:
            if var not in env:
                continue
            path = env[var]
            covering = [m for m in mounts if path == m[1] or path.startswith(m[1].rstrip("/") + "/")]
            assert covering, f"{name}: {var}={path} is not inside any mount {mounts}"
        for var in ("BONDBOT_INVENTORY", "BONDBOT_SLACK_AUTHZ", "BONDBOT_KNOWN_HOSTS"):
            assert var in env, f"{name}: {var} is not set, so the mounted file would be ignored"
        (config,) = [m for m in mounts if m[1] == "/etc/bondbot"]
        assert config[2], "configuration is mounted read-only"
        assert Path(config[0]).name == "config"
        # the names are the ones bondbot reads
        monkeypatch.setenv("BONDBOT_INVENTORY", env["BONDBOT_INVENTORY"])
        monkeypatch.setenv("BONDBOT_KNOWN_HOSTS", env["BONDBOT_KNOWN_HOSTS"])
        assert settings.inventory_path() == Path(env["BONDBOT_INVENTORY"])
        assert settings.known_hosts_path() == Path(env["BONDBOT_KNOWN_HOSTS"])
        from bot.authz import AuthzConfigError, load_policy

        with pytest.raises(AuthzConfigError, match="cannot read authorization file /etc/bondbot/authz.yaml"):
            load_policy(None, env={"BONDBOT_SLACK_AUTHZ": env["BONDBOT_SLACK_AUTHZ"]})
        # secrets: files in CREDENTIALS_DIRECTORY, named as bondbot.settings.secret reads them
        assert env["CREDENTIALS_DIRECTORY"] == "/run/secrets"
        for secret in ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "BONDBOT_DATABASE_URL"):
            assert secret in bot["secrets"] and secret in compose["secrets"]
            (tmp_path / secret).write_text(f"value-of-{secret}\n")
            monkeypatch.delenv(secret, raising=False)
        monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
        assert settings.secret("SLACK_BOT_TOKEN") == "value-of-SLACK_BOT_TOKEN"
        assert settings.database_url() == "value-of-BONDBOT_DATABASE_URL"
        assert not any(k.startswith("SLACK_") for k in env), "tokens are secrets, not environment"
        health = bot["healthcheck"]["test"]
        assert health[:4] == ["CMD", "/opt/bondbot/venv/bin/python", "-m", "bot.health"]
        assert health[4] == f"http://127.0.0.1:{env['BONDBOT_HEALTH_PORT']}/healthz"


def test_secret_files_are_never_committed(compose: dict[str, Any]) -> None:
    for name, secret in compose["secrets"].items():
        path = (DEPLOY / secret["file"]).resolve() if not os.path.isabs(secret["file"]) else Path(secret["file"])
        assert path.parent == DEPLOY / "secrets", name
        ignored = subprocess.run(["git", "check-ignore", "-q", str(path)], cwd=REPO)
        assert ignored.returncode == 0, f"{path} would be committed"
