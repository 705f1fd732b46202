"""The Bolt app and ``BondBot``, which does the work after the listeners have acked.

The bot is split by responsibility; this module wires the parts together:

* ``bot.listeners``     the thin Bolt listeners: parse, cheap authorization, ack, hand on.
* ``bot.triage_flow``   ``/bond triage``: one incident per bond, its message, the steps, the offers.
* ``bot.proposals``     planning each action and offering the ``Plan`` through ``runbooks.approvals``.
* ``bot.approval_flow`` an approval click: the service decides, the approved plan runs, the result.
* ``bot.refresh``       rendering and repainting the incident's message, the expiry timers.
* ``bot.reports``       ``/bond status``, ``export`` and ``audit``.
* ``bot.recovery``      leases on running work, the drain at shutdown, recovery of dead replicas' work.

``BondBot`` owns the background tasks: everything slow (SSH, the database, Slack API calls) runs
in a task it supervises, so every request is acknowledged in milliseconds. Exactly once: a
redelivered command is claimed by its ``trigger_id``; a change runs only for the caller whose
approval the service recorded (one per plan digest, through the store), so double clicks,
replayed clicks and several replicas never run it twice. Process memory decides nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bot import approval_flow, listeners, proposals, reports, triage_flow, views
from bot.authz import AuthzPolicy
from bot.commands import BondCommand
from bot.domain import TriageService
from bot.limits import SlackLimits, WindowLimiter
from bot.people import NameCache
from bot.proposals import BOT_ACTOR
from bot.recovery import LeaseSettings, Supervisor
from bot.refresh import MessageRefresher
from bot.remediation import Remediation
from runbooks.approvals import Approvals

__all__ = ["BOT_ACTOR", "BondBot", "BotDeps", "build_app"]

log = logging.getLogger(__name__)


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class BotDeps:
    """What the bot is wired to. ``store`` is an ``incidents.IncidentStore`` (shared by replicas)."""

    store: Any
    triage: TriageService
    policy: AuthzPolicy
    remediation: Remediation | None = None
    clock: Callable[[], datetime] = _utc_now
    #: Leases on running work (owner, heartbeat, recovery of a dead replica's work): bot.recovery.
    leases: LeaseSettings = field(default_factory=LeaseSettings)
    #: Volume limits (repaints per message, triages per user and channel, audit connections): bot.limits.
    #: ``serve`` passes ``SlackLimits.from_env(os.environ)``; the defaults otherwise.
    limits: SlackLimits = field(default_factory=SlackLimits)
    #: The workspace this bot serves (``serve``: ``BONDBOT_SLACK_TEAM_ID``; None: auth.test's
    #: ``team_id``): requests from any other team are refused (``bot.listeners``).
    team_id: str | None = None


@dataclass
class _GroupCache:
    members: dict[str, tuple[float, frozenset[str]]] = field(default_factory=dict)
    ttl: float = 60.0


class BondBot:
    """The work behind ``/bond`` and the buttons, independent of how requests arrive."""

    def __init__(self, deps: BotDeps, client: Any) -> None:
        self.deps = deps
        self.client = client
        self._tasks: set[asyncio.Task[Any]] = set()
        self._groups = _GroupCache()
        self._team_id: str | None = deps.team_id
        #: The most hosts one ``/bond audit`` had in flight at once (bounded by ``limits.audit_connections``).
        self.audit_peak = 0
        self.refresh = MessageRefresher(self)
        self.names = NameCache()  # Slack users.info, for the names in exports
        #: The approval rules (offer, decide once, run, result), shared with the CLI.
        self.approvals = Approvals(deps.store, clock=deps.clock, ttl_seconds=deps.policy.approval_ttl_seconds,
                                   two_person=deps.policy.two_person_rule)
        self.supervisor = Supervisor(self, deps.leases)
        #: Triages started per user and per channel (``/bond triage`` answers "try again in N s").
        self.triage_by_user = WindowLimiter(deps.limits.triage_per_user)
        self.triage_by_channel = WindowLimiter(deps.limits.triage_per_channel)

    # ------------------------------------------------------------ background tasks

    def spawn(self, coro: Coroutine[Any, Any, Any], what: str) -> asyncio.Task[Any]:
        """Run ``coro`` after the ack; failures are logged, never lost silently."""

        async def guarded() -> None:
            failure: BaseException | None = None
            try:
                await coro
            except Exception as exc:
                failure = exc
                log.exception("background work failed: %s", what)
            except BaseException as exc:  # cancelled at shutdown: recorded as interrupted below
                failure = exc
                raise
            finally:
                # Leases this work took: released if its result is on the log, else recorded interrupted.
                await self.supervisor.task_ended(failure)

        task = asyncio.get_running_loop().create_task(guarded(), name=what)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def drain(self, timeout: float = 30.0) -> None:
        """Wait for every background task (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while self._tasks:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{len(self._tasks)} background task(s) still running")
            await asyncio.wait(set(self._tasks), timeout=remaining)

    async def _store(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(getattr(self.deps.store, method), *args, **kwargs)

    # ------------------------------------------------------------ Slack helpers

    async def members_now(self, group: str) -> frozenset[str]:
        """A user group's members read now (an approval decides on it; never the cache)."""
        try:
            resp = await self.client.usergroups_users_list(usergroup=group)
            members = frozenset(resp.get("users") or [])
        except Exception as exc:  # a group we cannot read grants nothing
            log.warning("cannot resolve user group %s: %s", group, exc)
            return frozenset()
        self._groups.members[group] = (time.monotonic(), members)
        return members

    async def _members_of(self, group: str) -> frozenset[str]:
        """A user group's members for display (cached ``ttl`` seconds); approvals use ``members_now``."""
        cached = self._groups.members.get(group)
        if cached and time.monotonic() - cached[0] < self._groups.ttl:
            return cached[1]
        return await self.members_now(group)

    async def pinned_team(self) -> str | None:
        """The workspace this bot serves: configured, else auth.test's ``team_id`` (asked once)."""
        if self._team_id is None:
            try:
                resp = await self.client.auth_test()
                self._team_id = str(resp.get("team_id") or "") or None
            except Exception as exc:  # unknown yet: refuse nothing on it, ask again next time
                log.warning("auth.test failed; the workspace is not pinned yet: %s", exc)
        return self._team_id

    async def refuse_here(self, incident: Any, what: str, *, user: str, channel: str, reason: str) -> None:
        """An action on an incident asked from the wrong place: an ephemeral refusal, on the record."""
        await self._store("append", incident.id, actor=user, kind="refusal",
                          payload={"action": what, "user": user, "code": "wrong_channel", "reason": reason,
                                   "channel": channel, "plan_hash": "", "stale": False})
        await self._ephemeral(channel, user, views.refusal_message(what, reason))

    def allowed_here(self, incident: Any, channel: str, user: str, what: str) -> str | None:
        """None if ``what`` may be done on ``incident`` from ``channel``, else why not.

        Access follows the incident: its own channel only. By DM (a ``D`` channel), ``status``
        for the incident's requester or a listed approver; exports and buttons never."""
        if channel == incident.channel:
            return None
        if channel.startswith("D") and what == "see the status" and (
                user == incident.requester or user in self.deps.policy.approver_users):
            return None
        return f"incident {incident.id} belongs to <#{incident.channel}>; ask there"

    async def _ephemeral(self, channel: str, user: str, rendered: views.Rendered, thread_ts: str | None = None) -> None:
        kwargs: dict[str, Any] = {"channel": channel, "user": user, "text": rendered.text, "blocks": rendered.blocks}
        if thread_ts:
            kwargs["thread_ts"] = thread_ts
        await self.client.chat_postEphemeral(**kwargs)

    # ------------------------------------------------------------ the parts (see the module docstring)

    async def render_incident(self, incident_id: str, *, error: str | None = None) -> views.Rendered:
        return await self.refresh.render(incident_id, error=error)

    async def refresh_message(self, incident_id: str, *, urgent: bool = False) -> None:
        """Re-render the incident's message from the log (safe to call from any replica, any time);
        coalesced to one update per second per message unless ``urgent`` (``bot.refresh``)."""
        await self.refresh.refresh(incident_id, urgent=urgent)

    def cancel_timers(self) -> None:
        self.refresh.cancel_timers()

    async def triage(self, command: BondCommand, *, user: str, channel: str, trigger_id: str,
                     respond: Any = None) -> None:
        await triage_flow.triage(self, command, user=user, channel=channel, trigger_id=trigger_id, respond=respond)

    async def _propose(self, incident_id: str, host: str, bond: str,
                       actions: tuple[str, ...] = ("fix", "failover_test")) -> None:
        await proposals.propose(self, incident_id, host, bond, actions)

    async def handle_action(self, kind: str, *, user: str, channel: str, message_ts: str, value: str) -> None:
        """An approval click (see ``bot.approval_flow``)."""
        await approval_flow.handle_action(self, kind, user=user, channel=channel, message_ts=message_ts, value=value)

    async def status(self, incident_id: str, *, user: str, channel: str, respond: Any) -> None:
        await reports.status(self, incident_id, user=user, channel=channel, respond=respond)

    async def export(self, incident_id: str, fmt: str, *, user: str, channel: str, thread_ts: str | None = None) -> None:
        await reports.export(self, incident_id, fmt, user=user, channel=channel, thread_ts=thread_ts)

    async def audit(self, group: str | None, *, user: str, channel: str, respond: Any) -> None:
        await reports.audit(self, group, user=user, channel=channel, respond=respond)


def build_app(
    deps: BotDeps,
    *,
    client: Any,
    signing_secret: str | None = None,
    socket_mode: bool = False,
) -> tuple[Any, BondBot]:
    """The ``AsyncApp`` with the ``/bond`` command and the buttons, and the ``BondBot`` behind it.

    ``client`` is an ``AsyncWebClient`` (see ``bot.server.make_web_client``). HTTP mode needs the
    signing secret; Socket Mode does not use one (requests come over the authenticated socket).
    """
    from slack_bolt.app.async_app import AsyncApp

    if not socket_mode and not signing_secret:
        raise ValueError("HTTP mode needs SLACK_SIGNING_SECRET to verify that requests come from Slack")
    app = AsyncApp(
        client=client,
        signing_secret=signing_secret or "unused-in-socket-mode",
        request_verification_enabled=not socket_mode,
        process_before_response=False,
        name="bondbot",
    )
    bot = BondBot(deps, client)
    bot.supervisor.register(app)  # first: while draining, new work is answered "restarting" here
    listeners.register(app, bot)
    return app, bot
