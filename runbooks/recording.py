"""Writing a triage into the incident log, the same way for every front end.

"Everything that happens is written to incidents": the Slack bot and ``bondbot triage --record``
both record a triage through these functions, so an incident reads the same whoever ran it and
the exports and the bot's incident view (which rebuild everything from the log) understand both.

What a triage leaves in the log, in order:

* ``triage_step`` per step: ``StepRecord.to_json()`` plus ``stdout`` (clipped to
  ``LOGGED_OUTPUT_LIMIT`` characters), or ``{"step": "connect", "status": "failed", "reason"}``
  when the host could not be reached;
* ``note`` ``{"triage_error": ...}`` when there is no diagnosis (connect or diagnosis failure);
* ``diagnosis``: ``Diagnosis.to_json()`` with each finding's explanation (so a card can be rebuilt);
* ``root_cause`` (the root cause's summary, with its ``code`` and ``evidence``) unless the incident
  already has one, and ``status_change`` to ``diagnosed`` where the life cycle allows. An
  *inconclusive* diagnosis (the bond's state could not be fully read) moves the incident to
  ``inconclusive`` with the reasons, never to a healthy-looking open incident. A healthy bond sets
  neither.

``store`` is an ``incidents.IncidentStore`` (any object with its methods). The functions are
blocking, like the store: asyncio callers run them with ``asyncio.to_thread``. Nothing here imports
SQLAlchemy, so importing this module costs a read-only ``bondbot triage`` nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runbooks.engine import StepRecord, TriageResult
    from runbooks.findings import Diagnosis

__all__ = [
    "LOGGED_OUTPUT_LIMIT",
    "diagnosis_payload",
    "record_connect_failure",
    "record_diagnosis",
    "record_steps",
    "record_triage",
    "step_payload",
]

#: Characters of raw output kept per step (the exported timeline shows it; 7 steps stay < 2 MiB).
LOGGED_OUTPUT_LIMIT = 256 * 1024


def step_payload(record: StepRecord) -> dict[str, Any]:
    """A ``triage_step`` event's payload: the step as ``StepRecord.to_json`` says it, plus stdout."""
    stdout = record.result.stdout if record.result else ""
    return record.to_json() | {"stdout": stdout[:LOGGED_OUTPUT_LIMIT]}


def diagnosis_payload(diagnosis: Diagnosis) -> dict[str, Any]:
    """Like ``Diagnosis.to_json`` but with each finding's explanation, so a card can be rebuilt."""
    data = diagnosis.to_json()
    data["findings"] = [f.to_json(with_explanation=True) for f in diagnosis.findings]
    return data


def record_steps(store: Any, incident_id: str, steps: Iterable[StepRecord], *, actor: str) -> None:
    """One ``triage_step`` event per step, in the order given (the engine's runbook order)."""
    for record in steps:
        store.append(incident_id, actor=actor, kind="triage_step", payload=step_payload(record))


def record_connect_failure(store: Any, incident_id: str, error: str, *, actor: str) -> None:
    """The triage never started: the host could not be reached (``SshExecError``'s message)."""
    store.append(
        incident_id, actor=actor, kind="triage_step",
        payload={"step": "connect", "status": "failed", "reason": error},
    )


def record_diagnosis(
    store: Any, incident_id: str, diagnosis: Diagnosis | None, *, actor: str, error: str | None = None
) -> bool:
    """Record how the triage ended; True when it found a root cause (the fix may be offered).

    ``error`` (no diagnosis: unreachable host, a rule that crashed) is logged as a
    ``triage_error`` note and nothing else. Otherwise the diagnosis is logged, then the root cause
    unless the incident already has one (the first diagnosis an incident was opened for stays
    its cause), then ``diagnosed`` if the incident's status may move there.
    """
    from incidents.model import TRANSITIONS, Status

    if error:
        store.append(incident_id, actor=actor, kind="note", payload={"triage_error": error})
        return False
    if diagnosis is None:
        return False
    store.append(incident_id, actor=actor, kind="diagnosis", payload=diagnosis_payload(diagnosis))
    root = diagnosis.root_cause
    if root is None:
        if getattr(diagnosis, "verdict", "") == "inconclusive":
            incident = store.get(incident_id)
            status = Status(getattr(incident.status, "value", incident.status))
            inconclusive = Status("inconclusive")
            if status is not inconclusive and inconclusive in TRANSITIONS[status]:
                reason = "; ".join(diagnosis.reasons) or "the state could not be fully read"
                store.set_status(incident_id, inconclusive, actor=actor, reason=f"inconclusive: {reason}"[:1000])
        return False
    incident = store.get(incident_id)
    if incident.root_cause is None:
        store.set_root_cause(
            incident_id, root.summary, actor=actor,
            details={"code": root.code, "evidence": [e.to_json() for e in root.evidence]},
        )
    status = Status(getattr(incident.status, "value", incident.status))
    if status is not Status.DIAGNOSED and Status.DIAGNOSED in TRANSITIONS[status]:
        store.set_status(incident_id, Status.DIAGNOSED, actor=actor, reason="root cause found")
    return True


def record_triage(store: Any, incident_id: str, result: TriageResult, *, actor: str) -> bool:
    """Record a whole triage: its steps, then its diagnosis (see ``record_diagnosis``).

    Returns True when a root cause was found. The bot records the same events in two parts (steps
    when the run ends, the diagnosis after its own ``triage_steps`` note).
    """
    record_steps(store, incident_id, result.steps, actor=actor)
    error = f"diagnosis failed: {result.diagnosis_error}" if result.diagnosis_error else None
    return record_diagnosis(store, incident_id, result.diagnosis, actor=actor, error=error)
