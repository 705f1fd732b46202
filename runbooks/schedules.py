"""When scheduled audits and failover drills are due: cron expressions in a named time zone, each
occurrence valid only inside its window.

A schedule fires at the occurrences of its cron expression (five fields, ``cronsim``'s dialect,
which is Vixie cron's: ``0 2 * * SAT``), evaluated in its IANA time zone so that "02:00 on
Saturdays in Europe/Berlin" stays 02:00 across daylight-saving changes. An occurrence may start a
run only until ``window`` has passed since it: a bot that was down at 02:00 and comes back at
05:00 does not run a 02:00-04:00 drill at 05:00 (the run is skipped, and says so), and never runs
two occurrences at once to catch up. Which replica runs an occurrence is decided elsewhere (the
incident store's claims); this module only says which occurrence, if any, is due.

A drill schedule is a *standing approval*: its scope (the hosts or group, the bond if named, the
method, the expression, the zone and the window) is fixed when an approver creates it, and is
what every run is checked against. Changing any of it means a new schedule.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

__all__ = [
    "ScheduleError",
    "Schedule",
    "KINDS",
    "parse_window",
    "validate_cron",
    "occurrences",
    "due_occurrence",
    "missed_occurrence",
]

KINDS = ("audit", "drill")
_WINDOW = re.compile(r"^(?:(?P<h>\d{1,3})h)?(?:(?P<m>\d{1,4})m)?$")
_MAX_WINDOW = timedelta(days=7)


class ScheduleError(ValueError):
    """A schedule that cannot be made as asked (bad expression, zone, window or scope)."""


def parse_window(text: str) -> timedelta:
    """``2h``, ``90m``, ``1h30m`` -> a timedelta (1 minute to 7 days)."""
    m = _WINDOW.match(text.strip())
    if not text.strip() or not m or not (m.group("h") or m.group("m")):
        raise ScheduleError(f"window {text!r}: write it as 2h, 90m or 1h30m")
    window = timedelta(hours=int(m.group("h") or 0), minutes=int(m.group("m") or 0))
    if not timedelta(minutes=1) <= window <= _MAX_WINDOW:
        raise ScheduleError(f"window {text!r}: between 1m and 7 days")
    return window


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(f"unknown time zone {name!r} (an IANA name, e.g. Europe/Berlin or UTC)") from None


def validate_cron(expr: str) -> str:
    """The expression, checked (five fields); :class:`ScheduleError` says what is wrong."""
    if len(expr.split()) != 5:
        raise ScheduleError(f"cron expression {expr!r}: five fields (minute hour day-of-month month day-of-week)")
    try:
        CronSim(expr, datetime(2000, 1, 1, tzinfo=UTC))
    except CronSimError as exc:
        raise ScheduleError(f"cron expression {expr!r}: {exc}") from None
    return expr


@dataclass(frozen=True)
class Schedule:
    """One schedule. ``hosts`` or ``group`` is the scope (drills: exactly the hosts named, or the
    group as it is at run time, as the approver chose); ``bond`` None means every bond found."""

    id: str
    kind: str
    cron: str
    tz: str
    window_minutes: int
    channel: str
    created_by: str
    created_at: str
    hosts: tuple[str, ...] = ()
    group: str | None = None
    bond: str | None = None
    method: str | None = None  # drills: the failover method
    approved_by: str | None = None  # drills: the approver whose standing approval this is
    state: str = "active"  # active | paused | removed
    paused_reason: str = ""
    last_occurrence: str | None = None  # ISO UTC of the last occurrence handled (run or skipped)
    extra: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ScheduleError(f"unknown schedule kind {self.kind!r} (one of {', '.join(KINDS)})")
        validate_cron(self.cron)
        _zone(self.tz)
        if not 1 <= self.window_minutes <= int(_MAX_WINDOW.total_seconds() // 60):
            raise ScheduleError("window: between 1 minute and 7 days")
        if bool(self.hosts) == bool(self.group):
            raise ScheduleError("a schedule names hosts or a group (exactly one of them)")
        if self.kind == "drill" and (not self.method or not self.approved_by):
            raise ScheduleError("a drill names its failover method and the approver whose standing approval it is")
        if self.state not in {"active", "paused", "removed"}:
            raise ScheduleError(f"unknown schedule state {self.state!r}")

    @property
    def window(self) -> timedelta:
        return timedelta(minutes=self.window_minutes)

    @property
    def zone(self) -> ZoneInfo:
        return _zone(self.tz)

    def scope(self) -> dict[str, object]:
        """What a standing approval covers, exactly: recorded when it is made, checked at each run."""
        return {"kind": self.kind, "hosts": list(self.hosts), "group": self.group, "bond": self.bond,
                "method": self.method, "cron": self.cron, "tz": self.tz, "window_minutes": self.window_minutes,
                "approved_by": self.approved_by, "channel": self.channel}

    def scope_digest(self) -> str:
        return hashlib.sha256(json.dumps(self.scope(), sort_keys=True).encode()).hexdigest()

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["hosts"] = list(self.hosts)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> Schedule:
        data = dict(d)
        data["hosts"] = tuple(data.get("hosts") or ())  # type: ignore[arg-type]
        data["extra"] = dict(data.get("extra") or {})  # type: ignore[call-overload]
        return cls(**data)  # type: ignore[arg-type]

    def with_state(self, state: str, reason: str = "") -> Schedule:
        return replace(self, state=state, paused_reason=reason)

    def describe(self) -> str:
        target = ", ".join(self.hosts) if self.hosts else f"group {self.group}"
        what = "audit" if self.kind == "audit" else f"failover drill ({self.method})"
        bond = f" bond {self.bond}" if self.bond else ""
        return (f"{what} of {target}{bond}: `{self.cron}` {self.tz}, window {self.window_minutes} min"
                + (f", approved by {self.approved_by}" if self.approved_by else ""))


def occurrences(schedule: Schedule, after: datetime, until: datetime) -> list[datetime]:
    """The occurrences in (after, until], as aware UTC datetimes (bounded to 1,000)."""
    if after.tzinfo is None or until.tzinfo is None:
        raise ValueError("aware datetimes only")
    out: list[datetime] = []
    for moment in CronSim(schedule.cron, after.astimezone(schedule.zone)):
        if moment > until or len(out) >= 1000:
            break
        out.append(moment.astimezone(UTC))
    return out


def _last_at_or_before(schedule: Schedule, now: datetime) -> datetime | None:
    # CronSim iterates forward only: step back by the window (occurrences older than that are
    # outside their window anyway) and take the last one at or before now.
    found = [m for m in occurrences(schedule, now - schedule.window - timedelta(seconds=1), now)]
    return found[-1] if found else None


def due_occurrence(schedule: Schedule, now: datetime) -> datetime | None:
    """The occurrence to run now, if any: the latest one at or before ``now`` whose window is still
    open and that was not handled yet. Paused or removed schedules have none."""
    if schedule.state != "active":
        return None
    last = _last_at_or_before(schedule, now)
    if last is None or now >= last + schedule.window:
        return None
    if schedule.last_occurrence is not None and last <= datetime.fromisoformat(schedule.last_occurrence):
        return None
    return last


def missed_occurrence(schedule: Schedule, now: datetime) -> datetime | None:
    """The most recent occurrence whose window closed without being handled (to say it was
    skipped, once), looking back one week at most."""
    if schedule.state != "active":
        return None
    since = now - timedelta(days=7)
    if schedule.last_occurrence is not None:
        since = max(since, datetime.fromisoformat(schedule.last_occurrence))
    closed = [m for m in occurrences(schedule, since, now) if m + schedule.window <= now]
    return closed[-1] if closed else None
