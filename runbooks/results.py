"""What a triage found: each step's record, each subject's result, the host's whole triage.

These are what the CLI, the bot and the incident log show (``to_json`` is the documented
``bondbot triage --json`` shape). They speak of a runbook's *subject* (``{"bond": "bond0"}``) and,
in JSON, also name it by its parameter (``"bond": ...``, ``"bonds_found"``), so each runbook's
output reads in its own words; ``bond``/``bonds``/``no_bond`` are read-only conveniences for the
bonding runbook's callers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from runbooks.findings import Diagnosis
from runbooks.runbook import DEFAULT_RUNBOOK
from ssh_exec import CommandResult, Host

__all__ = ["NO_BOND", "NO_SUBJECT", "HostTriage", "StepEvent", "StepRecord", "TriageResult", "bonds_text",
           "subjects_text"]


def subjects_text(subjects: tuple[str, ...] | None, why_none: str = "", *, noun: str = "bond",
                  plural: str = "") -> str:
    """What a host has, in words: "its bonds: bond0, bond1" / "it has no bond (...)"."""
    plural = plural or noun + "s"
    if subjects is None:
        return f"its {plural} could not be listed"
    if not subjects:
        return f"it has no {noun}" + (f" ({why_none})" if why_none else "")
    return (f"its {noun}: " if len(subjects) == 1 else f"its {plural}: ") + ", ".join(subjects)


def bonds_text(bonds: tuple[str, ...] | None, why_none: str = "") -> str:
    """``subjects_text`` in the bonding runbook's words."""
    return subjects_text(bonds, why_none, noun="bond")


def _subject_text(subject: Mapping[str, str] | None) -> str:
    return " ".join(subject.values()) if subject else ""


@dataclass
class StepRecord:
    """What one step did, for display and the incident log."""

    step: str  # "ethtool eno1" for per-value steps; "discover bonds" for host-level reads
    command: str  # as written in the runbook, rendered (what evidence cites)
    status: str  # ok | failed | not-privileged | partial | skipped
    reason: str | None = None
    result: CommandResult | None = None
    subject: dict[str, str] | None = None  # None: a host-level discovery read
    #: The runbook's subject parameters: to_json names each (``"bond": ...``), None on host reads.
    subject_keys: tuple[str, ...] = ()

    @property
    def bond(self) -> str | None:
        """The subject's ``bond`` (bonding runbook callers): read-only."""
        return (self.subject or {}).get("bond")

    @property
    def subject_text(self) -> str:
        return _subject_text(self.subject)

    @property
    def exit_status(self) -> int | None:
        return self.result.exit_status if self.result else None

    @property
    def duration(self) -> float:
        return self.result.duration if self.result else 0.0

    @property
    def stderr(self) -> str:
        return self.result.stderr if self.result else ""

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"step": self.step}
        for key in self.subject_keys:
            data[key] = (self.subject or {}).get(key)
        data |= {
            "subject": dict(self.subject) if self.subject is not None else None,
            "command": self.command,
            "sent": self.result.command if self.result else None,
            "status": self.status,
            "reason": self.reason,
            "exit_status": self.exit_status,
            "duration": round(self.duration, 4),
            "stderr": self.stderr,
            "truncated": bool(self.result and self.result.truncated),
            "timed_out": bool(self.result and self.result.timed_out),
        }
        return data


@dataclass(frozen=True)
class StepEvent:
    """Progress: ``kind`` is "start" (record has no result yet) or "done"."""

    kind: str
    host: str
    record: StepRecord


@dataclass
class TriageResult:
    """One subject's triage. ``steps`` starts with the host-level discovery reads it relied on."""

    host: Host
    subject: dict[str, str]
    outputs: Any
    steps: list[StepRecord]
    diagnosis: Diagnosis | None
    duration: float
    diagnosis_error: str | None = None
    runbook: str = DEFAULT_RUNBOOK

    @property
    def bond(self) -> str:
        """The subject's ``bond`` (bonding runbook callers): read-only."""
        return self.subject.get("bond", "")

    @property
    def subject_text(self) -> str:
        return _subject_text(self.subject)

    @property
    def verdict(self) -> str:
        """diagnosed | healthy | inconclusive, or "error" when the diagnosis itself failed."""
        if self.diagnosis is None:
            return "error" if self.diagnosis_error else "inconclusive"
        return self.diagnosis.verdict

    def to_json(self) -> dict[str, Any]:
        return {
            "host": self.host.name,
            **self.subject,
            "runbook": self.runbook,
            "subject": dict(self.subject),
            "verdict": self.verdict,
            "duration": round(self.duration, 4),
            "diagnosis": self.diagnosis.to_json() if self.diagnosis else None,
            "diagnosis_error": self.diagnosis_error,
            "failed_steps": dict(self.outputs.failed_steps),
            "not_applicable": dict(self.outputs.not_applicable),
            "steps": [s.to_json() for s in self.steps],
        }


#: Host-level verdicts besides the per-subject ones (see ``HostTriage.verdict``).
NO_SUBJECT = "no-subject"
NO_BOND = "no-bond"
_VERDICT_ORDER = ("error", "inconclusive", "diagnosed", "healthy")


@dataclass
class HostTriage:
    """Everything one ``bondbot triage HOST`` learned: the host's subjects and one result per subject
    triaged (one incident per subject: each has its own root cause, fix, approvals and rollback)."""

    host: Host
    subjects: tuple[str, ...] | None  # what the host has; None when it could not be listed
    results: list[TriageResult]
    discovery: list[StepRecord]
    duration: float
    named: str | None = None
    no_subject: str | None = None  # "no bond on this host (...)"
    error: str | None = None  # nothing named and the subjects could not be listed: inconclusive
    runbook: str = DEFAULT_RUNBOOK
    noun: str = "bond"
    plural: str = "bonds"

    @property
    def bonds(self) -> tuple[str, ...] | None:
        """``subjects`` (bonding runbook callers): read-only."""
        return self.subjects

    @property
    def no_bond(self) -> str | None:
        """``no_subject`` (bonding runbook callers): read-only."""
        return self.no_subject

    @property
    def verdict(self) -> str:
        """no-<noun> | inconclusive | error | diagnosed | healthy: the worst over the subjects."""
        if self.no_subject is not None:
            return f"no-{self.noun}" if self.noun else NO_SUBJECT
        if self.error is not None or not self.results:
            return "inconclusive"
        verdicts = {r.verdict for r in self.results}
        return next(v for v in _VERDICT_ORDER if v in verdicts)

    def to_json(self) -> dict[str, Any]:
        found = list(self.subjects) if self.subjects is not None else None
        data: dict[str, Any] = {"host": self.host.name, "runbook": self.runbook, "verdict": self.verdict}
        if self.noun:  # in the runbook's words: bonds_found, bond_named, no_bond
            data |= {f"{self.plural}_found": found, f"{self.noun}_named": self.named, f"no_{self.noun}": self.no_subject}
        data |= {
            "subjects_found": found,
            "subject_named": self.named,
            "no_subject": self.no_subject,
            "error": self.error,
            "duration": round(self.duration, 4),
            "discovery": [s.to_json() for s in self.discovery],
            "results": [r.to_json() for r in self.results],
        }
        return data
