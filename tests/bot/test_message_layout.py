"""The channel message fits one laptop screen; the thread holds the rest.

Built from a real fix plan (``build_fix_plan`` on the seed's bond state) and a diagnosis with more
evidence than the message shows; the blocks go through ``slack_sdk.models`` (its validation runs
when they are built) and are checked against Slack's limits here.
"""

from __future__ import annotations

import json
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from slack_sdk.models.blocks import Block

from bot import views
from bot.incident_view import _failover_figures, _result_line, offer_line, offer_steps
from runbooks.bonding.remediation import Monitor, build_fix_plan
from runbooks.findings import Diagnosis, Evidence, Finding, Severity

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "remediation"))
from test_plan import incident_state  # noqa: E402

NOW = datetime(2026, 12, 1, 3, 4, 5, tzinfo=UTC)
ROOT = Finding("NO_LINK_MONITORING", Severity.CRITICAL, "bond0 has no link monitoring (miimon 0): it can never fail over.",
               explanation="bond0 runs in mode active-backup with MII link monitoring disabled. " * 20,
               evidence=tuple(Evidence("cat /proc/net/bonding/bond0", f"line {i}") for i in range(8)))
OTHER = Finding("ACTIVE_SLAVE_NO_CARRIER", Severity.CRITICAL, "eno1 has lost carrier")


def _card(**kw: object) -> views.IncidentCard:
    plan = build_fix_plan("web-01", incident_state(), Monitor.mii(100), run_id="0a1b2c3d")
    proposal = {"plan": plan.plan.to_dict() if hasattr(plan, "plan") else plan.to_dict(), "title": "x"}
    fix = views.Offer("fix", "enable MII link monitoring every 100 ms (miimon=100)", "networkmanager",
                      ("nmcli connection modify uuid 1 bond.options miimon=100",), ("nmcli connection modify uuid 1",),
                      "d" * 64, NOW + timedelta(minutes=15), line=offer_line(proposal), steps=offer_steps(proposal))
    fields: dict[str, object] = dict(
        incident_id="INC-7K3F", host="web-01", bond="bond0", requester="U0ALICE", opened_at=NOW, status="diagnosed",
        diagnosis=Diagnosis({"bond": "bond0"}, ROOT, (ROOT, OTHER), details={"mode": "active-backup"}),
        offers=(fix,))
    fields.update(kw)
    return views.IncidentCard(**fields)  # type: ignore[arg-type]


def _limits(rendered: views.Rendered) -> None:
    assert len(rendered.blocks) <= 50 and len(rendered.text) <= 3000
    for b in rendered.blocks:
        Block.parse(b).validate_json()  # slack_sdk's own checks, again on what is sent
        if b["type"] == "section":
            assert len(b["text"]["text"]) <= 3000


def test_the_fix_in_one_line_from_the_plan() -> None:
    plan = build_fix_plan("web-01", incident_state(), Monitor.mii(100), run_id="0a1b2c3d")
    proposal = {"plan": plan.plan.to_dict() if hasattr(plan, "plan") else plan.to_dict()}
    assert offer_line(proposal) == "miimon 0 → 100 on bond0, no down/up; rolls back by itself in 60 s if the host stops answering"
    steps = offer_steps(proposal)
    assert steps and all(purpose for purpose, _command in steps)  # every step says what it is for


def test_main_message_structure_and_what_goes_to_the_thread() -> None:
    card = _card()
    main = views.incident_message(card)
    _limits(main)
    types = [b["type"] for b in main.blocks]
    assert types == ["header", "context", "section", "context", "section", "context", "actions"]
    assert main.blocks[0]["text"]["text"] == "web-01 · bond0 · diagnosed"
    root = main.blocks[2]["text"]["text"]
    assert root.startswith("*Root cause:* bond0 has no link monitoring (miimon 0): it can never fail over.")
    shown = root.split("```")[1].strip("\n").split("\n")
    assert shown == [f"cat /proc/net/bonding/bond0: line {i}" for i in range(5)]  # at most 5 lines
    assert "+3 more evidence lines in the thread" in root
    assert main.blocks[4]["text"]["text"] == (
        "*Fix:* miimon 0 → 100 on bond0, no down/up; rolls back by itself in 60 s if the host stops answering")
    text = json.dumps(main.blocks)
    assert "*Why:*" not in text and "nmcli" not in text and "MII link monitoring disabled" not in text
    assert "ACTIVE_SLAVE_NO_CARRIER" in main.blocks[3]["elements"][0]["text"]  # named, details in the thread
    # the main message is short: about one laptop screen of text
    visible = sum(len(b.get("text", {}).get("text", "")) if isinstance(b.get("text"), dict) else 0 for b in main.blocks)
    assert visible < 700

    thread = views.details_message(card)
    _limits(thread)
    sections = [b["text"]["text"] for b in thread.blocks if b["type"] == "section"]
    assert sections[0].startswith("*Why:* bond0 runs in mode active-backup")
    assert any(s.startswith("*All the evidence*") and "line 7" in s for s in sections)
    fix = next(s for s in sections if s.startswith("*Fix: enable MII link monitoring"))
    numbered = re.findall(r"^(\d+)\. (.+)$", fix, flags=re.M)
    assert [int(n) for n, _ in numbered] == list(range(1, len(numbered) + 1)) and len(numbered) >= 3
    assert "```" in fix  # the exact shell text, in the thread
    assert any(s.startswith("*Rollback:*\n```nmcli connection modify uuid 1") for s in sections)
    assert any(s.startswith("*Other findings*") and "ACTIVE_SLAVE_NO_CARRIER" in s for s in sections)


def test_after_each_click_one_line_and_the_used_button_gone() -> None:
    test = {"passed": True, "failed_over": True, "detection_ms": 12.3, "lost_pings": 1, "method": "lab"}
    outcomes = (
        views.Outcome("fix", "succeeded", "U0BOB", NOW, ("cmd",), "VERIFIED: on\n  [ok] monitor on",
                      result_line=_result_line("fix", "succeeded", "VERIFIED: on", "")),
        views.Outcome("failover_test", "succeeded", "U0BOB", NOW + timedelta(minutes=1), (), "PASS: ...", "lab",
                      result_line=_result_line("failover_test", "succeeded", "PASS: ...", _failover_figures(test))),
        views.Outcome("fix", "failed", "U0CAROL", NOW, (), "ROLLED BACK: the gateway stopped answering",
                      result_line=_result_line("fix", "failed", "ROLLED BACK: the gateway stopped answering", "")),
        views.Outcome("failover_test", "expired", method="host"),
    )
    main = views.incident_message(_card(offers=(), outcomes=outcomes, status="verified"))
    _limits(main)
    [section] = [b["text"]["text"] for b in main.blocks if b["type"] == "section" and "approved by" in b["text"]["text"]]
    assert section.split("\n") == [
        "✅ Fix approved by <@U0BOB> at 2026-12-01 03:04:05 UTC: verified",
        "✅ Failover test (lab) approved by <@U0BOB> at 2026-12-01 03:05:05 UTC: passed: failover 12 ms, 1 ping lost",
        "❌ Fix approved by <@U0CAROL> at 2026-12-01 03:04:05 UTC: rolled back: the gateway stopped answering",
        "⌛ Failover test (host): the approval window closed; run `/bond triage` again for a new plan.",
    ]
    [actions] = [b for b in main.blocks if b["type"] == "actions"]
    assert [e["action_id"] for e in actions["elements"]] == [views.ACTION_EXPORT]  # used and expired buttons gone
    details = views.outcome_details(outcomes[0])
    assert details.startswith("✅ Fix approved by") and "Ran:\n```cmd```" in details and "[ok] monitor on" in details


def test_a_failover_whose_time_was_not_measured_says_so_in_its_line() -> None:
    assert _failover_figures({"failed_over": True, "detection_ms": None, "lost_pings": 0}) \
        == "failover (time not measured), 0 pings lost"
    assert _failover_figures({"failed_over": False, "lost_pings": 301}) == "no failover, 301 pings lost"
    assert _failover_figures({"failed_over": True, "detection_ms": 95.6, "lost_pings": 6}) == "failover 96 ms, 6 pings lost"
