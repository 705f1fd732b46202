"""Private files (issue 12): the incident log and its exports hold raw host outputs, so the data
directory is 0700, the SQLite database (and its WAL files) and ``export -o`` files 0600 by default;
``BONDBOT_FILE_MODE`` / ``?file_mode=`` / ``--mode`` choose another mode, a bad one is refused."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from cli_app import incident_cli
from typer.testing import CliRunner

from bondbot import settings
from incidents import IncidentStore
from incidents.errors import StoreUnavailable


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def _open_umask() -> object:
    old = os.umask(0o022)  # the usual umask: what made the log 0644 in a 0755 directory
    try:
        yield None
    finally:
        os.umask(old)




def test_default_data_dir_database_and_export_are_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "home" / "bondbot"
    monkeypatch.setenv("BONDBOT_DATA_DIR", str(data))
    monkeypatch.delenv("BONDBOT_DATABASE_URL", raising=False)
    monkeypatch.delenv("BONDBOT_FILE_MODE", raising=False)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    url = settings.database_url()
    assert url.endswith("?file_mode=0600")
    with IncidentStore.open(url) as store:
        incident = store.create_incident(host="web-01", requester="U1", channel="C1")
        store.append(incident.id, actor="bondbot", kind="note", payload={"raw": "secret output"})
    assert _mode(data) == 0o700
    db = data / "incidents.sqlite3"
    assert _mode(db) == 0o600
    for extra in (Path(f"{db}-wal"), Path(f"{db}-shm")):
        if extra.exists():
            assert _mode(extra) == 0o600, extra
    out = tmp_path / "timeline.md"
    result = CliRunner().invoke(incident_cli(), ["incident", "export", incident.id, "-o", str(out)], env={})
    assert result.exit_code == 0, result.output
    assert _mode(out) == 0o600, "export -o no longer forces 0644"


def test_an_existing_world_readable_log_and_data_dir_are_tightened(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "bondbot"
    data.mkdir(mode=0o755)
    os.chmod(data, 0o755)
    db = data / "incidents.sqlite3"
    IncidentStore.open(f"sqlite:///{db}").close()
    os.chmod(db, 0o644)  # as an older bondbot left it
    monkeypatch.setenv("BONDBOT_DATA_DIR", str(data))
    monkeypatch.delenv("BONDBOT_DATABASE_URL", raising=False)
    monkeypatch.delenv("BONDBOT_FILE_MODE", raising=False)
    IncidentStore.open(settings.database_url()).close()
    assert (_mode(data), _mode(db)) == (0o700, 0o600)


def test_another_mode_is_chosen_explicitly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "shared"
    monkeypatch.setenv("BONDBOT_DATA_DIR", str(data))
    monkeypatch.setenv("BONDBOT_FILE_MODE", "640")
    monkeypatch.delenv("BONDBOT_DATABASE_URL", raising=False)
    with IncidentStore.open(settings.database_url()) as store:
        incident = store.create_incident(host="web-01", requester="U1", channel="C1")
    assert (_mode(data), _mode(data / "incidents.sqlite3")) == (0o750, 0o640)
    out = tmp_path / "t.json"
    env = {"BONDBOT_DATABASE_URL": f"sqlite:///{data / 'incidents.sqlite3'}"}
    result = CliRunner().invoke(incident_cli(), ["incident", "export", incident.id, "-f", "json", "-o", str(out),
                                         "--mode", "644"], env=env)
    assert result.exit_code == 0, result.output
    assert _mode(out) == 0o644
    bad = CliRunner().invoke(incident_cli(), ["incident", "export", incident.id, "-o", str(tmp_path / "x"), "--mode", "755"],
                             env=env)
    assert bad.exit_code == 2 and not (tmp_path / "x").exists()
    # A URL may carry its own mode; a malformed one is refused before anything is created.
    IncidentStore.open(f"sqlite:///{tmp_path / 'own' / 'log.db'}?file_mode=0660").close()
    assert _mode(tmp_path / "own" / "log.db") == 0o660 and _mode(tmp_path / "own") == 0o770
    with pytest.raises(StoreUnavailable):
        IncidentStore.open(f"sqlite:///{tmp_path / 'bad' / 'log.db'}?file_mode=0700")
    assert not (tmp_path / "bad").exists()
    monkeypatch.setenv("BONDBOT_FILE_MODE", "rw")
    with pytest.raises(ValueError):
        settings.file_mode()
