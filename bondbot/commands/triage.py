"""``bondbot triage HOST``: run a runbook's triage on HOST, the subject named or each one it has.

``--runbook`` picks the runbook (a name: the built-in ones and those in ``BONDBOT_RUNBOOKS``; or
a path to a runbook file or folder), the bonding-failover runbook by default. With no subject
named (``--subject``, ``--bond`` for bonding, or the inventory's parameter for the runbook: ``bond:``)
the subjects come from the host (bonding: ``/sys/class/net/bonding_masters``) and each is triaged
over the same connection, one section each. With ``--record`` (a new incident per subject) or
``--incident ID`` (its subject) the triage is written to the incident log through
``runbooks.recording``, exactly as the Slack bot writes it. Without them the command is read-only
and never imports the incident store (SQLAlchemy costs ~100 ms of start-up).

Exit status (the worst over the subjects):

- 0: every subject triaged conclusively: a root cause found, or healthy (possibly with risks);
- 2: bad input, nothing changed: unknown host or runbook, invalid subject, bad inventory, unknown
  incident, unreachable incident database (nothing contacted), or a named subject the host does
  not have (the message lists what it has);
- 3: the host could not be reached or its key is not trusted;
- 4: inconclusive: some subject's state could not be fully read (a step failed, was refused or
  printed something unparseable; or the subjects could not be listed) and no root cause was found;
- 5: the host has no subject (bonding: no bond).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

__all__ = ["register"]


def _open_store(url: str | None, incident: str | None, *, host: str, runbook: Any,
                subject: str | None) -> tuple[Any, Any]:
    """The store (and the existing incident) to record into, opened before the host is contacted:
    an unreachable database, an unknown incident or an incident about another host, runbook or
    subject stop here (exit 2), with nothing written and nothing sent."""
    from bondbot.commands._remote import EXIT_BAD_INPUT, fail
    from bondbot.settings import database_url
    from incidents import IncidentError, IncidentStore

    try:
        store = IncidentStore.open(url or database_url())
    except IncidentError as exc:
        fail(str(exc), EXIT_BAD_INPUT)
    existing = None
    try:
        if incident is not None:
            existing = store.get(incident)
            if existing.host != host:
                fail(f"incident {existing.id} is about host {existing.host}, not {host}", EXIT_BAD_INPUT)
            if runbook is not None and existing.runbook != runbook.name:
                fail(f"incident {existing.id} is about runbook {existing.runbook}, not {runbook.name}", EXIT_BAD_INPUT)
            param = runbook.subject.param if runbook is not None else None
            if subject is not None and param is not None and existing.subject.get(param) != subject:
                fail(f"incident {existing.id} is about {param} {existing.subject.get(param)}, not {subject}",
                     EXIT_BAD_INPUT)
            typer.echo(f"recording into incident {existing.id}", err=True)
    except IncidentError as exc:
        store.close()
        fail(str(exc), EXIT_BAD_INPUT)
    except BaseException:
        store.close()
        raise
    return store, existing


def _given_subject(runbook: Any, subject: str | None, bond: str | None) -> str | None:
    """``--subject``, or ``--bond`` (the bonding runbook's name for it); both or a misfit: exit 2."""
    from bondbot.commands._remote import EXIT_BAD_INPUT, fail

    if bond is None:
        return subject
    if subject is not None and subject != bond:
        fail("give --subject or --bond, not both", EXIT_BAD_INPUT)
    if runbook.subject.param != "bond":
        fail(f"--bond: runbook {runbook.name} has no bond; its subject is "
             f"{runbook.subject.param or 'the host itself'} (--subject)", EXIT_BAD_INPUT)
    return bond


def register(app: typer.Typer) -> None:
    @app.command("triage")
    def triage(
        host: Annotated[str, typer.Argument(help="A host of the inventory.")],
        bond: Annotated[str | None, typer.Option("--bond", help="Bond to triage (bonding runbook; default: the "
                "inventory's, else every bond the host has).")] = None,
        subject: Annotated[str | None, typer.Option("--subject", help="What to triage, in the runbook's terms (bonding: a bond); "
                "default: the inventory's, else each one the host has.")] = None,
        runbook_name: Annotated[str | None, typer.Option("--runbook", help="Runbook name (built-in or BONDBOT_RUNBOOKS) or path to "
                "its runbook.yaml (default: bonding).")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
        inventory: Annotated[Path | None, typer.Option("--inventory", help="Inventory file (bondbot YAML, Ansible INI/YAML, ssh_config).")] = None,
        timeout: Annotated[float, typer.Option("--timeout", help="Seconds for the whole triage on the host.")] = 60.0,
        connect_timeout: Annotated[float, typer.Option("--connect-timeout", help="Seconds to set up the SSH connection.")] = 10.0,
        record: Annotated[bool, typer.Option("--record", help="Record the triage in a new incident per subject (ids on stderr).")] = False,
        incident: Annotated[str | None, typer.Option("--incident", help="Record the triage into this existing incident.")] = None,
        database_url: Annotated[str | None, typer.Option("--database-url", envvar="BONDBOT_DATABASE_URL", help="Incident database URL (with "
                "--record/--incident).", show_default=False)] = None,
    ) -> None:
        """Run a runbook's triage on HOST over SSH (bonding by default): the subject named, else each one the host has."""
        import asyncio
        import json
        import sys

        from bondbot.commands._remote import (
            EXIT_BAD_INPUT,
            EXIT_INCONCLUSIVE,
            EXIT_NO_BOND,
            EXIT_UNREACHABLE,
            fail,
            load_inventory_or_exit,
            print_diagnosis,
            print_step_table,
        )
        from bondbot.settings import known_hosts_path, runbook_search_path
        from runbooks.engine import (
            RunbookError,
            StepEvent,
            SubjectNotFound,
            load_runbook,
            resolve_subject,
            run_host_triage,
        )
        from ssh_exec import ExecLimits, HostNotAllowed, InvalidValue, SshExecError, SshPool

        inv = load_inventory_or_exit(inventory)
        store: Any = None
        existing: Any = None
        actor = ""
        try:
            runbook = load_runbook(runbook_name, search=runbook_search_path())
        except RunbookError as exc:
            fail(f"runbook error: {exc}", EXIT_BAD_INPUT)
        named_value = _given_subject(runbook, subject, bond)
        if record or incident is not None:
            import getpass

            # Host and subject are checked before the store is touched: bad input writes nothing.
            try:
                target = inv.get(host)
                named = resolve_subject(target, named_value, runbook) if named_value is not None else None
            except (HostNotAllowed, InvalidValue) as exc:
                fail(str(exc), EXIT_BAD_INPUT)
            actor = f"cli:{getpass.getuser()}"
            store, existing = _open_store(database_url, incident, host=target.name,
                                          runbook=runbook, subject=named)
            if existing is not None and named_value is None and runbook.subject.param is not None:
                named_value = existing.subject.get(runbook.subject.param)  # the incident is about one subject
        limits = ExecLimits(connect_timeout=connect_timeout, host_timeout=timeout)
        err = None
        if not as_json:  # rich costs ~50 ms of start-up: only when there is something to draw
            from rich.console import Console

            err = Console(stderr=True)

        def progress(event: StepEvent) -> None:
            if err is None or event.kind != "done":
                return
            from rich.markup import escape

            r = event.record
            mark = {"ok": "[green]✓[/]", "partial": "[yellow]~[/]", "skipped": "[dim]-[/]"}.get(r.status, "[red]✗[/]")
            label = f"{r.subject_text} {r.step}" if r.subject_text else r.step
            err.print(f"{mark} {escape(label):<22} {r.duration:6.3f}s  [dim]{escape(r.command)}[/]", highlight=False)

        async def go():
            async with SshPool(inv, known_hosts=known_hosts_path(), limits=limits) as pool:
                if err is not None:
                    err.print(f"[bold]triage {host}[/] …", highlight=False)
                return await run_host_triage(pool, host, subject=named_value, runbook=runbook,
                                             progress=progress if err else None)

        noun, plural = runbook.subject.noun, runbook.subject.plural
        try:
            try:
                ht = asyncio.run(go())
            except (HostNotAllowed, InvalidValue) as exc:
                fail(str(exc), EXIT_BAD_INPUT)
            except SubjectNotFound as exc:
                fail(str(exc), EXIT_BAD_INPUT)
            except SshExecError as exc:
                if existing is not None:
                    _record(store, existing.id, actor, connect_error=str(exc))
                elif store is not None:
                    known = named_value if named_value is not None else (
                        inv.get(host).params_for(runbook.name).get(runbook.subject.param or ""))
                    if known is not None or not runbook.subject.params:
                        # A named subject (or the host itself): the attempt is on the record, as the bot records it.
                        new_id = store.create_incident(host=inv.get(host).name, runbook=runbook.name,
                                                       subject=runbook.subject_of(known), requester=actor,
                                                       channel="cli").id
                        typer.echo(f"recording into new incident {new_id} (bondbot incident show {new_id})", err=True)
                        _record(store, new_id, actor, connect_error=str(exc))
                fail(str(exc), EXIT_UNREACHABLE)
            except RunbookError as exc:
                fail(f"runbook error: {exc}", EXIT_BAD_INPUT)
            if as_json:
                sys.stdout.write(json.dumps(ht.to_json(), indent=2) + "\n")
            else:
                from rich.console import Console
                from rich.text import Text

                from ssh_exec.inventory import safe_text

                out = Console()
                out.print()
                if ht.no_subject is not None:
                    out.print(Text(safe_text(f"{ht.host.name}: {ht.no_subject}. Nothing to triage."), style="bold"))
                elif ht.error is not None:
                    out.print(Text(safe_text(f"{ht.host.name}: inconclusive: {ht.error}. Name the {noun} with "
                                             f"{'--bond' if runbook.subject.param == 'bond' else '--subject'}."),
                                   style="bold yellow"))
                elif len(ht.results) > 1:
                    out.print(Text(safe_text(f"{ht.host.name}: {len(ht.results)} {plural}: "
                                             f"{', '.join(r.subject_text for r in ht.results)}"), style="bold"))
                if (ht.discovery and not ht.results) or len(ht.results) > 1:
                    print_step_table(out, None, ht.discovery, title="Discovery")
                for result in ht.results:
                    out.print()
                    if len(ht.results) > 1:
                        out.rule(safe_text(f"{noun} {result.subject_text}"))
                    print_diagnosis(out, result)
                    out.print()
                    steps = result.steps if len(ht.results) == 1 else [s for s in result.steps if s.subject is not None]
                    print_step_table(out, result, steps, title="Steps" if len(ht.results) == 1
                                     else safe_text(f"Steps ({result.subject_text})"))
                count = len(ht.discovery) + sum(len([s for s in r.steps if s.subject is not None]) for r in ht.results)
                out.print(f"[dim]{count} steps in {ht.duration:.2f} s over one SSH connection[/]", highlight=False)
            if store is not None:  # after the output: a database failure now does not hide the triage
                for result in ht.results:
                    if existing is not None:
                        _record(store, existing.id, actor, result=result)
                    else:
                        _record_new(store, actor, result)
        finally:
            if store is not None:
                store.close()
        verdict = ht.verdict
        if ht.no_subject is not None:
            raise typer.Exit(EXIT_NO_BOND)
        if verdict in ("inconclusive", "error"):
            raise typer.Exit(EXIT_INCONCLUSIVE)


def _record_new(store: Any, actor: str, result: Any) -> None:
    """One new incident per subject, as the bot opens them; its id on stderr."""
    from bondbot.commands._remote import EXIT_BAD_INPUT, fail
    from incidents import IncidentError

    try:
        incident_id = store.create_incident(host=result.host.name, runbook=result.runbook, subject=result.subject,
                                            requester=actor, channel="cli").id
    except IncidentError as exc:
        fail(f"the triage ran but could not be recorded: {exc}", EXIT_BAD_INPUT)
    about = " ".join(f"{k} {v}" for k, v in result.subject.items()) or f"runbook {result.runbook}"
    typer.echo(f"recording into new incident {incident_id} ({about}; bondbot incident show {incident_id})", err=True)
    _record(store, incident_id, actor, result=result)


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
