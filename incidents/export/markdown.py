"""The Markdown timeline: paste-ready for a postmortem document (GitHub/GitLab/Confluence flavours)."""

from __future__ import annotations

import html
import json
import re
import unicodedata
from collections.abc import Mapping

from incidents.export.describe import describe, display_ts, outputs
from incidents.export.summary import Summary, name_of, summary_rows
from incidents.model import Approval, Event, Incident, VerifyResult

__all__ = ["render_markdown"]


def _visible(text: str) -> str:
    """Control and format characters shown as escapes (``\\x1b``, ``\\u202e``), newlines and tabs
    kept: a host's ESC/OSC sequence in an exported file must not drive the terminal that ``cat``s
    it, nor a bidi mark reorder what a reviewer reads."""
    def one(ch: str) -> str:
        if ch in "\n\t" or unicodedata.category(ch) not in {"Cc", "Cf"}:
            return ch
        return f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}"

    return "".join(one(ch) for ch in str(text))


def _oneline(text: str) -> str:
    """Whitespace runs (newlines too) become one space; edges are kept, for joining segments."""
    return re.sub(r"\s+", " ", _visible(str(text)))


def _cell(text: str) -> str:
    """Text safe inside a table cell: one line, pipes escaped (GFM wants that even in code spans)."""
    return _oneline(text).replace("|", "\\|")


def _prose(text: str) -> str:
    """Plain text for a cell: also no raw HTML (a payload's ``<script>`` stays text)."""
    return _cell(html.escape(_oneline(text), quote=False))


def _code(text: str) -> str:
    """Inline code that survives backticks in the text."""
    text = _visible(text)
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _block(text: str, lang: str = "") -> str:
    """A fenced block longer than any backtick run inside ``text``."""
    text = _visible(text)
    longest = max((len(m) for m in re.findall(r"`{3,}", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{lang}\n{text.rstrip()}\n{fence}"


def _summary(event: Event, names: Mapping[str, str]) -> str:
    p = event.payload
    line = describe(event, names)
    command = p.get("command")
    if isinstance(command, str) and command and event.kind in ("command", "triage_step", "rollback") and command in line:
        before, after = line.split(command, 1)
        return _prose(before) + _cell(_code(_oneline(command))) + _prose(after)
    return _prose(line)


def render_markdown(
    incident: Incident, events: list[Event], approvals: list[Approval], verification: VerifyResult, *, exported_at: str,
    summary: Summary,
) -> str:
    names = summary.names
    out: list[str] = []
    out.append(f"# {incident.id}: {incident.about} on {incident.host}")
    out.append("")
    out.append("## Summary")
    out.append("")
    out.append("| | |")
    out.append("|---|---|")
    for _key, label, text in summary_rows(summary, verification):
        out.append(f"| {label} | {_prose(text)} |")
    out.append("")
    out.append("## Timeline (UTC)")
    out.append("")
    out.append("| # | Time (UTC) | Who | Kind | What happened |")
    out.append("|---:|---|---|---|---|")
    for ev in events:
        out.append(f"| {ev.seq} | {display_ts(ev.ts)} | {_prose(name_of(names, ev.actor))} | {ev.kind} | {_summary(ev, names)} |")

    notes = [ev for ev in events if ev.kind == "rollback_note"]
    if notes:
        out += ["", "## Rollback notes"]
        for ev in notes:
            p = ev.payload
            out += ["", f"### Undo “{_prose(p.get('for_change', ''))}” (seq {ev.seq}, {display_ts(ev.ts)} UTC)", ""]
            out.append("State before:")
            out.append("")
            out.append(_block(json.dumps(p.get("before", {}), indent=2, sort_keys=True, ensure_ascii=False), "json"))
            out.append("")
            out.append("Restore with:")
            out.append("")
            out.append(_block("\n".join(p.get("restore_commands", [])), "sh"))

    if approvals:
        out += ["", "## Approvals", "", "| Seq | Time (UTC) | Approver | What |", "|---:|---|---|---|"]
        for a in summary.approvers:
            out.append(f"| {a.seq} | {display_ts(a.at)} | {_prose(a.name)} | {_prose(a.what or 'plan')} |")

    detailed = [ev for ev in events if outputs(ev.payload) or ev.payload.get("evidence") or ev.payload.get("commands")]
    if detailed:
        out += ["", "## Outputs and evidence"]
        for ev in detailed:
            p = ev.payload
            title = p["command"] if isinstance(p.get("command"), str) else describe(ev)
            out += ["", f"### seq {ev.seq}: {_code(_oneline(title))}"]
            if isinstance(p.get("commands"), list):
                out += ["", "Commands:", "", _block("\n".join(str(c) for c in p["commands"]), "sh")]
            for label, text in outputs(p):
                out += ["", f"{label}:", "", _block(text)]
            evidence = p.get("evidence")
            if isinstance(evidence, list) and evidence:
                out += ["", "Evidence:", ""]
                for item in evidence:
                    if isinstance(item, dict):
                        out.append(f"- {_code(str(item.get('line', '')))} (from {_code(str(item.get('source', '')))})")
                    else:
                        out.append(f"- {_code(str(item))}")

    out += ["", "## Appendix: hashes", ""]
    out.append(f"Head hash: `{verification.head_hash or '-'}`. Each event's hash is the SHA-256 of its canonical JSON "
               "with the previous hash (the JSON export says how to recompute them).")
    if approvals:
        out += ["", "| Approval seq | Approver | Plan digest |", "|---:|---|---|"]
        for appr in approvals:
            out.append(f"| {appr.seq} | {_prose(appr.approver)} | `{appr.plan_hash}` |")
    out += ["", "| # | Event hash |", "|---:|---|"]
    for ev in events:
        out.append(f"| {ev.seq} | `{ev.hash}` |")
    people = sorted({ev.actor for ev in events} | {incident.requester, incident.channel} | {a.approver for a in approvals})
    named = [(i, names[i]) for i in people if names.get(i) and names[i] != i]
    if named:
        out += ["", "| Name | Id |", "|---|---|"]
        out += [f"| {_prose(n)} | {_prose(i)} |" for i, n in named]

    out += [
        "",
        "---",
        f"Exported {display_ts(exported_at)} UTC from the bondbot incident log. "
        f"Check with `bondbot incident verify {incident.id}`; head hash `{verification.head_hash or '-'}`.",
        "",
    ]
    return "\n".join(out)
