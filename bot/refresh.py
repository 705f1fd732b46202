"""The incident's Slack message: rendered from the log, repainted on change and when offers expire.

Any replica may repaint any message at any time: what it shows comes from the incident log alone
(``bot.incident_view``), plus the steps of a triage still running in this replica. One lock per
incident keeps two repaints of one message from interleaving their reads and updates.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from typing import TYPE_CHECKING, Any

from bot import views
from bot.domain import StepProgress
from bot.incident_view import (
    card_from_log,
    open_proposals,
    parse_time,
    slack_message_of,
)

if TYPE_CHECKING:
    from bot.app import BondBot

__all__ = ["MessageRefresher"]

log = logging.getLogger(__name__)

#: Seconds after an offer's expiry before its message is repainted (clock skew with Slack's).
_EXPIRY_SLACK_S = 0.5


class MessageRefresher:
    """Renders and repaints incident messages; owns the expiry timers."""

    def __init__(self, bot: BondBot) -> None:
        self.bot = bot
        #: The steps of triages running in this replica, by incident (the log has them at the end).
        self.running_steps: dict[str, list[StepProgress]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._timers: set[asyncio.Task[Any]] = set()
        #: When each message was last repainted (monotonic), and the ones with a repaint scheduled.
        self._last_sent: dict[str, float] = {}
        self._pending: set[str] = set()
        #: Coalesced repaints sent since the last urgent one: the interval doubles every two.
        self._streak: dict[str, int] = {}

    async def render(self, incident_id: str, *, error: str | None = None) -> views.Rendered:
        bot = self.bot
        incident = await bot._store("get", incident_id)
        events = await bot._store("events", incident_id)
        steps = self.running_steps.get(incident_id, ())
        card = card_from_log(incident, events, now=bot.deps.clock(), running_steps=steps, error=error)
        return views.incident_message(card)

    async def refresh(self, incident_id: str, *, urgent: bool = False) -> None:
        """Re-render the incident's message from the log (safe to call from any replica, any time).

        Coalesced: at most one ``chat.update`` per ``update_interval`` (``bot.limits``) per message,
        and the interval doubles every two coalesced repaints (1, 1, 2, 2, 4, 4, 8 s ...; at most 8x)
        until an urgent one, so that a long triage (a 1,000-port bond: 2,000 step updates over 20 s)
        costs a handful of updates, not one per second.
        A change inside the interval schedules one repaint at its end (a background task, so
        ``drain`` waits for it), which shows everything logged until then. ``urgent`` (an approval
        just decided: the button must go now) repaints at once all the same, as does every repaint
        while the replica drains at shutdown.
        """
        if urgent or self.bot.supervisor.draining:  # at shutdown nothing waits for a later repaint
            self._streak[incident_id] = 0
            self._last_sent[incident_id] = time.monotonic()
            await self._send(incident_id)
            return
        if incident_id in self._pending:
            return
        streak = self._streak.get(incident_id, 0)
        interval = self.bot.deps.limits.update_interval * 2 ** min(3, streak // 2)
        self._streak[incident_id] = streak + 1
        now = time.monotonic()
        wait = interval - (now - self._last_sent.get(incident_id, -math.inf))
        if wait <= 0:
            self._last_sent[incident_id] = now
            await self._send(incident_id)
            return
        self._pending.add(incident_id)
        task = asyncio.get_running_loop().create_task(self._send_later(incident_id, wait),
                                                      name=f"repaint {incident_id}")
        self.bot._tasks.add(task)
        task.add_done_callback(self.bot._tasks.discard)

    async def _send_later(self, incident_id: str, wait: float) -> None:
        await asyncio.sleep(wait)
        self._pending.discard(incident_id)
        self._last_sent[incident_id] = time.monotonic()
        try:
            await self._send(incident_id)
        except Exception:
            log.exception("repainting %s failed", incident_id)

    async def _send(self, incident_id: str) -> None:
        lock = self._locks.setdefault(incident_id, asyncio.Lock())
        async with lock:
            events = await self.bot._store("events", incident_id)
            where = slack_message_of(events)
            if where is None:
                return
            rendered = await self.render(incident_id)
            await self.bot.client.chat_update(
                channel=where[0], ts=where[1], text=rendered.text, blocks=rendered.blocks
            )

    async def repaint_at_expiry(self, incident_id: str) -> None:
        """Repaint the message when its earliest open offer expires, so the dead button goes."""
        offers = list(open_proposals(await self.bot._store("events", incident_id)).values())
        if not offers:
            return
        expiry = min(parse_time(p["expires_at"]) for p in offers)
        delay = (expiry - self.bot.deps.clock()).total_seconds()
        # Not a tracked task: it only repaints, and waiting for it would hold up shutdown.
        timer = asyncio.get_running_loop().create_task(self._refresh_after(incident_id, delay))
        self._timers.add(timer)
        timer.add_done_callback(self._timers.discard)

    async def _refresh_after(self, incident_id: str, delay: float) -> None:
        await asyncio.sleep(max(0.0, delay) + _EXPIRY_SLACK_S)
        try:
            await self._send(incident_id)  # the expiry repaint is due now: not coalesced away
        except Exception:
            log.exception("repainting %s at expiry failed", incident_id)

    def cancel_timers(self) -> None:
        for timer in list(self._timers):
            timer.cancel()
