"""Exports: the Markdown timeline, the JSON document against its schema, the HTML page in Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import pytest

from incidents import ExportError, IncidentStore
from incidents.chain import GENESIS, event_hash
from incidents.export import export_incident, json_schema_text
from scenario import PLAN_HASH, build_incident

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def sqlite_store(tmp_path_factory: pytest.TempPathFactory):
    s = IncidentStore.open(f"sqlite:///{tmp_path_factory.mktemp('export') / 'incidents.sqlite3'}")
    yield s
    s.close()


@pytest.fixture(scope="module")
def seeded(sqlite_store: IncidentStore) -> str:
    return build_incident(sqlite_store)


def test_markdown_timeline(sqlite_store: IncidentStore, seeded: str) -> None:
    md = export_incident(sqlite_store, seeded, "md").text
    assert md.startswith(f"# {seeded}: bond0 on web-01\n")
    assert "| Status | closed |" in md
    assert "| Log integrity | verified: 15 events, chain intact (hashes in the appendix) |" in md
    assert md.index("## Summary") < md.index("## Timeline (UTC)") < md.index("## Appendix: hashes")
    timeline = md.split("## Timeline (UTC)", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in timeline.splitlines() if re.match(r"^\| \d+ \| \d{4}-", line)]
    assert [int(r.split("|")[1]) for r in rows] == list(range(1, 16))
    for row in rows:  # escaped pipes in payloads never add a column
        assert len(re.findall(r"(?<!\\)\|", row)) == 6, row
    assert "Triage step: `cat /proc/net/bonding/bond0` on web-01 → exit 0 in 0.03 s" in md
    assert "Status fixing → verified" in md
    assert '```sh\nnmcli con modify bond0 bond.options "mode=active-backup,miimon=0,primary=eno1"\n' in md
    appendix = md.split("## Appendix: hashes", 1)[1]
    assert f"| U024BE7LH | `{PLAN_HASH}` |" in appendix and PLAN_HASH not in md.split("## Appendix: hashes", 1)[0]
    assert "MII Polling Interval (ms): 0" in md  # full output kept
    assert "<script>" not in md and "&lt;script&gt;alert('x')&lt;/script&gt; \\| ports" in md
    assert "`ethtool eno1 \\| grep -i link`" in md  # a pipe inside a table's code span
    assert "### seq 3: `ethtool eno1 | grep -i link`" in md  # ...and outside a table


def test_json_export_validates_against_the_shipped_schema(db_url: str, store: IncidentStore) -> None:
    from jsonschema import Draft202012Validator

    iid = build_incident(store)
    doc = json.loads(export_incident(store, iid, "json").text)
    schema = json.loads(json_schema_text())
    Draft202012Validator.check_schema(schema)
    Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER).validate(doc)
    assert doc["incident"]["id"] == iid and doc["incident"]["status"] == "closed"
    assert doc["verification"] == {"ok": True, "events": 15, "head_hash": doc["incident"]["head_hash"], "first_break": None}
    assert doc["approvals"][0]["plan_hash"] == PLAN_HASH
    # the export can be checked on its own: recompute the chain from the JSON alone
    prev = GENESIS
    for ev in doc["events"]:
        fields = {k: ev[k] for k in ("incident_id", "seq", "ts", "actor", "kind", "payload")}
        assert ev["prev_hash"] == prev
        assert event_hash(**fields, prev_hash=prev) == ev["hash"]
        prev = ev["hash"]
    assert prev == doc["incident"]["head_hash"]


def test_schema_rejects_what_it_should() -> None:
    from jsonschema import Draft202012Validator, ValidationError

    validator = Draft202012Validator(json.loads(json_schema_text()))
    base = {
        "format": "bondbot-incident-export", "version": 1, "exported_at": "2025-01-31T09:15:02.123Z",
        "incident": {"id": "INC-7K3F", "host": "web-01", "runbook": "bonding", "subject": {"bond": "bond0"},
                     "bond": "bond0", "requester": "U1", "channel": "#ops",
                     "status": "open", "root_cause": None, "created_at": "2025-01-31T09:15:02.123Z",
                     "head_seq": 1, "head_hash": "a" * 64},
        "events": [{"incident_id": "INC-7K3F", "seq": 1, "ts": "2025-01-31T09:15:02.123Z", "actor": "bot",
                    "kind": "rollback_note", "payload": {"for_change": "x", "before": {}, "restore_commands": []},
                    "prev_hash": "0" * 64, "hash": "b" * 64}],
        "approvals": [], "verification": {"ok": True, "events": 1, "head_hash": "b" * 64, "first_break": None},
    }
    with pytest.raises(ValidationError, match="should be non-empty|is too short"):
        validator.validate(base)  # a rollback note without restore commands
    base["events"][0]["payload"]["restore_commands"] = ["true"]
    validator.validate(base)
    base["events"][0]["ts"] = "2025-01-31 09:15:02"
    with pytest.raises(ValidationError, match="does not match"):
        validator.validate(base)


def test_unknown_format(sqlite_store: IncidentStore, seeded: str) -> None:
    with pytest.raises(ExportError, match="unknown export format 'pdf': one of md, json, html"):
        export_incident(sqlite_store, seeded, "pdf")


def test_html_is_self_contained_and_escaped(sqlite_store: IncidentStore, seeded: str) -> None:
    html = export_incident(sqlite_store, seeded, "html").text
    assert html.startswith("<!DOCTYPE html>")
    assert "<script" not in html.replace("&lt;script&gt;", "")
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html
    for external in (" src=", "href=\"http", "href='http", "@import", "url(", "<link"):
        assert external not in html, external
    assert "@media print" in html


class _Timeline(HTMLParser):
    """Collects the timeline items (and their visible text) from the DOM Chromium dumped."""

    def __init__(self) -> None:
        super().__init__()
        self.items: list[dict[str, str]] = []
        self.integrity: str | None = None
        self._depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "li" and "event" in (a.get("class") or "").split():
            self.items.append({"seq": a.get("data-seq") or "", "kind": a.get("data-kind") or "", "text": ""})
            self._depth = 1
        elif self._depth:
            self._depth += 1
        if a.get("id") == "integrity":
            self.integrity = a.get("data-ok")

    def handle_endtag(self, tag: str) -> None:
        if self._depth:
            self._depth -= 1

    def handle_data(self, data: str) -> None:
        if self._depth and self.items:
            self.items[-1]["text"] += data


def _chromium(*args: str, profile: Path) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    flags = [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={profile}", "--hide-scrollbars",
    ]
    return subprocess.run([CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=90)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian package 'chromium'; ./run setup installs it)")
def test_html_renders_in_headless_chromium(sqlite_store: IncidentStore, seeded: str, tmp_path: Path) -> None:
    from PIL import Image

    page = tmp_path / f"{seeded}.html"
    page.write_text(export_incident(sqlite_store, seeded, "html").text, encoding="utf-8")
    url = page.as_uri()
    with tempfile.TemporaryDirectory(prefix="bondbot-chromium-") as profile:
        dom = _chromium("--dump-dom", url, profile=Path(profile))
        assert dom.returncode == 0, dom.stderr[-2000:]
        parsed = _Timeline()
        parsed.feed(dom.stdout)
        assert [int(i["seq"]) for i in parsed.items] == list(range(1, 16))
        assert [i["kind"] for i in parsed.items][:4] == ["opened", "triage_step", "triage_step", "finding"]
        assert "MII Polling Interval (ms): 0" in parsed.items[1]["text"]
        assert "<script>alert('x')</script>" in parsed.items[13]["text"]  # shown as text, not run
        assert parsed.integrity == "true"

        shot = tmp_path / "shot.png"
        run = _chromium("--window-size=1200,1600", f"--screenshot={shot}", url, profile=Path(profile))
        assert run.returncode == 0 and shot.exists(), run.stderr[-2000:]
        with Image.open(shot) as img:
            assert img.size == (1200, 1600)
            rgb = img.convert("RGB")
            colours = rgb.getcolors(maxcolors=1 << 20) or []
            assert len(colours) > 200, "a near-blank page"
            # the dark output box and the coloured badges are drawn (not just text on white)
            dark = sum(n for n, (r, g, b) in colours if r + g + b < 120)
            assert dark > 0.01 * 1200 * 1600
            tinted = sum(n for n, (r, g, b) in colours if max(r, g, b) - min(r, g, b) > 40)
            assert tinted > 1000

        pdf = tmp_path / "print.pdf"
        run = _chromium("--no-pdf-header-footer", f"--print-to-pdf={pdf}", url, profile=Path(profile))
        assert run.returncode == 0 and pdf.exists(), run.stderr[-2000:]
        data = pdf.read_bytes()
        assert data.startswith(b"%PDF-")
        assert len(re.findall(rb"/Type\s*/Page[^s]", data)) >= 2  # the timeline runs over pages


def test_schema_still_accepts_an_export_from_before_runbooks() -> None:
    """A version 1 document written before incidents recorded their runbook (bond, no subject)."""
    from jsonschema import Draft202012Validator

    old = {
        "format": "bondbot-incident-export", "version": 1, "exported_at": "2025-01-31T09:15:02.123Z",
        "incident": {"id": "INC-7K3F", "host": "web-01", "bond": "bond0", "requester": "U1", "channel": "#ops",
                     "status": "open", "root_cause": None, "created_at": "2025-01-31T09:15:02.123Z",
                     "head_seq": 0, "head_hash": "a" * 64},
        "events": [], "approvals": [], "verification": {"ok": True, "events": 0, "head_hash": None, "first_break": None},
    }
    Draft202012Validator(json.loads(json_schema_text())).validate(old)
