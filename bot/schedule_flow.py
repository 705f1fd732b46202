"""Scheduled audits and failover drills, run by the bot: who wins an occurrence, what it posts.

Every ``interval_s`` each replica asks ``runbooks.scheduler.ScheduleService`` which occurrences
are due and *claims* each one in the store (schedule id + occurrence): one replica in any number,
across restarts, handles it; the others skip it. An occurrence whose window closed unhandled (the
bot was down) is recorded as skipped, once, and said in the channel; it never runs late.

* An **audit** runs the bonding triage read-only on every host of its scope (no incident, nothing
  offered) and posts one summary: healthy / at risk / broken / inconclusive, and the hosts whose
  state changed since the previous run.
* A **drill** is the failover test under a standing approval (``runbooks.scheduler``): for each
  host (and bond) of its scope it opens an incident (requester ``schedule:<id>``) recording the
  standing approval's exact scope and digest, re-checks the preconditions (a fresh triage: the bond
  must be *healthy*; a fresh plan), offers that plan through ``runbooks.approvals`` and decides it
  with the standing approval (actor ``standing:<schedule>:<approver>``), runs it, records the result.
  Any failure (precondition not met, planning refused, test failed) pauses the series until a person
  resumes it. The manual method is never scheduled (it needs a person at the switch).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

from bot import views
from bot.domain import StepProgress, UnknownTarget
from bot.proposals import BOT_ACTOR, as_plan
from bot.schedule_views import AUDIT_STATES, HostState, audit_summary
from runbooks.approvals import approved_hash_for
from runbooks.scheduler import ScheduleService, occurrence_key
from runbooks.schedules import Schedule

if TYPE_CHECKING:
    from bot.app import BondBot

__all__ = ["AUDIT_STATES", "HostState", "ScheduleRunner", "drill_actor", "schedule_requester"]

log = logging.getLogger(__name__)

def schedule_requester(schedule: Schedule) -> str:
    return f"schedule:{schedule.id}"


def drill_actor(schedule: Schedule) -> str:
    """Who approved a drill's run: the standing approval of the schedule's approver."""
    return f"standing:{schedule.id}:{schedule.approved_by}"


class ScheduleRunner:
    """One replica's scheduler: ``tick()`` handles what is due now (tests call it with their clock)."""

    def __init__(self, bot: BondBot, *, interval_s: float = 30.0) -> None:
        self.bot = bot
        self.service = ScheduleService(bot.deps.store, bot.deps.clock)
        self.interval_s = interval_s
        #: A run whose replica has not renewed it for this long is recorded interrupted by another.
        self.stale_after_s = max(4 * interval_s, 120.0)
        self._task: asyncio.Task[None] | None = None

    @property
    def runner_id(self) -> str:
        return str(self.bot.supervisor.replica_id or "bot")

    async def start(self) -> None:
        async def loop() -> None:
            while True:
                try:
                    await self.tick()
                except Exception:
                    log.exception("schedule tick failed")
                await asyncio.sleep(self.interval_s)

        self._task = asyncio.get_running_loop().create_task(loop(), name="schedules")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def tick(self) -> list[tuple[str, str]]:
        """Renew this replica's running occurrences, record those of a replica that stopped, then
        claim and start what is due; returns the (schedule id, occurrence) this replica took."""
        await asyncio.to_thread(self.service.heartbeat, self.runner_id)  # while draining too
        if self.bot.supervisor.draining:
            return []
        for schedule, occurrence, dead in await asyncio.to_thread(
                self.service.recover_stale, runner=self.runner_id, stale_after_s=self.stale_after_s):
            tail = (f" The series is paused: check the incidents of this drill (a port may still be down), "
                    f"then resume it with /bond schedule resume {schedule.id}." if schedule.kind == "drill" else "")
            self.bot.spawn(self._post(schedule, f"⚠️ Schedule {schedule.id} ({schedule.describe()}): the occurrence "
                                                f"{occurrence_key(occurrence)} was interrupted: the bondbot replica "
                                                f"running it ({dead}) stopped before recording its result.{tail}"),
                           f"schedule {schedule.id} interrupted")
        now = self.bot.deps.clock()
        taken: list[tuple[str, str]] = []
        for schedule, occurrence, inside in await asyncio.to_thread(self.service.due, now):
            if not await asyncio.to_thread(self.service.claim, schedule, occurrence, runner=self.runner_id):
                continue  # another replica (or an earlier life of this one) has it
            taken.append((schedule.id, occurrence_key(occurrence)))
            if not inside:
                self.bot.spawn(self._skipped(schedule, occurrence, now), f"schedule {schedule.id} skipped")
            elif schedule.kind == "audit":
                self.bot.spawn(self._audit(schedule, occurrence), f"audit {schedule.id}")
            else:
                self.bot.spawn(self._drill(schedule, occurrence), f"drill {schedule.id}")
        return taken

    async def _post(self, schedule: Schedule, text: str) -> Any:
        rendered = views.text_message(text)
        return await self.bot.client.chat_postMessage(channel=schedule.channel, text=rendered.text,
                                                      blocks=rendered.blocks)

    async def _skipped(self, schedule: Schedule, occurrence: datetime, now: datetime) -> None:
        why = (f"its window ({schedule.window_minutes} min from {occurrence_key(occurrence)}) closed before "
               f"bondbot could run it")
        await asyncio.to_thread(self.service.handled, schedule, occurrence, outcome="skipped", result={"reason": why})
        await self._post(schedule, f"⏭️ Schedule {schedule.id} ({schedule.describe()}): skipped the occurrence "
                                   f"{occurrence_key(occurrence)}: {why}.")

    # ------------------------------------------------------------ targets

    def _targets(self, schedule: Schedule) -> list[tuple[str, str | None]]:
        if schedule.group:
            return self.bot.deps.triage.group_hosts(schedule.group)
        out: list[tuple[str, str | None]] = []
        for host in schedule.hosts:
            name, bond = self.bot.deps.triage.resolve(host, schedule.bond)
            out.append((name, bond))
        return out

    async def _bonds(self, host: str, named: str | None) -> tuple[list[str], str]:
        """The bonds to look at on ``host`` ([] and why when there are none or they cannot be read)."""
        listing = await self.bot.deps.triage.bonds(host)
        if listing.unreachable:
            return [], f"unreachable: {listing.error}"
        if named is not None:
            if listing.subjects is not None and named not in listing.subjects:
                return [], f"no bond {named} on the host"
            return [named], ""
        if listing.subjects is None:
            return [], f"bonds not listed: {listing.error}"
        if not listing.subjects:
            return [], f"no bond on this host ({listing.why_none})"
        return list(listing.subjects), ""

    # ------------------------------------------------------------ audits

    async def _audit(self, schedule: Schedule, occurrence: datetime) -> None:
        try:
            targets = self._targets(schedule)
        except UnknownTarget as exc:
            await asyncio.to_thread(self.service.handled, schedule, occurrence, outcome="failed",
                                    result={"error": str(exc)})
            await self._post(schedule, f"❌ Audit {schedule.id}: {exc}")
            return

        async def nothing(_: StepProgress) -> None:
            return None

        async def one_bond(host: str, bond: str) -> HostState:
            report = await self.bot.deps.triage.run(host, bond, incident_id="", actor=schedule_requester(schedule),
                                                    on_step=nothing)
            d = report.diagnosis
            if report.error or d is None:
                return HostState(host, bond, "inconclusive", report.error or "no diagnosis")
            if d.root_cause is not None:
                return HostState(host, bond, "broken", f"{d.root_cause.summary} ({d.root_cause.code})")
            if d.verdict == "healthy":
                if d.risks:
                    return HostState(host, bond, "at risk", "; ".join(f"{r.summary} ({r.code})" for r in d.risks))
                return HostState(host, bond, "healthy", d.headline())
            return HostState(host, bond, "inconclusive", d.headline())

        async def one(host: str, named: str | None) -> list[HostState]:
            bonds, why = await self._bonds(host, named)
            if not bonds:
                return [HostState(host, named or "", "inconclusive", why)]
            return list(await asyncio.gather(*(one_bond(host, b) for b in bonds)))

        rows = [r for rs in await asyncio.gather(*(one(h, b) for h, b in targets)) for r in rs]
        previous = await asyncio.to_thread(self.service.last_result, schedule.id)
        before: dict[str, str] = dict((previous or {}).get("states") or {})  # type: ignore[call-overload]
        states = {f"{r.host} {r.bond}".strip(): r.state for r in rows}
        changed = sorted(k for k, v in states.items() if previous is not None and before.get(k) != v)
        result = {"states": states, "changed": changed,
                  "rows": [{"host": r.host, "bond": r.bond, "state": r.state, "detail": r.detail} for r in rows]}
        await asyncio.to_thread(self.service.handled, schedule, occurrence, outcome="ok", result=result)
        await self._post_audit(schedule, occurrence, rows, changed, before, previous is not None)

    async def _post_audit(self, schedule: Schedule, occurrence: datetime, rows: list[HostState], changed: list[str],
                          before: dict[str, str], had_previous: bool) -> None:
        rendered = audit_summary(schedule, occurrence_key(occurrence), rows, changed, before, had_previous)
        await self.bot.client.chat_postMessage(channel=schedule.channel, text=rendered.text, blocks=rendered.blocks)

    # ------------------------------------------------------------ drills

    async def _drill(self, schedule: Schedule, occurrence: datetime) -> None:
        problem = self.service.standing_approval_problem(schedule)
        results: list[dict[str, Any]] = []
        if problem is None:
            try:
                targets = self._targets(schedule)
            except UnknownTarget as exc:
                problem = str(exc)
        if problem is not None:
            await self._finish_drill(schedule, occurrence, [{"ok": False, "summary": problem}], problem)
            return
        for host, named in targets:
            bonds, why = await self._bonds(host, named)
            if not bonds:
                results.append({"host": host, "bond": named or "", "ok": False, "summary": why})
                continue
            for bond in bonds:
                results.append(await self._drill_one(schedule, occurrence, host, bond))
        failed = [r for r in results if not r["ok"]]
        reason = None
        if failed:
            first = failed[0]
            reason = (f"paused after a failed drill at {occurrence_key(occurrence)}: "
                      f"{first.get('host', '')} {first.get('bond', '')}: {first['summary']}")[:500]
        await self._finish_drill(schedule, occurrence, results, reason)

    async def _finish_drill(self, schedule: Schedule, occurrence: datetime, results: list[dict[str, Any]],
                            pause_reason: str | None) -> None:
        outcome = "failed" if pause_reason else "passed"
        await asyncio.to_thread(self.service.handled, schedule, occurrence, outcome=outcome,
                                result={"results": results}, pause_reason=pause_reason)
        lines = [f"{'✅' if r['ok'] else '❌'} {r.get('host', '')} {r.get('bond', '')}: {r['summary']}"
                 + (f" ({r['incident']})" if r.get("incident") else "") for r in results]
        head = (f"{'✅' if outcome == 'passed' else '❌'} Scheduled failover drill {schedule.id} "
                f"({occurrence_key(occurrence)}): {outcome}")
        tail = (f"\nThe series is paused: {pause_reason}. Resume it with /bond schedule resume {schedule.id}."
                if pause_reason else "")
        await self._post(schedule, head + "\n" + "\n".join(lines) + tail)

    async def _drill_one(self, schedule: Schedule, occurrence: datetime, host: str, bond: str) -> dict[str, Any]:
        from bot import triage_flow

        bot = self.bot
        remediation = bot.deps.remediation
        method = schedule.method or ""
        opened: list[str] = []
        standing = {"schedule": schedule.id, "occurrence": occurrence_key(occurrence), "scope": schedule.scope(),
                    "scope_digest": schedule.scope_digest(), "approved_by": schedule.approved_by,
                    "approved_at": schedule.created_at}

        async def record_scope(incident_id: str) -> None:
            opened.append(incident_id)
            await bot._store("append", incident_id, actor=BOT_ACTOR, kind="note",
                             payload={"standing_approval": standing})

        # The preconditions, read fresh: the triage (the bond must be healthy to drill) ...
        await triage_flow.triage_subject(bot, host, bond, None, "bond", user=schedule_requester(schedule),
                                         channel=schedule.channel, opened=record_scope)
        incident_id = opened[0]
        out: dict[str, Any] = {"host": host, "bond": bond, "incident": incident_id, "ok": False}
        diagnosis = await asyncio.to_thread(self._diagnosis, incident_id)
        if diagnosis is None or diagnosis.verdict != "healthy":
            verdict = "no diagnosis" if diagnosis is None else (
                diagnosis.root_cause.summary if diagnosis.root_cause is not None else diagnosis.headline())
            out["summary"] = f"not drilled: the bond must be healthy first ({verdict})"
            await self._drill_note(incident_id, out)
            return out
        if remediation is None or method not in remediation.failover_methods():
            out["summary"] = f"not drilled: this bot cannot run the failover test by method {method!r}"
            await self._drill_note(incident_id, out)
            return out
        # ... and a fresh plan, offered and decided through the approvals service.
        try:
            planned = await remediation.plan_failover_test(host, bond, method)
        except Exception as exc:
            planned, error = None, str(exc)
        else:
            error = "nothing to test" if planned is None else ""
        if planned is None:
            out["summary"] = f"not drilled: planning the failover test refused: {error}"
            await self._drill_note(incident_id, out)
            return out
        plan = as_plan("failover_test", planned, method)
        approvals = bot.approvals
        await asyncio.to_thread(approvals.offer, incident_id, plan, actor=BOT_ACTOR,
                                requester=schedule_requester(schedule), action="failover_test",
                                batch=f"schedule:{schedule.id}:{occurrence_key(occurrence)}",
                                extra={"method_key": method, "bond": bond, "standing_approval": schedule.id,
                                       "scope_digest": schedule.scope_digest()})
        decision = await asyncio.to_thread(approvals.decide, incident_id, plan.digest, actor=drill_actor(schedule),
                                           approve=True, current=plan, action="failover_test")
        if not decision:
            out["summary"] = f"not drilled: {decision.message}"
            await self._drill_note(incident_id, out)
            return out
        await bot.refresh_message(incident_id)
        lease = await bot.supervisor.begin("failover_test", incident_id, plan_hash=plan.digest, host=host, bond=bond,
                                           method=method, action="failover_test")
        await asyncio.to_thread(approvals.begin_run, decision, actor=BOT_ACTOR)

        async def notify(text: str) -> None:
            await self._post(schedule, f"{schedule.id} {host} {bond}: {text}")

        result: Any
        try:
            result = await remediation.run_failover_test(planned, incident_id=incident_id, actor=drill_actor(schedule),
                                                         approved_hash=approved_hash_for(planned), notify=notify)
        except Exception as exc:
            log.exception("drill %s on %s %s failed", schedule.id, host, bond)
            result = exc
        finally:
            if lease is not None:
                await bot.supervisor.release(lease)
        await asyncio.to_thread(approvals.record_run, decision, result, actor=BOT_ACTOR)
        await bot.refresh_message(incident_id)
        if isinstance(result, BaseException):
            out["summary"] = f"the failover test failed: {result}"
        else:
            out["ok"], out["summary"] = bool(result.ok), str(result.summary)[:300]
            if not result.ok:
                out["summary"] = f"the failover test failed: {out['summary']}"
        return out

    def _diagnosis(self, incident_id: str) -> Any:
        from bot.incident_view import diagnosis_from_json

        found = None
        for event in self.bot.deps.store.events(incident_id):
            if event.kind == "diagnosis" and "findings" in event.payload:
                found = diagnosis_from_json(event.payload)
        return found

    async def _drill_note(self, incident_id: str, out: dict[str, Any]) -> None:
        await self.bot._store("append", incident_id, actor=BOT_ACTOR, kind="note",
                              payload={"drill_result": {k: v for k, v in out.items() if k != "incident"}})
        await self.bot.refresh_message(incident_id)
