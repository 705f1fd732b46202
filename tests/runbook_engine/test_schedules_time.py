"""runbooks.schedules: which occurrence is due, in its zone, inside its window only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from runbooks.schedules import Schedule, ScheduleError, due_occurrence, missed_occurrence, occurrences, parse_window


def drill(**over: object) -> Schedule:
    base: dict[str, object] = dict(id="S1", kind="drill", cron="0 2 * * SAT", tz="Europe/Berlin", window_minutes=120,
                                   channel="C1", created_by="U1", created_at="2026-03-01T00:00:00Z",
                                   hosts=("web-01",), method="manual", approved_by="U2")
    base.update(over)
    return Schedule(**base)  # type: ignore[arg-type]


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_local_time_is_kept_across_daylight_saving() -> None:
    # Berlin switches to summer time on 2026-03-29: 02:00 local is 01:00 UTC before, 00:00 UTC after.
    got = occurrences(drill(), utc(2026, 3, 20), utc(2026, 4, 5))
    assert got == [utc(2026, 3, 21, 1), utc(2026, 3, 28, 1), utc(2026, 4, 4, 0)]


def test_due_only_inside_the_window_and_only_once() -> None:
    s = drill()
    assert due_occurrence(s, utc(2026, 3, 28, 0, 59)) is None  # before 02:00 local
    assert due_occurrence(s, utc(2026, 3, 28, 1, 0)) == utc(2026, 3, 28, 1)
    assert due_occurrence(s, utc(2026, 3, 28, 2, 59)) == utc(2026, 3, 28, 1)
    assert due_occurrence(s, utc(2026, 3, 28, 3, 0)) is None  # the window (2 h) has closed
    handled = drill(last_occurrence=utc(2026, 3, 28, 1).isoformat())
    assert due_occurrence(handled, utc(2026, 3, 28, 1, 30)) is None  # already run
    assert missed_occurrence(s, utc(2026, 3, 28, 5)) == utc(2026, 3, 28, 1)
    assert missed_occurrence(handled, utc(2026, 3, 28, 5)) is None


def test_paused_or_removed_is_never_due() -> None:
    for state in ("paused", "removed"):
        s = drill(state=state)
        assert due_occurrence(s, utc(2026, 3, 28, 1, 10)) is None and missed_occurrence(s, utc(2026, 3, 29)) is None


@pytest.mark.parametrize("over, message", [
    ({"cron": "0 2 * *"}, "five fields"),
    ({"cron": "61 2 * * *"}, "cron expression"),
    ({"tz": "Mars/Olympus"}, "unknown time zone"),
    ({"window_minutes": 0}, "window"),
    ({"hosts": (), "group": None}, "hosts or a group"),
    ({"group": "web"}, "hosts or a group"),
    ({"approved_by": None}, "standing approval"),
    ({"kind": "reboot"}, "unknown schedule kind"),
])
def test_bad_schedules_are_refused(over: dict[str, object], message: str) -> None:
    with pytest.raises(ScheduleError, match=message):
        drill(**over)


def test_window_syntax() -> None:
    assert parse_window("2h") == timedelta(hours=2) and parse_window("1h30m") == timedelta(minutes=90)
    for bad in ("", "2", "2d", "0m", "200h", "h"):
        with pytest.raises(ScheduleError):
            parse_window(bad)


def test_the_scope_is_the_standing_approval() -> None:
    s = drill()
    assert s.scope_digest() == drill(state="paused", last_occurrence="x").scope_digest()
    assert s.scope_digest() != drill(method="lab").scope_digest() != drill(hosts=("web-02",)).scope_digest()
    assert Schedule.from_dict(s.to_dict()) == s
