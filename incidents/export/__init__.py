"""Incident export: a Markdown timeline, a JSON document (with a shipped JSON Schema) and one
self-contained HTML page, all rendered from the same consistent snapshot with its verification.

``IncidentStore.export(id, fmt)`` is the usual entry point; ``render`` is the pure function behind it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources

from incidents.errors import ExportError
from incidents.model import Approval, Event, Incident, VerifyResult

__all__ = ["FORMATS", "Export", "render", "json_schema_text"]

#: Export formats and their media types.
FORMATS: dict[str, str] = {
    "md": "text/markdown; charset=utf-8",
    "json": "application/json",
    "html": "text/html; charset=utf-8",
}


@dataclass(frozen=True)
class Export:
    """A rendered export and the log head it covers (recorded by ``IncidentStore.record_export``)."""

    incident_id: str
    fmt: str
    text: str
    head_seq: int
    head_hash: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()

    @property
    def media_type(self) -> str:
        return FORMATS[self.fmt]

    @property
    def filename(self) -> str:
        return f"{self.incident_id}.{self.fmt}"

    def __str__(self) -> str:
        return self.text


def render(
    fmt: str, incident: Incident, events: list[Event], approvals: list[Approval], verification: VerifyResult
) -> Export:
    """Render one format; ``ExportError`` for an unknown one."""
    from incidents.store import utc_now

    exported_at = utc_now()
    if fmt == "md":
        from incidents.export.markdown import render_markdown

        text = render_markdown(incident, events, approvals, verification, exported_at=exported_at)
    elif fmt == "json":
        from incidents.export.jsondoc import render_json

        text = render_json(incident, events, approvals, verification, exported_at=exported_at)
    elif fmt == "html":
        from incidents.export.html import render_html

        text = render_html(incident, events, approvals, verification, exported_at=exported_at)
    else:
        raise ExportError(f"unknown export format {fmt!r}: one of {', '.join(FORMATS)}")
    last = events[-1] if events else None
    return Export(incident.id, fmt, text, last.seq if last else 0, last.hash if last else "")


def json_schema_text() -> str:
    """The JSON Schema (draft 2020-12) that every JSON export validates against."""
    return resources.files("incidents.export").joinpath("incident-export.schema.json").read_text("utf-8")
