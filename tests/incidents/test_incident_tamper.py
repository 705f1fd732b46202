"""Editing stored events behind the store's back is caught by ``verify``, with the first broken seq."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
import sqlalchemy as sa

from incidents import IncidentStore
from incidents.chain import event_hash


@pytest.fixture
def log(store: IncidentStore, incident_id: str) -> str:
    """An incident with 7 events: opened, 3 commands, a rollback note, an approval, a status change."""
    for n, cmd in enumerate(["cat /proc/net/bonding/bond0", "ip -d link show bond0", "nmcli con show bond0"]):
        store.append(incident_id, actor="bot", kind="command", payload={"command": cmd, "exit_status": 0, "duration_s": 0.1 * n})
    store.add_rollback_note(
        incident_id, actor="bot", before={"miimon": 0}, restore_commands=["nmcli con modify bond0 bond.options miimon=0"],
        for_change="miimon=100",
    )
    store.record_approval(incident_id, actor="U024BE7LH", plan_hash="ab" * 32)
    store.set_status(incident_id, "diagnosed", actor="bot")
    assert store.verify(incident_id).ok
    return incident_id


def sql(url: str, statement: str, **params: object) -> None:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(statement), params)
    finally:
        engine.dispose()


def payload_of(store: IncidentStore, incident_id: str, seq: int) -> dict:
    return store.events(incident_id)[seq - 1].payload


CASES: dict[str, tuple[Callable[[str, str, IncidentStore], None], int, str]] = {}


def case(name: str, seq: int, reason: str):
    def register(fn: Callable[[str, str, IncidentStore], None]) -> Callable[[str, str, IncidentStore], None]:
        CASES[name] = (fn, seq, reason)
        return fn

    return register


@case("payload", 3, "hash does not match the event's content")
def _edit_payload(url: str, iid: str, store: IncidentStore) -> None:
    p = payload_of(store, iid, 3)
    p["exit_status"] = 1
    text = json.dumps(p, sort_keys=True, separators=(",", ":"))
    sql(url, "UPDATE incident_events SET payload = :p WHERE incident_id = :i AND seq = 3", p=text, i=iid)


@case("payload-whitespace", 2, "payload text was altered")
def _reformat_payload(url: str, iid: str, store: IncidentStore) -> None:
    sql(url, "UPDATE incident_events SET payload = :p WHERE incident_id = :i AND seq = 2",
        p=json.dumps(payload_of(store, iid, 2), indent=2), i=iid)


@case("payload-not-json", 4, "hash does not match")
def _garble_payload(url: str, iid: str, store: IncidentStore) -> None:
    sql(url, "UPDATE incident_events SET payload = '{broken' WHERE incident_id = :i AND seq = 4", i=iid)


@case("timestamp", 2, "hash does not match")
def _edit_ts(url: str, iid: str, store: IncidentStore) -> None:
    ts = store.events(iid)[1].ts
    sql(url, "UPDATE incident_events SET ts = :t WHERE incident_id = :i AND seq = 2", t=ts[:-4] + "999Z", i=iid)


@case("actor", 6, "hash does not match")
def _edit_actor(url: str, iid: str, store: IncidentStore) -> None:
    sql(url, "UPDATE incident_events SET actor = 'U_MALLORY' WHERE incident_id = :i AND seq = 6", i=iid)


@case("deleted-middle", 3, "event missing: seq 3")
def _delete_middle(url: str, iid: str, store: IncidentStore) -> None:
    sql(url, "DELETE FROM incident_events WHERE incident_id = :i AND seq = 3", i=iid)


@case("deleted-tail", 7, "event missing: the incident's head is seq 7")
def _delete_tail(url: str, iid: str, store: IncidentStore) -> None:
    sql(url, "DELETE FROM incident_events WHERE incident_id = :i AND seq = 7", i=iid)


@case("reordered", 2, "prev_hash does not match")
def _swap(url: str, iid: str, store: IncidentStore) -> None:
    sql(url, "UPDATE incident_events SET seq = -1 WHERE incident_id = :i AND seq = 2", i=iid)
    sql(url, "UPDATE incident_events SET seq = 2 WHERE incident_id = :i AND seq = 3", i=iid)
    sql(url, "UPDATE incident_events SET seq = 3 WHERE incident_id = :i AND seq = -1", i=iid)


@case("rehashed", 4, "prev_hash does not match")
def _edit_and_rehash(url: str, iid: str, store: IncidentStore) -> None:
    # A careful forger recomputes the edited event's own hash: the next link still breaks.
    ev = store.events(iid)[2]
    p = {**ev.payload, "exit_status": 1}
    h = event_hash(incident_id=iid, seq=3, ts=ev.ts, actor=ev.actor, kind=ev.kind, payload=p, prev_hash=ev.prev_hash)
    sql(url, "UPDATE incident_events SET payload = :p, hash = :h WHERE incident_id = :i AND seq = 3",
        p=json.dumps(p, sort_keys=True, separators=(",", ":")), h=h, i=iid)


@case("inserted", 8, "inserted")
def _insert(url: str, iid: str, store: IncidentStore) -> None:
    last = store.events(iid)[-1]
    p = {"text": "I was always here"}
    h = event_hash(incident_id=iid, seq=8, ts=last.ts, actor="bot", kind="note", payload=p, prev_hash=last.hash)
    sql(url, "INSERT INTO incident_events VALUES (:i, 8, :ts, 'bot', 'note', :p, :prev, :h)",
        i=iid, ts=last.ts, p=json.dumps(p, separators=(",", ":")), prev=last.hash, h=h)


@case("status-row", 7, "status 'closed' differs from the log's 'diagnosed'")
def _edit_status(url: str, iid: str, store: IncidentStore) -> None:
    sql(url, "UPDATE incidents SET status = 'closed' WHERE id = :i", i=iid)


@case("opened-row", 1, "host")
def _edit_host(url: str, iid: str, store: IncidentStore) -> None:
    sql(url, "UPDATE incidents SET host = 'web-99' WHERE id = :i", i=iid)


@case("approval-row", 6, "approval record differs")
def _edit_approver(url: str, iid: str, store: IncidentStore) -> None:
    sql(url, "UPDATE incident_approvals SET approver = 'U_MALLORY' WHERE incident_id = :i", i=iid)


@case("approval-row-deleted", 6, "has no approval record")
def _delete_approval(url: str, iid: str, store: IncidentStore) -> None:
    sql(url, "DELETE FROM incident_approvals WHERE incident_id = :i", i=iid)


@pytest.mark.parametrize("name", list(CASES))
def test_verify_catches_tampering(name: str, db_url: str, store: IncidentStore, log: str) -> None:
    tamper, seq, reason = CASES[name]
    tamper(db_url, log, store)
    result = store.verify(log)
    assert not result.ok, f"verify missed: {name}"
    assert result.first_break is not None
    assert result.first_break.seq == seq, result.first_break
    assert reason in result.first_break.reason
    assert f"BROKEN at seq {seq}" in str(result)


def test_other_incidents_are_unaffected(db_url: str, store: IncidentStore, log: str) -> None:
    other = store.create_incident(host="web-02", bond="bond0", requester="U1", channel="#ops").id
    _edit_payload(db_url, log, store)
    assert not store.verify(log).ok
    assert store.verify(other).ok
