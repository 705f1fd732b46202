"""The incident store's errors: each says what went wrong and what was (not) changed.

Every error derives from ``IncidentError`` so that callers (the CLI, the bot) can catch one class and
show its message; the message is written for the user, never a bare driver traceback.
"""

from __future__ import annotations

__all__ = [
    "IncidentError",
    "StoreUnavailable",
    "UnknownIncident",
    "InvalidInput",
    "InvalidTransition",
    "ExportError",
]


class IncidentError(Exception):
    """Base class of every error raised by ``incidents``."""


class StoreUnavailable(IncidentError):
    """The database cannot be opened or reached (bad path, no permission, server down)."""


class UnknownIncident(IncidentError, LookupError):
    """No incident has this id."""

    def __init__(self, incident_id: str) -> None:
        super().__init__(f"unknown incident {incident_id!r}: no incident with this id in the log")
        self.incident_id = incident_id


class InvalidInput(IncidentError, ValueError):
    """An argument was rejected before anything was written."""


class InvalidTransition(InvalidInput):
    """A status change that the incident life cycle does not allow."""


class ExportError(IncidentError):
    """An export could not be produced or written (unknown format, unwritable file)."""
