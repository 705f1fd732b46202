"""What triage steps printed, as the engine hands it to a runbook's diagnosis.

``SourceOutput`` is one command's output, named by the command (how evidence cites its source).
``StepOutputs`` holds one subject's outputs by the slots a runbook declares (``outputs.slots`` in
its YAML) when the runbook brings no type of its own; a runbook may name its own class instead
(bonding names its own). Either way the engine needs only
attributes named like the slots plus ``failed_steps`` and ``not_applicable``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["SourceOutput", "StepOutputs"]


@dataclass(frozen=True)
class SourceOutput:
    """One command's output. ``command`` is how evidence names its source, e.g.
    ``cat /proc/net/bonding/bond0``; ``text`` is its standard output, unmodified."""

    command: str
    text: str


@dataclass
class StepOutputs:
    """One subject's outputs: each slot is a ``SourceOutput`` (``one``) or a dict of them by value
    (``each``; None / empty when not read), readable and settable as an attribute. A step that
    could not run is in ``failed_steps`` with why; one that did not apply, in ``not_applicable``."""

    subject: dict[str, str] = field(default_factory=dict)
    slots: dict[str, Any] = field(default_factory=dict)
    failed_steps: dict[str, str] = field(default_factory=dict)
    not_applicable: dict[str, str] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        slots = self.__dict__.get("slots")
        if slots is not None and name in slots:
            return slots[name]
        raise AttributeError(name)

    def __setattr__(self, name: str, value: Any) -> None:
        slots = self.__dict__.get("slots")
        if slots is not None and name in slots:
            slots[name] = value
        else:
            object.__setattr__(self, name, value)
