"""Scheduled audits and failover drills, kept in the incident store: add, list, pause, resume,
remove, and which occurrence is due, for the bot and the CLI alike (no Slack here).

Why it is its own module: a schedule must survive restarts and fire exactly once across replicas,
so it is a row (``incidents.automation``), and the one replica that claims an occurrence
(schedule id + occurrence time, a primary key) runs it. ``runbooks.schedules`` says *when*; this
module says *what is stored* and checks a drill's standing approval before every run.

A drill schedule is a standing approval: the approver who adds it approves, in advance, the
failover test of exactly its scope (``Schedule.scope()``: hosts or group, bond, method, cron, zone,
window, channel, approver). Its ``scope_digest`` is recorded when it is made
(``extra["scope_digest"]``); a run whose stored scope no longer has that digest (an edited row)
does not run. Revoking it is ``pause`` (until ``resume``) or ``remove`` (for good).

Every change is an event of the schedule's hash-chained log, with who made it (``history``,
``verify``): ``added`` (with the standing approval's digest), ``paused``, ``resumed``, ``removed``,
``run`` (each occurrence handled: its outcome, and a pause it caused) and ``refusal``.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from incidents import automation
from incidents import stamp as _stamp  # heartbeats in the store's own time format
from incidents.model import Break, Event
from runbooks.schedules import Schedule, ScheduleError, due_occurrence, missed_occurrence, parse_window

__all__ = ["ScheduleService", "ScheduleError", "occurrence_key", "describe_event", "RUNNER_ACTOR"]

#: Who the schedule log names for what the scheduler itself does (runs, the pause after a failure).
RUNNER_ACTOR = "bondbot:scheduler"

_ID_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def occurrence_key(moment: datetime) -> str:
    """An occurrence as stored: ISO UTC to the second (``2026-12-05T01:00:00Z``)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def describe_event(kind: str, actor: str, payload: Mapping[str, Any]) -> str:
    """One event of a schedule's log in words (plain text: the caller escapes it for where it goes)."""
    if kind == "added":
        approval = payload.get("standing_approval")
        if isinstance(approval, dict):
            return (f"added by {actor}: standing approval of this scope "
                    f"(digest {str(approval.get('scope_digest', ''))[:12]})")
        return f"added by {actor}"
    if kind in ("paused", "resumed", "removed"):
        reason = payload.get("reason")
        return f"{kind} by {actor}" + (f": {reason}" if reason and kind == "paused" else "")
    if kind == "run":
        line = f"occurrence {payload.get('occurrence', '?')}: {payload.get('outcome', '?')}"
        return line + (f"; series paused: {payload['paused']}" if payload.get("paused") else "")
    if kind == "refusal":
        return f"refused to {payload.get('action', '?')} for {actor}: {payload.get('reason', '')}"
    if kind == "recorded":
        return f"recorded by {actor}: {payload.get('note', '')}"
    return f"{kind} by {actor}"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


class ScheduleService:
    """Schedules in ``store`` (an ``IncidentStore``); ``clock`` gives the time (tests move it)."""

    def __init__(self, store: Any, clock: Callable[[], datetime] | None = None) -> None:
        self.store = store
        self.clock = clock or (lambda: datetime.now(UTC))

    # ------------------------------------------------------------------ managing

    def add(self, *, kind: str, cron: str, tz: str, window: str, channel: str, created_by: str,
            hosts: Sequence[str] = (), group: str | None = None, bond: str | None = None,
            method: str | None = None) -> Schedule:
        """A new schedule (a drill: its standing approval by ``created_by``, who must be an approver:
        the caller's policy checks that). ``ScheduleError`` names what is wrong; nothing is stored then."""
        minutes = int(parse_window(window).total_seconds() // 60)
        schedule_id = "SCH-" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(6))
        schedule = Schedule(
            id=schedule_id, kind=kind, cron=cron, tz=tz, window_minutes=minutes, channel=channel,
            created_by=created_by, created_at=_iso(self.clock()), hosts=tuple(hosts), group=group, bond=bond,
            method=method if kind == "drill" else None, approved_by=created_by if kind == "drill" else None,
            last_occurrence=_iso(self.clock()),  # nothing before it was made is due or missed
        )
        detail: dict[str, Any] = {}
        if kind == "drill":
            schedule = replace(schedule, extra={"scope_digest": schedule.scope_digest()})
            detail = {"standing_approval": {"approved_by": created_by, "scope_digest": schedule.scope_digest(),
                                            "scope": schedule.scope()}}
        automation.save_schedule(self.store, schedule.id, schedule.kind, schedule.to_dict(), create=True,
                                 actor=created_by, change="added", detail=detail)
        return schedule

    def get(self, schedule_id: str) -> Schedule:
        return Schedule.from_dict(self._row(schedule_id, removed=False).definition)

    def schedules(self, *, include_removed: bool = False) -> list[Schedule]:
        return [Schedule.from_dict(r.definition)
                for r in automation.list_schedules(self.store, include_removed=include_removed)]

    def _save(self, schedule: Schedule, *, actor: str, change: str, **detail: Any) -> Schedule:
        automation.save_schedule(self.store, schedule.id, schedule.kind, schedule.to_dict(), actor=actor,
                                 change=change, detail=detail)
        return schedule

    def _row(self, schedule_id: str, *, removed: bool) -> automation.ScheduleRow:
        """The stored row of ``schedule_id`` (as typed: any case, spaces); ``ScheduleError`` if
        there is none, or if it is removed and ``removed`` is False."""
        row = automation.get_schedule(self.store, schedule_id.strip().upper())
        if row is None or (row.state == "removed" and not removed):
            raise ScheduleError(f"no schedule {schedule_id!r} (see the list)")
        return row

    def history(self, schedule_id: str) -> list[Event]:
        """The schedule's log, oldest first (``incidents.Event``; removed schedules included)."""
        return automation.schedule_log(self.store, self._row(schedule_id, removed=True).id)

    def verify(self, schedule_id: str) -> tuple[int, str, Break | None]:
        """``(events, head hash, first break or None)`` of the schedule's log."""
        return automation.verify_schedule_log(self.store, self._row(schedule_id, removed=True).id)

    def refused(self, schedule_id: str, *, actor: str, action: str, reason: str) -> None:
        """A refused change of an existing schedule, on its log (nothing else changes)."""
        try:
            row = self._row(schedule_id, removed=True)
        except ScheduleError:
            return
        automation.log_schedule_event(self.store, row.id, actor=actor, kind="refusal",
                                      payload={"action": action, "reason": reason})

    def pause(self, schedule_id: str, *, actor: str, reason: str = "") -> Schedule:
        schedule = self.get(schedule_id)
        why = reason or f"paused by {actor}"
        return self._save(replace(schedule.with_state("paused", why), extra={**schedule.extra, "changed_by": actor}),
                          actor=actor, change="paused", reason=why)

    def resume(self, schedule_id: str, *, actor: str) -> Schedule:
        """Active again. The occurrences missed while paused are not run (their windows are theirs)."""
        schedule = self.get(schedule_id)
        now = occurrence_key(self.clock())
        last = schedule.last_occurrence
        # Resuming does not run an occurrence that started while paused (it was decided against).
        start = max(last, _iso(self.clock())) if last else _iso(self.clock())
        resumed = replace(schedule.with_state("active"), last_occurrence=start,
                          extra={**schedule.extra, "changed_by": actor, "resumed_at": now})
        return self._save(resumed, actor=actor, change="resumed")

    def remove(self, schedule_id: str, *, actor: str) -> Schedule:
        """For good (the row stays, marked removed, so its runs keep their context)."""
        schedule = self.get(schedule_id)
        return self._save(replace(schedule.with_state("removed", f"removed by {actor}"),
                                  extra={**schedule.extra, "changed_by": actor}), actor=actor, change="removed")

    # ------------------------------------------------------------------ running

    def standing_approval_problem(self, schedule: Schedule) -> str | None:
        """Why a drill's standing approval does not cover this schedule as stored (None: it does)."""
        if schedule.kind != "drill":
            return None
        recorded = schedule.extra.get("scope_digest", "")
        if not recorded or recorded != schedule.scope_digest():
            return "the schedule's scope differs from what its approver approved (scope digest mismatch)"
        return None

    def due(self, now: datetime) -> list[tuple[Schedule, datetime, bool]]:
        """(schedule, occurrence, run) pairs to handle now: ``run`` True for an occurrence inside its
        window, False for one whose window closed unhandled (to record as skipped, once)."""
        out: list[tuple[Schedule, datetime, bool]] = []
        for schedule in self.schedules():
            occurrence = due_occurrence(schedule, now)
            if occurrence is not None:
                out.append((schedule, occurrence, True))
                continue
            missed = missed_occurrence(schedule, now)
            if missed is not None:
                out.append((schedule, missed, False))
        return out

    def claim(self, schedule: Schedule, occurrence: datetime, *, runner: str) -> bool:
        """True for the one replica (in any number, across restarts) that handles this occurrence."""
        return automation.claim_occurrence(self.store, schedule.id, occurrence_key(occurrence), runner=runner,
                                           now=_stamp(self.clock()))

    def heartbeat(self, runner: str) -> int:
        """``runner`` is alive: renew its unfinished runs (a replica does it on every tick)."""
        return automation.heartbeat_runs(self.store, runner, now=_stamp(self.clock()))

    def recover_stale(self, *, runner: str, stale_after_s: float) -> list[tuple[Schedule, datetime, str]]:
        """Runs whose replica stopped renewing them for ``stale_after_s``: each is taken over (one
        replica wins) and recorded ``interrupted``; a drill's series pauses, since a drill cut off
        may have left a port down. Returns (schedule, occurrence, the replica that stopped)."""
        now = self.clock()
        before = _stamp(now - timedelta(seconds=stale_after_s))
        out: list[tuple[Schedule, datetime, str]] = []
        for run in automation.stale_runs(self.store, before=before):
            if not automation.take_over_run(self.store, run, runner=runner, now=_stamp(now)):
                continue
            row = automation.get_schedule(self.store, run.schedule_id)
            if row is None:
                continue
            schedule = Schedule.from_dict(row.definition)
            occurrence = datetime.strptime(run.occurrence, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
            why = (f"the bondbot replica running it ({run.runner}) stopped: no heartbeat since "
                   f"{run.heartbeat_at or run.started_at}")
            pause = (f"paused: the drill of {run.occurrence} was interrupted ({why}); check its incidents "
                     f"before resuming") if schedule.kind == "drill" else None
            self.handled(schedule, occurrence, outcome="interrupted", result={"reason": why, "runner": run.runner},
                         pause_reason=pause)
            out.append((schedule, occurrence, run.runner))
        return out

    def handled(self, schedule: Schedule, occurrence: datetime, *, outcome: str, result: Mapping[str, Any],
                pause_reason: str | None = None) -> Schedule:
        """Record the occurrence's outcome; move the schedule past it (and pause it after a failure),
        with a ``run`` event on its log, in one transaction (a schedule removed meanwhile included)."""
        current = Schedule.from_dict(self._row(schedule.id, removed=True).definition)
        last = current.last_occurrence
        if last is None or datetime.fromisoformat(last) < occurrence:
            current = replace(current, last_occurrence=_iso(occurrence))
        paused = pause_reason is not None and current.state == "active"
        if pause_reason is not None and paused:
            current = current.with_state("paused", pause_reason)
        automation.finish_occurrence(self.store, schedule.id, occurrence_key(occurrence), outcome=outcome,
                                     result=result, definition=current.to_dict(), actor=RUNNER_ACTOR,
                                     detail={"paused": pause_reason} if paused else None)
        return current

    def runs(self, schedule_id: str | None = None) -> list[automation.ScheduleRun]:
        return automation.schedule_runs(self.store, schedule_id)

    def last_result(self, schedule_id: str) -> dict[str, object] | None:
        """The newest finished run's result (an audit compares its hosts with it)."""
        for run in reversed(self.runs(schedule_id)):
            if run.finished_at and run.result is not None and run.outcome in ("ok", "changed", "failed", "passed"):
                return run.result
        return None
