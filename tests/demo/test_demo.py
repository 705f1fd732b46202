"""``bondbot demo``: the seed's incident through the real bot, on the lab VM, as a person sees it."""

from __future__ import annotations

import io
import os
import re
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner

from bondbot.cli import app
from bondbot.commands.demo import run_demo
from bondbot.settings import database_url, lab_dir
from incidents import IncidentStore


def test_demo_without_qemu_is_a_clear_error_and_starts_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no qemu-system-x86_64 on it
    monkeypatch.setenv("BONDBOT_DATA_DIR", str(tmp_path / "data"))
    result = CliRunner().invoke(app, ["demo"])
    assert result.exit_code == 2
    assert "error: qemu-system-x86_64 not found: install the Debian package qemu-system-x86" in result.output
    assert not (tmp_path / "data").exists(), "nothing was created"


@pytest.mark.lab
async def test_demo_plays_the_seed_story_and_writes_the_channel_as_html(
    lab_env: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BONDBOT_LAB_DIR", str(lab_dir()))  # the image stays where it is
    monkeypatch.setenv("BONDBOT_DATA_DIR", str(tmp_path / "data"))  # incident store and HTML
    monkeypatch.delenv("BONDBOT_DATABASE_URL", raising=False)
    out = io.StringIO()
    result = await run_demo(vm=lab_env.vm, console=Console(file=out, width=140, color_system=None))
    printed = out.getvalue()

    assert result.ok, printed
    assert not result.vm_started_here and lab_env.vm.is_running(), "a running VM is reused and left running"
    # The terminal: who did what, the steps as they finished, the incident at each milestone.
    (tmp_path / "printed.txt").write_text(printed)  # kept for a failing run
    assert "alice: /bond triage lab-host" in printed, printed
    # Each triage step as it finished, or from the log when the triage beat the repaint interval.
    assert "✅ cat /proc/net/bonding/bond0" in printed, printed
    assert "bondbot (only visible to @alice): 🚫 Not allowed to apply the fix: two-person rule" in printed
    assert f"Incident {result.incident_id}: fix verified, failover test passed" in printed
    assert f"bondbot incident export {result.incident_id} --format md" in printed
    assert str(result.html_path) in printed.replace("\n", "")

    # The channel as text: root cause, evidence, who approved what, the result, the export.
    t = result.transcript
    (tmp_path / "transcript.txt").write_text(t + "\n\n" + printed)  # kept for a failing run
    assert "*Root cause:* bond0 has no link monitoring (miimon 0, no ARP monitor)" in t
    assert "cat /proc/net/bonding/bond0: MII Polling Interval (ms): 0" in t
    assert "✅ Fix approved by @bob at " in t and "✅ Failover test (lab) approved by @bob at " in t
    # The one-line outcome after the click: the measured failover (the demo passes within 300 ms).
    assert re.search(r"Failover test \(lab\) approved by @bob at [^\n]*: passed: failover \d+(\.\d+)? ms", t), t
    assert f"Timeline of {result.incident_id}, exported by @bob" in t

    # The HTML page, in the data directory by default.
    assert result.html_path == tmp_path / "data" / "demo" / f"demo-{result.incident_id}.html"
    page = result.html_path.read_text()
    assert page.startswith("<!doctype html>") and f"bondbot demo — {result.incident_id}" in page
    assert "<b>Root cause:</b>" in page and "<button" in page and "Failover test: manual</button>" in page
    assert "Only visible to @alice" in page and f"Timeline of {result.incident_id} (md)" in page

    # The incident is in the normal store, verified, with an intact chain.
    with IncidentStore.open(database_url()) as store:
        incident = store.get(result.incident_id)
        assert incident.status.value == "verified" and store.verify(incident.id).ok
    assert os.environ["BONDBOT_INVENTORY"] == str(lab_env.inventory_path)
