"""The Bolt app: thin listeners that ack at once, and ``BondBot``, which does the work afterwards.

Listeners only parse, check the cheap authorization (channel/user lists, in memory) and ack with a
short ephemeral answer; everything slow (SSH, the database, Slack API calls) runs in a background
task owned by ``BondBot``, so every request is acknowledged in milliseconds.

Exactly once: a redelivered slash command (Slack retry, Socket Mode redelivery) carries the same
``trigger_id``, and ``IncidentStore.claim`` on it lets one delivery, in one replica, do the work.
A change runs only for the caller whose ``IncidentStore.record_approval`` succeeded (one per plan),
so double clicks, replayed clicks and several replicas never run it twice. Process memory decides
nothing.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from bot import views
from bot.authz import AuthzPolicy
from bot.commands import BondCommand, CommandError, parse_command
from bot.domain import RawOutput, StepProgress, TriageReport, TriageService, UnknownTarget
from bot.incident_view import (
    card_from_log,
    open_proposals,
    parse_time,
    proposals,
    slack_message_of,
)
from bot.recovery import LeaseSettings, Supervisor
from bot.remediation import ActionKind, PlanLike, Remediation, plan_hash
from runbooks.recording import record_diagnosis

__all__ = ["BOT_ACTOR", "BondBot", "BotDeps", "build_app"]

BOT_ACTOR = "bondbot"
log = logging.getLogger(__name__)


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


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
        self._timers: set[asyncio.Task[Any]] = set()
        self._groups = _GroupCache()
        self._running_steps: dict[str, list[StepProgress]] = {}
        self._render_locks: dict[str, asyncio.Lock] = {}
        self.supervisor = Supervisor(self, deps.leases)

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

    async def _members_of(self, group: str) -> frozenset[str]:
        cached = self._groups.members.get(group)
        if cached and time.monotonic() - cached[0] < self._groups.ttl:
            return cached[1]
        try:
            resp = await self.client.usergroups_users_list(usergroup=group)
            members = frozenset(resp.get("users") or [])
        except Exception as exc:  # a group we cannot read grants nothing
            log.warning("cannot resolve user group %s: %s", group, exc)
            return frozenset()
        self._groups.members[group] = (time.monotonic(), members)
        return members

    async def _ephemeral(self, channel: str, user: str, rendered: views.Rendered, thread_ts: str | None = None) -> None:
        kwargs: dict[str, Any] = {"channel": channel, "user": user, "text": rendered.text, "blocks": rendered.blocks}
        if thread_ts:
            kwargs["thread_ts"] = thread_ts
        await self.client.chat_postEphemeral(**kwargs)

    # ------------------------------------------------------------ the incident message

    async def render_incident(self, incident_id: str, *, error: str | None = None) -> views.Rendered:
        incident = await self._store("get", incident_id)
        events = await self._store("events", incident_id)
        steps = self._running_steps.get(incident_id, ())
        card = card_from_log(incident, events, now=self.deps.clock(), running_steps=steps, error=error)
        return views.incident_message(card)

    async def refresh_message(self, incident_id: str) -> None:
        """Re-render the incident's message from the log (safe to call from any replica, any time)."""
        lock = self._render_locks.setdefault(incident_id, asyncio.Lock())
        async with lock:
            events = await self._store("events", incident_id)
            where = slack_message_of(events)
            if where is None:
                return
            rendered = await self.render_incident(incident_id)
            await self.client.chat_update(
                channel=where[0], ts=where[1], text=rendered.text, blocks=rendered.blocks
            )

    # ------------------------------------------------------------ /bond triage

    async def triage(self, command: BondCommand, *, user: str, channel: str, trigger_id: str) -> None:
        assert command.host is not None
        if not await self._store("claim", f"slack:command:{trigger_id}", actor=BOT_ACTOR):
            log.info("command %s already handled (redelivery); skipped", trigger_id)
            return
        try:
            host, named = self.deps.triage.resolve(command.host, command.bond)
        except UnknownTarget as exc:
            await self._ephemeral(channel, user, views.error_message(str(exc)))
            return
        # The host's bonds first: one incident per bond (each has its own root cause, fix, approvals
        # and rollback), a named bond the host lacks is refused with the list, nothing is guessed.
        listing = await self.deps.triage.bonds(host)
        if listing.unreachable:
            await self._ephemeral(channel, user, views.error_message(f"Cannot triage {host}: {listing.error}"))
            return
        if named is None:
            if listing.bonds is None:
                await self._ephemeral(channel, user, views.error_message(
                    f"Inconclusive: {listing.error}. Name the bond: /bond triage {host} BOND"))
                return
            if not listing.bonds:
                await self._ephemeral(channel, user, views.text_message(
                    f"➖ No bond on {host}: {listing.why_none}. Nothing to triage."))
                return
            targets = list(listing.bonds)
        elif listing.bonds is not None and named not in listing.bonds:
            from runbooks.engine import bonds_text

            problem = f"{host} has no bond {named}: {bonds_text(listing.bonds, listing.why_none)}"
            await self._ephemeral(channel, user, views.bond_choice_message(host, problem, listing.bonds))
            return
        else:
            targets = [named]
        await asyncio.gather(*(self._triage_bond(host, b, user=user, channel=channel) for b in targets))

    async def _triage_bond(self, host: str, bond: str, *, user: str, channel: str) -> None:
        """One bond's incident: its message, the steps as they finish, the diagnosis, the offers."""
        incident = await self._store("create_incident", host=host, bond=bond, requester=user, channel=channel)
        await self.supervisor.begin("triage", incident.id, host=host, bond=bond)
        steps = [StepProgress(name, "pending") for name in self.deps.triage.step_names(host, bond)]
        self._running_steps[incident.id] = steps
        try:
            rendered = await self.render_incident(incident.id)
            posted = await self.client.chat_postMessage(channel=channel, text=rendered.text, blocks=rendered.blocks)
            ts = posted["ts"]
            await self._store(
                "append", incident.id, actor=BOT_ACTOR, kind="note",
                payload={"slack_message": {"channel": channel, "ts": ts}},
            )

            async def on_step(progress: StepProgress) -> None:
                for i, step in enumerate(steps):
                    if step.name == progress.name:
                        steps[i] = progress
                        break
                else:
                    steps.append(progress)
                await self.refresh_message(incident.id)

            report = await self.deps.triage.run(host, bond, incident_id=incident.id, actor=user, on_step=on_step)
            await self._record_report(incident.id, report)
        finally:
            self._running_steps.pop(incident.id, None)
        await self.refresh_message(incident.id)
        await self._post_outputs(channel, ts, report.outputs)
        await self._repaint_at_expiry(incident.id)

    async def _repaint_at_expiry(self, incident_id: str) -> None:
        """Repaint the message when its earliest open offer expires, so the dead button goes."""
        offers = [p for p in open_proposals(await self._store("events", incident_id)).values()]
        if offers:
            expiry = min(parse_time(p["expires_at"]) for p in offers)
            delay = (expiry - self.deps.clock()).total_seconds()
            # Not a tracked task: it only repaints, and waiting for it would hold up shutdown.
            timer = asyncio.get_running_loop().create_task(self._refresh_at_expiry(incident_id, delay))
            self._timers.add(timer)
            timer.add_done_callback(self._timers.discard)

    async def _refresh_at_expiry(self, incident_id: str, delay: float) -> None:
        await asyncio.sleep(max(0.0, delay) + 0.5)
        try:
            await self.refresh_message(incident_id)
        except Exception:
            log.exception("repainting %s at expiry failed", incident_id)

    def cancel_timers(self) -> None:
        for timer in list(self._timers):
            timer.cancel()

    async def _record_report(self, incident_id: str, report: TriageReport) -> None:
        await self._store(
            "append", incident_id, actor=BOT_ACTOR, kind="note",
            payload={"triage_steps": [{"name": s.name, "status": s.status, "detail": s.detail} for s in report.steps]},
        )
        # The diagnosis, root cause and status are recorded as ``bondbot triage --record`` does.
        root_cause_found = await asyncio.to_thread(
            record_diagnosis, self.deps.store, incident_id, report.diagnosis, actor=BOT_ACTOR, error=report.error
        )
        if root_cause_found and self.deps.remediation is not None:
            incident = await self._store("get", incident_id)
            await self._propose(incident_id, incident.host, incident.bond)

    async def _propose(
        self, incident_id: str, host: str, bond: str, actions: tuple[ActionKind, ...] = ("fix", "failover_test")
    ) -> None:
        """Plan each action and offer it for approval (one ``proposal`` event per plan).

        Proposals written together form a batch; a later batch that offers an action replaces the
        earlier, still unapproved offers of that action (e.g. the failover test, offered again
        once the fix made it possible). The failover test gets one offer per method.
        """
        remediation = self.deps.remediation
        assert remediation is not None
        expires = self.deps.clock() + timedelta(seconds=self.deps.policy.approval_ttl_seconds)
        batch = uuid.uuid4().hex[:12]
        for kind in actions:
            attempts: list[tuple[str, Callable[[], Awaitable[PlanLike | None]]]]
            if kind == "fix":
                attempts = [("", lambda: remediation.plan_fix(host, bond))]
            else:
                attempts = [
                    (m, lambda m=m: remediation.plan_failover_test(host, bond, m))  # type: ignore[misc]
                    for m in remediation.failover_methods()
                ]
            errors: list[tuple[str, str]] = []
            offered = 0
            for method, planner in attempts:
                try:
                    plan = await planner()
                except Exception as exc:
                    log.warning("planning %s %s for %s failed: %s", kind, method, incident_id, exc)
                    errors.append((method, str(exc)[:500]))
                    continue
                if plan is None:
                    continue
                offered += 1
                await self._store(
                    "append", incident_id, actor=BOT_ACTOR, kind="proposal",
                    payload={
                        "action": kind, "method_key": method, "title": plan.title, "method": plan.method,
                        "commands": list(plan.commands), "rollback": list(plan.rollback),
                        "plan_hash": plan_hash(kind, plan), "domain_hash": str(plan.plan_hash),
                        "expires_at": _iso(expires), "host": plan.host, "bond": plan.bond, "batch": batch,
                    },
                )
            if errors:
                # The same reason for every method (no link monitoring yet) is said once.
                if offered:
                    unique = [f"method {m}: {e}" if m else e for m, e in errors]
                else:
                    unique = list(dict.fromkeys(e for _m, e in errors))
                await self._store(
                    "append", incident_id, actor=BOT_ACTOR, kind="note",
                    payload={"plan_error": {"action": kind, "error": "; ".join(unique)[:1000], "batch": batch,
                                            "offered": offered}},
                )

    async def _post_outputs(self, channel: str, thread_ts: str, outputs: tuple[RawOutput, ...]) -> None:
        """Raw outputs go in the thread: short ones as text, long ones as a file."""
        for output in outputs:
            if len(output.text) <= views.INLINE_OUTPUT_LIMIT:
                rendered = views.output_message(output.command, output.text, output.exit_status)
                await self.client.chat_postMessage(
                    channel=channel, thread_ts=thread_ts, text=rendered.text, blocks=rendered.blocks
                )
            else:
                await self.client.files_upload_v2(
                    channel=channel,
                    thread_ts=thread_ts,
                    content=output.text,
                    filename=_output_filename(output.command),
                    title=f"$ {output.command}"[:250],
                    initial_comment=f"`$ {output.command}` ({len(output.text)} characters)",
                )

    # ------------------------------------------------------------ buttons

    async def handle_action(
        self, kind: ActionKind, *, user: str, channel: str, message_ts: str, value: str
    ) -> None:
        """An approval click: authorize, check expiry and plan, win the approval, run, show."""
        try:
            fields = views.parse_button_value(value)
            incident_id, wanted = fields["incident"], fields["plan"]
        except (ValueError, KeyError):
            await self._ephemeral(channel, user, views.error_message("This button's data is malformed; nothing ran."))
            return
        label = "apply the fix" if kind == "fix" else "run the failover test"
        from incidents.errors import UnknownIncident

        try:
            incident = await self._store("get", incident_id)
        except UnknownIncident as exc:
            await self._ephemeral(channel, user, views.error_message(str(exc)))
            return
        events = await self._store("events", incident.id)
        offered = proposals(events).get(wanted)
        if offered is None or offered.get("action") != kind:
            await self._ephemeral(channel, user, views.error_message("No such plan on this incident; nothing ran."))
            return
        if wanted not in open_proposals(events) and not any(a.plan_hash == wanted for a in await self._store("approvals", incident.id)):
            await self._ephemeral(
                channel, user, views.error_message("This plan was replaced by a newer one on the message; nothing ran.")
            )
            return

        decision = await self.deps.policy.may_approve(user, incident.requester, self._members_of)
        if not decision:
            await self._store(
                "append", incident.id, actor=user, kind="refusal",
                payload={"action": kind, "user": user, "reason": decision.reason, "plan_hash": wanted},
            )
            await self._ephemeral(channel, user, views.refusal_message(label, decision.reason))
            return

        approvals = await self._store("approvals", incident.id)
        done = next((a for a in approvals if a.plan_hash == wanted), None)
        if done is not None:
            await self._ephemeral(
                channel, user,
                views.text_message(f"Already approved by <@{done.approver}> at {done.approved_at}; it does not run twice."),
            )
            return
        if parse_time(offered["expires_at"]) <= self.deps.clock():
            await self._ephemeral(
                channel, user,
                views.error_message("This approval request has expired; run `/bond triage` again for a fresh plan."),
            )
            await self.refresh_message(incident.id)
            return

        # Re-check the host right before running: the plan must still be exactly what was shown.
        remediation = self.deps.remediation
        if remediation is None:
            await self._ephemeral(channel, user, views.error_message("Remediation is not available in this bot."))
            return
        method = str(offered.get("method_key") or "")
        current: PlanLike | None = None
        try:
            if kind == "fix":
                current = await remediation.plan_fix(incident.host, incident.bond)
            else:
                current = await remediation.plan_failover_test(incident.host, incident.bond, method)
            reason = "the host no longer needs it"
        except Exception as exc:
            reason = f"re-checking {incident.host} refused the plan: {exc}"
        if current is None or plan_hash(kind, current) != wanted:
            if current is not None:
                reason = "the host changed since the plan was shown; run `/bond triage` again"
            await self._store(
                "append", incident.id, actor=user, kind="refusal",
                payload={"action": kind, "user": user, "reason": reason, "plan_hash": wanted, "stale": True},
            )
            await self._ephemeral(channel, user, views.error_message(f"Not run: {reason}."))
            await self.refresh_message(incident.id)
            return

        # The lease first: a replica that dies right after the approval still leaves its work findable.
        lease = await self.supervisor.begin(kind, incident.id, plan_hash=wanted, host=incident.host,
                                            bond=incident.bond, method=method)
        if lease is None:  # another click (any replica) is approving and running this plan right now
            await self._ephemeral(channel, user, views.text_message("Already being approved; it does not run twice."))
            return
        approval = await self._store(
            "record_approval", incident.id, actor=user, plan_hash=wanted, summary=f"{label} on {incident.host} {incident.bond}",
        )
        if approval is None:  # another click, delivery or replica got there first
            await self.supervisor.release(lease)
            await self._ephemeral(channel, user, views.text_message("Already approved; it does not run twice."))
            return
        await self.refresh_message(incident.id)
        # The domain checks the hash once more against the plan it re-reads: the approver's click
        # runs exactly the plan that was shown, or nothing.
        approved_domain_hash = str(offered.get("domain_hash") or "")

        async def notify(text: str) -> None:
            await self.client.chat_postMessage(
                channel=channel, thread_ts=message_ts or None, text=f"<@{user}> {text}",
            )

        try:
            if kind == "fix":
                result = await remediation.apply_fix(
                    current, incident_id=incident.id, actor=user, approved_hash=approved_domain_hash
                )
            else:
                result = await remediation.run_failover_test(
                    current, incident_id=incident.id, actor=user, approved_hash=approved_domain_hash, notify=notify
                )
            outcome = {"action": kind, "plan_hash": wanted, "ok": bool(result.ok), "summary": str(result.summary)[:1500]}
        except Exception as exc:
            log.exception("%s on %s failed", kind, incident.id)
            outcome = {"action": kind, "plan_hash": wanted, "ok": False, "summary": f"error: {exc}"[:1000]}
        await self._store("append", incident.id, actor=BOT_ACTOR, kind="note", payload={"action_result": outcome})
        if kind == "fix" and outcome["ok"]:
            # With link monitoring on, the failover test can now prove the fix: offer it afresh.
            await self._propose(incident.id, incident.host, incident.bond, actions=("failover_test",))
            await self._repaint_at_expiry(incident.id)
        await self.refresh_message(incident.id)

    # ------------------------------------------------------------ status, export, audit

    async def status(self, incident_id: str, *, user: str, channel: str, respond: Any) -> None:
        from incidents.errors import UnknownIncident

        try:
            incident = await self._store("get", incident_id)
        except UnknownIncident as exc:
            await respond(**_ephemeral_kwargs(views.error_message(str(exc))))
            return
        events = await self._store("events", incident.id)
        card = card_from_log(incident, events, now=self.deps.clock())
        await respond(**_ephemeral_kwargs(views.status_message(card, len(events), incident.head_hash)))

    async def export(self, incident_id: str, fmt: str, *, user: str, channel: str, thread_ts: str | None = None) -> None:
        from incidents.errors import IncidentError

        try:
            export = await self._store("export", incident_id, fmt)
        except IncidentError as exc:
            await self._ephemeral(channel, user, views.error_message(str(exc)))
            return
        await self.client.files_upload_v2(
            channel=channel,
            thread_ts=thread_ts,
            content=export.text,
            filename=export.filename,
            title=f"Timeline of {export.incident_id} ({fmt})",
            initial_comment=f"Timeline of {export.incident_id}, exported by <@{user}> (sha256 {export.sha256[:12]}…)",
        )
        await self._store("record_export", export, actor=user, destination=f"slack:{channel}")
        await self.refresh_message(export.incident_id)

    async def audit(self, group: str | None, *, user: str, channel: str, respond: Any) -> None:
        try:
            targets = self.deps.triage.group_hosts(group)
        except UnknownTarget as exc:
            await respond(**_ephemeral_kwargs(views.error_message(str(exc))))
            return

        async def nothing(_: StepProgress) -> None:
            return None

        async def one_bond(host: str, bond: str) -> views.AuditRow:
            report = await self.deps.triage.run(host, bond, incident_id="", actor=user, on_step=nothing)
            if report.error:
                return views.AuditRow(host, bond, f"not checked: {report.error}", kind="error")
            diagnosis = report.diagnosis
            if diagnosis is None:
                return views.AuditRow(host, bond, "inconclusive: no diagnosis", kind="inconclusive")
            if diagnosis.root_cause is not None:
                return views.AuditRow(host, bond, diagnosis.root_cause.summary, diagnosis.root_cause.code)
            return views.AuditRow(host, bond, diagnosis.headline(), kind=diagnosis.verdict)

        async def one(host: str, named: str | None) -> list[views.AuditRow]:
            listing = await self.deps.triage.bonds(host)
            if listing.unreachable:
                return [views.AuditRow(host, named or "", f"unreachable: {listing.error}", kind="unreachable")]
            if named is not None:
                if listing.bonds is not None and named not in listing.bonds:
                    from runbooks.engine import bonds_text

                    return [views.AuditRow(host, named, f"no such bond ({bonds_text(listing.bonds)})",
                                           kind="inconclusive")]
                return [await one_bond(host, named)]
            if listing.bonds is None:
                return [views.AuditRow(host, "", f"inconclusive: {listing.error}", kind="inconclusive")]
            if not listing.bonds:
                return [views.AuditRow(host, "", f"no bond on this host ({listing.why_none})", kind="no-bond")]
            return list(await asyncio.gather(*(one_bond(host, b) for b in listing.bonds)))

        rows = [row for rows_of_host in await asyncio.gather(*(one(h, b) for h, b in targets)) for row in rows_of_host]
        rendered = views.audit_message(group, rows)
        await self.client.chat_postMessage(channel=channel, text=rendered.text, blocks=rendered.blocks)


def _ephemeral_kwargs(rendered: views.Rendered) -> dict[str, Any]:
    return {"text": rendered.text, "blocks": rendered.blocks, "response_type": "ephemeral", "replace_original": False}


def _output_filename(command: str) -> str:
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in command)
    return (safe.strip("_") or "output")[:80] + ".txt"


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

    @app.command("/bond")
    async def on_bond(ack: Any, command: dict[str, Any], respond: Any) -> None:
        user, channel = command["user_id"], command["channel_id"]
        try:
            parsed = parse_command(command.get("text", ""))
        except CommandError as exc:
            await ack(**_ack_kwargs(views.usage_message(str(exc))))
            return
        if parsed.verb == "help":
            await ack(**_ack_kwargs(views.help_message()))
            return
        # status and export show incident data, so they need the same right as triage.
        decision = deps.policy.may_triage(user, channel)
        if not decision:
            await ack(**_ack_kwargs(views.refusal_message(f"use `/bond {parsed.verb}` here", decision.reason)))
            return
        if parsed.verb == "triage":
            target = f"{parsed.host} {parsed.bond or ''}".strip()
            await ack(**_ack_kwargs(views.text_message(f"Triage of {target} started; the incident follows in this channel.")))
            bot.spawn(
                bot.triage(parsed, user=user, channel=channel, trigger_id=command["trigger_id"]),
                f"triage {target}",
            )
        elif parsed.verb == "status":
            await ack()
            bot.spawn(bot.status(parsed.incident_id or "", user=user, channel=channel, respond=respond), "status")
        elif parsed.verb == "export":
            await ack(**_ack_kwargs(views.text_message(f"Exporting {parsed.incident_id} as {parsed.export_format}…")))
            bot.spawn(
                bot.export(parsed.incident_id or "", parsed.export_format, user=user, channel=channel), "export"
            )
        elif parsed.verb == "audit":
            await ack(**_ack_kwargs(views.text_message(f"Auditing {parsed.group or 'all hosts'} (read-only)…")))
            bot.spawn(bot.audit(parsed.group, user=user, channel=channel, respond=respond), "audit")

    def _click_target(body: dict[str, Any]) -> tuple[str, str, str, str]:
        action = body["actions"][0]
        container = body.get("container") or {}
        channel = (body.get("channel") or {}).get("id") or container.get("channel_id", "")
        return body["user"]["id"], channel, container.get("message_ts", ""), action.get("value", "")

    @app.action(views.ACTION_APPLY_FIX)
    async def on_fix(ack: Any, body: dict[str, Any]) -> None:
        await ack()
        user, channel, ts, value = _click_target(body)
        bot.spawn(bot.handle_action("fix", user=user, channel=channel, message_ts=ts, value=value), "fix click")

    @app.action(re.compile("^" + re.escape(views.ACTION_FAILOVER_TEST) + "(_[a-z]+)?$"))
    async def on_failover(ack: Any, body: dict[str, Any]) -> None:
        await ack()
        user, channel, ts, value = _click_target(body)
        bot.spawn(
            bot.handle_action("failover_test", user=user, channel=channel, message_ts=ts, value=value),
            "failover click",
        )

    @app.action(views.ACTION_PICK_BOND)
    async def on_pick_bond(ack: Any, body: dict[str, Any]) -> None:
        """A bond picked from the menu of a host's bonds: the same as `/bond triage HOST BOND`."""
        await ack()
        action = body["actions"][0]
        user = body["user"]["id"]
        channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id", "")
        try:  # the value comes back from the client: parsed and validated like typed text
            fields = views.parse_button_value(((action.get("selected_option") or {}).get("value")) or "")
            parsed = parse_command(f"triage {fields['host']} {fields['bond']}")
        except (ValueError, KeyError, CommandError):
            return
        if not deps.policy.may_triage(user, channel):
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
        if not deps.policy.may_triage(user, channel):
            return
        bot.spawn(bot.export(incident_id, fmt, user=user, channel=channel, thread_ts=ts or None), "export click")

    return app, bot


def _ack_kwargs(rendered: views.Rendered) -> dict[str, Any]:
    return {"text": rendered.text, "blocks": rendered.blocks, "response_type": "ephemeral"}
