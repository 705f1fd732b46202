"""The result of a diagnosis: findings with stable codes and the evidence lines that prove them.

This is the contract between the diagnosis rules (which produce findings), the CLI and the bot
(which show them) and the incident log (which records them). Codes are stable identifiers:
add new ones, never rename existing ones, because incident logs and alerting refer to them.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


class Severity(str, enum.Enum):
    """How bad a finding is; ordered so that ``max()`` gives the worst."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return {"info": 0, "warning": 1, "critical": 2}[self.value]


@dataclass(frozen=True)
class Evidence:
    """One line of command output that proves a finding, and the command it came from."""

    source: str
    line: str

    def to_json(self) -> dict[str, str]:
        return {"source": self.source, "line": self.line}


@dataclass(frozen=True)
class Finding:
    """A conclusion about the subject, rendered for humans from the runbook's templates."""

    code: str
    severity: Severity
    summary: str
    explanation: str = ""
    evidence: tuple[Evidence, ...] = ()
    facts: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def to_json(self, *, with_explanation: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {
            "code": self.code,
            "severity": self.severity.value,
            "summary": self.summary,
            "evidence": [e.to_json() for e in self.evidence],
        }
        if with_explanation:
            data["explanation"] = self.explanation
        return data


#: The verdicts a diagnosis can reach about one subject.
DIAGNOSED = "diagnosed"  # a root cause was found (a critical finding that explains an incident)
HEALTHY = "healthy"  # everything was read and nothing is wrong (warnings are listed as risks)
INCONCLUSIVE = "inconclusive"  # no root cause, but something could not be read: not healthy
VERDICTS = (DIAGNOSED, HEALTHY, INCONCLUSIVE)


@dataclass(frozen=True)
class Diagnosis:
    """Everything the rules concluded about one subject (bonding: one bond).

    ``subject`` is what was triaged, as the runbook names it (``{"bond": "bond0"}``; empty for a
    runbook about the host itself); ``details`` is what the runbook says about it in a word or two
    (bonding: ``{"mode": "active-backup"}``), shown beside the verdict. ``root_cause`` is the
    finding that explains the incident: always a *critical* finding (a warning is a risk, never the
    cause). ``verdict`` is ``diagnosed`` (root cause found), ``healthy`` (the whole state was read
    and nothing critical is wrong; warnings are ``risks``) or ``inconclusive`` (something could not
    be read: a step that failed or was refused, an output that did not parse; ``reasons`` says
    what). An inconclusive subject is never reported healthy.
    """

    subject: Mapping[str, str]
    root_cause: Finding | None
    findings: tuple[Finding, ...]
    verdict: str = ""  # "" -> derived from root_cause (records written before verdicts existed)
    reasons: tuple[str, ...] = ()
    details: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "subject", dict(self.subject))
        object.__setattr__(self, "details", dict(self.details))
        if not self.verdict:
            object.__setattr__(self, "verdict", DIAGNOSED if self.root_cause is not None else HEALTHY)
        if self.verdict not in VERDICTS:
            raise ValueError(f"unknown verdict {self.verdict!r}")

    @property
    def bond(self) -> str:
        """``subject["bond"]`` (the bonding runbook's callers): read-only."""
        return self.subject.get("bond", "")

    @property
    def mode(self) -> str:
        """``details["mode"]`` (the bonding runbook's callers): read-only."""
        return self.details.get("mode", "")

    @property
    def subject_text(self) -> str:
        return " ".join(self.subject.values())

    @property
    def healthy(self) -> bool:
        return self.verdict == HEALTHY

    @property
    def inconclusive(self) -> bool:
        return self.verdict == INCONCLUSIVE

    @property
    def risks(self) -> tuple[Finding, ...]:
        """Warnings: what could cause an incident later, listed beside a healthy verdict."""
        return tuple(f for f in self.findings if f.severity is Severity.WARNING and f is not self.root_cause)

    def headline(self) -> str:
        """One line for people: the verdict and what it rests on."""
        if self.verdict == DIAGNOSED and self.root_cause is not None:
            return f"{self.root_cause.code}: {self.root_cause.summary}"
        if self.verdict == INCONCLUSIVE:
            what = f"the {next(iter(self.subject))}'s" if self.subject else "the host's"
            return "inconclusive: " + ("; ".join(self.reasons) or f"part of {what} state could not be read")
        n = len(self.risks)
        return "healthy" if n == 0 else f"healthy, {n} risk{'s' if n != 1 else ''}"

    def codes(self) -> list[str]:
        return [f.code for f in self.findings]

    def to_json(self) -> dict[str, Any]:
        """The documented ``bondbot diagnose --json`` shape: the subject's and the details' keys
        first (bonding: ``bond``, ``mode``), then ``subject``, ``details`` and the verdict."""
        root = self.root_cause
        return {
            **self.subject,
            **self.details,
            "subject": dict(self.subject),
            "details": dict(self.details),
            "verdict": self.verdict,
            "reasons": list(self.reasons),
            "root_cause": (
                None
                if root is None
                else {"code": root.code, "severity": root.severity.value, "summary": root.summary}
            ),
            "risks": [f.code for f in self.risks],
            "findings": [f.to_json() for f in self.findings],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Diagnosis:
        """Rebuild a logged diagnosis (``to_json`` with explanations). A diagnosis logged before
        ``subject`` existed (bonding only) is read from its ``bond`` and ``mode``."""
        def finding(d: Mapping[str, Any]) -> Finding:
            return Finding(
                code=str(d["code"]),
                severity=Severity(d.get("severity", "info")),
                summary=str(d.get("summary", "")),
                explanation=str(d.get("explanation", "")),
                evidence=tuple(Evidence(str(e.get("source", "")), str(e.get("line", "")))
                               for e in d.get("evidence") or []),
            )

        findings = tuple(finding(f) for f in data.get("findings") or [])
        root_code = (data.get("root_cause") or {}).get("code")
        root = next((f for f in findings if f.code == root_code), None)
        if root is None and data.get("root_cause"):
            root = finding(data["root_cause"])
        subject = data.get("subject")
        if not isinstance(subject, Mapping):
            subject = {"bond": str(data["bond"])} if data.get("bond") is not None else {}
        details = data.get("details")
        if not isinstance(details, Mapping):
            details = {"mode": str(data["mode"])} if data.get("mode") is not None else {}
        verdict = str(data.get("verdict") or "")  # absent in diagnoses logged before verdicts existed
        return cls(
            subject={str(k): str(v) for k, v in subject.items()}, root_cause=root, findings=findings,
            verdict=verdict if verdict in VERDICTS else "",
            reasons=tuple(str(r) for r in data.get("reasons") or ()),
            details={str(k): str(v) for k, v in details.items()},
        )
