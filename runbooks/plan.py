"""The one plan type: what an operator approves is exactly what runs.

A :class:`Plan` is an ordered list of :class:`PlanStep` s, each with a role (what the executor does
with it), a human purpose and either the exact rendered shell command or, for role ``operator``,
an instruction for a person. Its :attr:`Plan.digest` is the only hash of a remediation in the
project: the bot, the CLI and the incident log all bind approvals to it. It covers exactly what is
shown and what will run (runbook, action, host, subject, shown parameters and every step); anything
generated at run time (a token, a sampler script) is fixed when the plan is built, so it is part of
the commands hashed. :attr:`Plan.context` (state read while planning) is carried along but not
hashed: a re-plan at approval time that renders the same commands gives the same digest.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ROLES", "Plan", "PlanError", "PlanStep"]

#: Every role a step can have; the executor dispatches on these, never on command text.
ROLES: tuple[str, ...] = (
    "read", "precheck", "checkpoint", "change", "verify", "confirm", "rollback", "restore", "operator",
)


class PlanError(ValueError):
    """A plan or step that cannot be what it claims (unknown role, missing command, bad digest)."""


@dataclass(frozen=True)
class PlanStep:
    """One step of a plan: its role, why it is there, and the exact command or instruction."""

    role: str
    purpose: str
    command: str = ""
    instruction: str = ""
    #: The step's id in its runbook's YAML (e.g. "reapply"): what an executor looks a step up by,
    #: with its role. Hashed like the rest.
    name: str = ""

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise PlanError(f"unknown plan step role {self.role!r}; expected one of {', '.join(ROLES)}")
        for name in ("purpose", "command", "instruction", "name"):
            if not isinstance(getattr(self, name), str):
                raise PlanError(f"plan step {name} must be a string")
        if self.role == "operator":
            if self.command:
                raise PlanError("an operator step has an instruction for a person, not a command")
            if not self.instruction:
                raise PlanError("an operator step needs an instruction")
        elif not self.command:
            raise PlanError(f"a {self.role} step needs a command")

    def to_dict(self) -> dict[str, str]:
        return {"role": self.role, "purpose": self.purpose, "command": self.command,
                "instruction": self.instruction, "name": self.name}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PlanStep:
        return cls(role=str(d["role"]), purpose=str(d.get("purpose", "")), command=str(d.get("command", "")),
                   instruction=str(d.get("instruction", "")), name=str(d.get("name", "")))


def _pairs(value: Any, what: str) -> tuple[tuple[str, str], ...]:
    """Normalise a mapping or sequence of pairs to a tuple of (str, str) pairs, in order."""
    items = value.items() if isinstance(value, Mapping) else value
    out: list[tuple[str, str]] = []
    for item in items:
        key, val = item
        if not isinstance(key, str) or not isinstance(val, str):
            raise PlanError(f"plan {what} must be pairs of strings, got {item!r}")
        out.append((key, val))
    return tuple(out)


@dataclass(frozen=True)
class Plan:
    """Everything an operator approves: the exact steps, and the one digest that binds them."""

    runbook: str
    action: str
    host: str
    subject: tuple[tuple[str, str], ...]
    title: str
    steps: tuple[PlanStep, ...]
    params: tuple[tuple[str, str], ...] = ()
    context: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        # Accept lists / mappings from callers and from JSON, store tuples (hashable, immutable).
        object.__setattr__(self, "subject", _pairs(self.subject, "subject"))
        object.__setattr__(self, "params", _pairs(self.params, "params"))
        steps = tuple(self.steps)
        for step in steps:
            if not isinstance(step, PlanStep):
                raise PlanError(f"plan steps must be PlanStep, got {type(step).__name__}")
        object.__setattr__(self, "steps", steps)
        for name in ("runbook", "action", "host", "title"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise PlanError(f"plan {name} must be a non-empty string")

    def hashed_content(self) -> dict[str, Any]:
        """Exactly what the digest covers: what is shown and what will run."""
        return {
            "runbook": self.runbook,
            "action": self.action,
            "host": self.host,
            "subject": [list(p) for p in self.subject],
            "params": [list(p) for p in self.params],
            "steps": [[s.role, s.purpose, s.command, s.instruction, s.name] for s in self.steps],
        }

    @property
    def digest(self) -> str:
        """sha256 hex over the canonical JSON of :meth:`hashed_content`."""
        canonical = json.dumps(self.hashed_content(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    def steps_for(self, *roles: str) -> tuple[PlanStep, ...]:
        """The steps with any of ``roles``, in plan order."""
        for role in roles:
            if role not in ROLES:
                raise PlanError(f"unknown plan step role {role!r}")
        return tuple(s for s in self.steps if s.role in roles)

    def step(self, name: str) -> PlanStep | None:
        """The first step called ``name`` (its YAML id), or None."""
        return next((s for s in self.steps if s.name == name), None)

    def subject_value(self, key: str) -> str | None:
        """One subject parameter (``plan.subject_value("bond")``), or None."""
        return dict(self.subject).get(key)

    def param(self, key: str) -> str | None:
        """One shown parameter, or None."""
        return dict(self.params).get(key)

    def to_dict(self) -> dict[str, Any]:
        """The plan for the log: every hashed field, the title, the context and the digest."""
        return {
            "runbook": self.runbook,
            "action": self.action,
            "host": self.host,
            "subject": dict(self.subject),
            "title": self.title,
            "params": [list(p) for p in self.params],
            "steps": [s.to_dict() for s in self.steps],
            "context": json.loads(json.dumps(dict(self.context), default=str)),
            "digest": self.digest,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Plan:
        """Rebuild a plan from :meth:`to_dict`; a stored digest that does not match is refused."""
        subject = d.get("subject", {})
        plan = cls(
            runbook=str(d["runbook"]),
            action=str(d["action"]),
            host=str(d["host"]),
            subject=_pairs(subject, "subject"),
            title=str(d.get("title", "")),
            steps=tuple(PlanStep.from_dict(s) for s in d.get("steps", ())),
            params=_pairs([tuple(p) for p in d.get("params", ())], "params"),
            context=dict(d.get("context", {}) or {}),
        )
        stored = d.get("digest")
        if stored is not None and stored != plan.digest:
            raise PlanError(f"plan digest mismatch: stored {str(stored)[:12]}, content {plan.digest[:12]}")
        return plan
