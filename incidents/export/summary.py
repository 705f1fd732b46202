"""The postmortem summary every export leads with, computed from the incident's own events.

A postmortem starts with who, what, how bad and how long, so every field here is read from the log
(never from a caller's say-so): the severity is the root cause finding's, "root cause found" is the
``root_cause`` event, "mitigated" the first change to ``verified``, "resolved" the change to
``closed``, the failover figures the last ``verification`` event carrying a ``failover_test``.

People appear by name: the caller passes a ``names`` mapping (the bot reads Slack's users.info;
the CLI has none), and an id with no name stays the id. This package never asks Slack itself: the
incident log sits below the bot.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from incidents.model import Approval, Event, Incident, VerifyResult

__all__ = ["Approver", "FailoverFigures", "Summary", "summarize", "name_of", "interval_s", "format_interval", "summary_rows"]

_SEVERITY_ORDER = ("critical", "high", "error", "warning", "medium", "low", "info")


def name_of(names: Mapping[str, str], who: str) -> str:
    """The person's name if the caller knows it, else the id as logged (never empty)."""
    name = names.get(who)
    return name if isinstance(name, str) and name.strip() else who


def _parse(ts: str) -> datetime:
    return datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ")


def interval_s(start: str | None, end: str | None) -> float | None:
    """Seconds from ``start`` to ``end`` (the store's UTC stamps); None when either is missing."""
    if not start or not end:
        return None
    return round((_parse(end) - _parse(start)).total_seconds(), 3)


def format_interval(seconds: float | None) -> str:
    """``1.6 s``, ``2 min 05 s``, ``1 h 03 min``; an em dash when there is no interval."""
    if seconds is None:
        return "—"
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = int(round(seconds))
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"


@dataclass(frozen=True)
class Approver:
    """One approval: who (id and name), when, and what it was for (the approval event's summary)."""

    user: str
    name: str
    at: str
    what: str
    seq: int

    def to_json(self) -> dict[str, Any]:
        return {"user": self.user, "name": self.name, "at": self.at, "what": self.what, "seq": self.seq}


@dataclass(frozen=True)
class FailoverFigures:
    """The failover test's measured figures, as the test recorded them (ms; None when not measured)."""

    seq: int
    passed: bool | None
    method: str | None
    cut_slave: str | None
    failed_over_to: str | None
    detection_ms: float | None
    outage_ms: float | None
    lost_pings: int | None
    pings_sent: int | None
    verdict: str | None

    def line(self) -> str:
        """``PASS (lab): eno1 → eno2 in 95.6 ms, outage 100 ms, 6 of 623 pings lost``."""
        verdict = "PASS" if self.passed is True else "FAIL" if self.passed is False else "no verdict"
        parts = []
        if self.failed_over_to:
            move = f"{self.cut_slave} → {self.failed_over_to}" if self.cut_slave else f"to {self.failed_over_to}"
            parts.append(move + (f" in {self.detection_ms:.1f} ms" if self.detection_ms is not None else ""))
        elif self.passed is False:
            parts.append(self.verdict or "did not fail over")
        if self.outage_ms is not None:
            parts.append(f"outage {self.outage_ms:.0f} ms")
        if self.lost_pings is not None:
            of = f" of {self.pings_sent}" if self.pings_sent is not None else ""
            parts.append(f"{self.lost_pings}{of} pings lost")
        method = f" ({self.method})" if self.method else ""
        return f"{verdict}{method}: " + ", ".join(parts) if parts else f"{verdict}{method}"

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq, "passed": self.passed, "method": self.method, "cut_slave": self.cut_slave,
            "failed_over_to": self.failed_over_to, "detection_ms": self.detection_ms, "outage_ms": self.outage_ms,
            "lost_pings": self.lost_pings, "pings_sent": self.pings_sent, "verdict": self.verdict,
            "line": self.line(),
        }


@dataclass(frozen=True)
class Summary:
    """What a postmortem leads with. Times are the store's UTC stamps; intervals are seconds."""

    host: str
    runbook: str
    subject: Mapping[str, str]
    status: str
    root_cause: str | None
    root_cause_code: str | None
    severity: str | None
    requester: str
    requester_name: str
    channel: str
    channel_name: str
    approvers: tuple[Approver, ...]
    opened: str
    root_cause_found: str | None
    mitigated: str | None
    resolved: str | None
    failover: FailoverFigures | None
    names: Mapping[str, str] = field(default_factory=dict)

    @property
    def intervals(self) -> dict[str, float | None]:
        """The intervals a postmortem quotes, by name (seconds, None when not reached)."""
        return {
            "opened_to_root_cause": interval_s(self.opened, self.root_cause_found),
            "root_cause_to_mitigated": interval_s(self.root_cause_found, self.mitigated),
            "mitigated_to_resolved": interval_s(self.mitigated, self.resolved),
            "opened_to_mitigated": interval_s(self.opened, self.mitigated),
            "opened_to_resolved": interval_s(self.opened, self.resolved),
        }

    @property
    def subject_text(self) -> str:
        return ", ".join(f"{k} {v}" for k, v in self.subject.items()) or "the host"

    def to_json(self) -> dict[str, Any]:
        return {
            "host": self.host, "runbook": self.runbook, "subject": dict(self.subject), "status": self.status,
            "root_cause": self.root_cause, "root_cause_code": self.root_cause_code, "severity": self.severity,
            "requester": {"user": self.requester, "name": self.requester_name},
            "channel": {"id": self.channel, "name": self.channel_name},
            "approvers": [a.to_json() for a in self.approvers],
            "times": {"opened": self.opened, "root_cause_found": self.root_cause_found,
                      "mitigated": self.mitigated, "resolved": self.resolved},
            "intervals_s": self.intervals,
            "failover_test": self.failover.to_json() if self.failover else None,
        }


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _integer(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _severity(events: list[Event], code: str | None) -> str | None:
    """The root cause finding's severity; without a matching finding, the worst one found."""
    findings: list[dict[str, Any]] = []
    for ev in events:
        if ev.kind == "finding":
            findings.append(ev.payload)
        elif ev.kind == "diagnosis" and isinstance(ev.payload.get("findings"), list):
            findings += [f for f in ev.payload["findings"] if isinstance(f, dict)]
    if code:
        for f in findings:
            if f.get("code") == code and _text(f.get("severity")):
                return str(f["severity"])
    severities = [str(f["severity"]) for f in findings if _text(f.get("severity"))]
    if not severities:
        return None
    return min(severities, key=lambda s: _SEVERITY_ORDER.index(s) if s in _SEVERITY_ORDER else len(_SEVERITY_ORDER))


def _failover(events: list[Event]) -> FailoverFigures | None:
    for ev in reversed(events):
        test = ev.payload.get("failover_test") if ev.kind == "verification" else None
        if isinstance(test, dict):
            return FailoverFigures(
                seq=ev.seq,
                passed=test.get("passed") if isinstance(test.get("passed"), bool) else None,
                method=_text(test.get("method")), cut_slave=_text(test.get("cut_slave")),
                failed_over_to=_text(test.get("failed_over_to")),
                detection_ms=_number(test.get("detection_ms")), outage_ms=_number(test.get("outage_ms")),
                lost_pings=_integer(test.get("lost_pings")), pings_sent=_integer(test.get("pings_sent")),
                verdict=_text(test.get("verdict")),
            )
    return None


def _first_status(events: list[Event], to: str) -> str | None:
    return next((ev.ts for ev in events if ev.kind == "status_change" and ev.payload.get("to") == to), None)


def summarize(incident: Incident, events: list[Event], approvals: list[Approval],
              names: Mapping[str, str] | None = None) -> Summary:
    """The summary of one incident from its log (``names``: user or channel id -> name)."""
    names = dict(names or {})
    by_seq = {ev.seq: ev for ev in events}
    root = next((ev for ev in events if ev.kind == "root_cause"), None)
    code = _text(root.payload.get("code")) if root else None
    opened = next((ev.ts for ev in events if ev.kind == "opened"), None) or incident.created_at
    approvers = []
    for a in approvals:
        ev = by_seq.get(a.seq)
        what = _text(ev.payload.get("summary")) if ev else None
        approvers.append(Approver(a.approver, name_of(names, a.approver), a.approved_at, what or "", a.seq))
    return Summary(
        host=incident.host, runbook=incident.runbook, subject=dict(incident.subject), status=incident.status.value,
        root_cause=incident.root_cause, root_cause_code=code, severity=_severity(events, code),
        requester=incident.requester, requester_name=name_of(names, incident.requester),
        channel=incident.channel, channel_name=name_of(names, incident.channel),
        approvers=tuple(approvers), opened=opened,
        root_cause_found=root.ts if root else None,
        mitigated=_first_status(events, "verified"), resolved=_first_status(events, "closed"),
        failover=_failover(events), names=names,
    )


def _display(ts: str) -> str:
    return ts.replace("T", " ").rstrip("Z")


def _when(ts: str | None, since: str | None = None, label: str = "") -> str:
    if not ts:
        return "not yet"
    after = f" ({format_interval(interval_s(since, ts))} {label})" if since and label else ""
    return f"{_display(ts)} UTC{after}"


def summary_rows(summary: Summary, verification: VerifyResult) -> list[tuple[str, str, str]]:
    """The summary as (key, label, plain text) rows, in reading order: every format shows these.

    Plain text: each format escapes it for itself (Markdown cells, HTML).
    """
    s = summary
    approved = "; ".join(f"{a.name} at {_display(a.at)[11:]} ({a.what or 'a plan'})" for a in s.approvers)
    if verification.ok:
        integrity = f"verified: {verification.events} events, chain intact (hashes in the appendix)"
    else:
        brk = verification.first_break
        integrity = f"BROKEN at seq {brk.seq if brk else '?'}: {brk.reason if brk else ''}"
    return [
        ("host", "Host", s.host),
        ("runbook", "Runbook", f"{s.runbook} ({s.subject_text})"),
        ("status", "Status", s.status.replace("_", " ")),
        ("root-cause", "Root cause", (s.root_cause or "not established")
         + (f" ({s.root_cause_code})" if s.root_cause_code else "")),
        ("severity", "Severity", s.severity or "not rated"),
        ("requester", "Requested by", f"{s.requester_name} in {s.channel_name}"),
        ("approvers", "Approved by", approved or "nobody"),
        ("opened", "Opened", _when(s.opened)),
        ("root-cause-found", "Root cause found", _when(s.root_cause_found, s.opened, "after opening")),
        ("mitigated", "Mitigated", _when(s.mitigated, s.root_cause_found or s.opened,
                                         "after the root cause" if s.root_cause_found else "after opening")),
        ("resolved", "Resolved", _when(s.resolved, s.mitigated or s.opened,
                                       "after mitigation" if s.mitigated else "after opening")),
        ("ttrc", "Time to root cause", format_interval(s.intervals["opened_to_root_cause"])),
        ("ttm", "Time to mitigation", format_interval(s.intervals["opened_to_mitigated"])),
        ("ttr", "Time to resolution", format_interval(s.intervals["opened_to_resolved"])),
        ("failover", "Failover test", s.failover.line() if s.failover else "not run"),
        ("integrity", "Log integrity", integrity),
    ]
