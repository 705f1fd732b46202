"""The hash chain: how an event's hash is computed, and how a stored log is checked.

An event's hash is the SHA-256 of a canonical JSON document (sorted keys, no whitespace, UTF-8,
no NaN/Infinity) holding the incident id, seq, timestamp, actor, kind, payload and the previous
event's hash. Changing, removing, inserting or reordering any stored event therefore changes a hash
that a later event (or the incident row's head) still remembers. This proves the log unchanged
*since* it was written only as far as its head is anchored elsewhere: the export event and every
exported document carry the head hash, so keep an export outside the database.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

from incidents.model import Break, Event

__all__ = ["GENESIS", "canonical_json", "event_hash", "find_first_break"]

#: ``prev_hash`` of an incident's first event.
GENESIS = "0" * 64


def canonical_json(value: Any) -> str:
    """One text per JSON value, so that hashing never depends on key order or spacing."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def event_hash(
    *, incident_id: str, seq: int, ts: str, actor: str, kind: str, payload: Mapping[str, Any], prev_hash: str
) -> str:
    """SHA-256 (hex) of the event's canonical JSON."""
    doc = {
        "incident_id": incident_id,
        "seq": seq,
        "ts": ts,
        "actor": actor,
        "kind": kind,
        "payload": payload,
        "prev_hash": prev_hash,
    }
    return hashlib.sha256(canonical_json(doc).encode("utf-8")).hexdigest()


def find_first_break(
    incident_id: str, events: Iterable[Event], *, head_seq: int, head_hash: str
) -> Break | None:
    """The first event (by stored order) that does not follow from the one before, or None.

    ``events`` must be in ascending ``seq`` order as stored. ``head_seq``/``head_hash`` are what the
    incident row says the last event is: they catch a removed tail, which no hash link could.
    """
    prev_hash = GENESIS
    prev_ts = ""
    expected_seq = 1
    for event in events:
        if event.incident_id != incident_id:
            return Break(event.seq, f"event belongs to incident {event.incident_id!r}")
        if event.seq != expected_seq:
            if event.seq > expected_seq:
                missing = (
                    f"seq {expected_seq}"
                    if event.seq == expected_seq + 1
                    else f"seq {expected_seq}..{event.seq - 1}"
                )
                return Break(expected_seq, f"event missing: {missing} not in the log")
            return Break(event.seq, f"out of order: expected seq {expected_seq}")
        if event.prev_hash != prev_hash:
            return Break(event.seq, "prev_hash does not match the previous event's hash (an event before it was changed, removed or reordered)")
        computed = event_hash(
            incident_id=event.incident_id,
            seq=event.seq,
            ts=event.ts,
            actor=event.actor,
            kind=event.kind,
            payload=event.payload,
            prev_hash=event.prev_hash,
        )
        if computed != event.hash:
            return Break(event.seq, "hash does not match the event's content (timestamp, actor, kind or payload was changed)")
        if event.ts < prev_ts:
            return Break(event.seq, f"timestamp {event.ts} is earlier than the previous event's {prev_ts}")
        prev_hash, prev_ts = event.hash, event.ts
        expected_seq += 1
    last_seq = expected_seq - 1
    if last_seq < head_seq:
        missing = f"seq {last_seq + 1}" if head_seq == last_seq + 1 else f"seq {last_seq + 1}..{head_seq}"
        return Break(last_seq + 1, f"event missing: the incident's head is seq {head_seq}, {missing} not in the log")
    if last_seq > head_seq:
        return Break(head_seq + 1, f"event after the recorded head (seq {head_seq}) was inserted")
    if prev_hash != head_hash:
        return Break(last_seq, "the last event's hash does not match the head recorded on the incident")
    return None
