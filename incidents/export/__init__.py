"""Incident export: a Markdown timeline, a JSON document (with a shipped JSON Schema) and one
self-contained HTML page, all rendered from the same consistent snapshot with its verification.

``export_incident(store, id, fmt)`` is the usual entry point: it reads one ``IncidentStore.snapshot``
and renders it; ``render`` is the pure function behind it (its time stamp is a parameter). The store
does not import this package (it knows no format), so the two never form a cycle.

Every format leads with the postmortem summary (``incidents.export.summary``) and shows people by
name: ``names`` maps the log's user (or channel) ids to names. The caller supplies it (the bot from
Slack's users.info); this package asks no one, and an id without a name is shown as the id.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING

from incidents.errors import ExportError
from incidents.store import Snapshot, utc_now

if TYPE_CHECKING:
    from incidents.store import IncidentStore

__all__ = ["FORMATS", "Export", "export_incident", "render", "json_schema_text"]

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


def export_incident(store: IncidentStore, incident_id: str, fmt: str, *,
                    clock: Callable[[], str] = utc_now, names: Mapping[str, str] | None = None) -> Export:
    """Render the incident as ``md``, ``json`` or ``html``, with its verification, from one snapshot.

    ``UnknownIncident`` for an unknown id, ``ExportError`` for an unknown format; ``clock`` gives
    the "exported at" stamp (the store's UTC format); ``names`` maps user/channel ids to names.
    """
    return render(fmt, store.snapshot(incident_id), exported_at=clock(), names=names)


def render(fmt: str, snapshot: Snapshot, *, exported_at: str, names: Mapping[str, str] | None = None) -> Export:
    """Render one format of ``snapshot``; ``ExportError`` for an unknown one."""
    from incidents.export.summary import summarize

    incident, events, approvals, verification = (
        snapshot.incident, snapshot.events, snapshot.approvals, snapshot.verification)
    summary = summarize(incident, events, approvals, names)
    if fmt == "md":
        from incidents.export.markdown import render_markdown

        text = render_markdown(incident, events, approvals, verification, exported_at=exported_at, summary=summary)
    elif fmt == "json":
        from incidents.export.jsondoc import render_json

        text = render_json(incident, events, approvals, verification, exported_at=exported_at, summary=summary)
    elif fmt == "html":
        from incidents.export.html import render_html

        text = render_html(incident, events, approvals, verification, exported_at=exported_at, summary=summary)
    else:
        raise ExportError(f"unknown export format {fmt!r}: one of {', '.join(FORMATS)}")
    last = events[-1] if events else None
    return Export(incident.id, fmt, text, last.seq if last else 0, last.hash if last else "")


def json_schema_text() -> str:
    """The JSON Schema (draft 2020-12) that every JSON export validates against."""
    return resources.files("incidents.export").joinpath("incident-export.schema.json").read_text("utf-8")
