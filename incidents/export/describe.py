"""One-line, human summaries of events, shared by the Markdown and HTML timelines.

Payload keys read here are the documented conventions (README, "The incident log"): ``command``,
``exit_status``, ``duration_s``, ``stdout``, ``stderr``, ``summary``, ``text``, ``code``,
``severity``, ``evidence``, ``plan_hash``, ``reason``, ``ok``. Unknown payloads still show, as JSON.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from incidents.model import Event

__all__ = ["describe", "command_result", "outputs", "display_ts"]


def display_ts(ts: str) -> str:
    """``2025-01-31T09:15:02.123Z`` -> ``2025-01-31 09:15:02.123``."""
    return ts.replace("T", " ").rstrip("Z")


def command_result(p: dict[str, Any]) -> str:
    """``exit 0 in 0.12 s`` from a command payload (parts that are missing are left out)."""
    parts = []
    if isinstance(p.get("exit_status"), int):
        parts.append(f"exit {p['exit_status']}")
    elif p.get("exit_status") is None and "exit_status" in p:
        parts.append("no exit status")
    duration = p.get("duration_s", p.get("duration"))  # seconds; runbooks' StepRecord says "duration"
    if isinstance(duration, int | float) and not isinstance(duration, bool):
        parts.append(f"in {duration:.2f} s")
    return " ".join(parts)


def outputs(p: dict[str, Any]) -> list[tuple[str, str]]:
    """The captured outputs worth showing in full: (label, text)."""
    found = []
    for key in ("stdout", "stderr", "output"):
        value = p.get(key)
        if isinstance(value, str) and value.strip():
            found.append((key, value))
    return found


def _short(value: Any, limit: int = 160) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, ensure_ascii=False)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def describe(event: Event, names: Mapping[str, str] | None = None) -> str:
    """What happened, in one line of plain text (callers escape it for their format).

    ``names`` (user/channel id -> name) puts people's names where the payload has their ids.
    """
    names = names or {}
    p = event.payload
    k = event.kind
    if k == "opened":
        raw_subject = p.get("subject")
        subject = raw_subject if isinstance(raw_subject, dict) else {"bond": p.get("bond")}
        about = " ".join(f"{k} {v}" for k, v in subject.items()) or "the host"
        runbook = p.get("runbook") or "bonding"  # an opened event from before runbooks were recorded
        requester, channel = str(p.get("requester")), str(p.get("channel"))
        return (f"Incident opened by {names.get(requester) or requester} in {names.get(channel) or channel}: "
                f"{runbook} runbook, {about} on {p.get('host')}")
    if k in ("command", "triage_step", "rollback") and isinstance(p.get("command"), str):
        verb = {"command": "Ran", "triage_step": "Triage step:", "rollback": "Rollback: ran"}[k]
        where = f" on {p['host']}" if isinstance(p.get("host"), str) else ""
        result = command_result(p)
        purpose = f" ({_short(p['purpose'], 120)})" if isinstance(p.get("purpose"), str) and p["purpose"] else ""
        return f"{verb} {p['command']}{where}{purpose}" + (f" → {result}" if result else "")
    if k == "proposal" and (p.get("title") or p.get("summary")):
        action = str(p.get("action") or "change").replace("_", " ")
        method = f" ({_short(p['method'], 80)})" if isinstance(p.get("method"), str) and p["method"] else ""
        n = len(p["commands"]) if isinstance(p.get("commands"), list) else 0
        return f"Offered the {action}: {_short(p.get('title') or p.get('summary'))}{method}, {n} command{'s' if n != 1 else ''}"
    if k == "diagnosis" and isinstance(p.get("findings"), list):
        found = [f for f in p["findings"] if isinstance(f, dict)]
        codes = ", ".join(f"{f.get('code')} [{f.get('severity')}]" if f.get("severity") else str(f.get("code"))
                          for f in found)
        return f"Diagnosis ({p.get('verdict') or 'done'}): {len(found)} finding{'s' if len(found) != 1 else ''}" + (
            f": {codes}" if codes else "")
    if k == "note" and isinstance(p.get("slack_message"), dict):
        return "Posted the incident message in Slack"
    if k == "note" and isinstance(p.get("triage_steps"), list):
        steps = [x for x in p["triage_steps"] if isinstance(x, dict)]
        done = sum(1 for x in steps if x.get("status") == "ok")
        return f"Triage finished: {done} of {len(steps)} steps ok"
    if k == "note" and isinstance(p.get("plan_error"), dict):
        err = p["plan_error"]
        return f"Not offered: {str(err.get('action', '')).replace('_', ' ')}: {_short(err.get('error', ''))}"
    if k == "note" and isinstance(p.get("action_result"), dict):
        res = p["action_result"]
        first = str(res.get("summary") or "").splitlines()[0] if res.get("summary") else ""
        return f"Result of the {str(res.get('action', 'change')).replace('_', ' ')}: {_short(first, 240)}"
    if k == "finding":
        sev = f"[{p['severity']}] " if p.get("severity") else ""
        code = f"{p['code']}: " if p.get("code") else ""
        return f"Finding {sev}{code}{_short(p.get('summary', p))}"
    if k == "root_cause":
        return f"Root cause: {p.get('root_cause')}"
    if k == "status_change":
        reason = f" ({p['reason']})" if p.get("reason") else ""
        return f"Status {p.get('from')} → {p.get('to')}{reason}"
    if k == "approval":
        # the plan's digest is in the export's appendix (and the JSON): the line says what was approved
        return f"Approved: {p['summary']}" if p.get("summary") else f"Approved plan {str(p.get('plan_hash', ''))[:12]}"
    if k == "refusal":
        return "Refused" + (f": {_short(p.get('reason') or p.get('summary'))}" if p.get("reason") or p.get("summary") else "")
    if k == "rollback_note":
        n = len(p.get("restore_commands") or [])
        return f"Rollback note for “{p.get('for_change')}”: {n} restore command{'s' if n != 1 else ''}"
    if k == "verification" and isinstance(p.get("failover_test"), dict):
        test = p["failover_test"]
        verdict = "PASS" if test.get("passed") is True else "FAIL" if test.get("passed") is False else "no verdict"
        return f"Failover test {verdict}: {_short(test.get('verdict') or '', 240)}".rstrip(": ")
    if k == "verification" and isinstance(p.get("checks"), list):
        checks = [c for c in p["checks"] if isinstance(c, dict)]
        passed = sum(1 for c in checks if c.get("ok") is True)
        failed = [str(c.get("name")) for c in checks if c.get("ok") is not True]
        but = f" (failed: {', '.join(failed)})" if failed else ""
        return f"Verification {'FAILED' if failed else 'passed'}: {passed} of {len(checks)} checks ok{but}"
    if k == "verification":
        ok = p.get("ok")
        verdict = "passed" if ok is True else "FAILED" if ok is False else ""
        text = f"Verification {verdict}".rstrip()
        return text + (f": {_short(p['summary'])}" if p.get("summary") else "")
    if k == "interrupted":
        as_before = p.get("host_as_before")
        state = "; host as before" if as_before is True else "; host CHANGED" if as_before is False else ""
        return f"Interrupted {p.get('work', 'work')}: {_short(p.get('reason', ''), 240)}{state}"
    if k == "export":
        return f"Exported as {p.get('format')} (sha256 {str(p.get('sha256', ''))[:12]}…), covering seq {p.get('covers_seq')}"
    for key in ("summary", "text", "root_cause", "reason"):
        if p.get(key):
            return f"{k.replace('_', ' ').capitalize()}: {_short(p[key])}"
    return f"{k.replace('_', ' ').capitalize()}: {_short(p)}" if p else k.replace("_", " ").capitalize()
