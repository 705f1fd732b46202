"""``bondbot triage --record`` / ``--incident`` and ``runbooks.recording``: a real sshd replaying the
seed outputs, a real SQLite incident log in tmp_path, the real ``bondbot`` process."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from incidents import IncidentStore
from tests.ssh.fixtures import SshTestHost, seed_replay

BONDBOT = Path(sys.executable).parent / "bondbot"
SEED_STEPS = ["discover bonds", "discover slaves", "discover nm_profiles", "proc_bonding", "ip_details",
              "nmcli", "ip_link eno1", "ip_link eno2", "ethtool eno1", "ethtool eno2"]


def _bondbot(*args: str, db: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop("BONDBOT_DATABASE_URL", None)
    if db is not None:
        env["BONDBOT_DATABASE_URL"] = db
    return subprocess.run([str(BONDBOT), *args], capture_output=True, text=True, env=env, timeout=60)


def _incident_id(stderr: str) -> str:
    found = re.findall(r"recording into (?:new )?incident (INC-[0-9A-Z]+)", stderr)
    assert len(found) == 1, stderr
    return found[0]


def _store_ids(db: str) -> list[str]:
    with IncidentStore.open(db) as store:
        return [i.id for i in store.list_incidents()]


def test_record_creates_a_diagnosed_incident_with_every_step(ssh_host: SshTestHost, tmp_path: Path) -> None:
    ssh_host.server.set_replay(seed_replay())
    db = f"sqlite:///{tmp_path / 'log.sqlite3'}"
    proc = _bondbot("triage", "test-host", "--record", db=db)
    assert proc.returncode == 0, proc.stderr
    assert "Root cause: NO_LINK_MONITORING" in proc.stdout
    incident_id = _incident_id(proc.stderr)
    with IncidentStore.open(db) as store:
        incident = store.get(incident_id)
        events = store.events(incident_id)
        assert store.verify(incident_id).ok
    assert (incident.host, incident.bond, incident.status.value) == ("test-host", "bond0", "diagnosed")
    assert incident.requester.startswith("cli:") and incident.channel == "cli"
    steps = [e.payload for e in events if e.kind == "triage_step"]
    assert [s["step"] for s in steps] == SEED_STEPS
    proc_bonding = steps[3]
    assert proc_bonding["command"] == "cat /proc/net/bonding/bond0" and proc_bonding["exit_status"] == 0
    assert "MII Polling Interval (ms): 0" in proc_bonding["stdout"]  # the raw output, as the host sent it
    assert {"sent", "status", "duration", "stderr", "truncated", "timed_out"} <= set(proc_bonding)
    kinds = [e.kind for e in events]
    assert kinds == ["opened", *["triage_step"] * 10, "diagnosis", "root_cause", "status_change"]
    diagnosis = next(e.payload for e in events if e.kind == "diagnosis")
    assert diagnosis["root_cause"]["code"] == "NO_LINK_MONITORING"
    assert all("explanation" in f for f in diagnosis["findings"])
    root = next(e.payload for e in events if e.kind == "root_cause")
    assert root["code"] == "NO_LINK_MONITORING" and root["root_cause"] == incident.root_cause and root["evidence"]
    assert events[-1].payload == {"from": "open", "to": "diagnosed", "reason": "root cause found"}
    assert {e.actor for e in events} == {incident.requester}


def test_record_into_existing_incident_with_database_url_option(ssh_host: SshTestHost, tmp_path: Path) -> None:
    ssh_host.server.set_replay(seed_replay())
    db = f"sqlite:///{tmp_path / 'other.sqlite3'}"
    with IncidentStore.open(db) as store:
        incident_id = store.create_incident(host="test-host", bond="bond0", requester="U1", channel="#ops").id
    proc = _bondbot("triage", "test-host", "--json", "--incident", incident_id.lower(), "--database-url", db)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.lstrip().startswith("{")  # --json keeps stdout pure; the id goes to stderr
    assert _incident_id(proc.stderr) == incident_id
    with IncidentStore.open(db) as store:
        events = store.events(incident_id)
        assert store.get(incident_id).status.value == "diagnosed" and store.verify(incident_id).ok
    assert [e.kind for e in events].count("triage_step") == 10 and len(_store_ids(db)) == 1


def test_unknown_incident_exits_2_and_contacts_nothing(ssh_host: SshTestHost, tmp_path: Path) -> None:
    ssh_host.server.set_replay(seed_replay())
    db = f"sqlite:///{tmp_path / 'log.sqlite3'}"
    proc = _bondbot("triage", "test-host", "--incident", "INC-ZZZZ", db=db)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "INC-ZZZZ" in proc.stderr, proc.stderr
    assert ssh_host.server.commands() == []
    assert _store_ids(db) == []


def test_incident_about_another_host_is_refused(ssh_host: SshTestHost, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'log.sqlite3'}"
    with IncidentStore.open(db) as store:
        incident_id = store.create_incident(host="web-01", bond="bond0", requester="U1", channel="#ops").id
    proc = _bondbot("triage", "test-host", "--incident", incident_id, db=db)
    assert proc.returncode == 2 and "about host web-01, not test-host" in proc.stderr
    assert ssh_host.server.commands() == []
    with IncidentStore.open(db) as store:
        assert [e.kind for e in store.events(incident_id)] == ["opened"]


def test_unreachable_database_exits_2_and_contacts_nothing(ssh_host: SshTestHost, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    proc = _bondbot("triage", "test-host", "--record", db=f"sqlite:///{tmp_path / 'file' / 'log.sqlite3'}")
    assert proc.returncode == 2 and proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert ssh_host.server.commands() == []


def test_bad_host_with_record_writes_nothing(ssh_host: SshTestHost, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'log.sqlite3'}"
    proc = _bondbot("triage", "test-host", "--bond", "bond0;reboot", "--record", db=db)
    assert proc.returncode == 2 and "invalid interface name" in proc.stderr
    assert not (tmp_path / "log.sqlite3").exists()


def test_unreachable_host_is_recorded(ssh_host: SshTestHost, tmp_path: Path) -> None:
    ssh_host.known_hosts_path.write_text("")  # the host key is no longer trusted
    db = f"sqlite:///{tmp_path / 'log.sqlite3'}"
    proc = _bondbot("triage", "test-host", "--record", db=db)
    assert proc.returncode == 3 and "bondbot hosts trust test-host" in proc.stderr
    incident_id = _incident_id(proc.stderr)
    with IncidentStore.open(db) as store:
        events = store.events(incident_id)
        assert store.get(incident_id).status.value == "open" and store.verify(incident_id).ok
    assert [e.kind for e in events] == ["opened", "triage_step", "note"]
    assert events[1].payload["step"] == "connect" and events[1].payload["status"] == "failed"
    assert "bondbot hosts trust" in events[2].payload["triage_error"]
    assert ssh_host.server.commands() == []


def test_without_flags_nothing_is_written_and_sqlalchemy_is_not_imported(ssh_host: SshTestHost) -> None:
    ssh_host.server.set_replay(seed_replay())
    env = dict(os.environ)
    env.pop("BONDBOT_DATABASE_URL", None)
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", str(BONDBOT), "triage", "test-host"],
        capture_output=True, text=True, env=env, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Root cause: NO_LINK_MONITORING" in proc.stdout and "recording into" not in proc.stderr
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert "asyncssh" in imported  # the import log is really there
    assert not {m for m in imported if m.split(".")[0] in {"sqlalchemy", "incidents"}}
    data_dir = Path(env["BONDBOT_DATA_DIR"])
    assert not data_dir.exists() or not list(data_dir.glob("*.sqlite3*"))  # the default log was not created
