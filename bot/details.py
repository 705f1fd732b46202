"""The incident's thread: what the channel message leaves out so that it fits one screen.

The channel message says what is wrong, what proves it (at most five lines), what the fix does in one
line, and holds the buttons. The thread gets the rest, posted once per event that produces it: the
explanation, each offered plan's steps (purpose, then the exact shell text) and its rollback, the
other findings (``details_message``, when a batch of offers is made), and after a run the commands
that ran and the whole report (``outcome_details``). Both are read from the incident log, like the
message itself, so any replica can post them.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from bot import views
from bot.incident_view import card_from_log, slack_message_of

if TYPE_CHECKING:
    from bot.app import BondBot

__all__ = ["post_offer_details", "post_outcome_details"]

log = logging.getLogger(__name__)


async def post_offer_details(bot: BondBot, incident_id: str) -> None:
    """Post the open offers' details (and the why, the other findings) into the incident's thread."""
    incident = await bot._store("get", incident_id)
    events = await bot._store("events", incident_id)
    where = slack_message_of(events)
    if where is None:
        return
    card = card_from_log(incident, events, now=bot.deps.clock())
    if not card.offers:
        return
    rendered = views.details_message(card)
    try:
        await bot.client.chat_postMessage(channel=where[0], thread_ts=where[1], text=rendered.text,
                                          blocks=rendered.blocks)
    except Exception:  # the message and its buttons stand without the thread post
        log.exception("posting the details of %s to its thread failed", incident_id)


async def post_outcome_details(bot: BondBot, incident_id: str, plan_hash: str) -> None:
    """After a run: what ran and the whole report, in the thread (the message shows one line)."""
    incident = await bot._store("get", incident_id)
    events = await bot._store("events", incident_id)
    where = slack_message_of(events)
    if where is None:
        return
    card = card_from_log(incident, events, now=bot.deps.clock())
    outcome = next((o for o in card.outcomes if o.plan_hash == plan_hash and o.state in ("succeeded", "failed")), None)
    if outcome is None:
        return
    rendered = views.outcome_details_message(outcome)
    try:
        await bot.client.chat_postMessage(channel=where[0], thread_ts=where[1], text=rendered.text,
                                          blocks=rendered.blocks)
    except Exception:
        log.exception("posting the result of %s to its thread failed", incident_id)

