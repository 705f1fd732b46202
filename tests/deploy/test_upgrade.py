"""Upgrading: a log written by an earlier release, opened by this one, keeps every chain intact.

Migrations run when the store is opened (``IncidentStore.open``), so this is what ``systemctl
restart bondbot`` after ``install.sh``, or a new image, does to a real log. The fixture was made by
``tests/deploy/make_previous_release_db.py`` at the commit its name gives (see its ``.json``), through
that release's own API: a closed incident with triage, findings, a refusal, an approval, the change
and an export; a rolled-back one; one whose host was unreachable.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parent / "fixtures"
RELEASES = sorted(FIXTURES.glob("incidents-*.sqlite"))
BONDBOT = str(Path(sys.executable).parent / "bondbot")


def test_there_is_a_previous_release_to_upgrade_from() -> None:
    assert RELEASES, "tests/deploy/fixtures/incidents-<commit>.sqlite is missing"


@pytest.mark.parametrize("fixture", RELEASES, ids=lambda p: p.stem)
def test_upgrade_keeps_every_chain(fixture: Path, tmp_path: Path) -> None:
    from sqlalchemy import create_engine

    from incidents import IncidentStore
    from incidents.export import export_incident
    from incidents.migrations import SCHEMA_HEAD, current_revision

    meta = json.loads(fixture.with_name(fixture.name + ".json").read_text())
    db = tmp_path / "incidents.sqlite3"
    shutil.copyfile(fixture, db)  # never migrate the committed file itself
    engine = create_engine(f"sqlite:///{db}")
    with engine.connect() as conn:
        assert current_revision(conn) == meta["schema_revision"]
    engine.dispose()

    with IncidentStore.open(f"sqlite:///{db}") as store:
        assert {i.id for i in store.list_incidents(limit=1000)} == set(meta["incidents"])
        for incident_id, want in meta["incidents"].items():
            result = store.verify(incident_id)
            assert result.ok, f"{incident_id}: {result}"
            inc = store.get(incident_id)
            assert (inc.status.value, inc.head_seq, inc.head_hash, inc.root_cause) == (
                want["status"], want["head_seq"], want["head_hash"], want["root_cause"]), incident_id
            assert len(store.events(incident_id)) == want["events"]
            # migration 0003: the bond column became the bonding runbook's subject
            opened = store.events(incident_id)[0].payload
            assert (inc.runbook, inc.subject) == ("bonding", {"bond": opened["bond"]}), incident_id
            assert len(store.approvals(incident_id)) == want["approvals"]
            export_incident(store, incident_id, "json")  # every old event still renders
        # the new release continues an old chain
        (open_id,) = [i for i, w in meta["incidents"].items() if w["status"] == "open"]
        event = store.append(open_id, actor="upgrade-test", kind="note", payload={"text": "after the upgrade"})
        assert event.prev_hash == meta["incidents"][open_id]["head_hash"]
        assert store.verify(open_id).ok

    engine = create_engine(f"sqlite:///{db}")
    with engine.connect() as conn:
        assert current_revision(conn) == SCHEMA_HEAD
    engine.dispose()

    # And through the command an operator runs after an upgrade.
    env = {**os.environ, "BONDBOT_DATABASE_URL": f"sqlite:///{db}", "BONDBOT_DATA_DIR": str(tmp_path)}
    for incident_id in meta["incidents"]:
        verified = subprocess.run([BONDBOT, "incident", "verify", incident_id], env=env, capture_output=True, text=True)
        assert verified.returncode == 0, verified.stdout + verified.stderr


def test_an_edited_old_log_is_caught_after_the_upgrade(tmp_path: Path) -> None:
    """The check above could not pass on a broken chain: edit one old payload and it fails."""
    from incidents import IncidentStore

    fixture = RELEASES[-1]
    meta = json.loads(fixture.with_name(fixture.name + ".json").read_text())
    db = tmp_path / "incidents.sqlite3"
    shutil.copyfile(fixture, db)
    (closed_id,) = [i for i, w in meta["incidents"].items() if w["status"] == "closed"]
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE incident_events SET payload = replace(payload, 'miimon=100', 'miimon=0') "
                     "WHERE incident_id = ? AND kind = 'command'", (closed_id,))
    with IncidentStore.open(f"sqlite:///{db}") as store:
        result = store.verify(closed_id)
        assert not result.ok and result.first_break is not None
