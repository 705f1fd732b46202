"""Make the "previous release" incident log that the upgrade test migrates (run by hand, rarely).

Why it exists: migrations run when a log is opened, so an upgrade is only tested if a database
written by an *older* bondbot is opened by the current one. This script writes such a database
with the API of the checkout it runs from; commit its output as a fixture and never regenerate
it from a newer release (that would test nothing). To make one from an older commit::

    git worktree add /tmp/prev-release <commit>
    cd /tmp/prev-release && PYTHONPATH=$PWD /work/main/.venv/bin/python \\
        /work/main/tests/deploy/make_previous_release_db.py \\
        /work/main/tests/deploy/fixtures/incidents-<commit>.sqlite
    cd /work/main && git worktree remove /tmp/prev-release

It records what a real bot leaves behind: a triage of the seed's saved outputs (real parsers and
rules), the proposal, a refused self-approval, an approval, the rollback note, the change, the
verification, an export and a close; an incident whose fix was rolled back; one whose host could
not be reached. Next to the database it writes ``<name>.json``: each incident's status, event
count and head hash as this release saw them, which the upgrade test compares after migrating.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, os.getcwd())  # the checkout being released, not the editable install

from incidents import IncidentStore  # noqa: E402
from runbooks import recording  # noqa: E402
from runbooks.bonding.diagnosis import diagnose  # noqa: E402
from runbooks.bonding.outputs import SourceOutput, TriageOutputs  # noqa: E402
from runbooks.engine import StepRecord  # noqa: E402
from ssh_exec.result import CommandResult  # noqa: E402

SEED = Path(os.getcwd()) / "tests/fixtures/written/seed-active-backup-miimon0"
PLAN = "9f2c4e1a7b3d5f60" * 4


def _triage(store: IncidentStore, incident_id: str) -> None:
    """Record the seed's triage through the same functions as the bot and ``triage --record``."""
    files = {
        "cat /proc/net/bonding/bond0": "proc_net_bonding_bond0.txt",
        "ip -d -j link show bond0": "ip_-d_-j_link_show_bond0.json",
        "ip link show eno1": "ip_link_show_eno1.txt",
        "ip link show eno2": "ip_link_show_eno2.txt",
        "ethtool eno1": "ethtool_eno1.txt",
        "ethtool eno2": "ethtool_eno2.txt",
        "nmcli -t con show bond0": "nmcli_-t_con_show_bond0.txt",
    }
    text = {cmd: (SEED / name).read_text() for cmd, name in files.items()}
    steps = [
        StepRecord(step=cmd, command=cmd, status="ok",
                   result=CommandResult(command=cmd, exit_status=0, stdout=out, stderr="", duration=0.012))
        for cmd, out in text.items()
    ]
    outputs = TriageOutputs(
        bond="bond0",
        proc_bonding=SourceOutput("cat /proc/net/bonding/bond0", text["cat /proc/net/bonding/bond0"]),
        ip_details_json=SourceOutput("ip -d -j link show bond0", text["ip -d -j link show bond0"]),
        ip_link={i: SourceOutput(f"ip link show {i}", text[f"ip link show {i}"]) for i in ("eno1", "eno2")},
        ethtool={i: SourceOutput(f"ethtool {i}", text[f"ethtool {i}"]) for i in ("eno1", "eno2")},
        nmcli=SourceOutput("nmcli -t con show bond0", text["nmcli -t con show bond0"]),
    )
    recording.record_steps(store, incident_id, steps, actor="bondbot")
    assert recording.record_diagnosis(store, incident_id, diagnose(outputs, strict=True), actor="bondbot")


def _propose(store: IncidentStore, incident_id: str) -> None:
    store.append(incident_id, actor="bondbot", kind="proposal", payload={
        "action": "fix", "method_key": "miimon", "title": "Enable MII link monitoring (miimon=100)",
        "method": "nmcli", "commands": ["nmcli connection modify bond0 +bond.options miimon=100"],
        "rollback": ["nmcli connection modify bond0 bond.options mode=active-backup,miimon=0"],
        "plan_hash": PLAN, "domain_hash": PLAN[:32], "expires_at": "2099-01-01T00:00:00.000Z",
        "host": "web-01", "bond": "bond0", "batch": 1,
    })


def _change(store: IncidentStore, incident_id: str, *, works: bool) -> None:
    store.add_rollback_note(
        incident_id, actor="bondbot", for_change=f"plan {PLAN[:12]}: enable miimon=100",
        before={"bond.options": "mode=active-backup,miimon=0", "miimon": "0"},
        restore_commands=["nmcli connection modify bond0 bond.options mode=active-backup,miimon=0",
                          "echo 0 > /sys/class/net/bond0/bonding/miimon"])
    store.set_status(incident_id, "fixing", actor="bondbot", reason="approved plan")
    store.append(incident_id, actor="bondbot", kind="command", payload={
        "command": "nmcli connection modify bond0 +bond.options miimon=100", "host": "web-01",
        "exit_status": 0, "duration_s": 0.08, "stdout": "", "stderr": ""})
    if works:
        store.append(incident_id, actor="bondbot", kind="verification",
                     payload={"ok": True, "summary": "miimon=100, both ports up, gateway answers"})
        store.set_status(incident_id, "verified", actor="bondbot", reason="verification passed")
    else:
        store.append(incident_id, actor="bondbot", kind="verification",
                     payload={"ok": False, "summary": "gateway did not answer over the new path"})
        store.append(incident_id, actor="bondbot", kind="rollback",
                     payload={"ok": True, "summary": "restored miimon=0; host as before"})
        store.set_status(incident_id, "rolled_back", actor="bondbot", reason="verification failed")


def main(out: Path) -> None:
    for p in (out, out.with_name(out.name + "-wal"), out.with_name(out.name + "-shm")):
        p.unlink(missing_ok=True)
    store = IncidentStore.open(f"sqlite:///{out}")
    expected: dict[str, dict[str, object]] = {}
    try:
        done = store.create_incident(host="web-01", bond="bond0", requester="U0ALICE", channel="C0OPS")
        _triage(store, done.id)
        _propose(store, done.id)
        store.append(done.id, actor="U0ALICE", kind="refusal", payload={
            "action": "fix", "user": "U0ALICE", "reason": "you asked for this change: someone else must approve it",
            "plan_hash": PLAN})
        assert store.claim(f"run:{done.id}:{PLAN}", actor="bondbot", incident_id=done.id)
        store.record_approval(done.id, actor="U0BOB", plan_hash=PLAN, summary="Enable miimon=100")
        _change(store, done.id, works=True)
        if hasattr(store, "export"):  # releases before the store stopped importing its exports
            export = store.export(done.id, "md")
        else:
            from incidents.export import export_incident

            export = export_incident(store, done.id, "md")
        store.record_export(export, actor="U0BOB", destination="slack file")
        store.append(done.id, actor="U0BOB", kind="note", payload={"text": "failover test passed: 41 ms"})
        store.set_status(done.id, "closed", actor="U0BOB", reason="postmortem written")

        rolled = store.create_incident(host="web-02", bond="bond0", requester="U0ALICE", channel="C0OPS")
        _triage(store, rolled.id)
        _propose(store, rolled.id)
        store.record_approval(rolled.id, actor="U0BOB", plan_hash=PLAN)
        _change(store, rolled.id, works=False)

        down = store.create_incident(host="db-01", bond="bond1", requester="U0CAROL", channel="C0OPS")
        recording.record_connect_failure(store, down.id, "db-01: connection refused (port 22)", actor="bondbot")
        recording.record_diagnosis(store, down.id, None, actor="bondbot",
                                   error="db-01: connection refused (port 22)")

        for inc in store.list_incidents():
            assert store.verify(inc.id).ok
            expected[inc.id] = {
                "status": inc.status.value, "head_seq": inc.head_seq, "head_hash": inc.head_hash,
                "root_cause": inc.root_cause, "approvals": len(store.approvals(inc.id)),
                "events": len(store.events(inc.id)),
            }
    finally:
        store.close()
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False).stdout.strip()
    from incidents.migrations import SCHEMA_HEAD

    meta = {"made_by_commit": commit, "schema_revision": SCHEMA_HEAD, "incidents": expected}
    out.with_name(out.name + ".json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    print(f"{out}: {len(expected)} incidents, schema {SCHEMA_HEAD}, commit {commit[:12]}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: make_previous_release_db.py OUT.sqlite")
    main(Path(sys.argv[1]).resolve())
