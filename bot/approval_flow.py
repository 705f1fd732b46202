"""An approval click, from the button to the result, through ``runbooks.approvals``.

The bot decides nothing here: the service refuses or approves (two-person rule, expiry, the plan
re-read from the host and its digest compared with the one on the button, exactly once through
the store) and records every decision. This module only adds what is Slack's: who is an approver
(the policy, user groups resolved over the Slack API), the ephemeral answers, the message repaint,
the lease that lets another replica find a change cut off by a crash, and the thread reply that
the manual failover test sends to the approver.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from bot import mrkdwn, views
from bot.details import post_outcome_details
from bot.proposals import BOT_ACTOR, approved_hash_for, as_plan, plan_for, propose

if TYPE_CHECKING:
    from bot.app import BondBot
    from runbooks.approvals import Decision

__all__ = ["handle_action"]

log = logging.getLogger(__name__)

_LABELS = {"fix": "apply the fix", "failover_test": "run the failover test"}


async def handle_action(bot: BondBot, kind: str, *, user: str, channel: str, message_ts: str, value: str) -> None:
    """An approval click: authorize, let the service decide, run what it approved, show the result."""
    from incidents.errors import UnknownIncident

    try:
        fields = views.parse_button_value(value)
        incident_id, digest = fields["incident"], fields["plan"]
    except (ValueError, KeyError):
        await bot._ephemeral(channel, user, views.error_message("This button's data is malformed; nothing ran."))
        return
    label = _LABELS.get(kind, kind)
    try:
        incident = await bot._store("get", incident_id)
    except UnknownIncident as exc:
        await bot._ephemeral(channel, user, views.error_message(str(exc)))
        return
    approvals = bot.approvals
    why = bot.allowed_here(incident, channel, user, label)
    if why is not None:  # a button copied or forwarded out of the incident's channel
        await asyncio.to_thread(approvals.refuse, incident.id, digest, actor=user, code="wrong_channel",
                                message=why, action=kind)
        await bot._ephemeral(channel, user, views.refusal_message(label, why))
        return
    # Membership read fresh at each click (usergroups.users.list): a removed approver is refused at once.
    allowed = await bot.deps.policy.approver(user, bot.members_now)
    unauthorized = None if allowed else allowed.reason
    refused = await asyncio.to_thread(approvals.precheck, incident.id, digest, actor=user, action=kind,
                                      unauthorized=unauthorized)
    if refused is not None:
        await _tell(bot, refused, label, channel=channel, user=user)
        return
    remediation = bot.deps.remediation
    if remediation is None and kind in _LABELS:
        await asyncio.to_thread(approvals.refuse, incident.id, digest, actor=user, code="refused",
                                          message="remediation is not available in this bot", action=kind)
        await bot._ephemeral(channel, user, views.error_message("Remediation is not available in this bot."))
        return

    # Re-read the host right before deciding: the plan must still be exactly what was shown.
    offer = (await asyncio.to_thread(approvals.offers, incident.id))[digest]
    method = str(offer.payload.get("method_key") or "")
    bond = str(offer.payload.get("bond") or incident.bond or "")
    planned: Any = None
    current_error: str | None = None
    try:
        planned = await plan_for(bot, kind, incident.host, bond, method, incident=incident)
    except Exception as exc:
        current_error = f"re-checking {incident.host} refused the plan: {exc}"
    current = as_plan(kind, planned, method) if planned is not None else None

    # The lease first: a replica that dies right after the approval still leaves its work findable.
    lease = await bot.supervisor.begin(kind if kind in _LABELS else "action", incident.id, plan_hash=digest,
                                       host=incident.host, bond=bond, method=method, action=kind)
    if lease is None:  # another click (any replica) is approving and running this plan right now
        await asyncio.to_thread(approvals.refuse, incident.id, digest, actor=user, code="already_decided",
                                message="already being approved; it does not run twice", action=kind)
        await bot._ephemeral(channel, user, views.text_message("Already being approved; it does not run twice."))
        return
    decision = await asyncio.to_thread(approvals.decide, incident.id, digest, actor=user, approve=True,
                                       current=current, action=kind, unauthorized=unauthorized,
                                       current_error=current_error)
    if not decision:
        await bot.supervisor.release(lease)
        await _tell(bot, decision, label, channel=channel, user=user)
        return
    await bot.refresh_message(incident.id, urgent=True)  # the approved button goes at once

    async def notify(text: str) -> None:
        # What the run says (the manual failover test's instructions) quotes host data: escaped.
        await bot.client.chat_postMessage(channel=channel, thread_ts=message_ts or None,
                                          text=f"<@{user}> {mrkdwn.text(text)}")

    await asyncio.to_thread(approvals.begin_run, decision, actor=BOT_ACTOR)
    result: Any
    try:
        # The domain checks once more that what it runs is what was approved.
        if kind not in _LABELS:  # the runbook's own data action, run by role by the engine
            result = await bot.deps.triage.run_action(planned, incident_id=incident.id, actor=user)
        elif kind == "fix":
            assert remediation is not None
            result = await remediation.apply_fix(planned, incident_id=incident.id, actor=user,
                                                 approved_hash=approved_hash_for(planned))
        else:
            assert remediation is not None
            result = await remediation.run_failover_test(planned, incident_id=incident.id, actor=user,
                                                         approved_hash=approved_hash_for(planned), notify=notify)
    except Exception as exc:
        log.exception("%s on %s failed", kind, incident.id)
        result = exc
    await asyncio.to_thread(approvals.record_run, decision, result, actor=BOT_ACTOR)
    await post_outcome_details(bot, incident.id, decision.digest)  # the message keeps one line
    if kind == "fix" and not isinstance(result, BaseException) and result.ok:
        # With link monitoring on, the failover test can now prove the fix: offer it afresh.
        await propose(bot, incident.id, incident.host, bond, actions=("failover_test",))
        await bot.refresh.repaint_at_expiry(incident.id)
    await bot.refresh_message(incident.id, urgent=True)  # the result: shown now


async def _tell(bot: BondBot, decision: Decision, label: str, *, channel: str, user: str) -> None:
    """The ephemeral answer to a refused click; the message is repainted where the offer died."""
    code, message = decision.code, decision.message
    if code in ("self_approval", "unauthorized"):
        await bot._ephemeral(channel, user, views.refusal_message(label, message))
    elif code == "already_decided":
        prior = decision.prior
        text = (f"Already approved by {_who(prior.approver)} at {prior.approved_at}; it does not run twice."
                if prior is not None else "Already decided; it does not run twice.")
        await bot._ephemeral(channel, user, views.text_message(text))
    elif code == "expired":
        await bot._ephemeral(channel, user, views.error_message(
            "This approval request has expired; run `/bond triage` again for a fresh plan."))
        await bot.refresh_message(decision.incident_id)
    elif code == "stale":
        await bot._ephemeral(channel, user, views.error_message(f"Not run: {message}."))
        await bot.refresh_message(decision.incident_id)
    elif code == "no_offer":
        await bot._ephemeral(channel, user, views.error_message("No such plan on this incident; nothing ran."))
    elif code == "replaced":
        await bot._ephemeral(channel, user, views.error_message(
            "This plan was replaced by a newer one on the message; nothing ran."))
    else:
        await bot._ephemeral(channel, user, views.error_message(f"Not run: {message}."))


def _who(actor: str) -> str:
    """A Slack user as a mention; anyone else (``cli:root``) as escaped text."""
    if actor[:1] in ("U", "W") and actor.isalnum():
        return f"<@{actor}>"
    return actor.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
