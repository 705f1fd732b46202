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
    found = await _card_and_thread(bot, incident_id)
    if found is None or not found[0].offers:
        return
    await _post_in_thread(bot, found[1], views.details_message(found[0]), f"the details of {incident_id}")


async def post_outcome_details(bot: BondBot, incident_id: str, plan_hash: str) -> None:
    """After a run: what ran and the whole report, in the thread (the message shows one line)."""
    found = await _card_and_thread(bot, incident_id)
    if found is None:
        return
    outcome = next((o for o in found[0].outcomes if o.plan_hash == plan_hash and o.state in ("succeeded", "failed")),
                   None)
    if outcome is None:
        return
    await _post_in_thread(bot, found[1], views.outcome_details_message(outcome), f"the result of {incident_id}")


async def _card_and_thread(bot: BondBot, incident_id: str) -> tuple[views.IncidentCard, tuple[str, str]] | None:
    """The incident's card and its message's (channel, ts), read from the log; None without a message."""
    incident = await bot._store("get", incident_id)
    events = await bot._store("events", incident_id)
    where = slack_message_of(events)
    if where is None:
        return None
    return card_from_log(incident, events, now=bot.deps.clock()), where


async def _post_in_thread(bot: BondBot, where: tuple[str, str], rendered: views.Rendered, what: str) -> None:
    try:
        await bot.client.chat_postMessage(channel=where[0], thread_ts=where[1], text=rendered.text,
                                          blocks=rendered.blocks)
    except Exception:  # the message and its buttons stand without the thread post
        log.exception("posting %s to its thread failed", what)
