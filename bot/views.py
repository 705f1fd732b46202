"""Every message the bot shows, built in one place with ``slack_sdk.models`` (so its validation runs).

Listeners never assemble JSON: they build a view model (``IncidentCard`` and friends) from the
incident log and call a function here. Each function returns ``Rendered`` (fallback ``text`` plus
``blocks`` as dicts). Slack's limits are enforced here, not hoped for: at most 50 blocks, 3000
characters per section, 300 per confirm dialog; anything longer is clipped with a note saying
where the full text is (the thread, or the export).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ConfirmObject,
    ContextBlock,
    HeaderBlock,
    MarkdownTextObject,
    Option,
    PlainTextObject,
    SectionBlock,
    StaticSelectElement,
)

from bot import mrkdwn
from bot.commands import USAGE
from bot.domain import StepProgress
from runbooks.findings import Diagnosis, Finding, Severity

__all__ = [
    "ACTION_APPLY_FIX",
    "ACTION_EXPORT",
    "ACTION_FAILOVER_TEST",
    "ACTION_PICK_BOND",
    "bond_choice_message",
    "ACTION_RERUN_TRIAGE",
    "ACTION_RUN_ACTION",
    "INLINE_OUTPUT_LIMIT",
    "IncidentCard",
    "Offer",
    "Outcome",
    "Rendered",
    "audit_message",
    "button_value",
    "error_message",
    "failover_action_id",
    "help_message",
    "incident_message",
    "output_message",
    "outputs_comment",
    "outputs_message",
    "parse_button_value",
    "refusal_message",
    "status_message",
    "text_message",
    "usage_message",
]

ACTION_APPLY_FIX = "bond_apply_fix"
ACTION_FAILOVER_TEST = "bond_failover_test"
ACTION_EXPORT = "bond_export"
#: The select menu offering the bonds a host has (a named bond it does not have): triage the pick.
ACTION_PICK_BOND = "bond_pick"
#: On an interrupted incident: run the triage of its host and bond again (a new incident).
ACTION_RERUN_TRIAGE = "bond_rerun_triage"
#: A runbook's own action (steps as data in its YAML, e.g. the test runbook's ``sync``):
#: ``bond_run_action_<name>``, the name in the button's value too.
ACTION_RUN_ACTION = "bond_run_action"

SECTION_LIMIT = 3000
#: Evidence lines in the channel message (all of them are in the thread and the export).
MAIN_EVIDENCE = 5
CONFIRM_TEXT_LIMIT = 300
MAX_BLOCKS = 50
#: Raw outputs up to this size go into the thread as text; longer ones as a file.
INLINE_OUTPUT_LIMIT = 2800

_STEP_ICONS = {"pending": "▫️", "running": "⏳", "ok": "✅", "failed": "❌", "skipped": "➖"}
_SEVERITY_ICONS = {Severity.CRITICAL: "🔴", Severity.WARNING: "🟠", Severity.INFO: "🔵"}


@dataclass(frozen=True)
class Rendered:
    text: str
    blocks: list[dict[str, Any]]


@dataclass(frozen=True)
class Offer:
    """A change waiting for approval: shown with its exact commands and rollback, and a button.

    Built from the ``runbooks.plan.Plan`` logged with the offer (``bot.incident_view.shown_plan``);
    ``plan_hash`` is that plan's ``digest``, the only hash the button, the approval and the run use.
    """

    action: Literal["fix", "failover_test"]
    title: str
    method: str
    commands: tuple[str, ...]
    rollback: tuple[str, ...]
    plan_hash: str
    expires_at: datetime
    method_key: str = ""  # the failover test's method: lab, manual or host
    #: What the change is, in one sentence built from the logged plan's title and parameters
    #: (``bot.incident_view.confirm_summary``): the confirm dialog's text.
    summary: str = ""
    #: What the change does, in one line for the channel message (``bot.incident_view.offer_line``).
    line: str = ""
    #: The plan's steps as (purpose, exact command): the thread shows them, one line per step.
    steps: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Outcome:
    """What happened to an offer: approved (running or done), refused as stale, or expired."""

    action: Literal["fix", "failover_test"]
    state: Literal["running", "succeeded", "failed", "expired", "stale"]
    approver: str | None = None
    approved_at: datetime | None = None
    commands: tuple[str, ...] = ()
    summary: str = ""
    method: str = ""
    #: The result in a few words for the one-line outcome (``bot.incident_view``): "verified",
    #: "rolled back: …", "passed: failover 12 ms, 1 ping lost".
    result_line: str = ""
    plan_hash: str = ""


@dataclass(frozen=True)
class IncidentCard:
    """Everything the channel message of one incident shows, derived from the incident log."""

    incident_id: str
    host: str
    bond: str
    requester: str
    opened_at: datetime
    status: str
    steps: tuple[StepProgress, ...] = ()
    diagnosis: Diagnosis | None = None
    error: str | None = None
    offers: tuple[Offer, ...] = ()
    outcomes: tuple[Outcome, ...] = ()
    exports: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    #: Why the triage or change stopped without a result (``interrupted`` event), if it did.
    interrupted: str | None = None


# ------------------------------------------------------------------ helpers


def _clip(text: str, limit: int, note: str = "…") -> str:
    if len(text) <= limit:
        return text
    return text[: max(0, limit - len(note) - 1)].rstrip() + "\n" + note


def _code(lines: list[str] | tuple[str, ...], limit: int, note: str) -> str:
    """A code block of ``lines`` that fits in ``limit`` characters, dropping whole lines if needed.

    The lines are host-sourced: ``bot.mrkdwn.code_block`` escapes them so the block ends only here."""
    block = mrkdwn.code_block(lines)
    if len(block) <= limit:
        return block
    kept: list[str] = []
    budget = limit - 8 - len(note) - 1
    used = 0
    for line in lines:
        size = mrkdwn.code_body_len(line) + 1
        if used + size > budget:
            break
        kept.append(line)
        used += size
    return f"{mrkdwn.code_block(kept)}\n{note}"


#: A command longer than this is shortened in messages (the proposal event and the export keep it
#: whole), so that one long script (the host's armed undo) does not push the others out.
COMMAND_DISPLAY_LIMIT = 240


def _commands_code(commands: list[str] | tuple[str, ...], limit: int, note: str) -> str:
    shown = [
        c if len(c) <= COMMAND_DISPLAY_LIMIT
        else f"{c[:COMMAND_DISPLAY_LIMIT - 40]} …[{len(c) - COMMAND_DISPLAY_LIMIT + 40} more characters in the export]"
        for c in commands
    ]
    return _code(shown, limit, note)


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _escape(text: str) -> str:
    """Host- or user-provided text for mrkdwn: it must not become markup (``bot.mrkdwn.text``)."""
    return mrkdwn.text(text)


def _requester(requester: str) -> str:
    """Who asked: a Slack user as a mention; an alert's ``alertmanager:<receiver>`` or a CLI
    actor as escaped text (never a broken mention)."""
    if requester[:1] in ("U", "W") and requester.isalnum():
        return f"<@{requester}>"
    if requester.startswith("alertmanager:"):
        return "Alertmanager receiver " + _escape(requester.partition(":")[2])
    return _escape(requester)


def _section(text: str) -> SectionBlock:
    return SectionBlock(text=MarkdownTextObject(text=_clip(text, SECTION_LIMIT)))


def _context(text: str) -> ContextBlock:
    return ContextBlock(elements=[MarkdownTextObject(text=_clip(text, SECTION_LIMIT))])


def _render(text: str, blocks: list[Block]) -> Rendered:
    if len(blocks) > MAX_BLOCKS:
        blocks = blocks[: MAX_BLOCKS - 1] + [_context("_More in the thread and in the export._")]
    return Rendered(text=_clip(mrkdwn.fallback(text), 3000), blocks=[b.to_dict() for b in blocks])


def button_value(**fields: str) -> str:
    """Compact JSON for a button's ``value`` (Slack allows 2000 characters)."""
    value = json.dumps(fields, separators=(",", ":"), sort_keys=True)
    if len(value) > 2000:
        raise ValueError("button value exceeds Slack's 2000 characters")
    return value


def parse_button_value(value: str) -> dict[str, str]:
    """The fields of a button value, or ValueError: values come back from the client, untrusted."""
    try:
        data = json.loads(value)
    except (json.JSONDecodeError, TypeError):
        raise ValueError("malformed button value") from None
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise ValueError("malformed button value")
    return data


# ------------------------------------------------------------------ the incident message


def failover_action_id(method: str) -> str:
    """The failover test button of one method (action ids must be unique within a message)."""
    return f"{ACTION_FAILOVER_TEST}_{method}" if method else ACTION_FAILOVER_TEST


def _confirm_text(offer: Offer, host: str) -> str:
    """The confirm dialog says what the change is, within Slack's 300 characters.

    The sentence comes from the plan (``Offer.summary``); the exact commands stay in the message
    (they rarely fit). The failover test's dialog says first that it needs a maintenance window,
    because confirming it is the approver's statement that the host is in one. Plain text: Slack
    parses no markup in it; control characters are shown visibly.
    """
    if offer.action == "failover_test":
        restore = "; ".join(offer.rollback) or "none needed"
        text = (
            f"Needs a maintenance window: by confirming you state that {host} is in one. "
            + (offer.summary or f"The test cuts the bond's active port. Method {offer.method}")
            + f"\nRestore: {restore}"
        )
        return _clip(mrkdwn.plain(text), CONFIRM_TEXT_LIMIT)
    if offer.summary:
        return _clip(mrkdwn.plain(offer.summary), CONFIRM_TEXT_LIMIT)
    short = (
        f"{offer.title} on {host}: the {len(offer.commands)} command(s) and the rollback listed in the message. "
        f"Method: {offer.method}"
    )
    return _clip(mrkdwn.plain(short), CONFIRM_TEXT_LIMIT)


def _outcome_label(outcome: Outcome) -> str:
    return ("Fix" if outcome.action == "fix"
            else "Failover test" + (f" ({outcome.method})" if outcome.method else "") if outcome.action == "failover_test"
            else _escape(outcome.action))


def _outcome_text(outcome: Outcome) -> str:
    """One line after a click: who approved, when, and the result (the details are in the thread)."""
    label = _outcome_label(outcome)
    if outcome.state == "expired":
        return f"⌛ {label}: the approval window closed; run `/bond triage` again for a new plan."
    if outcome.state == "stale":
        return f"⚠️ {label}: not run — {_escape(outcome.summary)}"
    who = f"approved by <@{outcome.approver}> at {_when(outcome.approved_at)}" if outcome.approver and outcome.approved_at else ""
    if outcome.state == "running":
        return f"⏳ {label} {who}: running…"
    icon = "✅" if outcome.state == "succeeded" else "❌"
    result = outcome.result_line or ("succeeded" if outcome.state == "succeeded" else "failed")
    return f"{icon} {label} {who}: {_escape(result)}"


def outcome_details(outcome: Outcome) -> str:
    """The thread's account of one decided offer: what ran and the whole report."""
    text = _outcome_text(outcome)
    if outcome.commands:
        text += "\nRan:\n" + _commands_code(outcome.commands, 1400, "_(more in the export)_")
    summary = outcome.summary.strip()
    if summary:
        text += "\n" + _code(summary.splitlines(), 1200, "_(the full report is in the export)_")
    return text


def _finding_line(finding: Finding) -> str:
    icon = _SEVERITY_ICONS.get(finding.severity, "•")
    return f"{icon} `{mrkdwn.inline_code(finding.code)}` {_escape(finding.summary)}"


def step_line(step: StepProgress) -> str:
    """One triage step in the incident message (mrkdwn): ``✅ `cat /proc/net/bonding/bond0` — detail``."""
    return f"{_STEP_ICONS[step.status]} `{_escape(step.name)}`" + (f" — {_escape(step.detail)}" if step.detail else "")


def incident_message(card: IncidentCard) -> Rendered:
    """The one channel message of an incident, in whatever state the incident is in."""
    blocks: list[Block] = [
        HeaderBlock(text=PlainTextObject(text=_clip(mrkdwn.plain(f"{card.host} · {card.bond} · {card.status}"), 150))),
        _context(
            f"Incident `{_escape(card.incident_id)}` · requested by {_requester(card.requester)} · "
            f"{_when(card.opened_at)} · status: *{card.status}*"
        ),
    ]
    diagnosis = card.diagnosis
    if card.steps and diagnosis is None:
        blocks.append(_section("*Triage steps*\n" + "\n".join(step_line(s) for s in card.steps)))
    elif card.steps:
        ran = sum(1 for s in card.steps if s.status == "ok")
        failed = [s for s in card.steps if s.status == "failed"]
        note = f"{ran}/{len(card.steps)} triage steps ran; raw outputs in the thread."
        if failed:
            note += " Could not run: " + ", ".join(
                f"`{_escape(s.name)}` ({_escape(s.detail)})" for s in failed
            )
        blocks.append(_context(note))
    if card.error:
        blocks.append(_section(f"❌ *Triage failed:* {_escape(card.error)}"))

    if diagnosis is not None:
        root = diagnosis.root_cause
        if diagnosis.inconclusive:
            # Never a ✅: what could not be read is said, and the bond is not called healthy.
            reasons = "\n".join(f"• {_escape(r)}" for r in diagnosis.reasons) or "• part of its state could not be read"
            blocks.append(_section(_clip(
                f"⚠️ *Inconclusive:* `{_escape(diagnosis.bond)}` ({_escape(diagnosis.mode)}) is neither diagnosed nor "
                f"healthy: its state could not be fully read.\n{reasons}", SECTION_LIMIT, "_(more in the export)_")))
        elif root is None:
            risks = diagnosis.risks
            head = f"✅ *Healthy:* `{_escape(diagnosis.bond)}` ({_escape(diagnosis.mode)}): no root cause in what was read"
            if risks:
                head += f", {len(risks)} risk{'s' if len(risks) != 1 else ''}:\n" + "\n".join(_finding_line(f) for f in risks)
            blocks.append(_section(_clip(head + ".", SECTION_LIMIT, "_(more in the export)_")))
        else:
            # One sentence and at most MAIN_EVIDENCE lines: the why, the other findings and every
            # command are in the thread (``details_message``).
            text = f"*Root cause:* {_escape(root.summary)}  `{mrkdwn.inline_code(root.code)}`"
            if root.evidence:
                ev = [f"{e.source}: {e.line}" for e in root.evidence[:MAIN_EVIDENCE]]
                text += "\n" + _code(ev, SECTION_LIMIT - len(text) - 40, "_(more in the thread)_")
                if len(root.evidence) > MAIN_EVIDENCE:
                    text += f"\n_+{len(root.evidence) - MAIN_EVIDENCE} more evidence lines in the thread_"
            blocks.append(_section(text))
        shown_risks = diagnosis.risks if diagnosis.healthy else ()
        others = [f for f in diagnosis.findings if (root is None or f.code != root.code) and f not in shown_risks]
        if others:
            blocks.append(_context(f"{len(others)} other finding{'s' if len(others) != 1 else ''}: "
                                   + ", ".join(f"`{mrkdwn.inline_code(f.code)}`" for f in others[:8])
                                   + " (details in the thread)"))

    for note in card.notes:
        blocks.append(_context(f"ℹ️ {_escape(note)}"))
    if card.interrupted:
        blocks.append(_section(
            f"⚠️ *Interrupted:* {_escape(card.interrupted)}\n"
            f"Re-run `/bond triage {_escape(card.host)} {_escape(card.bond)}` (or the button below)."
        ))
    if card.outcomes:
        blocks.append(_section("\n".join(_outcome_text(o) for o in card.outcomes)))

    buttons: list[ButtonElement] = []
    fix_offers = [o for o in card.offers if o.action == "fix"]
    failover_offers = [o for o in card.offers if o.action == "failover_test"]
    offer_lines = [f"*Fix:* {_escape(o.line or o.title)}" for o in fix_offers]
    if failover_offers:
        methods = ", ".join(f"`{mrkdwn.inline_code(o.method_key or '?')}`" for o in failover_offers)
        offer_lines.append(f"*Failover test:* {_escape(failover_offers[0].line or failover_offers[0].title)} "
                           f"— ⚠️ needs a maintenance window; methods {methods}")
    if offer_lines:
        blocks.append(_section("\n".join(offer_lines)))
        blocks.append(_context(
            f"Needs an approver other than {_requester(card.requester)} · expires "
            f"{_when(min(o.expires_at for o in fix_offers + failover_offers))} · "
            "every step, its exact commands and the rollback are in the thread"))
    for offer in fix_offers + failover_offers:
        is_fix = offer.action == "fix"
        buttons.append(
            ButtonElement(
                text=PlainTextObject(
                    text="Apply the fix" if is_fix
                    else f"Failover test: {offer.method_key}" if offer.method_key else "Run the failover test"
                ),
                action_id=ACTION_APPLY_FIX if is_fix else failover_action_id(offer.method_key),
                value=button_value(incident=card.incident_id, plan=offer.plan_hash),
                style="primary" if is_fix else None,
                confirm=ConfirmObject(
                    title="Apply the fix?" if is_fix else "Run the failover test?",
                    text=PlainTextObject(text=_confirm_text(offer, card.host)),
                    confirm="Approve and run",
                    deny="Cancel",
                    style="primary" if is_fix else "danger",
                ),
            )
        )
    for offer in (o for o in card.offers if o.action not in ("fix", "failover_test")):
        blocks.append(_section(f"*Offered:* {_escape(offer.line or offer.title)}"))
        blocks.append(_context(f"Needs an approver other than {_requester(card.requester)} · expires "
                               f"{_when(offer.expires_at)} · its commands and undo are in the thread"))
        buttons.append(ButtonElement(
            text=PlainTextObject(text=_clip(mrkdwn.plain(offer.title), 70)),
            action_id=f"{ACTION_RUN_ACTION}_{offer.action}"[:255],
            value=button_value(incident=card.incident_id, plan=offer.plan_hash, action=offer.action),
            confirm=ConfirmObject(
                title=_clip(mrkdwn.plain(f"{offer.title}?"), 100),
                text=PlainTextObject(text=_confirm_text(offer, card.host)),
                confirm="Approve and run",
                deny="Cancel",
            ),
        ))
    if diagnosis is not None or card.error or card.interrupted:
        buttons.append(
            ButtonElement(
                text=PlainTextObject(text="Export timeline"),
                action_id=ACTION_EXPORT,
                value=button_value(incident=card.incident_id, format="md"),
            )
        )
    if card.interrupted:
        buttons.append(
            ButtonElement(
                text=PlainTextObject(text="Re-run triage"),
                action_id=ACTION_RERUN_TRIAGE,
                value=button_value(incident=card.incident_id),
                style="primary" if not card.offers else None,
            )
        )
    for export in card.exports:
        blocks.append(_context(f"📄 {export}"))  # built by incident_view, escaped there (keeps the mention)
    if buttons:
        # The actions block goes last so the buttons stay at the bottom, and survive clipping.
        if len(blocks) > MAX_BLOCKS - 2:
            blocks = blocks[: MAX_BLOCKS - 2] + [_context("_More in the export._")]
        blocks.append(ActionsBlock(block_id=f"actions:{card.incident_id}", elements=buttons))

    if diagnosis is not None and diagnosis.root_cause is not None:
        fallback = f"{card.host} {card.bond}: {diagnosis.root_cause.summary}"
    elif diagnosis is not None and diagnosis.inconclusive:
        fallback = f"{card.host} {card.bond}: inconclusive: " + ("; ".join(diagnosis.reasons) or "state not fully read")
    elif diagnosis is not None:
        fallback = f"{card.host} {card.bond}: {diagnosis.headline()}"
    elif card.error:
        fallback = f"{card.host} {card.bond}: triage failed: {card.error}"
    elif card.interrupted:
        fallback = f"{card.host} {card.bond}: interrupted: re-run /bond triage {card.host} {card.bond}"
    else:
        fallback = f"Triage of {card.host} {card.bond} running ({card.status})"
    return _render(f"[{card.incident_id}] {fallback}", blocks)


def _steps_text(offer: Offer, limit: int) -> str:
    """One line per step with its purpose, then its exact shell text."""
    lines = []
    for n, (purpose, command) in enumerate(offer.steps or tuple(("", c) for c in offer.commands), 1):
        shown = command if len(command) <= COMMAND_DISPLAY_LIMIT else (
            f"{command[:COMMAND_DISPLAY_LIMIT - 40]} …[{len(command) - COMMAND_DISPLAY_LIMIT + 40} more characters in the export]")
        lines.append(f"{n}. {_escape(purpose) or '_step_'}\n{mrkdwn.code_block([shown])}")
    return _clip("\n".join(lines), limit, "_(the rest in the export)_")


def details_message(card: IncidentCard, offers: tuple[Offer, ...] | None = None) -> Rendered:
    """The thread post behind the channel message: the explanation, every offered plan's steps
    (purpose, then the exact commands), its rollback, and the other findings."""
    blocks: list[Block] = []
    diagnosis = card.diagnosis
    root = diagnosis.root_cause if diagnosis else None
    if root is not None:
        if root.explanation:
            blocks.append(_section(f"*Why:* {_escape(root.explanation)}"))
        if len(root.evidence) > MAIN_EVIDENCE:
            ev = [f"{e.source}: {e.line}" for e in root.evidence]
            blocks.append(_section("*All the evidence*\n" + _code(ev, SECTION_LIMIT - 30, "_(more in the export)_")))
    for offer in card.offers if offers is None else offers:
        what = {"fix": "Fix", "failover_test": "Failover test"}.get(offer.action, "Offered")
        method = f" ({_escape(offer.method_key)})" if offer.method_key else ""
        head = f"*{what}{method}: {_escape(offer.title)}* · plan `{mrkdwn.inline_code(offer.plan_hash[:12])}`\n"
        blocks.append(_section(head + _steps_text(offer, SECTION_LIMIT - len(head) - 10)))
        blocks.append(_section("*Rollback:*\n" + (_commands_code(offer.rollback, SECTION_LIMIT - 30, "_(more in the export)_")
                                                  if offer.rollback else "_none needed_")))
    if diagnosis is not None:
        others = [f for f in diagnosis.findings if root is None or f.code != root.code]
        if others:
            blocks.append(_section(_clip("*Other findings*\n" + "\n".join(_finding_line(f) for f in others),
                                         SECTION_LIMIT, "_(more in the export)_")))
    if not blocks:
        blocks.append(_context("No details beyond the message."))
    return _render(f"[{card.incident_id}] details: the why, the exact commands, the rollback", blocks)


def outcome_details_message(outcome: Outcome) -> Rendered:
    """``outcome_details`` as a thread post."""
    text = outcome_details(outcome)
    return _render(text, [_section(text)])


__all__ += ["details_message", "outcome_details", "outcome_details_message", "MAIN_EVIDENCE", "step_line"]


# ------------------------------------------------------------------ other messages


def output_message(command: str, text: str, exit_status: int | None = None) -> Rendered:
    """One raw triage output for the thread (only for outputs under ``INLINE_OUTPUT_LIMIT``)."""
    header = f"`$ {mrkdwn.inline_code(command)}`" + (f" (exit {exit_status})" if exit_status else "")
    body = _code(text.splitlines() or ["(no output)"], SECTION_LIMIT - len(header) - 2, "_(clipped)_")
    return _render(f"$ {command}", [_section(f"{header}\n{body}")])


#: At most this many outputs share one thread post (one section each); more go into one file.
OUTPUTS_PER_POST = 20


def outputs_message(outputs: list[tuple[str, str, int | None]]) -> Rendered | None:
    """The raw outputs of a triage as one thread post, a section per ``(command, text, exit)``;
    None when they do not fit in one message (then they go into one file)."""
    if len(outputs) > OUTPUTS_PER_POST or any(len(text) > INLINE_OUTPUT_LIMIT for _c, text, _e in outputs):
        return None
    blocks: list[Block] = []
    for command, text, exit_status in outputs:
        header = f"`$ {mrkdwn.inline_code(command)}`" + (f" (exit {exit_status})" if exit_status else "")
        body = _code(text.splitlines() or ["(no output)"], SECTION_LIMIT - len(header) - 2, "_(clipped)_")
        blocks.append(_section(f"{header}\n{body}"))
    return _render(f"Raw outputs of {len(outputs)} command(s)", blocks)


def outputs_comment(count: int, size: int) -> str:
    """The comment on the file of raw outputs (too many or too long for one post)."""
    return f"Raw outputs of {count} command(s) ({size} characters)"


def help_message() -> Rendered:
    lines = [
        "*bondbot* triages Linux bonding failover incidents and offers the fix for approval.",
        "• `/bond triage HOST [BOND]` — run the triage runbook on HOST: the bond named (or the inventory's), "
        "else every bond the host has, one incident each",
        "• `/bond triage HOST [SUBJECT] --runbook NAME` — the same with another runbook (by name: the built-in ones and BONDBOT_RUNBOOKS)",
        "• `/bond status INCIDENT` — where an incident stands",
        "• `/bond export INCIDENT [md|json|html]` — upload the incident's timeline here",
        "• `/bond audit [GROUP]` — triage every host of an inventory group, read-only",
        "• `/bond help` — this message",
        "Changes run only after an approver (not the requester) clicks the button.",
    ]
    return _render("bondbot help", [_section("\n".join(lines))])


def usage_message(problem: str) -> Rendered:
    return _render(f"{problem} {USAGE}", [_section(f"{_escape(problem)}\n{USAGE}")])


def error_message(text: str) -> Rendered:
    return _render(f"❌ {text}", [_section(f"❌ {_escape(text)}")])


def text_message(text: str) -> Rendered:
    return _render(text, [_section(_escape(text))])


def refusal_message(action: str, reason: str) -> Rendered:
    """``reason`` may hold the bot's own mentions (``<@U…>``, ``<#C…>``); anything else is escaped."""
    text = f"🚫 Not allowed to {action}: {reason}."
    return _render(text, [_section(mrkdwn.fallback(text))])


def status_message(card: IncidentCard, events: int, head_hash: str) -> Rendered:
    root = card.diagnosis.root_cause if card.diagnosis else None
    lines = [
        f"*Incident `{_escape(card.incident_id)}`* — {_escape(card.host)} {_escape(card.bond)} — status *{_escape(card.status)}*",
        f"Opened {_when(card.opened_at)} by {_requester(card.requester)}",
        f"Root cause: {_escape(root.summary)} `{mrkdwn.inline_code(root.code)}`" if root else "Root cause: none recorded",
    ]
    for outcome in card.outcomes:
        lines.append(_outcome_text(outcome).splitlines()[0])
    lines.append(f"{events} events in the log; head `{head_hash[:12]}`")
    return _render(lines[0], [_section("\n".join(lines))])


@dataclass(frozen=True)
class AuditRow:
    host: str
    bond: str
    verdict: str  # the text shown
    code: str | None = None
    incident_id: str | None = None
    #: diagnosed | healthy | inconclusive | no-bond | unreachable | error: picks the icon. Only a
    #: bond read in full and found healthy gets ✅.
    kind: str = "diagnosed"


_AUDIT_ICONS = {"diagnosed": "🔴", "healthy": "✅", "inconclusive": "⚠️", "no-bond": "➖",
                "unreachable": "❌", "error": "❌"}


def audit_message(group: str | None, rows: list[AuditRow]) -> Rendered:
    hosts = len({r.host for r in rows})
    title = f"Audit of {group or 'all hosts'}: {hosts} host(s)"
    lines = []
    for row in rows:
        code = f" `{mrkdwn.inline_code(row.code)}`" if row.code else ""
        inc = f" ({_escape(row.incident_id)})" if row.incident_id else ""
        icon = _AUDIT_ICONS.get(row.kind, "•")
        bond = f" {_escape(row.bond)}" if row.bond else ""
        lines.append(f"{icon} *{_escape(row.host)}*{bond}: {_escape(row.verdict)}{code}{inc}")
    blocks: list[Block] = [_section(f"*{_escape(title)}*")]
    chunk: list[str] = []
    for line in lines:
        if sum(len(c) + 1 for c in chunk) + len(line) > SECTION_LIMIT - 10:
            blocks.append(_section("\n".join(chunk)))
            chunk = []
        chunk.append(line)
    if chunk:
        blocks.append(_section("\n".join(chunk)))
    return _render(title, blocks)


__all__ += ["AuditRow"]


def bond_choice_message(host: str, problem: str, bonds: tuple[str, ...], *, runbook: str | None = None) -> Rendered:
    """``problem`` (e.g. "web-01 has no bond bond9: its bonds: bond0, bond1") and a select menu of
    the host's subjects (bonds): picking one triages it, with ``runbook`` when one was named. The
    bot never picks one itself."""
    text = f"❌ {problem}"
    blocks: list[Block] = [_section(f"❌ {_escape(problem)}")]
    if bonds:
        extra = {"runbook": runbook} if runbook else {}
        options = [
            Option(value=button_value(host=host, bond=b, **extra), text=PlainTextObject(text=mrkdwn.plain(b)[:75]))
            for b in bonds[:100]
        ]
        blocks.append(ActionsBlock(
            block_id=f"pick:{host}"[:255],
            elements=[StaticSelectElement(
                placeholder=PlainTextObject(text="Triage one of its bonds"),
                action_id=ACTION_PICK_BOND,
                options=options,
            )],
        ))
    return _render(text, blocks)
