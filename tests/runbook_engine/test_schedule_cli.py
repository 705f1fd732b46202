"""``bondbot schedule``: the same schedules as ``/bond schedule``, checked the same way, in the store."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from bondbot.cli import build_app
from incidents import IncidentStore
from runbooks.scheduler import ScheduleService


def _inventory(tmp_path: Path) -> Path:
    path = tmp_path / "inventory.yaml"
    path.write_text(yaml.safe_dump({"hosts": {"web-01": {"address": "127.0.0.1", "groups": ["web"]}}}))
    return path


def test_cli_add_list_pause_resume_remove(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    inv = _inventory(tmp_path)
    app, runner = build_app(), CliRunner()
    base = ["--database", url]
    r = runner.invoke(app, ["schedule", "add", "drill", "--host", "web-01", "--bond", "bond0", "--method", "host",
                            "--cron", "0 2 * * SAT", "--tz", "Europe/Berlin", "--window", "2h", "--channel", "C0OPS",
                            "--inventory", str(inv), *base])
    assert r.exit_code == 0, r.output
    assert "standing approval by cli:" in r.output and "bondbot schedule pause SCH-" in r.output
    with IncidentStore.open(url) as store:
        [drill] = ScheduleService(store).schedules()
    assert drill.approved_by and drill.approved_by.startswith("cli:") and drill.extra["scope_digest"] == drill.scope_digest()
    r = runner.invoke(app, ["schedule", "list", "--json", *base])
    assert json.loads(r.output)[0]["id"] == drill.id
    r = runner.invoke(app, ["schedule", "pause", drill.id, "--reason", "change freeze", *base])
    assert r.exit_code == 0 and "paused (change freeze)" in r.output
    assert runner.invoke(app, ["schedule", "resume", drill.id, *base]).exit_code == 0
    assert runner.invoke(app, ["schedule", "remove", drill.id, *base]).exit_code == 0
    assert runner.invoke(app, ["schedule", "list", *base]).output.strip() == "no schedules"
    assert runner.invoke(app, ["schedule", "pause", drill.id, *base]).exit_code == 2


def test_cli_refuses_bad_schedules_and_stores_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    inv = _inventory(tmp_path)
    app, runner = build_app(), CliRunner()
    common = ["--tz", "UTC", "--window", "1h", "--channel", "C0OPS", "--inventory", str(inv), "--database", url]
    cases = [
        (["drill", "--host", "web-01", "--method", "manual", "--cron", "0 2 * * *"], "never scheduled"),
        (["drill", "--host", "db-09", "--method", "host", "--cron", "0 2 * * *"], "db-09"),
        (["audit", "--group", "nope", "--cron", "0 2 * * *"], "unknown group"),
        (["audit", "--host", "web-01", "--cron", "61 2 * * *"], "cron expression"),
    ]
    for args, problem in cases:
        r = runner.invoke(app, ["schedule", "add", *args, *common])
        assert r.exit_code == 2 and problem in r.output, (args, r.output)
    with IncidentStore.open(url) as store:
        assert ScheduleService(store).schedules(include_removed=True) == []
