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


#: The verdicts a diagnosis can reach about one bond.
DIAGNOSED = "diagnosed"  # a root cause was found (a critical finding that explains an incident)
HEALTHY = "healthy"  # everything was read and nothing is wrong (warnings are listed as risks)
INCONCLUSIVE = "inconclusive"  # no root cause, but something could not be read: not healthy
VERDICTS = (DIAGNOSED, HEALTHY, INCONCLUSIVE)


@dataclass(frozen=True)
class Diagnosis:
    """Everything the rules concluded about one bond.

    ``root_cause`` is the finding that explains the incident: always a *critical* finding (a
    warning is a risk, never the cause). ``verdict`` is ``diagnosed`` (root cause found),
    ``healthy`` (the bond's whole state was read and nothing critical is wrong; warnings are
    ``risks``) or ``inconclusive`` (something could not be read: the bond's own state, a step that
    failed or was refused, an output that did not parse; ``reasons`` says what). An inconclusive
    bond is never reported healthy.
    """

    bond: str
    mode: str
    root_cause: Finding | None
    findings: tuple[Finding, ...]
    verdict: str = ""  # "" -> derived from root_cause (records written before verdicts existed)
    reasons: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.verdict:
            object.__setattr__(self, "verdict", DIAGNOSED if self.root_cause is not None else HEALTHY)
        if self.verdict not in VERDICTS:
            raise ValueError(f"unknown verdict {self.verdict!r}")

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
            return "inconclusive: " + ("; ".join(self.reasons) or "part of the bond's state could not be read")
        n = len(self.risks)
        return "healthy" if n == 0 else f"healthy, {n} risk{'s' if n != 1 else ''}"

    def codes(self) -> list[str]:
        return [f.code for f in self.findings]

    def to_json(self) -> dict[str, Any]:
        """The documented ``bondbot diagnose --json`` shape."""
        root = self.root_cause
        return {
            "bond": self.bond,
            "mode": self.mode,
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
