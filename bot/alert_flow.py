"""Alertmanager's webhook: a firing alert starts the same triage as ``/bond triage``.

The route (``POST /alertmanager`` by default, as in ``deploy/alerts/alertmanager.example.yml``)
checks the ``Authorization`` header (``bot.alertmanager.WebhookAuth``) *before* reading the body:
a wrong or missing credential is 401 and nothing is read, recorded or run. A good request is
parsed (400 on a malformed payload), answered 200 at once, and handled in a background task:

* each alert is mapped onto an inventory host and bond (``bot.alertmanager.map_alert``); one that
  names no inventory host is recorded (``alert_notifications``, outcome ``unmapped``) and reported
  in the channel once, never triaged on a guessed host;
* a firing alert seen for the first time (its group key + fingerprint, claimed in the store, so
  one replica in any number opens it) opens an incident whose requester is the Alertmanager
  receiver (``alertmanager:<receiver>``) and runs the runbook's triage in the configured channel,
  exactly as ``/bond triage HOST BOND`` does; the fix and the failover test are *offered*, and
  approving them stays a person's click (the requester is not a person, so any approver may);
* a repeat of that alert (Alertmanager re-sends while it fires) appends to the same incident and
  repaints its message; a resolved notification is recorded in the incident and shown on it.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bot import views
from bot.alertmanager import (
    MAX_BODY,
    Alert,
    AlertError,
    LabelRules,
    Mapped,
    Notification,
    Unauthorized,
    WebhookAuth,
    map_alert,
    parse_notification,
)
from bot.proposals import BOT_ACTOR
from incidents import automation

if TYPE_CHECKING:
    from aiohttp import web

    from bot.app import BondBot
    from ssh_exec import Inventory

__all__ = ["ALERTS_PATH", "AlertReceiver", "AlertSettings", "alert_note", "requester_for"]

log = logging.getLogger(__name__)

#: The webhook's path on the bot's HTTP server (and on Socket Mode's own listener).
ALERTS_PATH = "/alertmanager"
#: How long a repeat waits for the replica that claimed the alert to open its incident.
_BIND_WAIT_S = 30.0


@dataclass(frozen=True)
class AlertSettings:
    """Where alerts go and who may send them. ``runbook`` None: the triage service's default."""

    auth: WebhookAuth
    channel: str
    rules: LabelRules = field(default_factory=LabelRules)
    runbook: str | None = None
    path: str = ALERTS_PATH


def requester_for(receiver: str) -> str:
    """The incident's requester for an alert: the Alertmanager receiver (not a Slack user)."""
    name = "".join(ch for ch in receiver if ch.isprintable())[:120] or "unnamed"
    return f"alertmanager:{name}"


def alert_note(alert: Alert, notification: Notification) -> dict[str, Any]:
    """What an incident records of one notification of its alert (``note`` payload ``alert``)."""
    return {"alert": {
        "status": alert.status, "fingerprint": alert.fingerprint, "receiver": notification.receiver,
        "alertname": alert.labels.get("alertname", ""), "labels": dict(alert.labels),
        "summary": alert.annotations.get("summary", ""), "starts_at": alert.starts_at, "ends_at": alert.ends_at,
        "generator_url": alert.generator_url,
    }}


class AlertReceiver:
    """The webhook's handler for one bot replica (``inventory`` maps labels onto hosts)."""

    def __init__(self, bot: BondBot, settings: AlertSettings, inventory: Inventory) -> None:
        self.bot = bot
        self.settings = settings
        self.inventory = inventory

    def add_routes(self, web_app: web.Application) -> None:
        web_app.router.add_post(self.settings.path, self.handle)

    async def handle(self, request: web.Request) -> web.Response:
        from aiohttp import web

        try:
            sender = self.settings.auth.check(request.headers.get("Authorization"))
        except Unauthorized as exc:
            log.warning("Alertmanager webhook refused (401): %s", exc)
            return web.json_response({"error": "unauthorized"}, status=401,
                                     headers={"WWW-Authenticate": 'Bearer realm="bondbot"'})
        if self.bot.supervisor.draining:
            return web.json_response({"error": "bondbot is restarting"}, status=503)  # Alertmanager retries
        if request.content_length is not None and request.content_length > MAX_BODY:
            return web.json_response({"error": f"body larger than {MAX_BODY} bytes"}, status=413)
        body = await request.content.read(MAX_BODY + 1)
        try:
            notification = parse_notification(body)
        except AlertError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        self.bot.spawn(self.process(notification), f"alert {notification.status} ({sender})")
        return web.json_response({"status": "accepted", "alerts": len(notification.alerts)})

    # ------------------------------------------------------------ the work, after the 200

    async def process(self, notification: Notification) -> None:
        """Handle every alert of one notification (each on its own; one failure stops no other)."""
        results = await asyncio.gather(*(self._one(a, notification) for a in notification.alerts),
                                       return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                log.error("alert handling failed: %r", result)

    async def _record(self, n: Notification, alert: Alert, outcome: str, incident_id: str | None = None,
                      detail: str = "") -> None:
        await asyncio.to_thread(automation.record_alert, self.bot.deps.store, receiver=n.receiver,
                                group_key=n.group_key, fingerprint=alert.fingerprint, status=alert.status,
                                labels=alert.labels, outcome=outcome, incident_id=incident_id, detail=detail)

    async def _one(self, alert: Alert, n: Notification) -> None:
        store = self.bot.deps.store
        mapped = map_alert(alert, self.inventory, self.settings.rules)
        if mapped.host is None:
            first = await asyncio.to_thread(automation.claim_alert, store, n.group_key, alert.fingerprint,
                                            actor=BOT_ACTOR)
            await self._record(n, alert, "unmapped", detail=mapped.reason)
            if first:
                await self._post(views.text_message(
                    f"⚠️ Alert {alert.labels.get('alertname', '(no alertname)')} ({alert.status}) from Alertmanager "
                    f"receiver {n.receiver or '(unnamed)'} was not triaged: {mapped.reason}. "
                    "Add the host to the inventory (or fix the alert's labels) and run /bond triage."))
            return
        if alert.status == "firing":
            if await asyncio.to_thread(automation.claim_alert, store, n.group_key, alert.fingerprint, actor=BOT_ACTOR):
                await self._open(mapped, n)
                return
            incident_id = await self._bound(n, alert)
            if incident_id is None:
                await self._record(n, alert, "skipped", detail="the alert's incident was not opened")
                return
            await self._append(incident_id, alert, n, "updated")
            return
        found, incident_id = await asyncio.to_thread(automation.alert_incident, store, n.group_key, alert.fingerprint)
        if incident_id is None and found:
            incident_id = await self._bound(n, alert)
        if incident_id is None:
            await self._record(n, alert, "skipped", detail="resolved, but this alert never opened an incident")
            return
        await self._append(incident_id, alert, n, "resolved")

    async def _bound(self, n: Notification, alert: Alert) -> str | None:
        """The incident the claiming replica opened (it may still be opening it)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _BIND_WAIT_S
        while True:
            _, incident_id = await asyncio.to_thread(automation.alert_incident, self.bot.deps.store,
                                                     n.group_key, alert.fingerprint)
            if incident_id is not None or loop.time() >= deadline:
                return incident_id
            await asyncio.sleep(0.2)

    async def _append(self, incident_id: str, alert: Alert, n: Notification, outcome: str) -> None:
        await self.bot._store("append", incident_id, actor=requester_for(n.receiver), kind="note",
                              payload=alert_note(alert, n))
        await self._record(n, alert, outcome, incident_id)
        await self.bot.refresh_message(incident_id)

    async def _post(self, rendered: views.Rendered) -> None:
        await self.bot.client.chat_postMessage(channel=self.settings.channel, text=rendered.text,
                                               blocks=rendered.blocks)

    async def _open(self, mapped: Mapped, n: Notification) -> None:
        """The first notification of a firing alert: the triage, as ``/bond triage HOST BOND``."""
        from bot import triage_flow
        from bot.domain import UnknownTarget

        assert mapped.host is not None
        alert, triage = mapped.alert, self.bot.deps.triage
        runbook = self.settings.runbook
        try:
            info = triage.runbook(runbook)
            host, named = triage.resolve(mapped.host, mapped.bond, runbook=runbook)
        except UnknownTarget as exc:
            await self._record(n, alert, "unmapped", detail=str(exc))
            await self._post(views.text_message(f"⚠️ Alert {alert.labels.get('alertname', '')} not triaged: {exc}"))
            return
        subject = named
        if info.param is not None and subject is None and info.discovers:
            listing = await triage.subjects(host, runbook=runbook)
            if listing.subjects is not None and len(listing.subjects) == 1:
                subject = listing.subjects[0]
            else:
                why = listing.error or (f"{host} has {len(listing.subjects or ())} {info.plural}" if listing.subjects
                                        is not None else "")
                detail = f"the alert names no {info.noun} and one cannot be chosen: {why}"
                await self._record(n, alert, "skipped", detail=detail)
                await self._post(views.text_message(
                    f"⚠️ Alert {alert.labels.get('alertname', '')} for {host} not triaged: {detail}. "
                    f"Run /bond triage {host} {info.noun.upper()}."))
                return

        async def opened(incident_id: str) -> None:
            await asyncio.to_thread(automation.bind_alert, self.bot.deps.store, n.group_key, alert.fingerprint,
                                    incident_id)
            await self.bot._store("append", incident_id, actor=requester_for(n.receiver), kind="note",
                                  payload=alert_note(alert, n))
            await self._record(n, alert, "triaged", incident_id)

        await triage_flow.triage_subject(self.bot, host, subject, runbook, info.param,
                                         user=requester_for(n.receiver), channel=self.settings.channel, opened=opened)

