"""The store's API on SQLite and PostgreSQL: incidents, events, statuses, claims, approvals."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import pytest

from incidents import (
    EventKind,
    IncidentStore,
    InvalidInput,
    InvalidTransition,
    Status,
    StoreUnavailable,
    UnknownIncident,
)
from incidents.chain import GENESIS, event_hash
from incidents.export import export_incident

TS_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


def test_create_incident_opens_the_log(store: IncidentStore) -> None:
    inc = store.create_incident(host="web-01", bond="bond0", requester="U024BE7LH", channel="#ops")
    assert re.match(r"^INC-[0-9A-HJKMNP-TV-Z]{4}$", inc.id)
    assert inc.status is Status.OPEN and inc.root_cause is None
    assert TS_RE.match(inc.created_at)
    (opened,) = store.events(inc.id)
    assert opened.seq == 1 and opened.kind == "opened" and opened.prev_hash == GENESIS
    assert opened.payload == {"host": "web-01", "runbook": "bonding", "subject": {"bond": "bond0"},
                              "requester": "U024BE7LH", "channel": "#ops"}
    assert (inc.runbook, inc.subject, inc.bond, inc.about) == ("bonding", {"bond": "bond0"}, "bond0", "bond0")
    assert store.get(inc.id.lower()) == store.get(inc.id)  # ids are typed by humans
    assert store.verify(inc.id).ok


def test_ids_are_unique(store: IncidentStore) -> None:
    ids = {store.create_incident(host="h", bond="bond0", requester="u", channel="c").id for _ in range(40)}
    assert len(ids) == 40


def test_append_returns_the_stored_event_with_chain_and_ms_timestamp(store: IncidentStore, incident_id: str) -> None:
    payload = {
        "command": "cat /proc/net/bonding/bond0",
        "exit_status": 0,
        "duration_s": 0.042,
        "stdout": "Bonding Mode: fault-tolerance (active-backup)\nMII Polling Interval (ms): 0\n",
        "host": "web-01",
    }
    ev = store.append(incident_id, actor="bot", kind=EventKind.COMMAND, payload=payload)
    assert ev.seq == 2 and TS_RE.match(ev.ts)
    first = store.events(incident_id)[0]
    assert ev.prev_hash == first.hash
    assert ev.hash == event_hash(
        incident_id=incident_id, seq=2, ts=ev.ts, actor="bot", kind="command", payload=payload, prev_hash=first.hash
    )
    assert store.events(incident_id)[1] == ev
    assert store.get(incident_id).head_hash == ev.hash
    # the caller's dict is not the stored one
    payload["exit_status"] = 1
    assert store.events(incident_id)[1].payload["exit_status"] == 0


def test_timestamps_never_go_backwards(store: IncidentStore, incident_id: str) -> None:
    for i in range(20):
        store.append(incident_id, actor="bot", kind="note", payload={"i": i})
    stamps = [e.ts for e in store.events(incident_id)]
    assert stamps == sorted(stamps)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "reboot", "payload": {}}, "unknown event kind 'reboot'"),
        ({"kind": "status_change", "payload": {"to": "closed"}}, "written by the store itself"),
        ({"kind": "approval", "payload": {"plan_hash": "ab" * 32}}, "written by the store itself"),
        ({"kind": "note", "payload": ["not", "an", "object"]}, "payload must be a JSON object"),
        ({"kind": "note", "payload": {"t": object()}}, "not JSON-serialisable"),
        ({"kind": "note", "payload": {"x": float("nan")}}, "not JSON-serialisable"),
        ({"kind": "command", "payload": {"exit_status": 0}}, "payload['command']"),
        ({"kind": "rollback_note", "payload": {"before": {}, "restore_commands": [], "for_change": "x"}}, "restore_commands"),
    ],
)
def test_bad_events_are_refused_and_nothing_is_written(
    store: IncidentStore, incident_id: str, kwargs: dict, message: str
) -> None:
    before = store.get(incident_id)
    with pytest.raises(InvalidInput, match=re.escape(message)):
        store.append(incident_id, actor="bot", **kwargs)
    assert store.get(incident_id) == before
    assert len(store.events(incident_id)) == 1


@pytest.mark.parametrize("actor", ["", "   ", "bot\nadmin", "x" * 201, None])
def test_bad_actor_is_refused(store: IncidentStore, incident_id: str, actor: object) -> None:
    with pytest.raises(InvalidInput, match="actor"):
        store.append(incident_id, actor=actor, kind="note", payload={})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("field", "value"), [("host", "web 01; rm -rf /"), ("host", ""), ("requester", ""),
                         ("runbook", "two words"), ("runbook", ""), ("subject", {"Bad Key": "x"}),
                         ("subject", {"bond": "bond0\nrm -rf /"}), ("subject", {"bond": ""}), ("subject", ["bond0"]),
                         ("subject", {"bond": "a" * 256})]
)
def test_bad_incident_fields_are_refused(store: IncidentStore, field: str, value: object) -> None:
    """The store checks the shape of what an incident is about; each value's type (an interface
    name...) is the runbook engine's to check before the incident is opened."""
    args = {"host": "web-01", "subject": {"bond": "bond0"}, "requester": "U1", "channel": "#ops", field: value}
    before = store.list_incidents(limit=10_000)
    with pytest.raises(InvalidInput, match=field):
        store.create_incident(**args)
    assert store.list_incidents(limit=10_000) == before


def test_unknown_incident_is_a_clear_error(store: IncidentStore) -> None:
    for call in (
        lambda: store.get("INC-ZZZZ"),
        lambda: store.events("INC-ZZZZ"),
        lambda: store.verify("INC-ZZZZ"),
        lambda: store.append("INC-ZZZZ", actor="bot", kind="note", payload={}),
        lambda: store.set_status("INC-ZZZZ", "closed", actor="bot"),
        lambda: export_incident(store, "INC-ZZZZ", "md"),
        lambda: store.get("'; DROP TABLE incidents; --"),
    ):
        with pytest.raises(UnknownIncident, match="unknown incident"):
            call()


def test_status_life_cycle(store: IncidentStore, incident_id: str) -> None:
    with pytest.raises(InvalidTransition, match="open; it cannot become verified"):
        store.set_status(incident_id, "verified", actor="bot")
    for status in ("diagnosed", "fixing", "rolled_back", "fixing", "verified", "closed"):
        ev = store.set_status(incident_id, status, actor="bot", reason=f"to {status}")
        assert ev.kind == "status_change" and ev.payload["to"] == status
    assert store.get(incident_id).status is Status.CLOSED
    with pytest.raises(InvalidTransition, match="none: it is final"):
        store.set_status(incident_id, "open", actor="bot")
    with pytest.raises(InvalidInput, match="unknown status 'done'"):
        store.set_status(incident_id, "done", actor="bot")
    assert store.verify(incident_id).ok


def test_root_cause(store: IncidentStore, incident_id: str) -> None:
    ev = store.set_root_cause(
        incident_id, "MII link monitoring is disabled (miimon=0)", actor="bot", details={"code": "BOND_MIIMON_OFF"}
    )
    assert ev.kind == "root_cause" and ev.payload["code"] == "BOND_MIIMON_OFF"
    assert store.get(incident_id).root_cause == "MII link monitoring is disabled (miimon=0)"
    assert store.verify(incident_id).ok


def test_rollback_note_helper(store: IncidentStore, incident_id: str) -> None:
    ev = store.add_rollback_note(
        incident_id,
        actor="bot",
        before={"bond.options": "mode=active-backup,miimon=0,primary=eno1"},
        restore_commands=[
            'nmcli con modify bond0 bond.options "mode=active-backup,miimon=0,primary=eno1"',
            "nmcli con down bond0 && nmcli con up bond0",
        ],
        for_change="enable MII link monitoring (miimon=100)",
    )
    assert ev.kind == "rollback_note"
    assert ev.payload["restore_commands"][1] == "nmcli con down bond0 && nmcli con up bond0"
    with pytest.raises(InvalidInput, match="for_change"):
        store.add_rollback_note(incident_id, actor="bot", before={}, restore_commands=["true"], for_change=" ")


def test_list_incidents(store: IncidentStore) -> None:
    a = store.create_incident(host="web-01", bond="bond0", requester="U1", channel="#ops")
    b = store.create_incident(host="db-01", bond="bond1", requester="U2", channel="#db")
    store.set_status(b.id, "diagnosed", actor="bot")
    store.append(a.id, actor="bot", kind="note", payload={"text": "latest activity"})
    assert [i.id for i in store.list_incidents()][:2] == [a.id, b.id]  # most recently active first
    assert [i.id for i in store.list_incidents(status="diagnosed")] == [b.id]
    assert [i.id for i in store.list_incidents(host="db-01")] == [b.id]
    with pytest.raises(InvalidInput, match="unknown status"):
        store.list_incidents(status="bogus")


def test_claim_is_exactly_once(store: IncidentStore, incident_id: str) -> None:
    key = f"run:{incident_id}:{'c0ffee' * 4}"
    assert store.claim(key, actor="bot", incident_id=incident_id) is True
    assert store.claim(key, actor="bot") is False
    assert store.claim(key, actor="other-replica", incident_id=incident_id) is False
    other = f"other:{incident_id}"
    with pytest.raises(UnknownIncident):
        store.claim(other, actor="bot", incident_id="INC-ZZZZ")
    assert store.claim(other, actor="bot") is True  # the failed attempt above left nothing behind


def test_claim_from_many_threads_has_one_winner(store: IncidentStore, incident_id: str) -> None:
    results: list[bool] = []
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait()
        results.append(store.claim(f"click:{incident_id}", actor=threading.current_thread().name))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * 7 + [True]


def test_threads_appending_share_one_store(store: IncidentStore, incident_id: str) -> None:
    def worker(n: int) -> None:
        for i in range(10):
            store.append(incident_id, actor=f"t{n}", kind="note", payload={"i": i})

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    events = store.events(incident_id)
    assert [e.seq for e in events] == list(range(1, 42))
    assert store.verify(incident_id).ok


def test_record_approval(store: IncidentStore, incident_id: str) -> None:
    plan = "9f" * 32
    approval = store.record_approval(incident_id, actor="U024BE7LH", plan_hash=plan, summary="miimon=100")
    assert approval is not None and approval.approver == "U024BE7LH" and approval.plan_hash == plan
    assert TS_RE.match(approval.approved_at)
    ev = store.events(incident_id)[-1]
    assert (ev.kind, ev.seq, ev.actor, ev.payload["plan_hash"]) == ("approval", approval.seq, "U024BE7LH", plan)
    # the same plan again (another replica, a second click): refused, nothing written
    head = store.get(incident_id).head_seq
    assert store.record_approval(incident_id, actor="U999", plan_hash=plan) is None
    assert store.get(incident_id).head_seq == head
    assert store.approvals(incident_id) == [approval]
    # a per-click key instead: the same click delivered twice counts once
    assert store.record_approval(incident_id, actor="U1", plan_hash="ab" * 32, key="click:1") is not None
    assert store.record_approval(incident_id, actor="U1", plan_hash="ab" * 32, key="click:1") is None
    with pytest.raises(InvalidInput, match="plan_hash"):
        store.record_approval(incident_id, actor="U1", plan_hash="not-a-hash")
    assert store.verify(incident_id).ok


def test_no_approval_on_a_closed_incident(store: IncidentStore, incident_id: str) -> None:
    store.set_status(incident_id, "closed", actor="bot")
    with pytest.raises(InvalidInput, match="closed"):
        store.record_approval(incident_id, actor="U1", plan_hash="ab" * 32)
    # the refused approval did not burn its idempotency key either
    assert store.claim(f"approval:{incident_id}:{'ab' * 32}", actor="bot") is True


def test_reopening_keeps_everything(db_url: str) -> None:
    with IncidentStore.open(db_url) as s:
        inc = s.create_incident(host="web-01", bond="bond0", requester="U1", channel="#ops")
        s.append(inc.id, actor="bot", kind="note", payload={"text": "é ✓ 中"})
    with IncidentStore.open(db_url) as s:
        assert s.events(inc.id)[-1].payload == {"text": "é ✓ 中"}
        assert s.verify(inc.id).ok


def test_unwritable_sqlite_path(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(StoreUnavailable, match="cannot create the directory for the incident database"):
        IncidentStore.open(f"sqlite:///{blocker / 'sub' / 'incidents.sqlite3'}")
    with pytest.raises(StoreUnavailable, match="is a directory"):
        IncidentStore.open(f"sqlite:///{tmp_path}")
    with pytest.raises(StoreUnavailable, match="in-memory"):
        IncidentStore.open("sqlite://")
    with pytest.raises(StoreUnavailable, match="unsupported database 'mysql'"):
        IncidentStore.open("mysql://u@localhost/x")
    with pytest.raises(StoreUnavailable, match="not a database URL"):
        IncidentStore.open("definitely not a url")
    assert blocker.read_text() == "not a directory"


def test_unreachable_postgresql_is_a_clear_error() -> None:
    import socket

    with socket.socket() as s:  # a loopback port where nothing listens
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(StoreUnavailable, match=rf"incident database postgresql\+psycopg://bondbot:\*\*\*@127.0.0.1:{port}/x unavailable: .*refused"):
        IncidentStore.open(f"postgresql+psycopg://bondbot:secret@127.0.0.1:{port}/x")


def test_default_location_is_the_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BONDBOT_DATABASE_URL", raising=False)
    monkeypatch.setenv("BONDBOT_DATA_DIR", str(tmp_path / "data"))
    from bondbot.settings import database_url

    with IncidentStore.open(database_url()) as s:  # the entry points' default, which the store takes as given
        s.create_incident(host="web-01", bond="bond0", requester="U1", channel="#ops")
        assert s.url == f"sqlite:///{tmp_path / 'data' / 'incidents.sqlite3'}"
    assert (tmp_path / "data" / "incidents.sqlite3").is_file()


def test_an_incident_of_another_runbook_records_its_subject(store: IncidentStore) -> None:
    inc = store.create_incident(host="web-01", runbook="loadavg", subject={}, requester="U1", channel="#ops")
    assert (inc.runbook, inc.subject, inc.bond, inc.about) == ("loadavg", {}, None, "loadavg")
    disk = store.create_incident(host="web-01", runbook="disk", subject={"mount": "/var"}, requester="U1", channel="c")
    assert store.get(disk.id).subject == {"mount": "/var"} and store.verify(disk.id).ok
    assert store.events(disk.id)[0].payload["subject"] == {"mount": "/var"}
    with pytest.raises(InvalidInput, match="not both"):
        store.create_incident(host="h", bond="bond0", subject={"bond": "bond0"}, requester="u", channel="c")


def test_a_changed_subject_breaks_verify(store: IncidentStore) -> None:
    from sqlalchemy import update

    from incidents.tables import incidents

    inc = store.create_incident(host="web-01", bond="bond0", requester="U1", channel="#ops")
    with store._engine.begin() as conn:  # what an attacker with the database would do
        conn.execute(update(incidents).where(incidents.c.id == inc.id).values(subject='{"bond":"bond1"}'))
    result = store.verify(inc.id)
    assert not result.ok and result.first_break is not None and "subject" in result.first_break.reason
