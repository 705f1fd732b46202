"""``bondbot incident ...``: output, exit statuses, and errors that change nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
import typer
from cli_app import incident_cli
from typer.testing import CliRunner

from incidents import IncidentStore
from scenario import build_incident


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    return incident_cli()


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"BONDBOT_DATABASE_URL": f"sqlite:///{tmp_path / 'incidents.sqlite3'}"}


@pytest.fixture
def seeded(env: dict[str, str]) -> str:
    with IncidentStore.open(env["BONDBOT_DATABASE_URL"]) as s:
        return build_incident(s)


def run(app: typer.Typer, env: dict[str, str], *args: str):
    return CliRunner().invoke(app, ["incident", *args], env=env)


def test_list_and_show(app: typer.Typer, env: dict[str, str], seeded: str) -> None:
    r = run(app, env, "list")
    assert r.exit_code == 0, r.output
    assert seeded in r.stdout and "closed" in r.stdout and "web-01" in r.stdout
    r = run(app, env, "list", "--json", "--status", "closed")
    assert [i["id"] for i in json.loads(r.stdout)] == [seeded]
    r = run(app, env, "show", seeded.lower())
    assert r.exit_code == 0, r.output
    assert "chain valid (15 events" in r.stdout
    assert "Triage step: cat /proc/net/bonding/bond0 on web-01 → exit 0 in 0.03 s" in r.stdout


def test_verify_exit_statuses(app: typer.Typer, env: dict[str, str], seeded: str) -> None:
    r = run(app, env, "verify", seeded)
    assert r.exit_code == 0 and "chain valid" in r.stdout
    engine = sa.create_engine(env["BONDBOT_DATABASE_URL"])
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE incident_events SET actor = 'U_MALLORY' WHERE seq = 8"))
    engine.dispose()
    r = run(app, env, "verify", seeded)
    assert r.exit_code == 1
    assert "BROKEN at seq 8: hash does not match" in r.stdout
    r = run(app, env, "verify", "--json", seeded)
    assert json.loads(r.stdout)["first_break"]["seq"] == 8


def test_export_to_file_is_logged(app: typer.Typer, env: dict[str, str], seeded: str, tmp_path: Path) -> None:
    out = tmp_path / "postmortem.html"
    r = run(app, env, "export", seeded, "--format", "html", "-o", str(out), "--actor", "U024BE7LH")
    assert r.exit_code == 0, r.output
    assert out.read_text().startswith("<!DOCTYPE html>")
    with IncidentStore.open(env["BONDBOT_DATABASE_URL"]) as s:
        last = s.events(seeded)[-1]
        assert last.kind == "export" and last.actor == "U024BE7LH"
        assert last.payload["covers_seq"] == 15 and last.payload["destination"] == str(out)
        import hashlib

        assert last.payload["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
        assert s.verify(seeded).ok
    r = run(app, env, "export", seeded, "-f", "md")  # stdout: read-only, not logged
    assert r.exit_code == 0 and r.stdout.startswith(f"# {seeded}")
    r = run(app, env, "export", seeded, "-f", "json")
    assert json.loads(r.stdout)["incident"]["head_seq"] == 16


def test_errors_exit_2_and_change_nothing(app: typer.Typer, env: dict[str, str], seeded: str, tmp_path: Path) -> None:
    with IncidentStore.open(env["BONDBOT_DATABASE_URL"]) as s:
        head = s.get(seeded).head_hash
    r = run(app, env, "show", "INC-0000")
    assert r.exit_code == 2 and "error: unknown incident 'INC-0000'" in r.stderr
    blocker = tmp_path / "file"
    blocker.write_text("x")
    r = run(app, env, "export", seeded, "-f", "md", "-o", str(blocker / "out.md"))
    assert r.exit_code == 2 and f"error: cannot write {blocker / 'out.md'}" in r.stderr
    r = run(app, env, "export", seeded, "-f", "pdf")
    assert r.exit_code == 2 and "'pdf'" in r.output
    with IncidentStore.open(env["BONDBOT_DATABASE_URL"]) as s:
        assert s.get(seeded).head_hash == head  # no export event for the failed write
    out = tmp_path / "out.md"
    out.mkdir()  # a directory where the file should go: the write fails, no temp file is left
    r = run(app, env, "export", seeded, "-f", "md", "-o", str(out))
    assert r.exit_code == 2 and f"error: cannot write {out}" in r.stderr
    assert list(tmp_path.glob(".out.md.*")) == [] and list(out.iterdir()) == []
    r = run(app, env, "list", "--database-url", "postgresql+psycopg://u@127.0.0.1:9/x")
    assert r.exit_code == 2 and "error: incident database postgresql+psycopg://u@127.0.0.1:9/x unavailable" in r.stderr
    r = run(app, {"BONDBOT_DATABASE_URL": f"sqlite:///{blocker / 'db.sqlite3'}"}, "list")
    assert r.exit_code == 2 and "cannot create the directory for the incident database" in r.stderr


def test_real_command_line(env: dict[str, str], seeded: str) -> None:
    """Through the installed console script's module, in a real process."""
    code = (
        "import sys, typer\n"
        "from bondbot.commands import incident\n"
        "app = typer.Typer()\n"
        "incident.register(app)\n"
        "app.callback()(lambda: None)\n"
        "sys.argv = ['bondbot', *sys.argv[1:]]\n"
        "app()\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, "incident", "verify", "INC-ZZZZ"],
        env={**os.environ, **env}, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: unknown incident 'INC-ZZZZ': no incident with this id in the log"
