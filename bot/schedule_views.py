"""The Slack messages of schedules: the audit summary and the schedule list (Block Kit through
``slack_sdk.models`` so its validation runs; every host-sourced string escaped)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from slack_sdk.models.blocks import Block, MarkdownTextObject, SectionBlock

from bot.views import Rendered, _escape

if TYPE_CHECKING:
    from collections.abc import Sequence

    from incidents.model import Break, Event
    from runbooks.schedules import Schedule

__all__ = ["AUDIT_STATES", "HostState", "audit_summary", "schedule_list", "schedule_history"]

#: The audit's summary, in this order.
AUDIT_STATES = ("broken", "at risk", "inconclusive", "healthy")


@dataclass(frozen=True)
class HostState:
    """One bond's state in a scheduled audit."""

    host: str
    bond: str
    state: str  # one of AUDIT_STATES
    detail: str

_ICONS = {"broken": "🔴", "at risk": "🟠", "inconclusive": "⚠️", "healthy": "✅"}
_LIMIT = 2900


def _sections(lines: list[str]) -> list[Block]:
    blocks: list[Block] = []
    chunk: list[str] = []
    for line in lines:
        line = line[:_LIMIT]
        if sum(len(c) + 1 for c in chunk) + len(line) > _LIMIT:
            blocks.append(SectionBlock(text=MarkdownTextObject(text="\n".join(chunk))))
            chunk = []
        chunk.append(line)
    if chunk:
        blocks.append(SectionBlock(text=MarkdownTextObject(text="\n".join(chunk))))
    return blocks[:49]


def audit_summary(schedule: Schedule, occurrence: str, rows: list[HostState], changed: list[str],
                  before: dict[str, str], had_previous: bool) -> Rendered:
    """One message per audit run: the counts per state, each bond's line, what changed since the last run."""

    counts = {s: sum(1 for r in rows if r.state == s) for s in AUDIT_STATES}
    scope = f"group {schedule.group}" if schedule.group else ", ".join(schedule.hosts)
    title = (f"Scheduled audit {schedule.id} of {scope} ({occurrence}): "
             + ", ".join(f"{counts[s]} {s}" for s in AUDIT_STATES))
    lines = [f"*{_escape(title)}*"]
    for state in AUDIT_STATES:
        for r in rows:
            if r.state == state:
                bond = f" {_escape(r.bond)}" if r.bond else ""
                lines.append(f"{_ICONS[state]} *{_escape(r.host)}*{bond}: {state} — {_escape(r.detail[:300])}")
    if not had_previous:
        lines.append("_First run of this audit: nothing to compare with._")
    elif changed:
        lines.append("*Changed since the last run:* " + ", ".join(
            f"{_escape(k)} ({_escape(before.get(k, 'not seen'))} → "
            f"{_escape(next((r.state for r in rows if f'{r.host} {r.bond}'.strip() == k), '?'))})" for k in changed))
    else:
        lines.append("No host changed since the last run.")
    return Rendered(text=title[:3000], blocks=[b.to_dict() for b in _sections(lines)])


def schedule_list(schedules: list[Schedule]) -> Rendered:
    if not schedules:
        text = "No schedules. Add one: /bond schedule add audit|drill ..."
        return Rendered(text=text, blocks=[SectionBlock(text=MarkdownTextObject(text=_escape(text))).to_dict()])
    lines = [f"*Schedules ({len(schedules)})*"]
    for s in schedules:
        state = s.state + (f" ({s.paused_reason})" if s.state == "paused" and s.paused_reason else "")
        lines.append(f"`{_escape(s.id)}` {_escape(s.describe())} · channel <#{_escape(s.channel)}> · *{_escape(state)}*")
    return Rendered(text=f"Schedules ({len(schedules)})", blocks=[b.to_dict() for b in _sections(lines)])


def schedule_history(schedule_id: str, events: Sequence[Event], verified: tuple[int, str, Break | None]) -> Rendered:
    """``/bond schedule history ID``: the log, newest last, and whether it verifies."""
    from runbooks.scheduler import describe_event

    count, head, broken = verified
    status = (f"✅ log intact: {count} events, head `{_escape(head[:12])}`" if broken is None else
              f"❌ log broken at event {broken.seq}: {_escape(broken.reason)}")
    lines = [f"*History of `{_escape(schedule_id)}`*", status]
    for e in events:
        lines.append(f"{_escape(e.ts)} · {_escape(describe_event(e.kind, e.actor, e.payload))}")
    return Rendered(text=f"History of {schedule_id}", blocks=[b.to_dict() for b in _sections(lines)])
