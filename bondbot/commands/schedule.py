"""``bondbot schedule``: scheduled audits and failover drills from the command line.

The same schedules as ``/bond schedule`` (rows in the incident store, ``runbooks.scheduler``), run
by ``bondbot serve`` (every replica tries; the store gives each occurrence to one). The CLI user
is trusted as an approver (``cli:<user>``, like ``bondbot fix --yes``): adding a drill from here
is a standing approval by that user of exactly its scope; ``pause`` or ``remove`` revokes it.
Hosts and groups are checked against the inventory, the rest as in Slack (never the manual
method). Exit status: 0 done, 2 bad input (nothing stored).
"""

from __future__ import annotations

import getpass
import json
from pathlib import Path
from typing import Annotated, Any

import typer

__all__ = ["register"]

Db = Annotated[str | None, typer.Option("--database", help="Database URL (default: the settings').")]

#: The failover methods a scheduled drill can use (``manual`` needs a person at the switch).
DRILL_METHODS = ("host", "lab")


def register(app: typer.Typer) -> None:
    sched = typer.Typer(help="Scheduled audits and failover drills (run by bondbot serve).", no_args_is_help=True)
    app.add_typer(sched, name="schedule")

    def service(url: str | None) -> Any:
        from bondbot.commands.incident import _store

        return _store(url)

    @sched.command("list")
    def list_schedules(database: Db = None,
                       as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
                       removed: Annotated[bool, typer.Option("--removed", help="Include removed ones.")] = False) -> None:
        """List the schedules and their state."""
        from runbooks.scheduler import ScheduleService

        with service(database) as store:
            schedules = ScheduleService(store).schedules(include_removed=removed)
            if as_json:
                typer.echo(json.dumps([s.to_dict() for s in schedules], indent=2))
                return
            if not schedules:
                typer.echo("no schedules")
            for s in schedules:
                why = f" ({s.paused_reason})" if s.paused_reason and s.state != "active" else ""
                typer.echo(f"{s.id}  {s.state}{why}  {s.describe().replace('`', '')}  channel {s.channel}")

    @sched.command("add")
    def add(
        kind: Annotated[str, typer.Argument(help="audit or drill.")],
        cron: Annotated[str, typer.Option("--cron", help="Five-field cron expression, e.g. '0 2 * * SAT'.")],
        tz: Annotated[str, typer.Option("--tz", help="IANA time zone, e.g. Europe/Berlin.")],
        window: Annotated[str, typer.Option("--window", help="How long after each occurrence it may start: 2h, 90m.")],
        channel: Annotated[str, typer.Option("--channel", help="Slack channel id the results go to.")],
        hosts: Annotated[list[str] | None, typer.Option("--host", help="A host (repeatable).")] = None,
        group: Annotated[str | None, typer.Option("--group", help="An inventory group (instead of --host).")] = None,
        bond: Annotated[str | None, typer.Option("--bond", help="Only this bond (default: every bond found).")] = None,
        method: Annotated[str | None, typer.Option("--method", help=f"Drills: {' or '.join(DRILL_METHODS)}.")] = None,
        inventory: Annotated[Path | None, typer.Option("--inventory", help="Inventory file or directory.")] = None,
        database: Db = None,
    ) -> None:
        """Add an audit, or a drill (a standing approval by you of exactly this scope)."""
        from bondbot.commands._remote import EXIT_BAD_INPUT, fail, load_inventory_or_exit
        from bot.domain import UnknownTarget
        from bot.schedule_commands import ScheduleRequest, ScheduleUsage, check_add
        from runbooks.scheduler import ScheduleService
        from runbooks.schedules import ScheduleError
        from ssh_exec import InventoryError

        if kind not in ("audit", "drill"):
            fail(f"kind must be audit or drill, got {kind!r}", EXIT_BAD_INPUT)
        if not channel.isalnum():
            fail(f"--channel must be a Slack channel id (C0123...), got {channel!r}", EXIT_BAD_INPUT)
        inv = load_inventory_or_exit(inventory)

        def resolve(name: str) -> str:
            if name not in inv.hosts:
                raise UnknownTarget(f"{name} is not in the inventory")
            return name

        def group_exists(name: str) -> None:
            try:
                inv.select([name])
            except InventoryError as exc:
                raise UnknownTarget(str(exc)) from None

        options = {k: v for k, v in {"hosts": ",".join(hosts or []), "group": group or "", "bond": bond or "",
                                     "method": method or "", "cron": cron, "tz": tz, "window": window}.items() if v}
        actor = f"cli:{getpass.getuser()}"
        with service(database) as store:
            try:
                kwargs = check_add(ScheduleRequest("add", kind=kind, options=options), failover_methods=DRILL_METHODS,
                                   resolve_host=resolve, group_exists=group_exists)
                schedule = ScheduleService(store).add(channel=channel, created_by=actor, **kwargs)
            except (ScheduleUsage, ScheduleError) as exc:
                fail(str(exc).replace("`", ""), EXIT_BAD_INPUT)
        typer.echo(f"added {schedule.id}: {schedule.describe().replace('`', '')}")
        if schedule.kind == "drill":
            typer.echo(f"standing approval by {actor} of this scope (digest {schedule.scope_digest()[:12]}); "
                       f"revoke it with: bondbot schedule pause {schedule.id}  (or remove)")

    def _change(verb: str, schedule_id: str, database: str | None, reason: str = "") -> None:
        from bondbot.commands._remote import EXIT_BAD_INPUT, fail
        from runbooks.scheduler import ScheduleService
        from runbooks.schedules import ScheduleError

        actor = f"cli:{getpass.getuser()}"
        with service(database) as store:
            svc = ScheduleService(store)
            try:
                if verb == "pause":
                    done = svc.pause(schedule_id, actor=actor, reason=reason)
                elif verb == "resume":
                    done = svc.resume(schedule_id, actor=actor)
                else:
                    done = svc.remove(schedule_id, actor=actor)
            except ScheduleError as exc:
                fail(str(exc), EXIT_BAD_INPUT)
        typer.echo(f"{done.id}: {done.state}" + (f" ({done.paused_reason})" if done.paused_reason else ""))

    @sched.command("pause")
    def pause(schedule_id: Annotated[str, typer.Argument(help="SCH-...")], database: Db = None,
              reason: Annotated[str, typer.Option("--reason", help="Why (shown in the list).")] = "") -> None:
        """Pause a schedule (a drill's standing approval is suspended until resumed)."""
        _change("pause", schedule_id, database, reason)

    @sched.command("resume")
    def resume(schedule_id: Annotated[str, typer.Argument(help="SCH-...")], database: Db = None) -> None:
        """Resume a paused schedule (occurrences missed meanwhile are not run)."""
        _change("resume", schedule_id, database)

    @sched.command("remove")
    def remove(schedule_id: Annotated[str, typer.Argument(help="SCH-...")], database: Db = None) -> None:
        """Remove a schedule for good (revokes a drill's standing approval)."""
        _change("remove", schedule_id, database)

    @sched.command("history")
    def history(schedule_id: Annotated[str, typer.Argument(help="SCH-...")], database: Db = None,
                as_json: Annotated[bool, typer.Option("--json", help="The events and the check as JSON.")] = False,
                ) -> None:
        """A schedule's hash-chained log (who added, paused, resumed, removed it; each run) and its
        check; exit 1 if the log does not verify."""
        import json

        from bondbot.commands._remote import EXIT_BAD_INPUT, fail
        from runbooks.scheduler import ScheduleService, describe_event
        from runbooks.schedules import ScheduleError

        with service(database) as store:
            svc = ScheduleService(store)
            try:
                events = svc.history(schedule_id)
                count, head, broken = svc.verify(schedule_id)
            except ScheduleError as exc:
                fail(str(exc), EXIT_BAD_INPUT)
        if as_json:
            typer.echo(json.dumps({"schedule": schedule_id.upper(), "events": [e.to_json() for e in events],
                                   "verified": broken is None, "head_hash": head,
                                   "break": None if broken is None else {"seq": broken.seq, "reason": broken.reason}},
                                  indent=2, ensure_ascii=False))
        else:
            from ssh_exec.inventory import safe_text  # control characters made visible

            for e in events:
                typer.echo(f"{e.seq:>3}  {e.ts}  {safe_text(describe_event(e.kind, e.actor, e.payload))}")
            typer.echo(f"log intact: {count} events, head {head[:12]}" if broken is None else
                       f"LOG BROKEN at event {broken.seq}: {broken.reason}")
        if broken is not None:
            raise typer.Exit(1)

    @sched.command("runs")
    def runs(schedule_id: Annotated[str | None, typer.Argument(help="SCH-... (default: all)")] = None,
             database: Db = None) -> None:
        """The occurrences handled: when, by which replica, the outcome."""
        from runbooks.scheduler import ScheduleService

        with service(database) as store:
            for r in ScheduleService(store).runs(schedule_id.upper() if schedule_id else None):
                typer.echo(f"{r.schedule_id}  {r.occurrence}  {r.outcome or 'running'}  by {r.runner}")
