"""``/bond schedule list|add|pause|resume|remove|history``: parsing and handling, after the listener's ack.

::

    /bond schedule list
    /bond schedule add audit group=web cron="0 6 * * *" tz=Europe/Berlin window=1h
    /bond schedule add drill hosts=web-01,web-02 bond=bond0 method=host cron="0 2 * * SAT" tz=Europe/Berlin window=2h
    /bond schedule pause SCH-XXXXXX [reason words]
    /bond schedule resume SCH-XXXXXX
    /bond schedule remove SCH-XXXXXX
    /bond schedule history SCH-XXXXXX

The schedule posts to the channel it was added in. Adding a drill is a standing approval, so only
an approver (the authorization policy's) may add one or resume one; anyone who may triage in the
channel may list, add an audit, pause or remove (stopping is always allowed). Every value is
checked before anything is stored: hosts and groups against the inventory, the bond as an
interface name, the method against the bot's failover methods (never ``manual``: it needs a person
at the switch), the expression, zone and window by ``runbooks.schedules``. Every change, and a
refused resume, is on the schedule's hash-chained log (``history`` shows it and whether it verifies).
"""

from __future__ import annotations

import asyncio
import re
import shlex
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bot import views
from bot.domain import UnknownTarget
from runbooks.scheduler import ScheduleService
from runbooks.schedules import ScheduleError
from runbooks.validation import InvalidValue, validate_interface_name
from ssh_exec import validate_host_name

if TYPE_CHECKING:
    from bot.app import BondBot

__all__ = ["ScheduleRequest", "ScheduleUsage", "handle", "parse_schedule"]

USAGE = ("Usage: `/bond schedule list` · `/bond schedule add audit|drill hosts=H1,H2|group=G [bond=B] "
         "[method=M] cron=\"0 2 * * SAT\" tz=Europe/Berlin window=2h` · `/bond schedule pause|resume|remove|history ID`")
_ID_RE = re.compile(r"^SCH-[0-9A-Z]{4,12}$")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$")
_KEYS = {"hosts", "group", "bond", "method", "cron", "tz", "window"}


class ScheduleUsage(ValueError):
    """The ``/bond schedule`` text cannot be understood; the message says why."""


@dataclass(frozen=True)
class ScheduleRequest:
    action: str  # list | add | pause | resume | remove | history
    kind: str = ""
    schedule_id: str = ""
    options: dict[str, str] = field(default_factory=dict)
    reason: str = ""


def parse_schedule(text: str) -> ScheduleRequest:
    """The words after ``/bond schedule`` (quotes as in a shell; Slack's curly quotes are plain ones)."""
    text = text.replace("\u201c", '"').replace("\u201d", '"').replace("\u2018", "'").replace("\u2019", "'")
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise ScheduleUsage(f"Cannot read the arguments: {exc}.") from None
    if not words:
        raise ScheduleUsage("Name what to do: list, add, pause, resume, remove or history.")
    action, args = words[0].lower(), words[1:]
    if action == "list" and not args:
        return ScheduleRequest("list")
    if action in ("pause", "resume", "remove", "history") and args:
        sid = args[0].upper()
        if not _ID_RE.match(sid):
            raise ScheduleUsage(f"`{args[0][:40]}` is not a schedule id (SCH-...).")
        if action != "pause" and len(args) > 1:
            raise ScheduleUsage(f"`{action}` takes only the schedule id.")
        return ScheduleRequest(action, schedule_id=sid, reason=" ".join(args[1:])[:200])
    if action == "add" and args and args[0] in ("audit", "drill"):
        options: dict[str, str] = {}
        for word in args[1:]:
            key, sep, value = word.partition("=")
            if not sep or key not in _KEYS:
                raise ScheduleUsage(f"`{word[:60]}` is not one of {', '.join(sorted(_KEYS))} as key=value.")
            if key in options:
                raise ScheduleUsage(f"`{key}` given twice.")
            options[key] = value
        return ScheduleRequest("add", kind=args[0], options=options)
    raise ScheduleUsage(f"Wrong arguments for `schedule {action[:20]}`.")


def check_add(request: ScheduleRequest, *, failover_methods: tuple[str, ...], resolve_host: Any,
              group_exists: Any) -> dict[str, Any]:
    """The keyword arguments of ``ScheduleService.add`` (less channel and creator), all checked."""
    o = request.options
    for key in ("cron", "tz", "window"):
        if not o.get(key):
            raise ScheduleUsage(f"`{key}=` is required.")
    hosts = tuple(h for h in o.get("hosts", "").split(",") if h)
    group = o.get("group") or None
    if bool(hosts) == bool(group):
        raise ScheduleUsage("Name `hosts=H1,H2` or `group=G` (one of them).")
    for h in hosts:
        try:
            validate_host_name(h)  # the inventory's own rule, as for /bond triage
        except InvalidValue:
            raise ScheduleUsage(f"`{h[:60]}` is not a valid host name.") from None
    if group is not None and not _NAME_RE.match(group):
        raise ScheduleUsage(f"`{group[:60]}` is not a valid group name.")
    try:
        hosts = tuple(resolve_host(h) for h in hosts)
        if group is not None:
            group_exists(group)
    except UnknownTarget as exc:
        raise ScheduleUsage(str(exc)) from None
    bond = o.get("bond") or None
    if bond is not None:
        try:
            bond = validate_interface_name(bond)
        except InvalidValue:
            raise ScheduleUsage(f"`{bond[:40]}` is not a valid bond interface name.") from None
    method = o.get("method") or None
    if request.kind == "drill":
        usable = tuple(m for m in failover_methods if m != "manual")
        if method is None or method not in usable:
            raise ScheduleUsage(f"A drill needs `method=` one of: {', '.join(usable) or '(none: no remediation)'} "
                                "(the manual method needs a person at the switch and is never scheduled).")
    elif method is not None:
        raise ScheduleUsage("An audit is read-only: it takes no `method=`.")
    return {"kind": request.kind, "cron": o["cron"], "tz": o["tz"], "window": o["window"], "hosts": hosts,
            "group": group, "bond": bond, "method": method}


async def handle(bot: BondBot, text: str, *, user: str, channel: str, respond: Any) -> None:
    """Parse, authorize, do, answer (ephemeral); a schedule change is also said in the channel."""

    async def say(rendered: views.Rendered) -> None:
        await respond(text=rendered.text, blocks=rendered.blocks, response_type="ephemeral")

    try:
        request = parse_schedule(text)
    except ScheduleUsage as exc:
        await say(views.error_message(f"{exc} {USAGE}"))
        return
    service = ScheduleService(bot.deps.store, bot.deps.clock)
    needs_approver = request.action == "add" and request.kind == "drill"
    try:
        if request.action == "resume":
            needs_approver = (await asyncio.to_thread(service.get, request.schedule_id)).kind == "drill"
        if needs_approver:
            decision = await bot.deps.policy.approver(user, bot.members_now)  # fresh: a standing approval
            if not decision:
                if request.action == "resume":
                    await asyncio.to_thread(service.refused, request.schedule_id, actor=user, action="resume",
                                            reason=decision.reason)
                await say(views.refusal_message(
                    "schedule a failover drill" if request.action == "add" else "resume a failover drill",
                    f"{decision.reason} (a drill is a standing approval: approvers only)"))
                return
        if request.action == "list":
            from bot.schedule_views import schedule_list

            await say(schedule_list(await asyncio.to_thread(service.schedules)))
            return
        if request.action == "history":
            from bot.schedule_views import schedule_history

            events = await asyncio.to_thread(service.history, request.schedule_id)
            verified = await asyncio.to_thread(service.verify, request.schedule_id)
            await say(schedule_history(request.schedule_id, events, verified))
            return
        if request.action == "add":
            triage = bot.deps.triage
            methods = bot.deps.remediation.failover_methods() if bot.deps.remediation is not None else ()
            kwargs = check_add(request, failover_methods=methods,
                               resolve_host=lambda h: triage.resolve(h, None)[0],
                               group_exists=lambda g: triage.group_hosts(g))
            schedule = await asyncio.to_thread(lambda: service.add(channel=channel, created_by=user, **kwargs))
            said = f"🗓️ <@{user}> added schedule `{schedule.id}`: {views._escape(schedule.describe())}."
            if schedule.kind == "drill":
                said += (f" This is a standing approval by <@{user}> of exactly this scope (digest "
                         f"`{schedule.scope_digest()[:12]}`); revoke it with `/bond schedule pause {schedule.id}` "
                         f"or `/bond schedule remove {schedule.id}`.")
        elif request.action == "pause":
            schedule = await asyncio.to_thread(service.pause, request.schedule_id, actor=user, reason=request.reason)
            said = f"⏸️ <@{user}> paused schedule `{schedule.id}`" + (
                f": {views._escape(request.reason)}" if request.reason else "")
        elif request.action == "resume":
            schedule = await asyncio.to_thread(service.resume, request.schedule_id, actor=user)
            said = f"▶️ <@{user}> resumed schedule `{schedule.id}`."
        else:
            schedule = await asyncio.to_thread(service.remove, request.schedule_id, actor=user)
            said = f"🗑️ <@{user}> removed schedule `{schedule.id}`" + (
                " (its standing approval is revoked)" if schedule.kind == "drill" else "") + "."
    except (ScheduleUsage, ScheduleError) as exc:
        await say(views.error_message(str(exc)))
        return
    await bot.client.chat_postMessage(channel=channel, text=said,
                                      blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": said}}])
