"""Supervising running work across restarts and crashes: leases, heartbeats, recovery, drain.

Why: a triage or a change runs for seconds in one bot replica. If that replica is stopped
(``systemctl restart``, a rollout) or dies (``kill -9``, OOM, a lost node), nothing in Slack or in
the log may be left saying "running" forever, and nothing may run twice.

* **Leases.** Each triage, fix or failover test the bot starts takes a lease in the incident store
  (``IncidentStore.take_lease``): the work, the incident, the owner (this replica's id) and an
  expiry that the owner's heartbeat pushes forward every ``heartbeat_s``. When the work ends, the
  lease is released if the log holds its result (a diagnosis or triage error; an action result),
  and otherwise the work is recorded as interrupted.
* **Recovery.** Every ``scan_s`` (and at start-up) each replica looks for leases whose expiry has
  passed: their owner stopped heartbeating. Taking one over is a compare-and-set in the store, so
  exactly one replica recovers it; that replica records an ``interrupted`` event with the reason
  (for a change: where it was cut, the rollback note it refers to, and the host re-read now: as
  before or changed), the incident becomes *interrupted*, and its Slack message says
  "interrupted: re-run ``/bond triage HOST``" with a re-run button. Nothing is re-run by itself:
  a host command never runs twice behind an operator's back; the re-read only plans (read-only).
* **Drain.** On shutdown (``bondbot serve`` on SIGTERM/SIGINT) the supervisor stops taking work
  (new commands and clicks are answered "bondbot is restarting, try again"), waits up to the
  grace period for running work, then cancels what is left and records each as interrupted,
  itself, before the process exits: a restarted or other replica has nothing left to find.

Times are short and configurable (``LeaseSettings``; ``BONDBOT_LEASE_SECONDS``) so tests run in
seconds; the defaults (30 s lease, heartbeat and scan every 10 s) tolerate a slow database and a
few seconds of clock skew between replicas, which compare expiries with their own clocks.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.app import BondBot
    from incidents.model import Event, Lease

__all__ = [
    "DEFAULT_GRACE_S",
    "DEFAULT_LEASE_S",
    "LeaseSettings",
    "ShutdownReport",
    "Supervisor",
    "triage_finished",
]

log = logging.getLogger(__name__)

#: Default grace period of ``bondbot serve`` on SIGTERM: running work gets this long to finish.
#: Well under systemd's 90 s and Kubernetes' 30 s default stop timeouts once the few seconds of
#: recording and closing are added (see README: give the process grace + 15 s).
DEFAULT_GRACE_S = 25.0
#: Default lease: a replica silent for this long is presumed dead and its work recovered.
DEFAULT_LEASE_S = 30.0
#: At shutdown, how long recording what could not finish may take (all of it at once, re-reading
#: the host for a change included) before the process gives up and exits anyway; twice this at
#: worst (the cancelled work records itself, then whatever is still held is recorded directly).
SHUTDOWN_RECORD_S = 6.0
#: How long the recovery of one change may spend re-reading its host.
REREAD_TIMEOUT_S = 20.0

BOT_ACTOR = "bondbot"


def _env_seconds(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number of seconds, got {raw!r}") from None
    if not 0.1 <= value <= 3600:
        raise ValueError(f"{name} must be between 0.1 and 3600 seconds, got {raw!r}")
    return value


@dataclass(frozen=True)
class LeaseSettings:
    """How long a lease lasts and how often it is renewed and scanned for (seconds)."""

    ttl_s: float = DEFAULT_LEASE_S
    heartbeat_s: float | None = None  # default: a third of the lease
    scan_s: float | None = None  # default: a third of the lease
    replica_id: str | None = None  # default: host:pid:random, new for every process

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> LeaseSettings:
        """``BONDBOT_LEASE_SECONDS`` in the caller's ``env`` (default 30); heartbeat and scan every
        third of it."""
        return cls(ttl_s=_env_seconds(env, "BONDBOT_LEASE_SECONDS", DEFAULT_LEASE_S))

    @property
    def heartbeat(self) -> float:
        return self.heartbeat_s if self.heartbeat_s is not None else self.ttl_s / 3

    @property
    def scan(self) -> float:
        return self.scan_s if self.scan_s is not None else self.ttl_s / 3


@dataclass
class ShutdownReport:
    """What a shutdown did: work that finished within the grace period, and work recorded interrupted."""

    finished: int = 0
    interrupted: list[str] = field(default_factory=list)  # lease keys
    seconds: float = 0.0


def triage_finished(events: Sequence[Event]) -> bool:
    """The triage has its result on the log: a diagnosis, or the error that stopped it."""
    for event in events:
        if event.kind == "diagnosis":
            return True
        if event.kind == "note" and isinstance(event.payload.get("triage_error"), str):
            return True
    return False


def _action_finished(events: Sequence[Event], plan_hash: str) -> bool:
    for event in events:
        result = event.payload.get("action_result") if event.kind == "note" else None
        if isinstance(result, dict) and result.get("plan_hash") == plan_hash:
            return True
    return False


def _mrkdwn(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class Supervisor:
    """Leases for the work ``bot`` runs, the heartbeat, the recovery scan and the drain."""

    def __init__(self, bot: BondBot, settings: LeaseSettings | None = None) -> None:
        self.bot = bot
        self.settings = settings or LeaseSettings()
        self.replica_id = self.settings.replica_id or (
            f"{socket.gethostname()[:120]}:{os.getpid()}:{secrets.token_hex(3)}"
        )
        self.draining = False
        #: Set when the grace period ran out: what is cancelled now was cut by the shutdown.
        self.cut_reason: str | None = None
        self._held: dict[str, Lease] = {}
        self._by_task: dict[asyncio.Task[Any], list[str]] = {}
        self._loops: list[asyncio.Task[Any]] = []
        self._scan_idle = asyncio.Event()
        self._scan_idle.set()
        #: Lease keys this replica recorded as interrupted (for the tests and the log).
        self.recorded: list[str] = []

    # ------------------------------------------------------------ store access

    @property
    def _store(self) -> Any:
        return self.bot.deps.store

    async def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(getattr(self._store, method), *args, **kwargs)

    # ------------------------------------------------------------ life cycle

    async def start(self) -> None:
        """Start the heartbeat and the recovery scan (which looks once at once)."""
        if self._loops:
            return
        self._loops = [
            asyncio.get_running_loop().create_task(self._heartbeat_loop(), name="lease heartbeat"),
            asyncio.get_running_loop().create_task(self._scan_loop(), name="lease recovery scan"),
        ]
        log.info("replica %s: leases of %.1f s, heartbeat every %.1f s", self.replica_id,
                 self.settings.ttl_s, self.settings.heartbeat)

    async def stop(self) -> None:
        """Stop the loops (after ``shutdown``, or in tests)."""
        for task in self._loops:
            task.cancel()
        for task in self._loops:
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        self._loops = []

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.heartbeat)
            if not self._held:
                continue
            try:
                held = await self._call("renew_leases", self.replica_id, ttl_s=self.settings.ttl_s)
            except Exception as exc:  # the store is down: nothing else works either; keep trying
                log.warning("lease heartbeat failed: %s", exc)
                continue
            if held < len(self._held):
                log.warning("replica %s holds %d of its %d leases: another replica presumed it dead",
                            self.replica_id, held, len(self._held))

    async def _scan_loop(self) -> None:
        while not self.draining:
            self._scan_idle.clear()
            try:
                await self.recover_expired()
            except Exception:
                log.exception("recovery scan failed")
            finally:
                self._scan_idle.set()
            await asyncio.sleep(self.settings.scan)

    # ------------------------------------------------------------ the work's own leases

    async def begin(self, work: str, incident_id: str, **detail: Any) -> Lease | None:
        """Take the lease for ``work`` on ``incident_id``, owned by this replica, for the current task."""
        key = f"{work}:{incident_id}" + (f":{detail['plan_hash'][:16]}" if detail.get("plan_hash") else "")
        lease = await self._call(
            "take_lease", incident_id, work=work, owner=self.replica_id, ttl_s=self.settings.ttl_s,
            detail=detail, key=key,
        )
        if lease is None:
            log.warning("%s is already held by another replica", key)
            return None
        self._held[lease.key] = lease
        task = asyncio.current_task()
        if task is not None:
            self._by_task.setdefault(task, []).append(lease.key)
        return lease

    async def release(self, lease: Lease | None) -> None:
        """Drop a lease whose work did not start after all (e.g. the approval went to another click)."""
        if lease is None:
            return
        await self._call("release_lease", lease.key, owner=self.replica_id)
        self._held.pop(lease.key, None)
        task = asyncio.current_task()
        if task is not None and lease.key in self._by_task.get(task, []):
            self._by_task[task].remove(lease.key)

    async def task_ended(self, failure: BaseException | None = None) -> None:
        """Called when a background task ends: release or record each lease it took.

        Leases taken in tasks it started (``asyncio.gather`` of several bonds) are ended here too:
        those tasks are done by the time it ends.
        """
        task = asyncio.current_task()
        keys = self._by_task.pop(task, []) if task is not None else []
        for other in [t for t in self._by_task if t.done()]:
            keys += self._by_task.pop(other, [])
        for key in keys:
            lease = self._held.get(key)
            if lease is None:
                continue
            try:
                await self.end(lease, failure)
            except Exception:
                log.exception("could not close lease %s; it expires and another replica records it", key)

    async def end(self, lease: Lease, failure: BaseException | None = None) -> None:
        """Release the lease if the work's result is on the log; otherwise record it interrupted."""
        events = await self._call("events", lease.incident_id)
        if self._finished(lease, events) or not self._started(lease, events):
            await self._call("release_lease", lease.key, owner=self.replica_id)
            self._held.pop(lease.key, None)
            return
        if self.cut_reason is not None:
            reason = self.cut_reason
        elif isinstance(failure, asyncio.CancelledError):
            reason = f"bondbot on {self.replica_id} cancelled the {_what(lease.work)} before it finished"
        elif failure is not None:
            reason = f"the {_what(lease.work)} failed without a result: {type(failure).__name__}: {failure}"[:500]
        else:
            reason = f"the {_what(lease.work)} ended without recording a result"
        await self._record(lease, reason, events)

    @staticmethod
    def _started(lease: Lease, events: Sequence[Event]) -> bool:
        """A change starts with its approval (the lease is taken just before it)."""
        if lease.work == "triage":
            return True
        plan = lease.detail.get("plan_hash")
        return any(e.kind == "approval" and e.payload.get("plan_hash") == plan for e in events)

    @staticmethod
    def _finished(lease: Lease, events: Sequence[Event]) -> bool:
        if lease.work == "triage":
            return triage_finished(events)
        return _action_finished(events, str(lease.detail.get("plan_hash", "")))

    # ------------------------------------------------------------ recovering dead replicas' work

    async def recover_expired(self) -> list[str]:
        """Take over every expired lease this replica can win and record its work interrupted."""
        recorded: list[str] = []
        for lease in await self._call("expired_leases"):
            if self.draining:
                break
            if lease.owner == self.replica_id:
                # Our own work, its heartbeat late (a slow database): it is alive, renew instead.
                await self._call("renew_leases", self.replica_id, ttl_s=self.settings.ttl_s)
                continue
            mine = await self._call("take_over_lease", lease, owner=self.replica_id, ttl_s=self.settings.ttl_s)
            if mine is None:
                continue  # another replica (or an earlier scan) got it
            self._held[mine.key] = mine
            try:
                if await self._recover(mine, lease):
                    recorded.append(mine.key)
            except Exception:
                # Stop renewing it: it expires again and this or another replica retries.
                self._held.pop(mine.key, None)
                log.exception("recovering %s failed; retried once its lease expires", mine.key)
        return recorded

    async def _recover(self, mine: Lease, seen: Lease) -> bool:
        dead = mine.taken_over_from or seen.owner
        log.warning("recovering %s of %s: its owner %s stopped heartbeating", mine.work, mine.incident_id, dead)
        events = await self._call("events", mine.incident_id)
        if self._finished(mine, events) or not self._started(mine, events):
            # The result was written just before the owner died, or it died before the approval:
            # nothing to record.
            await self._call("release_lease", mine.key, owner=self.replica_id)
            self._held.pop(mine.key, None)
            return False
        reason = (f"the bondbot replica running it ({dead}) stopped: no heartbeat since "
                  f"{seen.heartbeat_at}, lease expired at {seen.expires_at}")
        return await self._record(mine, reason, events)

    async def _record(self, lease: Lease, reason: str, events: Sequence[Event]) -> bool:
        """Write the interruption (once: only while holding the lease), then update Slack."""
        incident = await self._call("get", lease.incident_id)
        payload: dict[str, Any] = {
            "reason": reason,
            "owner": lease.taken_over_from or lease.owner,
            "recorded_by": self.replica_id,
            "started_at": lease.started_at,
            "last_heartbeat": lease.heartbeat_at,
            "rerun": " ".join(["/bond triage", incident.host, *incident.subject.values()]
                              + ([] if incident.runbook == self.bot.deps.triage.runbook().name
                                 else ["--runbook", incident.runbook])),
        }
        notes: list[dict[str, Any]] = []
        if lease.work == "triage":
            payload["steps_recorded"] = sum(1 for e in events if e.kind == "triage_step")
        else:
            payload.update(await self._change_state(lease, incident, events))
            summary = (f"interrupted: {reason}. {payload['phase'].capitalize()}. "
                       f"Host now: {payload['host_state']}")
            notes.append({"action_result": {
                "action": lease.work, "plan_hash": lease.detail.get("plan_hash", ""), "ok": False,
                "summary": summary[:1500], "interrupted": True,
            }})
        event = await self._call(
            "record_interruption", lease.key, owner=self.replica_id, actor=BOT_ACTOR, payload=payload, notes=notes,
        )
        self._held.pop(lease.key, None)
        if event is None:
            log.info("%s was recorded by another replica", lease.key)
            return False
        self.recorded.append(lease.key)
        log.warning("%s on %s recorded interrupted: %s", lease.work, lease.incident_id, reason)
        try:
            await self._tell_slack(incident, payload, lease.work)
        except Exception:
            log.exception("could not update the Slack message of %s", lease.incident_id)
        return True

    async def _change_state(self, lease: Lease, incident: Any, events: Sequence[Event]) -> dict[str, Any]:
        """Where a change was cut, the rollback note that covers it, and the host re-read now."""
        plan = str(lease.detail.get("plan_hash", ""))
        approved_at = next((e.seq for e in events if e.kind == "approval" and e.payload.get("plan_hash") == plan), 0)
        after = [e for e in events if e.seq > approved_at]
        note = next((e for e in reversed(after) if e.kind == "rollback_note"), None)
        note_seq = note.seq if note is not None else None
        commands = [e for e in after if e.kind == "command"]
        verified = any(e.kind == "verification" for e in after)
        if lease.work == "fix" and note is None:
            phase = ("cut before the change: no rollback note was recorded yet (bondbot records it before "
                     "changing anything)")
        elif lease.work == "fix" and not verified:
            phase = (f"cut between the change and its verification: the rollback note (seq {note_seq}) "
                     "lists the exact restore commands; the host's own checkpoint/undo rolls the change back "
                     "by itself unless it is confirmed")
        elif lease.work == "fix":
            phase = (f"cut after verification, before the change was confirmed: the host's checkpoint/undo "
                     f"rolls it back by itself; the rollback note (seq {note_seq}) lists the restore commands")
        else:
            phase = (f"cut during the failover test after {len(commands)} command(s); its restore command "
                     "may not have run")
        state: dict[str, Any] = {"phase": phase, "commands_run": len(commands)}
        if commands:
            state["last_command"] = str(commands[-1].payload.get("command", ""))[:500]
        if note is not None:
            state["rollback_note_seq"] = note.seq
            state["restore_commands"] = list(note.payload.get("restore_commands") or [])[:50]
        before = note.payload.get("before") if note is not None else None
        as_before, text = await self._reread(lease, incident, before if isinstance(before, dict) else None)
        state["host_as_before"] = as_before
        state["host_state"] = text
        return state

    async def _reread(self, lease: Lease, incident: Any, before: dict[str, Any] | None) -> tuple[bool | None, str]:
        """Read the host again (read-only) and say whether it is as before the change.

        With the real remediation and a rollback note, the bond is compared with the note's state
        before (``EngineRemediation.compare_with_rollback_note``). Otherwise the same action is
        planned again: the approved plan's digest means the host is in the state the plan was made
        from (the change did not happen or was rolled back); no plan or another one, that it changed.
        """
        from bot.proposals import as_plan

        remediation = self.bot.deps.remediation
        if remediation is None:
            return None, "not re-read: remediation is not available in this bot"
        host = str(lease.detail.get("host") or incident.host)
        bond = str(lease.detail.get("bond") or incident.bond)
        # At shutdown the service manager's stop timeout is near: a shorter look, then exit.
        timeout = min(REREAD_TIMEOUT_S, SHUTDOWN_RECORD_S - 3) if self.draining else REREAD_TIMEOUT_S
        compare = getattr(remediation, "compare_with_rollback_note", None)
        if lease.work == "fix" and before is not None and compare is not None:
            try:
                diffs = await asyncio.wait_for(compare(host, bond, before), timeout)
            except TimeoutError:
                return None, f"could not re-read {host} within {timeout:g} s: check it by hand"
            except Exception as exc:
                return None, f"could not re-read {host}: {str(exc)[:400]} (check it; the host's own undo still applies)"
            if not diffs:
                return True, f"as before: {host} {bond} matches the rollback note's state before the change"
            return False, f"CHANGED: {host} {bond} differs from the rollback note: " + "; ".join(diffs)[:800]
        try:
            if lease.work == "fix":
                plan = await asyncio.wait_for(remediation.plan_fix(host, bond), timeout)
            else:
                method = str(lease.detail.get("method", ""))
                plan = await asyncio.wait_for(remediation.plan_failover_test(host, bond, method), timeout)
        except TimeoutError:
            return None, f"could not re-read {host} within {timeout:g} s: check it by hand"
        except Exception as exc:
            return None, f"re-reading {host} gave no plan: {str(exc)[:400]} (check it; the host's own undo still applies)"
        if plan is None:
            return False, (f"CHANGED: {host} no longer needs the {_what(lease.work)} (the change is in effect, "
                           "unverified)")
        if as_plan(lease.work, plan, str(lease.detail.get("method", ""))).digest == lease.detail.get("plan_hash"):
            return True, f"as before: {host} {bond} is in the state the plan was made from"
        return False, f"CHANGED: {host} {bond} differs from the state the plan was made from"

    async def _tell_slack(self, incident: Any, payload: dict[str, Any], work: str) -> None:
        """Repaint the incident's message (now "interrupted", with the re-run button) and say why in
        its thread; post a new message if the replica died before posting one."""
        from bot.incident_view import slack_message_of

        events = await self._call("events", incident.id)
        where = slack_message_of(events)
        if where is None:
            rendered = await self.bot.render_incident(incident.id)
            posted = await self.bot.client.chat_postMessage(
                channel=incident.channel, text=rendered.text, blocks=rendered.blocks
            )
            await self._call("append", incident.id, actor=BOT_ACTOR, kind="note",
                             payload={"slack_message": {"channel": incident.channel, "ts": posted["ts"]}})
            where = (incident.channel, posted["ts"])
        else:
            await self.bot.refresh_message(incident.id)
        text = (f"⚠️ {_what(work).capitalize()} interrupted: {_mrkdwn(str(payload['reason']))}."
                + (f"\nHost now: {_mrkdwn(str(payload['host_state']))}" if "host_state" in payload else "")
                + f"\nRe-run `{_mrkdwn(str(payload['rerun']))}`.")
        await self.bot.client.chat_postMessage(channel=where[0], thread_ts=where[1], text=text[:3000])

    # ------------------------------------------------------------ shutdown

    async def shutdown(self, grace_s: float, *, hurry: asyncio.Event | None = None) -> ShutdownReport:
        """Stop taking work, give running work ``grace_s`` to finish, record the rest interrupted.

        ``hurry`` (set by a second signal) ends the grace period at once.
        """
        started = time.monotonic()
        self.draining = True
        report = ShutdownReport()
        deadline = time.monotonic() + grace_s
        # A recovery of another replica's work in progress may finish within the same grace period
        # (the scan takes no new one once draining).
        try:
            await asyncio.wait_for(self._scan_idle.wait(), grace_s)
        except TimeoutError:
            log.warning("a recovery was still running at shutdown: its lease expires and another replica redoes it")
        tasks = set(self.bot._tasks)
        if tasks:
            log.info("shutting down: %d task(s) running, waiting up to %.1f s", len(tasks), grace_s)
            hurried = asyncio.ensure_future(hurry.wait()) if hurry is not None else None
            while True:
                remaining = deadline - time.monotonic()
                pending = {t for t in tasks if not t.done()}
                if not pending or remaining <= 0 or (hurried is not None and hurried.done()):
                    break
                await asyncio.wait(pending | ({hurried} if hurried else set()), timeout=remaining,
                                   return_when=asyncio.FIRST_COMPLETED)
            hurry_seen = hurried is not None and hurried.done()
            if hurried is not None:
                hurried.cancel()
            report.finished = len(tasks) - len(pending)
            if pending:
                why = ("a second stop signal ended the grace period" if hurry_seen
                       else f"the grace period ({grace_s:g} s) ran out")
                self.cut_reason = f"bondbot on {self.replica_id} was stopped and {why} before this finished"
                before = set(self.recorded)
                for task in pending:
                    task.cancel()
                await asyncio.wait(pending, timeout=SHUTDOWN_RECORD_S)
                report.interrupted += [k for k in self.recorded if k not in before]
        # Leases still held (a task that ignored its cancellation, a failed release): record them.
        # Recording twice is harmless: only the holder of the lease can, once.
        async def record_left(lease: Lease) -> None:
            if lease.taken_over_from is not None:
                return  # a dead replica's work this one was recovering: left for the next replica
            try:
                events = await self._call("events", lease.incident_id)
                if self._finished(lease, events) or not self._started(lease, events):
                    await self._call("release_lease", lease.key, owner=self.replica_id)
                    self._held.pop(lease.key, None)
                    return
                reason = self.cut_reason or f"bondbot on {self.replica_id} was stopped before this finished"
                if await self._record(lease, reason, events):
                    report.interrupted.append(lease.key)
            except Exception:
                log.exception("could not record %s at shutdown; it expires and another replica records it", lease.key)

        left = [x for x in self._held.values() if x.taken_over_from is None]
        if left:
            try:
                await asyncio.wait_for(asyncio.gather(*(record_left(x) for x in left)), SHUTDOWN_RECORD_S)
            except TimeoutError:
                log.error("gave up recording %d piece(s) of work at shutdown: their leases expire and "
                          "another replica (or this one, restarted) records them", len(self._held))
        await self.stop()
        report.seconds = round(time.monotonic() - started, 3)
        return report

    # ------------------------------------------------------------ Slack: the drain gate, the re-run button

    def register(self, app: Any) -> None:
        """Add the drain gate (a global middleware) and the re-run button's listener to ``app``."""
        from bot import views
        from bot.commands import BondCommand

        supervisor = self
        bot = self.bot
        restarting = ("bondbot is restarting: nothing was started. Try again in a few seconds "
                      "(running work finishes first, or is marked interrupted with a re-run button).")

        async def drain_gate(body: dict[str, Any], ack: Any, next: Any, client: Any) -> Any:  # noqa: A002
            # A middleware that does not call next() must return the response itself: the ack's.
            if not supervisor.draining:
                return await next()
            if "command" in body:
                text = str(body.get("text") or "").strip()
                if text in ("", "help"):
                    return await next()
                rendered = views.text_message(restarting)
                return await ack(text=rendered.text, blocks=rendered.blocks, response_type="ephemeral")
            if body.get("type") == "block_actions":
                response = await ack()
                user = (body.get("user") or {}).get("id", "")
                channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id", "")
                if user and channel:
                    try:
                        await client.chat_postEphemeral(channel=channel, user=user, text=restarting.replace(
                            "nothing was started", "nothing ran; click again"))
                    except Exception as exc:
                        log.warning("could not tell %s that the bot is restarting: %s", user, exc)
                return response
            return await next()

        app.use(drain_gate)

        @app.action(views.ACTION_RERUN_TRIAGE)
        async def on_rerun(ack: Any, body: dict[str, Any]) -> None:
            await ack()
            user = body["user"]["id"]
            channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id", "")
            try:
                incident_id = views.parse_button_value(body["actions"][0].get("value", ""))["incident"]
            except (ValueError, KeyError):
                return
            if not bot.deps.policy.may_triage(user, channel):
                await client_ephemeral(channel, user, "You may not run a triage here.")
                return

            async def rerun() -> None:
                incident = await supervisor._call("get", incident_id)
                command = BondCommand(verb="triage", host=incident.host, runbook=incident.runbook,
                                      subject=next(iter(incident.subject.values()), None))
                trigger = str(body.get("trigger_id") or secrets.token_hex(8))
                await bot.triage(command, user=user, channel=channel, trigger_id=f"rerun:{trigger}")

            bot.spawn(rerun(), f"re-run triage of {incident_id}")

        async def client_ephemeral(channel: str, user: str, text: str) -> None:
            await bot._ephemeral(channel, user, views.error_message(text))


def _what(work: str) -> str:
    return {"triage": "triage", "fix": "fix", "failover_test": "failover test"}.get(work, work)

