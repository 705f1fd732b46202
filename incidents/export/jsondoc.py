"""The JSON export: everything in the log, in the shape documented by ``incident-export.schema.json``.

Besides the log itself it carries the postmortem ``summary`` and ``names`` (the id -> name mapping
the exporter knew, for the ids that occur in this incident): both optional in the schema, so a
document written before them still validates.
"""

from __future__ import annotations

import json

from incidents.export.summary import Summary
from incidents.model import Approval, Event, Incident, VerifyResult

__all__ = ["SCHEMA_ID", "render_json"]

SCHEMA_ID = "https://bondbot.invalid/schemas/incident-export-v1.json"


def render_json(
    incident: Incident, events: list[Event], approvals: list[Approval], verification: VerifyResult, *, exported_at: str,
    summary: Summary,
) -> str:
    ids = {incident.requester, incident.channel, *(ev.actor for ev in events), *(a.approver for a in approvals)}
    doc = {
        "$schema": SCHEMA_ID,
        "format": "bondbot-incident-export",
        "version": 1,
        "exported_at": exported_at,
        "incident": incident.to_json(),
        "summary": summary.to_json(),
        "names": {i: summary.names[i] for i in sorted(ids) if summary.names.get(i)},
        "events": [ev.to_json() for ev in events],
        "approvals": [a.to_json() for a in approvals],
        "verification": verification.to_json(),
    }
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
