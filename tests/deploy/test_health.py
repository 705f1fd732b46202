"""The health endpoint, for real: ``bondbot serve`` processes, the Slack stand-in, a real PostgreSQL.

What a supervisor sees must follow what is true: healthy only while Slack is connected and the
incident store answers, and each failure named. The tokens and the database URL come from a
systemd-style credentials directory here (no SLACK_* in the environment), as the unit gives them.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.testing.standin import SlackStandin

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pg import PostgresUnavailable, private_postgres  # noqa: E402

BONDBOT = str(Path(sys.executable).parent / "bondbot")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "BONDBOT_", "CREDENTIALS_"))}
    (tmp_path / "inventory.yaml").write_text("hosts: {}\n")
    env.update(
        BONDBOT_DATA_DIR=str(tmp_path / "data"), BONDBOT_CONFIG_DIR=str(tmp_path / "config"),
        BONDBOT_INVENTORY=str(tmp_path / "inventory.yaml"), **extra,
    )
    return env


async def _get(url: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.get(url, timeout=aiohttp.ClientTimeout(total=10)) as r:
        return r.status, await r.json()


async def _wait_for(url: str, want: int, proc: subprocess.Popen, seconds: float = 20) -> Any:
    """Poll ``url`` until it answers ``want``; fail with what it last said (or how serve died)."""
    last: Any = None
    for _ in range(int(seconds / 0.1)):
        if proc.poll() is not None:
            raise AssertionError(f"bondbot serve exited {proc.returncode}: {proc.stderr.read().decode() if proc.stderr else ''}")
        try:
            status, body = await _get(url)
            if status == want:
                return body
            last = (status, body)
        except aiohttp.ClientError as exc:
            last = exc
        await asyncio.sleep(0.1)
    raise AssertionError(f"{url} never answered {want}; last: {last}")


def _probe(url: str) -> subprocess.CompletedProcess[str]:
    """The container's HEALTHCHECK command."""
    return subprocess.run([sys.executable, "-m", "bot.health", url], capture_output=True, text=True, timeout=30)


async def test_socket_mode_health_follows_slack_and_the_store(tmp_path: Path) -> None:
    try:
        pg = private_postgres()
        url = pg.__enter__()
    except PostgresUnavailable as exc:
        pytest.skip(str(exc))
    pg_running = True
    port = _free_port()
    health = f"http://127.0.0.1:{port}/healthz"
    try:
        async with SlackStandin() as slack:
            creds = tmp_path / "credentials"
            creds.mkdir()
            (creds / "SLACK_BOT_TOKEN").write_text(slack.bot_token + "\n")
            (creds / "SLACK_APP_TOKEN").write_text(slack.app_token + "\n")
            (creds / "BONDBOT_DATABASE_URL").write_text(url + "\n")
            env = _env(tmp_path, SLACK_API_URL=slack.api_url, CREDENTIALS_DIRECTORY=str(creds),
                       BONDBOT_HEALTH_PORT=str(port))
            proc = subprocess.Popen([BONDBOT, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            try:
                body = await _wait_for(health, 200, proc)
                assert body == {"status": "ok", "checks": {
                    "slack": {"ok": True, "detail": "Socket Mode connected"},
                    "store": {"ok": True, "detail": "incident store readable"}}}
                assert slack.socket_connections_opened >= 1
                assert await _get(f"http://127.0.0.1:{port}/livez") == (200, {"status": "ok"})
                assert _probe(health).returncode == 0

                pg.__exit__(None, None, None)  # the database goes away under the running bot
                pg_running = False
                body = await _wait_for(health, 503, proc)
                assert body["status"] == "unhealthy" and body["checks"]["slack"]["ok"] is True
                assert body["checks"]["store"]["ok"] is False
                assert "unavailable" in body["checks"]["store"]["detail"]
                assert "postgres@127.0.0.1" in body["checks"]["store"]["detail"]  # which database, no secret
                probed = _probe(health)
                assert probed.returncode == 1 and "unhealthy (503)" in probed.stderr
                assert (await _get(f"http://127.0.0.1:{port}/livez"))[0] == 200  # alive, just not ready
            finally:
                proc.kill()  # a graceful stop would wait for the database this test took away
                proc.wait(timeout=30)
    finally:
        if pg_running:
            pg.__exit__(None, None, None)


async def test_socket_mode_unhealthy_when_slack_drops(tmp_path: Path) -> None:
    port = _free_port()
    health = f"http://127.0.0.1:{port}/healthz"
    slack = await SlackStandin().start()
    stopped = False
    try:
        env = _env(tmp_path, SLACK_API_URL=slack.api_url, SLACK_BOT_TOKEN=slack.bot_token,
                   SLACK_APP_TOKEN=slack.app_token)
        proc = subprocess.Popen([BONDBOT, "serve", "--health-port", str(port)], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            await _wait_for(health, 200, proc)
            await slack.stop()  # Slack's end of the WebSocket closes, and reconnecting fails
            stopped = True
            body = await _wait_for(health, 503, proc)
            assert body["checks"]["slack"] == {"ok": False, "detail": "Socket Mode not connected"}
            assert body["checks"]["store"]["ok"] is True
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    finally:
        if not stopped:
            await slack.stop()


async def test_http_mode_serves_healthz_on_the_slack_port(tmp_path: Path) -> None:
    port, health_port = _free_port(), _free_port()
    async with SlackStandin() as slack:
        # BONDBOT_HEALTH_PORT as the image sets it: the HEALTHCHECK's port works in HTTP mode too
        env = _env(tmp_path, SLACK_API_URL=slack.api_url, SLACK_BOT_TOKEN=slack.bot_token,
                   SLACK_SIGNING_SECRET=slack.signing_secret, BONDBOT_HEALTH_PORT=str(health_port))
        proc = subprocess.Popen([BONDBOT, "serve", "--http", "--host", "127.0.0.1", "--port", str(port)],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            body = await _wait_for(f"http://127.0.0.1:{port}/healthz", 200, proc)
            assert body["checks"]["slack"] == {"ok": True, "detail": "HTTP mode: serving signed requests"}
            assert body["checks"]["store"] == {"ok": True, "detail": "incident store readable"}
            assert (tmp_path / "data" / "incidents.sqlite3").exists()  # the check read the real store
            assert _probe(f"http://127.0.0.1:{port}/healthz").returncode == 0
            assert await _get(f"http://127.0.0.1:{health_port}/healthz") == (200, body)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    dead = _probe(f"http://127.0.0.1:{port}/healthz")
    assert dead.returncode == 1 and "not answering" in dead.stderr


def test_credentials_directory_is_read_and_environment_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bondbot import settings

    (tmp_path / "SLACK_BOT_TOKEN").write_text("xoxb-from-credential\n")
    monkeypatch.delenv("SLACK_BOT_TOKEN", raising=False)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    assert settings.secret("SLACK_BOT_TOKEN") == "xoxb-from-credential"
    assert settings.secret("SLACK_APP_TOKEN") is None
    assert settings.secret("../etc/passwd") is None  # a name, never a path
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-from-env")
    assert settings.secret("SLACK_BOT_TOKEN") == "xoxb-from-env"
