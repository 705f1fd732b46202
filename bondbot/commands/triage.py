"""``bondbot triage HOST``: run the bonding triage over SSH, then show the diagnosis and each step.

With ``--record`` (a new incident) or ``--incident ID`` the triage is written to the incident log
through ``runbooks.recording``, exactly as the Slack bot writes it. Without them the command is
read-only and never imports the incident store (SQLAlchemy costs ~100 ms of start-up).

Exit status: 0 the triage ran (whatever it found), 2 bad input (unknown host, invalid bond,
bad inventory, unknown incident, unreachable incident database; nothing was contacted), 3 the
host could not be reached or its key is not trusted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

__all__ = ["register"]


def _open_record(url: str | None, incident: str | None, *, host: str, bond: str, actor: str) -> tuple[Any, str]:
    """The store and incident to record into, opened before the host is contacted: an unreachable
    database, an unknown incident or an incident about another host stop here (exit 2), with
    nothing written and nothing sent."""
    from bondbot.commands._remote import EXIT_BAD_INPUT, fail
    from incidents import IncidentError, IncidentStore

    try:
        store = IncidentStore.open(url)
    except IncidentError as exc:
        fail(str(exc), EXIT_BAD_INPUT)
    try:
        if incident is not None:
            existing = store.get(incident)
            if existing.host != host:
                fail(f"incident {existing.id} is about host {existing.host}, not {host}", EXIT_BAD_INPUT)
            incident_id = existing.id
            typer.echo(f"recording into incident {incident_id}", err=True)
        else:
            incident_id = store.create_incident(host=host, bond=bond, requester=actor, channel="cli").id
            typer.echo(f"recording into new incident {incident_id} (bondbot incident show {incident_id})", err=True)
    except IncidentError as exc:
        store.close()
        fail(str(exc), EXIT_BAD_INPUT)
    except BaseException:
        store.close()
        raise
    return store, incident_id


def register(app: typer.Typer) -> None:
    @app.command("triage")
    def triage(
        host: Annotated[str, typer.Argument(help="A host of the inventory.")],
        bond: Annotated[Optional[str], typer.Option("--bond", help="Bond to triage (default: inventory's, else bond0).")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
        inventory: Annotated[Optional[Path], typer.Option("--inventory", help="Inventory file (bondbot YAML, Ansible INI/YAML, ssh_config).")] = None,
        timeout: Annotated[float, typer.Option("--timeout", help="Seconds for the whole triage on the host.")] = 60.0,
        connect_timeout: Annotated[float, typer.Option("--connect-timeout", help="Seconds to set up the SSH connection.")] = 10.0,
        record: Annotated[bool, typer.Option("--record", help="Record the triage in a new incident (its id is printed on stderr).")] = False,
        incident: Annotated[Optional[str], typer.Option("--incident", help="Record the triage into this existing incident.")] = None,
        database_url: Annotated[Optional[str], typer.Option("--database-url", envvar="BONDBOT_DATABASE_URL", help="Incident database URL (with --record/--incident).", show_default=False)] = None,
    ) -> None:
        """Run the bonding-failover triage on HOST over SSH and diagnose the bond."""
        import asyncio
        import json
        import sys

        from bondbot.commands._remote import (
            EXIT_BAD_INPUT,
            EXIT_UNREACHABLE,
            fail,
            load_inventory_or_exit,
            print_diagnosis,
            print_step_table,
        )
        from runbooks.engine import RunbookError, StepEvent, load_runbook, resolve_bond, run_triage
        from ssh_exec import ExecLimits, HostNotAllowed, InvalidValue, SshExecError, SshPool

        inv = load_inventory_or_exit(inventory)
        store: Any = None
        incident_id = ""
        actor = ""
        runbook = None
        if record or incident is not None:
            import getpass

            # Host and bond are checked before the store is touched: bad input writes nothing.
            try:
                runbook = load_runbook()
                target = inv.get(host)
                bond = resolve_bond(target, bond, runbook)
            except (HostNotAllowed, InvalidValue) as exc:
                fail(str(exc), EXIT_BAD_INPUT)
            except RunbookError as exc:
                fail(f"runbook error: {exc}", EXIT_BAD_INPUT)
            actor = f"cli:{getpass.getuser()}"
            store, incident_id = _open_record(database_url, incident, host=target.name, bond=bond, actor=actor)
        limits = ExecLimits(connect_timeout=connect_timeout, host_timeout=timeout)
        err = None
        if not as_json:  # rich costs ~50 ms of start-up: only when there is something to draw
            from rich.console import Console

            err = Console(stderr=True)

        def progress(event: StepEvent) -> None:
            if err is None or event.kind != "done":
                return
            r = event.record
            mark = {"ok": "[green]✓[/]", "partial": "[yellow]~[/]"}.get(r.status, "[red]✗[/]")
            err.print(f"{mark} {r.step:<14} {r.duration:6.3f}s  [dim]{r.command}[/]", highlight=False)

        async def go():  # type: ignore[no-untyped-def]
            async with SshPool(inv, limits=limits) as pool:
                if err is not None:
                    err.print(f"[bold]triage {host}[/] …", highlight=False)
                return await run_triage(pool, host, bond=bond, runbook=runbook, progress=progress if err else None)

        try:
            try:
                result = asyncio.run(go())
            except (HostNotAllowed, InvalidValue) as exc:
                fail(str(exc), EXIT_BAD_INPUT)
            except SshExecError as exc:
                if store is not None:
                    _record(store, incident_id, actor, connect_error=str(exc))
                fail(str(exc), EXIT_UNREACHABLE)
            except RunbookError as exc:
                fail(f"runbook error: {exc}", EXIT_BAD_INPUT)
            if as_json:
                sys.stdout.write(json.dumps(result.to_json(), indent=2) + "\n")
            else:
                from rich.console import Console

                out = Console()
                out.print()
                print_diagnosis(out, result)
                out.print()
                print_step_table(out, result)
                out.print(f"[dim]{len(result.steps)} steps in {result.duration:.2f} s over one SSH connection[/]",
                          highlight=False)
            if store is not None:  # after the output: a database failure now does not hide the triage
                _record(store, incident_id, actor, result=result)
        finally:
            if store is not None:
                store.close()


def _record(store: Any, incident_id: str, actor: str, *, result: Any = None, connect_error: str | None = None) -> None:
    """Write the triage (or why it never started) with ``runbooks.recording``, as the bot does.
    A database failure at this point is one line and exit status 2."""
    from bondbot.commands._remote import EXIT_BAD_INPUT, fail
    from incidents import IncidentError
    from runbooks.recording import record_connect_failure, record_diagnosis, record_triage

    try:
        if connect_error is not None:
            record_connect_failure(store, incident_id, connect_error, actor=actor)
            record_diagnosis(store, incident_id, None, actor=actor, error=connect_error)
        else:
            record_triage(store, incident_id, result, actor=actor)
    except IncidentError as exc:
        fail(f"the triage ran but could not be recorded in {incident_id}: {exc}", EXIT_BAD_INPUT)
