"""The seed's story on the real lab VM, through the real bot and the Slack stand-in.

``/bond triage lab-host`` -> root cause NO_LINK_MONITORING with its evidence -> the approver (not
the requester) applies the fix -> verified, miimon 100 on the host -> the failover test (method
lab, QMP) passes within 300 ms -> ``/bond export`` uploads the timeline with the approval, the
rollback note, the commands and the verification; the incident's hash chain verifies.

One scenario reset (the ``lab_env`` fixture), no reboot: the VM runs under TCG on shared cores.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest

from bot.app import BotDeps
from bot.authz import AuthzPolicy
from bot.testing.harness import start_bot
from bot.testing.standin import SlackStandin, StandinMessage
from bot.views import ACTION_APPLY_FIX, ACTION_EXPORT, failover_action_id
from bot.wiring import EngineRemediation, EngineTriage
from incidents import IncidentStore
from runbooks.bonding.failover import PASS_OUTAGE_MS
from ssh_exec import SshPool, load_inventory

pytestmark = pytest.mark.lab

ONCALL, APPROVER = "U0ONCALL", "U0APPROVER"
CHANNEL = "C0INCIDENT"


def _top(slack: SlackStandin) -> StandinMessage:
    [msg] = [m for m in slack.channel_messages(CHANNEL, include_ephemeral=False) if m.thread_ts is None and not m.files]
    return msg


def _sections(msg: StandinMessage) -> list[str]:
    return [b["text"]["text"] for b in msg.blocks if b["type"] == "section"]


def _buttons(msg: StandinMessage) -> list[str]:
    return [e["action_id"] for b in msg.blocks if b["type"] == "actions" for e in b["elements"]]


async def test_seed_story_from_triage_to_exported_timeline(lab_env: Any, tmp_path: Path) -> None:
    started = time.monotonic()
    store = IncidentStore.open(f"sqlite:///{tmp_path / 'incidents.sqlite3'}")
    pool = SshPool(load_inventory(lab_env.inventory_path), known_hosts=lab_env.known_hosts_path)
    policy = AuthzPolicy(triage_channels=frozenset({CHANNEL}), approver_users=frozenset({APPROVER, ONCALL}))
    deps = BotDeps(
        store=store, triage=EngineTriage(pool, store), policy=policy,
        remediation=EngineRemediation(pool, store, link_control=lab_env.link, hold_seconds=2.0),
    )
    slack = SlackStandin(users={ONCALL: "oncall", APPROVER: "approver"}, channels={CHANNEL: "incident"})
    await slack.start()
    bot = await start_bot(slack, deps, mode="http")
    try:
        # 1. Triage: the root cause with its evidence, the fix offered, the failover test not yet.
        ack = await bot.command("triage lab-host", user=ONCALL, channel=CHANNEL)
        assert ack.status == 200 and ack.seconds < 1.0
        await bot.settle(timeout=180)
        msg = _top(slack)
        texts = _sections(msg)
        assert texts[0].startswith("*Root cause:* bond0 has no link monitoring") and "`NO_LINK_MONITORING`" in texts[0]
        evidence = texts[0].split("```")[1].strip("\n").split("\n")  # in the root cause's section, <= 5 lines
        assert "cat /proc/net/bonding/bond0: MII Polling Interval (ms): 0" in evidence and len(evidence) <= 5
        assert any(t.startswith("*Fix:* miimon 0 → 100 on bond0, no down/up; rolls back by itself in 60 s") for t in texts)
        assert _buttons(msg) == [ACTION_APPLY_FIX, ACTION_EXPORT]
        contexts = [e["text"] for b in msg.blocks if b["type"] == "context" for e in b["elements"]]
        assert any("Failover test not offered: preconditions not met (link monitoring on: miimon=0" in c for c in contexts)
        [incident] = store.list_incidents()
        assert store.get(incident.id).status.value == "diagnosed"
        assert store.get(incident.id).root_cause.startswith("bond0 has no link monitoring")
        triaged = time.monotonic()

        # 2. The requester cannot approve their own request; the approver can.
        await bot.click(msg, ACTION_APPLY_FIX, user=ONCALL)
        await bot.settle()
        [refusal] = slack.ephemerals(ONCALL)
        assert "two-person rule" in refusal.text
        await bot.click(msg, ACTION_APPLY_FIX, user=APPROVER)
        await bot.settle(timeout=300)
        fixed = time.monotonic()
        msg = slack.message(CHANNEL, msg.ts)
        lines = [line for t in _sections(msg) for line in t.split("\n")]
        [outcome] = [t for t in lines if t.startswith("✅ Fix approved by")]
        assert outcome.startswith(f"✅ Fix approved by <@{APPROVER}>") and outcome.endswith(" UTC: verified")
        report = "\n".join(m.text for m in slack.thread(CHANNEL, msg.ts))  # the whole report: in the thread
        assert "VERIFIED: MII link monitoring every 100 ms (miimon=100) is on for bond0 and verified" in report
        assert lab_env.ssh("cat /sys/class/net/bond0/bonding/miimon", check=True).stdout.strip() == "100"
        assert store.get(incident.id).status.value == "verified"
        assert _buttons(msg) == [failover_action_id(m) for m in ("lab", "manual", "host")] + [ACTION_EXPORT]

        # 3. The failover test, method lab: the switch port of the active slave is shut via QMP.
        await bot.click(msg, failover_action_id("lab"), user=APPROVER)
        await bot.settle(timeout=180)
        tested = time.monotonic()
        msg = slack.message(CHANNEL, msg.ts)
        lines = [line for t in _sections(msg) for line in t.split("\n")]
        [outcome] = [t for t in lines if t.startswith("✅ Failover test (lab) approved by")]
        assert re.search(r" UTC: passed: failover \d+ ms, \d+ pings? lost$", outcome), outcome
        [measured] = [e.payload["failover_test"] for e in store.events(incident.id)
                      if e.kind == "verification" and "failover_test" in e.payload]
        assert measured["passed"] and measured["failed_over"] and measured["primary_returned"]
        assert measured["outage_ms"] is not None and measured["outage_ms"] <= PASS_OUTAGE_MS
        assert lab_env.ssh("cat /sys/class/net/eno1/operstate", check=True).stdout.strip() == "up"
        # One plan, one digest: proposal, approval, run and result of each action, and the fix's
        # rollback note written by the real remediation, all carry the plan's digest.
        from tests.bot.test_plan_digest_in_log import one_digest

        fix_digest, test_digest = (one_digest(store, incident.id, a) for a in ("fix", "failover_test"))
        [note] = [e for e in store.events(incident.id) if e.kind == "rollback_note"]
        assert note.payload["before"]["plan_hash"] == fix_digest != test_digest

        # 4. The timeline, exported to the channel, holds the whole story; the chain verifies.
        ack = await bot.command(f"export {incident.id} md", user=ONCALL, channel=CHANNEL)
        assert ack.status == 200
        await bot.settle()
        [upload] = [m for m in slack.channel_messages(CHANNEL) if m.files]
        [file] = upload.files
        content = slack.uploads[file["id"]]["content"].decode()
        assert file["name"].startswith(incident.id) and file["name"].endswith(".md")
        assert "| Root cause | bond0 has no link monitoring (miimon 0, no ARP monitor)" in content
        assert "| Log integrity | verified: " in content and "chain intact (hashes in the appendix) |" in content
        # people by name (users.info through the stand-in); the ids only in the appendix
        assert "| Requested by | oncall in " in content and "| Severity | critical |" in content
        assert re.search(r"\| Failover test \| PASS \(lab\): eno1 → eno2 in [\d.]+ ms", content)
        approvals = content.split("## Approvals", 1)[1].split("\n## ", 1)[0]
        assert approvals.count("| approver |") == 2 and ONCALL not in approvals and "oncall" not in approvals
        notes = content.split("## Rollback notes", 1)[1].split("\n## ", 1)[0]
        assert '"bond_options_before": "mode=active-backup,miimon=0,primary=eno1"' in notes and "Restore with:" in notes
        assert "| approver | command | Ran `nmcli device reapply bond0` (" in content
        assert "Status fixing → verified" in content
        assert content.count("| approver | verification | ") == 2  # the fix's checks and the test's measurement
        contexts = [e["text"] for b in slack.message(CHANNEL, msg.ts).blocks if b["type"] == "context" for e in b["elements"]]
        assert any(c.startswith(f"📄 Timeline exported as md by <@{ONCALL}> (sha256 ") for c in contexts)
        assert store.verify(incident.id).ok
        kinds = [e.kind for e in store.events(incident.id)]
        for kind in ("root_cause", "approval", "rollback_note", "command", "verification", "export"):
            assert kind in kinds, kind
        assert len(store.approvals(incident.id)) == 2
        print(json.dumps({
            "triage_s": round(triaged - started, 1), "fix_s": round(fixed - triaged, 1),
            "failover_s": round(tested - fixed, 1), "outage_ms": measured["outage_ms"],
            "detection_ms": measured["detection_ms"], "lost_pings": measured["lost_pings"],
        }))
    finally:
        await bot.stop()
        await slack.stop()
        await pool.close()
        store.close()
