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
    # Every change is on the schedule's own log, with who made it; the log verifies.
    r = runner.invoke(app, ["schedule", "history", drill.id, *base])
    assert r.exit_code == 0, r.output
    lines = r.output.strip().splitlines()
    assert [ln.split()[2] for ln in lines[:4]] == ["added", "paused", "resumed", "removed"]  # seq, ts, what
    assert f"standing approval of this scope (digest {drill.scope_digest()[:12]})" in lines[0]
    assert "paused by cli:" in lines[1] and lines[1].endswith(": change freeze")
    assert lines[-1].startswith("log intact: 4 events, head ")
    doc = json.loads(runner.invoke(app, ["schedule", "history", drill.id, "--json", *base]).output)
    assert doc["verified"] is True and [e["kind"] for e in doc["events"]] == ["added", "paused", "resumed", "removed"]
    # A log edited outside bondbot: exit 1 and where.
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE schedule_events SET actor = 'someone-else' WHERE schedule_id = :id AND seq = 2"),
                     {"id": drill.id})
    engine.dispose()
    r = runner.invoke(app, ["schedule", "history", drill.id, *base])
    assert r.exit_code == 1 and "LOG BROKEN at event 2: hash does not match" in r.output
    assert runner.invoke(app, ["schedule", "history", "SCH-NOSUCH", *base]).exit_code == 2


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
