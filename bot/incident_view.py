"""The incident message's view model, rebuilt from the incident log alone.

Any bot replica can receive the next click on a message another replica posted, so nothing the
message shows may live only in one process: it is all derived here from the events the store
returns. The bot writes these event payloads (other writers may add more events; unknown ones
are ignored here and still appear in the exported timeline):

* ``note``      ``{"slack_message": {"channel": C, "ts": TS}}`` — where the incident's message is.
* ``note``      ``{"triage_steps": [{"name", "status", "detail"}]}`` — how the triage steps ended.
* ``diagnosis`` ``{"bond", "mode", "root_cause": {...} | None, "findings": [finding + explanation]}``
* ``proposal``  written by ``runbooks.approvals.Approvals.offer``: ``{"action", "plan_hash" (=
  "digest"), "plan": Plan.to_dict(), "expires_at", "requester", "batch", "method_key", "host",
  "bond"}`` — a change offered for approval (``expires_at`` ISO 8601 UTC; ``method_key`` the
  failover test's method; a later ``batch`` offering the same action replaces the earlier offers
  of it). What the message shows of it (title, method, commands, rollback) is read from the logged
  plan; proposals logged before plans were (``title``, ``method``, ``commands``, ``rollback`` keys)
  are still shown.
* ``approval``  written by ``IncidentStore.record_approval`` (``plan_hash``: the plan's digest).
* ``note``      ``{"action_run": {...}}`` and ``{"action_result": {"action", "plan_hash", "ok",
  "summary"}}`` — the run started, and how it went.
* ``note``      ``{"plan_error": {"action", "error", "batch", "offered"}}`` — why an action was not
  offered (shown until the action is offered again).
* ``refusal``   ``{"action", "user", "code", "reason", "plan_hash", "stale": bool}`` — a decision
  against running a plan (``runbooks.approvals.REFUSALS``).
* ``export``    written by ``IncidentStore.record_export``.
* ``interrupted`` written by ``IncidentStore.record_interruption`` (``work``, ``reason``, for a change
  ``phase`` and ``host_state``): the work stopped without a result (see ``bot.recovery``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from bot.domain import StepProgress
from bot.views import IncidentCard, Offer, Outcome
from runbooks.findings import Diagnosis, Evidence, Finding, Severity
from runbooks.plan import Plan, PlanError

__all__ = [
    "alert_lines",
    "card_from_log",
    "confirm_summary",
    "diagnosis_from_json",
    "open_proposals",
    "parse_time",
    "proposals",
    "shown_plan",
    "slack_message_of",
]


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def _finding(data: dict[str, Any]) -> Finding:
    return Finding(
        code=str(data["code"]),
        severity=Severity(data.get("severity", "info")),
        summary=str(data.get("summary", "")),
        explanation=str(data.get("explanation", "")),
        evidence=tuple(
            Evidence(str(e.get("source", "")), str(e.get("line", ""))) for e in data.get("evidence") or []
        ),
    )


def diagnosis_from_json(data: dict[str, Any]) -> Diagnosis:
    return Diagnosis.from_json(data)


def slack_message_of(events: Sequence[Any]) -> tuple[str, str] | None:
    """(channel, ts) of the incident's Slack message, if the bot posted one."""
    for event in events:
        msg = event.payload.get("slack_message") if event.kind == "note" else None
        if isinstance(msg, dict) and msg.get("channel") and msg.get("ts"):
            return str(msg["channel"]), str(msg["ts"])
    return None


def _is_offer(event: Any) -> bool:
    # Other writers (``bondbot fix --incident``) log proposals too, without a button behind them.
    p = event.payload
    return event.kind == "proposal" and all(k in p for k in ("plan_hash", "action", "expires_at"))


def shown_plan(proposal: dict[str, Any]) -> tuple[str, str, tuple[str, ...], tuple[str, ...]]:
    """What the message shows of a proposal: title, method, commands, rollback.

    From the logged ``Plan``: its steps in order (an operator's step as ``(operator) ...``), the
    rollback and restore steps apart; operator steps after the last command are how the operator
    restores what the plan did (the manual failover test's port), so they are shown there too.
    """
    try:
        plan = Plan.from_dict(proposal["plan"]) if isinstance(proposal.get("plan"), dict) else None
    except (PlanError, KeyError, TypeError, ValueError):
        plan = None
    if plan is None:
        return (str(proposal.get("title", "")), str(proposal.get("method", "")),
                tuple(proposal.get("commands") or ()), tuple(proposal.get("rollback") or ()))

    def text(step: Any) -> str:
        return step.command or f"(operator) {step.instruction}"

    forward = [s for s in plan.steps if s.role not in ("rollback", "restore")]
    back = [text(s) for s in plan.steps_for("rollback", "restore")]
    last_command = max((i for i, s in enumerate(forward) if s.command), default=-1)
    if not back and last_command < len(forward) - 1:
        back = [text(s) for s in forward[last_command + 1:]]
        forward = forward[:last_command + 1]
    method = plan.param("method_text") or str(proposal.get("method") or "") or plan.param("method") or ""
    return plan.title, method, tuple(text(s) for s in forward), tuple(back)


def confirm_summary(proposal: dict[str, Any]) -> str:
    """What the change is, in one sentence from the logged plan's title and parameters, for the
    confirm dialog (Slack allows 300 characters there; the exact commands stay in the message).

    E.g. "Enable MII link monitoring every 100 ms (miimon=100) on bond1 (db-07) via networkmanager,
    keeping the bond's mode and primary; rolls back by itself if the host stops answering for 60 s."
    Host-sourced parts are escaped where the dialog is built (``bot.views``); empty without a plan.
    """
    try:
        plan = Plan.from_dict(proposal["plan"]) if isinstance(proposal.get("plan"), dict) else None
    except (PlanError, KeyError, TypeError, ValueError):
        plan = None
    if plan is None:
        return ""
    subject = " ".join(v for _k, v in plan.subject)
    where = f"{subject} ({plan.host})" if subject else plan.host
    title = plan.title[:1].upper() + plan.title[1:]
    commands = sum(1 for s in plan.steps if s.command and s.role not in ("rollback", "restore"))
    if plan.action == "fix":
        backend = plan.param("backend")
        timeout = plan.param("checkpoint_timeout")
        text = f"{title} on {where}" + (f" via {backend}" if backend else "")
        if plan.param("monitor"):  # the bonding fix changes the link monitor only
            text += ", keeping the bond's mode and primary"
        if timeout:
            text += f"; rolls back by itself if the host stops answering for {timeout} s"
        return text + f". {commands} command(s), listed in the message."
    if plan.action in ("failover-test", "failover_test"):
        method = plan.param("method") or str(proposal.get("method_key") or "")
        return f"{title} on {where}" + (f" (method {method})" if method else "") + "."
    return f"{title} on {where}: {commands} command(s), listed in the message."


def _plan_of(proposal: dict[str, Any]) -> Plan | None:
    try:
        return Plan.from_dict(proposal["plan"]) if isinstance(proposal.get("plan"), dict) else None
    except (PlanError, KeyError, TypeError, ValueError):
        return None


def offer_steps(proposal: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """The plan's forward steps as (purpose, exact command or operator instruction), in order, for
    the thread: one line per step with what it is for, then its shell text."""
    plan = _plan_of(proposal)
    if plan is None:
        return tuple(("", c) for c in proposal.get("commands") or () if isinstance(c, str))
    return tuple((s.purpose, s.command or f"(operator) {s.instruction}") for s in plan.steps
                 if s.role not in ("rollback", "restore"))  # those are the rollback, shown apart


def offer_line(proposal: dict[str, Any]) -> str:
    """What the change does, in one line for the channel message (plain text; escaped by the view).

    The bonding fix: "miimon 0 → 100 on bond1, no down/up; rolls back by itself in 60 s if the host
    stops answering", from the plan's own parameters (the runtime values it read, the monitor it
    sets, the checkpoint timeout). Other plans: their title.
    """
    plan = _plan_of(proposal)
    if plan is None:
        return str(proposal.get("title") or proposal.get("action") or "")
    subject = " ".join(v for _k, v in plan.subject)
    on = f" on {subject}" if subject else ""
    if plan.action == "fix":
        before = dict(part.split("=", 1) for part in (plan.param("runtime_before") or "").split(", ") if "=" in part)
        raw = plan.context.get("monitor")
        monitor: dict[str, Any] = raw if isinstance(raw, dict) else {}
        timeout = plan.param("checkpoint_timeout")
        # bondbot's own fix (its plan carries the monitor it sets) changes the running bond in place:
        # no down/up. Another planner's plan is described by its title only.
        if monitor.get("kind") == "miimon" and monitor.get("miimon") is not None:
            line = f"miimon {before.get('miimon', '?')} → {monitor['miimon']}{on}, no down/up"
        elif monitor.get("kind") == "arp" and monitor.get("arp_interval") is not None:
            line = f"arp_interval {before.get('arp_interval', '?')} → {monitor['arp_interval']}{on}, no down/up"
        else:
            line = plan.title + on
        if timeout:
            line += f"; rolls back by itself in {timeout} s if the host stops answering"
        return line
    return plan.title + on


def _failover_figures(test: dict[str, Any]) -> str:
    """``failover 96 ms, 6 pings lost`` from the failover test's measurements (empty if none)."""
    parts = []
    if isinstance(test.get("detection_ms"), int | float) and test.get("failed_over"):
        parts.append(f"failover {test['detection_ms']:.0f} ms")
    elif test.get("failed_over"):
        parts.append("failover (time not measured)")  # never a bare "0 pings lost" that hides it
    elif test.get("failed_over") is False:
        parts.append("no failover")
    lost = test.get("lost_pings")
    if isinstance(lost, int) and not isinstance(lost, bool):
        parts.append(f"{lost} ping{'s' if lost != 1 else ''} lost")
    return ", ".join(parts)


def _result_line(action: str, state: str, summary: str, failover: str) -> str:
    """The result after a click, in a few words: verified / rolled back / failover 12 ms, 1 ping lost."""
    first = summary.strip().splitlines()[0] if summary.strip() else ""
    rolled = "roll" in first.lower()
    first = re.sub(r"^[A-Z][A-Z ]+:\s*", "", first)  # "ROLLED BACK: ..." -> "..." (the line says it)
    if state == "running":
        return "running"
    if action == "failover_test":
        verdict = "passed" if state == "succeeded" else "FAILED"
        return f"{verdict}: {failover}" if failover else (first[:160] or verdict)
    if action == "fix":
        if state == "succeeded":
            return "verified"
        return ("rolled back: " if rolled else "failed: ") + first[:160]
    return ("done" if state == "succeeded" else "failed") + (f": {first[:160]}" if first else "")


def proposals(events: Sequence[Any]) -> dict[str, dict[str, Any]]:
    """Plans the bot offered with a button, by plan hash (the latest proposal of a hash wins)."""
    return {e.payload["plan_hash"]: e.payload for e in events if _is_offer(e)}


def open_proposals(events: Sequence[Any]) -> dict[str, dict[str, Any]]:
    """The offers not replaced by a later batch offering the same action (approved or expired
    ones included: those are decided by the approvals and the clock)."""
    latest: dict[str, str] = {}
    for event in events:
        if _is_offer(event):
            latest[event.payload["action"]] = str(event.payload.get("batch", ""))
    return {h: p for h, p in proposals(events).items() if str(p.get("batch", "")) == latest[p["action"]]}


def card_from_log(
    incident: Any,
    events: Sequence[Any],
    *,
    now: datetime,
    running_steps: Sequence[StepProgress] = (),
    error: str | None = None,
) -> IncidentCard:
    """The card for ``incident`` as of ``now``: offers still open, outcomes of the others."""
    steps: tuple[StepProgress, ...] = tuple(running_steps)
    diagnosis: Diagnosis | None = None
    offered = proposals(events)
    current = open_proposals(events)
    last_offer_at: dict[str, int] = {}
    plan_errors: list[tuple[int, str, str]] = []
    failover_figures = ""
    approved: dict[str, tuple[str, datetime]] = {}
    results: dict[str, dict[str, Any]] = {}
    stale: dict[str, str] = {}
    exports: list[str] = []
    notes: list[str] = []
    interrupted: str | None = None
    for index, event in enumerate(events):
        payload = event.payload
        if _is_offer(event):
            last_offer_at[payload["action"]] = index
        if event.kind == "note" and isinstance(payload.get("triage_steps"), list):
            steps = tuple(
                StepProgress(str(s.get("name", "")), s.get("status", "ok"), str(s.get("detail", "")))
                for s in payload["triage_steps"]
            )
        elif event.kind == "note" and isinstance(payload.get("triage_error"), str):
            error = payload["triage_error"]
        elif event.kind == "diagnosis" and "findings" in payload:
            diagnosis = diagnosis_from_json(payload)
        elif event.kind == "approval" and "plan_hash" in payload:
            approved.setdefault(payload["plan_hash"], (event.actor, parse_time(event.ts)))
        elif event.kind == "note" and isinstance(payload.get("action_result"), dict):
            results[payload["action_result"].get("plan_hash", "")] = payload["action_result"]
        elif event.kind == "refusal" and (payload.get("stale") or payload.get("code") == "declined") \
                and payload.get("plan_hash"):
            # Stale (the host changed) or declined (a person said no): the offer is closed for good.
            stale[payload["plan_hash"]] = str(payload.get("reason", "the plan no longer applies"))
        elif event.kind == "note" and isinstance(payload.get("plan_error"), dict):
            action = str(payload["plan_error"].get("action", ""))
            what = {"fix": "Fix", "failover_test": "Failover test"}.get(action, action)
            plan_errors.append((index, action, f"{what} not offered: {payload['plan_error'].get('error', '')}"))
        elif event.kind == "interrupted":
            what = {"fix": "the fix", "failover_test": "the failover test"}.get(str(payload.get("work")), "the triage")
            interrupted = f"{what} stopped without a result: {payload.get('reason', '')}"
            if payload.get("host_state"):
                interrupted += f". Host now: {payload['host_state']}"
        elif event.kind == "verification" and isinstance(payload.get("failover_test"), dict):
            failover_figures = _failover_figures(payload["failover_test"])
        elif event.kind == "export":
            fmt, sha = _mrkdwn_escape(str(payload.get("format", "?"))), _mrkdwn_escape(str(payload.get("sha256", ""))[:12])
            exports.append(f"Timeline exported as {fmt} by {_who(event.actor)} (sha256 {sha}…)")

    notes += alert_lines(events)  # the alerts that opened or updated it (bot.alert_flow)
    # A reason why an action was not offered holds until the action is offered again.
    notes += [text for index, action, text in plan_errors if index > last_offer_at.get(action, -1)]
    offers: list[Offer] = []
    outcomes: list[Outcome] = []
    for plan_hash, p in offered.items():
        action = p.get("action", "fix")
        title, method, commands, rollback = shown_plan(p)
        method_key = str(p.get("method_key") or "")
        if plan_hash not in approved and plan_hash not in current:
            continue  # replaced by a newer offer of the same action
        if plan_hash in approved:
            approver, at = approved[plan_hash]
            result = results.get(plan_hash)
            state: Literal["running", "succeeded", "failed"]
            if result is None:
                state = "running"
            else:
                state = "succeeded" if result.get("ok") else "failed"
            summary = str((result or {}).get("summary", ""))
            outcomes.append(
                Outcome(action, state, approver, at, commands, summary, method_key,
                        result_line=_result_line(action, state, summary, failover_figures), plan_hash=plan_hash)
            )
        elif plan_hash in stale:
            outcomes.append(Outcome(action, "stale", summary=stale[plan_hash], method=method_key))
        elif parse_time(p["expires_at"]) <= now:
            outcomes.append(Outcome(action, "expired", method=method_key))
        else:
            offers.append(
                Offer(
                    action=action,
                    title=title,
                    method=method,
                    commands=commands,
                    rollback=rollback,
                    plan_hash=plan_hash,
                    expires_at=parse_time(p["expires_at"]),
                    method_key=method_key,
                    summary=confirm_summary(p),
                    line=offer_line(p),
                    steps=offer_steps(p),
                )
            )
    status = getattr(incident.status, "value", incident.status)
    return IncidentCard(
        incident_id=incident.id,
        host=incident.host,
        bond=incident.about,  # the subject in words (bond0), or the runbook's name for a host-level one
        requester=incident.requester,
        opened_at=parse_time(incident.created_at),
        status=str(status),
        steps=steps,
        diagnosis=diagnosis,
        error=error,
        offers=tuple(offers),
        outcomes=tuple(outcomes),
        exports=tuple(exports),
        notes=tuple(notes),
        interrupted=interrupted,
    )


def _mrkdwn_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _who(actor: str) -> str:
    """A Slack user as a mention; anyone else (``cli:root``) as escaped text."""
    if actor[:1] in ("U", "W") and actor.isalnum():
        return f"<@{actor}>"
    return _mrkdwn_escape(actor)


def alert_lines(events: Any) -> list[str]:
    """The card's lines about the alerts that opened or updated an incident (plain text)."""
    seen: dict[str, dict[str, Any]] = {}
    counts: dict[str, int] = {}
    for event in events:
        payload = event.payload
        if event.kind != "note" or not isinstance(payload.get("alert"), Mapping):
            continue
        a = payload["alert"]
        fp = str(a.get("fingerprint", ""))
        counts[fp] = counts.get(fp, 0) + 1
        first = seen.setdefault(fp, dict(a))
        first["status"], first["ends_at"], first["last_ts"] = a.get("status"), a.get("ends_at"), event.ts
    lines = []
    for fp, a in seen.items():
        name, receiver = a.get("alertname") or "(no alertname)", a.get("receiver") or "(unnamed)"
        n = counts[fp]
        if a.get("status") == "resolved":
            state = f"resolved (ended {a.get('ends_at') or a.get('last_ts')})"
        else:
            state = f"firing since {a.get('starts_at') or '?'}"
        lines.append(f"🔔 Alert {name} from Alertmanager receiver {receiver}: {state}; "
                     f"{n} notification{'s' if n != 1 else ''}")
    return lines
