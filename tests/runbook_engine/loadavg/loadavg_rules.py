"""The loadavg runbook's parsers and its one rule (a test runbook: see runbook.yaml beside it).

Like the bonding runbook's: one parser per data source, typed attributes and the exact line kept
for evidence; the rule is separate and emits a finding with a stable code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from runbooks.findings import DIAGNOSED, HEALTHY, INCONCLUSIVE, Diagnosis, Evidence, Finding, Severity

__all__ = ["LoadAvg", "diagnose", "parse_loadavg", "parse_nproc"]

#: ``/proc/loadavg``: three load averages, running/total scheduling entities, the last PID.
_LOADAVG_RE = re.compile(r"^(\d+\.\d+) (\d+\.\d+) (\d+\.\d+) (\d+)/(\d+) (\d+)$")


class ParseError(ValueError):
    """The text is not the output of the command it is said to come from."""


@dataclass(frozen=True)
class LoadAvg:
    load1: float
    load5: float
    load15: float
    running: int
    total: int
    line: str


def parse_loadavg(text: str) -> LoadAvg:
    """``cat /proc/loadavg``: ``0.52 0.58 0.59 1/467 12345`` (proc(5))."""
    line = text.strip()
    m = _LOADAVG_RE.match(line)
    if m is None:
        raise ParseError(f"not /proc/loadavg output: {line[:80]!r}")
    return LoadAvg(float(m[1]), float(m[2]), float(m[3]), int(m[4]), int(m[5]), line)


def parse_nproc(text: str) -> tuple[int, str]:
    """``nproc``: one positive integer."""
    line = text.strip()
    if not line.isdigit() or int(line) < 1:
        raise ParseError(f"not nproc output: {line[:80]!r}")
    return int(line), line


def diagnose(outputs: Any) -> Diagnosis:
    """LOAD_ABOVE_CPUS (critical, the root cause) when the 1-minute load exceeds the CPU count."""
    reasons = [f"{step}: {why}" for step, why in outputs.failed_steps.items()]
    load = cpus = None
    try:
        if outputs.loadavg is not None:
            load = parse_loadavg(outputs.loadavg.text)
        if outputs.nproc is not None:
            cpus = parse_nproc(outputs.nproc.text)
    except ParseError as exc:
        reasons.append(f"unparseable output: {exc}")
    details = {"cpus": str(cpus[0])} if cpus else {}
    if load is None or cpus is None:
        return Diagnosis({}, None, (), verdict=INCONCLUSIVE,
                         reasons=tuple(reasons) or ("the load or the CPU count was not read",), details=details)
    if load.load1 <= cpus[0]:
        return Diagnosis({}, None, (), verdict=INCONCLUSIVE if reasons else HEALTHY, reasons=tuple(reasons),
                         details=details)
    finding = Finding(
        code="LOAD_ABOVE_CPUS",
        severity=Severity.CRITICAL,
        summary=f"1-minute load {load.load1:g} is above the {cpus[0]} CPU(s)",
        explanation=f"{load.running} of {load.total} scheduling entities were runnable when read.",
        evidence=(Evidence(outputs.loadavg.command, load.line), Evidence(outputs.nproc.command, cpus[1])),
    )
    return Diagnosis({}, finding, (finding,), verdict=DIAGNOSED, details=details)
