"""The Bolt listeners: parse, check the cheap authorization, ack at once, hand the work on.

Like bolt-python's examples: each listener acks within milliseconds with a short ephemeral answer
(or nothing) and spawns the slow part (SSH, the database, Slack API calls) as a ``BondBot``
background task. Values that come back from the client (button values, menu options) are parsed
and validated like typed text; a malformed one does nothing.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from typing import TYPE_CHECKING, Any

from bot import views
from bot.commands import CommandError, parse_command

if TYPE_CHECKING:
    from bot.app import BondBot

__all__ = ["malformed", "register"]

log = logging.getLogger(__name__)


def _ack_kwargs(rendered: views.Rendered) -> dict[str, Any]:
    return {"text": rendered.text, "blocks": rendered.blocks, "response_type": "ephemeral"}


def _channel_of(body: dict[str, Any]) -> str:
    return (body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id", "")


def _click_target(body: dict[str, Any]) -> tuple[str, str, str, str]:
    """(user, channel, message ts, button value) of a button click."""
    action = body["actions"][0]
    container = body.get("container") or {}
    return body["user"]["id"], _channel_of(body), container.get("message_ts", ""), action.get("value", "")


def malformed(body: Any) -> str | None:
    """Why a (signed) request body is not one Slack sends, or None. Checked before any listener:
    a malformed one is answered 400 and nothing runs."""
    if not isinstance(body, dict) or not body:
        return "the body is not a Slack payload"
    if body.get("command") is not None or "user_id" in body:
        for key in ("user_id", "channel_id", "command"):
            if not isinstance(body.get(key), str) or not body.get(key):
                return f"a slash command without {key}"
        if not isinstance(body.get("text", ""), str):
            return "a slash command whose text is not a string"
        return None
    kind = body.get("type")
    if kind == "block_actions":
        user = body.get("user")
        if not isinstance(user, dict) or not isinstance(user.get("id"), str) or not user["id"]:
            return "a click without a user"
        actions = body.get("actions")
        if not isinstance(actions, list) or not actions or not all(isinstance(a, dict) for a in actions):
            return "a click without actions"
        if not isinstance(actions[0].get("action_id"), str):
            return "a click without an action id"
        if "value" in actions[0] and not isinstance(actions[0]["value"], str):
            return "a click whose value is not a string"
        channel, container = body.get("channel") or {}, body.get("container") or {}
        if not isinstance(channel, dict) or not isinstance(container, dict) or not _channel_of(body):
            return "a click without a channel"
        return None
    if kind in ("event_callback", "url_verification", "view_submission", "view_closed", "shortcut",
                "message_action", "block_suggestion", "app_rate_limited"):
        return None
    return f"unknown payload type {str(kind)[:40]!r}"


def _team_of(body: dict[str, Any]) -> str | None:
    team = body.get("team")
    if isinstance(team, dict) and team.get("id"):
        return str(team["id"])
    if body.get("team_id"):
        return str(body["team_id"])
    user = body.get("user")
    if isinstance(user, dict) and user.get("team_id"):
        return str(user["team_id"])
    return None


def register(app: Any, bot: BondBot) -> None:
    """Add ``/bond`` and the buttons' listeners to ``app``; the work goes to ``bot``."""
    policy = bot.deps.policy

    from slack_bolt.response import BoltResponse

    @app.use
    async def gate(body: Any, next: Any) -> Any:  # noqa: A002 (Bolt's argument name)
        """Before any listener: a malformed payload is answered 400; another workspace is refused."""
        problem = malformed(body)
        if problem is not None:
            log.warning("malformed Slack payload refused (400): %s", problem)
            return BoltResponse(status=400, body=f"malformed payload: {problem}")
        pinned = await bot.pinned_team()
        team = _team_of(body)
        if pinned is not None and team != pinned and body.get("type") != "url_verification":
            log.warning("request from team %s refused: this bot serves %s", team, pinned)
            return BoltResponse(status=200, headers={"content-type": "application/json;charset=utf-8"},
                                body=json.dumps({"response_type": "ephemeral",
                                                 "text": "🚫 This bot serves another Slack workspace."}))
        return await next()

    def triage_limited(user: str, channel: str) -> views.Rendered | None:
        """The per-channel and per-user triage limits (``bot.limits``): "try again in N s"."""
        wait = max(bot.triage_by_channel.wait(channel), bot.triage_by_user.wait(user))
        if not wait:
            bot.triage_by_channel.hit(channel)
            bot.triage_by_user.hit(user)
            return None
        log.info("triage by %s in %s refused by the rate limit (retry in %d s)", user, channel, wait)
        return views.text_message(f"Too many triages started here just now: try again in {wait} s.")

    @app.command("/bond")
    async def on_bond(ack: Any, command: dict[str, Any], respond: Any) -> None:
        user, channel = command["user_id"], command["channel_id"]
        try:
            parsed = parse_command(command.get("text", ""), runbooks=bot.deps.triage.runbooks)
        except CommandError as exc:
            await ack(**_ack_kwargs(views.usage_message(str(exc))))
            return
        if parsed.verb == "help":
            await ack(**_ack_kwargs(views.help_message()))
            return
        # status and export show incident data, so they need the same right as triage (and then
        # the incident's own channel: bot.reports).
        decision = policy.may_triage(user, channel)
        if not decision:
            await ack(**_ack_kwargs(views.refusal_message(f"use `/bond {parsed.verb}` here", decision.reason)))
            return
        if parsed.verb == "triage" and (limited := triage_limited(user, channel)) is not None:
            await ack(**_ack_kwargs(limited))
            return
        if parsed.verb == "triage":
            target = f"{parsed.host} {parsed.bond or ''}".strip()
            await ack(**_ack_kwargs(views.text_message(f"Triage of {target} started; the incident follows in this channel.")))
            bot.spawn(bot.triage(parsed, user=user, channel=channel, trigger_id=command["trigger_id"],
                                 respond=respond), f"triage {target}")
        elif parsed.verb == "status":
            await ack()
            bot.spawn(bot.status(parsed.incident_id or "", user=user, channel=channel, respond=respond), "status")
        elif parsed.verb == "export":
            await ack(**_ack_kwargs(views.text_message(f"Exporting {parsed.incident_id} as {parsed.export_format}…")))
            bot.spawn(bot.export(parsed.incident_id or "", parsed.export_format, user=user, channel=channel),
                      "export")
        elif parsed.verb == "schedule":
            from bot import schedule_commands

            await ack()
            bot.spawn(schedule_commands.handle(bot, parsed.schedule_text, user=user, channel=channel, respond=respond),
                      "schedule")
        elif parsed.verb == "audit":
            await ack(**_ack_kwargs(views.text_message(f"Auditing {parsed.group or 'all hosts'} (read-only)…")))
            bot.spawn(bot.audit(parsed.group, user=user, channel=channel, respond=respond), "audit")

    @app.action(views.ACTION_APPLY_FIX)
    async def on_fix(ack: Any, body: dict[str, Any]) -> None:
        await ack()
        user, channel, ts, value = _click_target(body)
        bot.spawn(bot.handle_action("fix", user=user, channel=channel, message_ts=ts, value=value), "fix click")

    @app.action(re.compile("^" + re.escape(views.ACTION_FAILOVER_TEST) + "(_[a-z]+)?$"))
    async def on_failover(ack: Any, body: dict[str, Any]) -> None:
        await ack()
        user, channel, ts, value = _click_target(body)
        bot.spawn(bot.handle_action("failover_test", user=user, channel=channel, message_ts=ts, value=value),
                  "failover click")

    @app.action(re.compile("^" + re.escape(views.ACTION_RUN_ACTION) + "_[a-z0-9_]{1,40}$"))
    async def on_run_action(ack: Any, body: dict[str, Any]) -> None:
        """A runbook's own action approved: the service decides, as for the fix."""
        await ack()
        user, channel, ts, value = _click_target(body)
        try:
            kind = views.parse_button_value(value)["action"]
        except (ValueError, KeyError):
            kind = ""
        if not re.fullmatch(r"[a-z0-9_]{1,40}", kind) or kind in ("fix", "failover_test"):
            kind = "unknown_action"  # refused by the service: no offer of it
        bot.spawn(bot.handle_action(kind, user=user, channel=channel, message_ts=ts, value=value), "action click")

    @app.action(views.ACTION_PICK_BOND)
    async def on_pick_bond(ack: Any, body: dict[str, Any]) -> None:
        """A bond picked from the menu of a host's bonds: the same as `/bond triage HOST BOND`."""
        await ack()
        action = body["actions"][0]
        user, channel = body["user"]["id"], _channel_of(body)
        try:  # the value comes back from the client: parsed and validated like typed text
            fields = views.parse_button_value(((action.get("selected_option") or {}).get("value")) or "")
            runbook = f" --runbook {fields['runbook']}" if fields.get("runbook") else ""
            parsed = parse_command(f"triage {fields['host']} {fields['bond']}{runbook}", runbooks=bot.deps.triage.runbooks)
        except (ValueError, KeyError, CommandError):
            return
        if not policy.may_triage(user, channel):
            return
        if (limited := triage_limited(user, channel)) is not None:
            bot.spawn(bot._ephemeral(channel, user, limited), "rate limit answer")
            return
        trigger = str(body.get("trigger_id") or action.get("action_ts") or uuid.uuid4().hex)
        bot.spawn(bot.triage(parsed, user=user, channel=channel, trigger_id=trigger),
                  f"triage {parsed.host} {parsed.bond}")

    @app.action(views.ACTION_EXPORT)
    async def on_export(ack: Any, body: dict[str, Any]) -> None:
        await ack()
        user, channel, ts, value = _click_target(body)
        try:
            fields = views.parse_button_value(value)
            incident_id, fmt = fields["incident"], fields.get("format", "md")
        except (ValueError, KeyError):
            return
        if not policy.may_triage(user, channel):
            return
        bot.spawn(bot.export(incident_id, fmt, user=user, channel=channel, thread_ts=ts or None), "export click")
