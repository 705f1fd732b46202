"""The JSON export: everything in the log, in the shape documented by ``incident-export.schema.json``."""

from __future__ import annotations

import json

from incidents.model import Approval, Event, Incident, VerifyResult

__all__ = ["SCHEMA_ID", "render_json"]

SCHEMA_ID = "https://bondbot.invalid/schemas/incident-export-v1.json"


def render_json(
    incident: Incident, events: list[Event], approvals: list[Approval], verification: VerifyResult, *, exported_at: str
) -> str:
    doc = {
        "$schema": SCHEMA_ID,
        "format": "bondbot-incident-export",
        "version": 1,
        "exported_at": exported_at,
        "incident": incident.to_json(),
        "events": [ev.to_json() for ev in events],
        "approvals": [a.to_json() for a in approvals],
        "verification": verification.to_json(),
    }
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
