"""deploy/backup.sh: an online backup of a log being written, and a verified restore, on SQLite and
PostgreSQL for real; a tampered backup fails verification, naming the incident."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pg import PostgresUnavailable, create_database, private_postgres  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
BACKUP = REPO / "deploy" / "backup.sh"


def _run(*args: str, url: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BONDBOT_", "CREDENTIALS_"))}
    env.update(BONDBOT_DATABASE_URL=url, BONDBOT_DATA_DIR=str(tmp_path / "data"), BONDBOT_PYTHON=sys.executable)
    return subprocess.run([str(BACKUP), *args], capture_output=True, text=True, env=env, timeout=120)


def _fill(url: str, n: int = 3) -> list[str]:
    from incidents import IncidentStore

    with IncidentStore.open(url) as store:
        ids = []
        for i in range(n):
            inc = store.create_incident(host=f"web-{i:02d}", bond="bond0", requester="U0ALICE", channel="C0OPS")
            store.append(inc.id, actor="bot", kind="command", payload={"command": "cat /proc/net/bonding/bond0",
                                                                      "exit_status": 0, "stdout": "MII Status: up"})
            store.record_approval(inc.id, actor="U0BOB", plan_hash="ab" * 16)
            ids.append(inc.id)
        return ids


def test_sqlite_online_backup_while_writing_then_verify(tmp_path: Path) -> None:
    from incidents import IncidentStore

    url = f"sqlite:///{tmp_path / 'live.sqlite3'}"
    ids = _fill(url)
    stop = threading.Event()

    def keep_writing() -> None:  # the bot goes on while the backup runs
        with IncidentStore.open(url) as store:
            while not stop.is_set():
                store.append(ids[0], actor="bot", kind="note", payload={"text": "still working"})

    writer = threading.Thread(target=keep_writing)
    writer.start()
    try:
        dest = tmp_path / "backup.sqlite3"
        done = _run("backup", str(dest), url=url, tmp_path=tmp_path)
        assert done.returncode == 0, done.stderr
    finally:
        stop.set()
        writer.join()
    assert dest.stat().st_mode & 0o077 == 0, "the backup holds raw host outputs: owner only"
    assert not Path(str(dest) + "-wal").exists()
    assert _run("backup", str(dest), url=url, tmp_path=tmp_path).returncode != 0  # never overwrites

    before = dest.read_bytes()
    checked = _run("verify", str(dest), url=url, tmp_path=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "3 incident(s) verified, 0 broken: every chain intact" in checked.stdout
    assert dest.read_bytes() == before, "verify works on a copy"

    with sqlite3.connect(dest) as conn:  # someone edits a command's output in the backup
        conn.execute("UPDATE incident_events SET payload = replace(payload, 'up', 'down') "
                     "WHERE incident_id = ? AND kind = 'command'", (ids[1],))
    conn.close()
    tampered = _run("verify", str(dest), url=url, tmp_path=tmp_path)
    assert tampered.returncode == 1
    assert f"BROKEN {ids[1]}" in tampered.stdout and "1 broken" in tampered.stdout


def test_postgresql_dump_restore_verify(tmp_path: Path) -> None:
    try:
        pg = private_postgres()
        server = pg.__enter__()
    except PostgresUnavailable as exc:
        pytest.skip(str(exc))
    try:
        live, restored = create_database(server), create_database(server)
        ids = _fill(live, 2)
        dest = tmp_path / "incidents.pgdump"
        done = _run("backup", str(dest), url=live, tmp_path=tmp_path)
        assert done.returncode == 0, done.stderr
        assert dest.read_bytes().startswith(b"PGDMP")
        assert "--into" in _run("verify", str(dest), url=live, tmp_path=tmp_path).stderr
        checked = _run("verify", str(dest), "--into", restored, url=live, tmp_path=tmp_path)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert "2 incident(s) verified, 0 broken" in checked.stdout
        from incidents import IncidentStore

        with IncidentStore.open(restored) as store:
            assert {i.id for i in store.list_incidents()} == set(ids)
    finally:
        pg.__exit__(None, None, None)
