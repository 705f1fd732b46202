"""The HTML export: one self-contained file (inline CSS, no scripts, no external resources) that
reads well on screen and prints cleanly (print stylesheet: no scroll boxes, no dark backgrounds)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from incidents.export.describe import command_result, describe, display_ts, outputs
from incidents.export.summary import Summary, name_of, summary_rows
from incidents.model import Approval, Event, Incident, VerifyResult

__all__ = ["render_html"]


def _event_view(ev: Event, names: Mapping[str, str]) -> dict[str, Any]:
    p = ev.payload
    raw_evidence = p.get("evidence")
    evidence = raw_evidence if isinstance(raw_evidence, list) else []
    note = None
    if ev.kind == "rollback_note":
        note = {
            "for_change": p.get("for_change", ""),
            "before": json.dumps(p.get("before", {}), indent=2, sort_keys=True, ensure_ascii=False),
            "restore": "\n".join(str(c) for c in p.get("restore_commands", [])),
        }
    return {
        "seq": ev.seq,
        "ts": display_ts(ev.ts),
        "time": display_ts(ev.ts)[11:],
        "date": ev.ts[:10],
        "actor": name_of(names, ev.actor),
        "kind": ev.kind,
        "summary": describe(ev, names),
        "command": p.get("command") if isinstance(p.get("command"), str) else None,
        "result": command_result(p),
        "host": p.get("host") if isinstance(p.get("host"), str) else None,
        "failed": isinstance(p.get("exit_status"), int) and p["exit_status"] != 0 or p.get("ok") is False,
        "outputs": outputs(p),
        "evidence": [
            {"line": str(e.get("line", "")), "source": str(e.get("source", ""))} if isinstance(e, dict) else {"line": str(e), "source": ""}
            for e in evidence
        ],
        "note": note,
        "plan": "\n".join(c for c in p["commands"] if isinstance(c, str))
        if isinstance(p.get("commands"), list)
        else None,
        "hash": ev.hash,
    }


def render_html(
    incident: Incident, events: list[Event], approvals: list[Approval], verification: VerifyResult, *, exported_at: str,
    summary: Summary,
) -> str:
    from importlib import resources

    from jinja2 import Environment

    env = Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True)
    source = resources.files("incidents.export").joinpath("timeline.html.j2").read_text("utf-8")
    template = env.from_string(source)
    return template.render(
        incident=incident,
        created=display_ts(incident.created_at),
        events=[_event_view(ev, summary.names) for ev in events],
        summary=summary_rows(summary, verification),
        approvals=[
            {"seq": a.seq, "ts": display_ts(a.at), "approver": a.name, "user": a.user, "what": a.what or "a plan",
             "plan_hash": next((x.plan_hash for x in approvals if x.seq == a.seq), "")}
            for a in summary.approvers
        ],
        verification=verification,
        exported_at=display_ts(exported_at),
    )
