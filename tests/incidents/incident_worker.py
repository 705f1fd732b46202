"""A separate process that writes to the incident log, for the multi-process tests.

Every mode first creates GO_FILE.<pid>.ready once it is connected, so the parent can release all
workers together by creating GO_FILE.

    python incident_worker.py URL append INCIDENT_ID TAG COUNT GO_FILE
        wait for GO_FILE to exist, then append COUNT note events {"tag": TAG, "i": i}, with a
        millisecond between them as a bot has (SQLite's busy handler is not fair: a writer in a
        tight loop could otherwise keep the lock and the test would show no contention)
    python incident_worker.py URL claim KEY GO_FILE RESULT_FILE
        wait for GO_FILE, try to claim KEY, write "won" or "lost" to RESULT_FILE
    python incident_worker.py URL hang INCIDENT_ID READY_FILE
        append one event but stop just before COMMIT (the transaction holds its lock and has written
        the event row and the new head), create READY_FILE and sleep until killed: the parent then
        SIGKILLs it mid-append
    python incident_worker.py URL takeover INCIDENT_ID GO_FILE RESULT_FILE
        wait for GO_FILE, take over every expired lease of INCIDENT_ID and record it interrupted;
        write how many interruptions this process recorded to RESULT_FILE
    python incident_worker.py URL open GO_FILE
        wait for GO_FILE, open (and so migrate) the store, create one incident
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from sqlalchemy import event

from incidents import IncidentStore


def wait_for(path: str) -> None:
    Path(f"{path}.{os.getpid()}.ready").touch()
    deadline = time.monotonic() + 180
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            sys.exit("go file never appeared")
        time.sleep(0.005)


def main() -> None:
    url, mode, *args = sys.argv[1:]
    if mode == "open":
        (go,) = args
        wait_for(go)
        with IncidentStore.open(url) as store:
            store.create_incident(host="web-02", bond="bond0", requester="U1", channel="#ops")
        return
    store = IncidentStore.open(url)
    if mode == "append":
        incident_id, tag, count, go = args
        wait_for(go)
        for i in range(int(count)):
            store.append(incident_id, actor=f"worker-{tag}", kind="note", payload={"tag": tag, "i": i})
            time.sleep(0.001)
    elif mode == "claim":
        key, go, result = args
        wait_for(go)
        won = store.claim(key, actor=f"pid-{os.getpid()}")
        Path(result).write_text("won" if won else "lost")
    elif mode == "takeover":
        incident_id, go, result = args
        wait_for(go)
        me, recorded = f"replica-{os.getpid()}", 0
        for lease in store.expired_leases():
            if lease.incident_id != incident_id:
                continue
            mine = store.take_over_lease(lease, owner=me, ttl_s=30)
            if mine is not None and store.record_interruption(
                mine.key, owner=me, actor="bondbot", payload={"reason": f"taken over by {me}"}
            ):
                recorded += 1
        Path(result).write_text(str(recorded))
    elif mode == "hang":
        incident_id, ready = args

        @event.listens_for(store._engine, "commit")
        def _stop_before_commit(conn: object) -> None:
            Path(ready).write_text(str(os.getpid()))
            time.sleep(3600)

        store.append(incident_id, actor="doomed", kind="note", payload={"text": "never committed"})
    else:
        sys.exit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
