"""The result of a diagnosis: findings with stable codes and the evidence lines that prove them.

This is the contract between the diagnosis rules (which produce findings), the CLI and the bot
(which show them) and the incident log (which records them). Codes are stable identifiers:
add new ones, never rename existing ones, because incident logs and alerting refer to them.
"""

from __future__ import annotations

import enum
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
    """A conclusion about the bond, rendered for humans from the runbook's templates."""

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


@dataclass(frozen=True)
class Diagnosis:
    """Everything the rules concluded about one bond.

    ``root_cause`` is the finding that explains the incident, or None when the bond is healthy
    (informational findings may still be present).
    """

    bond: str
    mode: str
    root_cause: Finding | None
    findings: tuple[Finding, ...]

    @property
    def healthy(self) -> bool:
        return self.root_cause is None

    def codes(self) -> list[str]:
        return [f.code for f in self.findings]

    def to_json(self) -> dict[str, Any]:
        """The documented ``bondbot diagnose --json`` shape."""
        root = self.root_cause
        return {
            "bond": self.bond,
            "mode": self.mode,
            "root_cause": (
                None
                if root is None
                else {"code": root.code, "severity": root.severity.value, "summary": root.summary}
            ),
            "findings": [f.to_json() for f in self.findings],
        }
