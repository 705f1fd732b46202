"""The postmortem summary every export leads with: each field checked against the incident's events,
people by name (ids when no name is known), hashes only in the appendix, the HTML page in Chromium.

The incident is logged the way the bot logs one (the payload shapes of a real demo run on the lab VM:
a diagnosis with findings, the root cause, the fix's approval and verified status, the failover test's
verification with its measured figures, a second approver, the close).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
from datetime import datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from incidents import IncidentStore
from incidents.export import export_incident, json_schema_text
from incidents.export.summary import format_interval, summarize

ALICE, BOB, CAROL, CHANNEL = "U0ALICE", "U0BOB", "U0CAROL", "C0INCIDENT"
NAMES = {ALICE: "alice", BOB: "Bob Martin", CAROL: "carol", CHANNEL: "#incident-web-01"}
FIX_HASH, TEST_HASH = "a1" * 32, "b2" * 32
CHROMIUM = next((p for p in ("/usr/bin/chromium", "/usr/bin/chromium-browser") if os.path.exists(p)), None)
ARTIFACTS = Path(os.environ.get("BONDBOT_TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / "build" / "test-artifacts"))

FAILOVER = {
    "bond": "bond1", "method": "lab", "passed": True, "cut_slave": "eno1", "failed_over": True,
    "failed_over_to": "eno2", "detection_ms": 95.603, "outage_ms": 100.4, "lost_pings": 6, "pings_sent": 623,
    "verdict": "failed over from eno1 to eno2 in 95.6 ms (kernel log), outage 100 ms, primary back",
}


def _incident(store: IncidentStore) -> str:
    inc = store.create_incident(host="web-01", runbook="bonding", subject={"bond": "bond1"},
                                requester=ALICE, channel=CHANNEL)
    i = inc.id
    store.append(i, actor=ALICE, kind="triage_step", payload={
        "step": "proc_bonding", "command": "cat /proc/net/bonding/bond1", "exit_status": 0, "duration": 0.3,
        "stdout": "MII Polling Interval (ms): 0\n"})
    store.append(i, actor="bondbot", kind="diagnosis", payload={"bond": "bond1", "verdict": "diagnosed", "findings": [
        {"code": "SLAVE_SPEED_MISMATCH", "severity": "warning", "summary": "eno1 1000 Mb/s, eno2 100 Mb/s"},
        {"code": "NO_LINK_MONITORING", "severity": "critical", "summary": "bond1 has no link monitoring",
         "evidence": [{"line": "MII Polling Interval (ms): 0", "source": "cat /proc/net/bonding/bond1"}]},
    ]})
    store.set_root_cause(i, "bond1 has no link monitoring (miimon 0, no ARP monitor): it can never fail over.",
                         actor="bondbot", details={"code": "NO_LINK_MONITORING"})
    store.set_status(i, "diagnosed", actor="bondbot", reason="root cause found")
    store.append(i, actor="bondbot", kind="proposal", payload={
        "action": "fix", "title": "enable MII link monitoring every 100 ms (miimon=100)", "plan_hash": FIX_HASH,
        "commands": ["nmcli connection modify uuid 1 bond.options mode=active-backup,miimon=100"]})
    store.append(i, actor=ALICE, kind="refusal", payload={"action": "fix", "plan_hash": FIX_HASH,
                                                          "reason": "two-person rule"})
    store.record_approval(i, actor=BOB, plan_hash=FIX_HASH, summary="apply the fix on web-01 bond1")
    store.set_status(i, "fixing", actor=BOB, reason="applying plan")
    store.append(i, actor=BOB, kind="verification", payload={"checks": [{"name": "monitor on", "ok": True,
                                                                        "detail": "MII Polling Interval (ms): 100"}]})
    store.set_status(i, "verified", actor=BOB, reason="miimon=100 on bond1, verified")
    store.record_approval(i, actor=CAROL, plan_hash=TEST_HASH, summary="run the failover test on web-01 bond1")
    store.append(i, actor=CAROL, kind="verification", payload={"failover_test": FAILOVER})
    store.set_status(i, "closed", actor=ALICE, reason="fixed and failover proven")
    return i


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> Any:
    store = IncidentStore.open(f"sqlite:///{tmp_path_factory.mktemp('summary') / 'incidents.sqlite3'}")
    iid = _incident(store)
    yield store, iid
    store.close()


def _seconds(a: str, b: str) -> float:
    f = "%Y-%m-%dT%H:%M:%S.%fZ"
    return round((datetime.strptime(b, f) - datetime.strptime(a, f)).total_seconds(), 3)


def test_every_summary_field_is_what_the_events_say(logged: Any) -> None:
    store, iid = logged
    snap = store.snapshot(iid)
    events = snap.events
    s = summarize(snap.incident, events, snap.approvals, NAMES)

    def first(kind: str, **match: Any) -> Any:
        return next(e for e in events if e.kind == kind and all(e.payload.get(k) == v for k, v in match.items()))

    opened, root = first("opened"), first("root_cause")
    mitigated, resolved = first("status_change", to="verified"), first("status_change", to="closed")
    assert (s.host, s.runbook, dict(s.subject)) == (opened.payload["host"], "bonding", {"bond": "bond1"})
    assert s.root_cause == root.payload["root_cause"] == snap.incident.root_cause
    assert s.root_cause_code == "NO_LINK_MONITORING"
    # the root cause finding's severity, not the first finding's (a warning) nor a guess
    assert s.severity == "critical"
    assert (s.requester, s.requester_name) == (opened.payload["requester"], "alice")
    assert (s.channel, s.channel_name) == (CHANNEL, "#incident-web-01")
    approvals = [e for e in events if e.kind == "approval"]
    assert [(a.user, a.name, a.at, a.what, a.seq) for a in s.approvers] == [
        (BOB, "Bob Martin", approvals[0].ts, "apply the fix on web-01 bond1", approvals[0].seq),
        (CAROL, "carol", approvals[1].ts, "run the failover test on web-01 bond1", approvals[1].seq),
    ]
    assert (s.opened, s.root_cause_found, s.mitigated, s.resolved) == (opened.ts, root.ts, mitigated.ts, resolved.ts)
    assert s.intervals == {
        "opened_to_root_cause": _seconds(opened.ts, root.ts),
        "root_cause_to_mitigated": _seconds(root.ts, mitigated.ts),
        "mitigated_to_resolved": _seconds(mitigated.ts, resolved.ts),
        "opened_to_mitigated": _seconds(opened.ts, mitigated.ts),
        "opened_to_resolved": _seconds(opened.ts, resolved.ts),
    }
    f = s.failover
    assert f is not None and f.seq == first("verification", failover_test=FAILOVER).seq
    assert (f.passed, f.method, f.cut_slave, f.failed_over_to) == (True, "lab", "eno1", "eno2")
    assert (f.detection_ms, f.outage_ms, f.lost_pings, f.pings_sent) == (95.603, 100.4, 6, 623)
    assert f.line() == "PASS (lab): eno1 → eno2 in 95.6 ms, outage 100 ms, 6 of 623 pings lost"
    assert s.status == "closed"


def test_an_open_incident_has_no_times_it_did_not_reach(tmp_path: Path) -> None:
    with IncidentStore.open(f"sqlite:///{tmp_path / 'i.sqlite3'}") as store:
        iid = store.create_incident(host="web-02", runbook="bonding", subject={"bond": "bond0"},
                                    requester="U9", channel="cli").id
        snap = store.snapshot(iid)
        s = summarize(snap.incident, snap.events, snap.approvals, {})
        assert (s.root_cause_found, s.mitigated, s.resolved, s.failover, s.severity) == (None, None, None, None, None)
        assert s.requester_name == "U9" and s.approvers == ()  # no name known: the id
        assert set(s.intervals.values()) == {None}
        md = export_incident(store, iid, "md").text
        assert "| Root cause found | not yet |" in md and "| Time to root cause | — |" in md
        assert "| Failover test | not run |" in md and "| Approved by | nobody |" in md


def test_interval_words() -> None:
    assert [format_interval(x) for x in (None, 1.64, 59.9, 125, 3725)] == ["—", "1.6 s", "59.9 s", "2 min 05 s", "1 h 02 min"]


def test_markdown_opens_with_the_summary_and_names_people(logged: Any) -> None:
    store, iid = logged
    md = export_incident(store, iid, "md", names=NAMES).text
    head, rest = md.split("## Timeline (UTC)", 1)
    assert head.startswith(f"# {iid}: bond1 on web-01\n\n## Summary\n")
    for row in ("| Host | web-01 |", "| Runbook | bonding (bond bond1) |", "| Severity | critical |",
                "| Requested by | alice in #incident-web-01 |",
                "| Failover test | PASS (lab): eno1 → eno2 in 95.6 ms, outage 100 ms, 6 of 623 pings lost |"):
        assert row in head, row
    assert re.search(r"\| Approved by \| Bob Martin at [\d:.]+ \(apply the fix on web-01 bond1\); carol at ", head)
    assert re.search(r"\| Root cause found \| \S+ \S+ UTC \([\d.]+ s after opening\) \|", head)
    timeline, appendix = rest.split("## Appendix: hashes", 1)
    assert "| Bob Martin | approval | Approved: apply the fix on web-01 bond1 |" in timeline
    assert "Incident opened by alice in #incident-web-01" in timeline
    assert U0_not_in(timeline)
    # every hash is in the appendix, none before it
    events = store.events(iid)
    for ev in events:
        assert f"| {ev.seq} | `{ev.hash}` |" in appendix
        assert ev.hash not in head + timeline
    assert FIX_HASH in appendix and FIX_HASH not in head + timeline
    assert "| Bob Martin | U0BOB |" in appendix  # names resolve back to ids for the record


def U0_not_in(text: str) -> bool:
    """No user id shows where a name is known (the ids stay in the appendix and the JSON)."""
    return not any(uid in text for uid in (ALICE, BOB, CAROL))


def test_without_names_the_ids_are_shown(logged: Any) -> None:
    store, iid = logged
    md = export_incident(store, iid, "md").text
    assert "| Requested by | U0ALICE in C0INCIDENT |" in md and "| U0BOB | approval |" in md


def test_json_carries_names_and_summary_and_validates(logged: Any) -> None:
    from jsonschema import Draft202012Validator

    store, iid = logged
    doc = json.loads(export_incident(store, iid, "json", names={**NAMES, "U0NOBODY": "not in this incident"}).text)
    Draft202012Validator(json.loads(json_schema_text())).validate(doc)
    assert doc["names"] == NAMES  # only the ids this incident holds
    snap = store.snapshot(iid)
    assert doc["summary"] == json.loads(json.dumps(summarize(snap.incident, snap.events, snap.approvals, NAMES).to_json()))
    assert doc["summary"]["failover_test"]["lost_pings"] == 6 and doc["summary"]["severity"] == "critical"
    # the schema checks the new parts too
    bad = json.loads(json.dumps(doc))
    bad["summary"]["times"]["opened"] = "yesterday"
    with pytest.raises(Exception, match="does not match"):
        Draft202012Validator(json.loads(json_schema_text())).validate(bad)


class _Page(HTMLParser):
    """The summary (dt/dd pairs in #summary), the timeline items' text and where the hashes are."""

    def __init__(self) -> None:
        super().__init__()
        self.summary: dict[str, str] = {}
        self.order: list[str] = []
        self.items: list[str] = []
        self._key: str | None = None
        self._in_item = 0
        self._section = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if a.get("id") in ("summary", "timeline", "hashes"):
            self._section = str(a["id"])
            self.order.append(self._section)
        if tag == "dd" and self._section == "summary":
            self._key = a.get("id")
            self.summary[str(self._key)] = ""
        if tag == "li" and "event" in (a.get("class") or ""):
            self.items.append("")
            self._in_item = 1
        elif self._in_item:
            self._in_item += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "dd":
            self._key = None
        if self._in_item:
            self._in_item -= 1

    def handle_data(self, data: str) -> None:
        if self._key:
            self.summary[self._key] += data
        if self._in_item and self.items:
            self.items[-1] += data


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian package 'chromium')")
def test_html_summary_in_chromium_with_a_screenshot(logged: Any, tmp_path: Path) -> None:
    from PIL import Image

    store, iid = logged
    page = tmp_path / f"{iid}.html"
    page.write_text(export_incident(store, iid, "html", names=NAMES).text, encoding="utf-8")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--hide-scrollbars"]
    with tempfile.TemporaryDirectory(prefix="bondbot-chromium-") as profile:
        run = [CHROMIUM, *flags, f"--user-data-dir={profile}"]
        dom = subprocess.run([*run, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=90)
        assert dom.returncode == 0, dom.stderr[-2000:]
        parsed = _Page()
        parsed.feed(dom.stdout)
        assert parsed.order == ["summary", "timeline", "hashes"]  # summary first, hashes last
        s = parsed.summary
        assert s["host"] == "web-01" and s["severity"] == "critical" and s["status"] == "closed"
        assert s["requester"] == "alice in #incident-web-01"
        assert s["approvers"].startswith("Bob Martin at ") and "; carol at " in s["approvers"]
        assert s["failover"] == "PASS (lab): eno1 → eno2 in 95.6 ms, outage 100 ms, 6 of 623 pings lost"
        assert re.fullmatch(r"\S+ \S+ UTC \([\d.]+ s after the root cause\)", s["mitigated"])
        assert "by Bob Martin" in "".join(parsed.items) and U0_not_in("".join(parsed.items))
        events = store.events(iid)
        assert not any(ev.hash in item for ev in events for item in parsed.items)
        assert all(ev.hash in dom.stdout.split('id="hashes"', 1)[1] for ev in events)

        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shot = ARTIFACTS / "export-summary.png"
        r = subprocess.run([*run, "--window-size=1200,1000", f"--screenshot={shot}", page.as_uri()],
                           capture_output=True, text=True, timeout=90)
        assert r.returncode == 0 and shot.exists(), r.stderr[-2000:]
        with Image.open(shot) as img:
            assert img.size == (1200, 1000)
            colours = img.convert("RGB").getcolors(maxcolors=1 << 20) or []
            assert len(colours) > 100, "a near-blank page"
