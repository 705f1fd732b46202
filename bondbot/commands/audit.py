"""``bondbot audit [GROUP ...]``: the triage on many hosts, every bond of each, grouped by verdict.

Each host gets one connection, closed once its triage is done (1,000 hosts must fit in little
memory); at most ``--concurrency`` hosts are in flight. Each host's bonds are the inventory's
``bond:`` (or ``--bond``), else every bond the host has. One row per bond (one per host when it
has no bond or could not be read). Failures are grouped by kind in the text output, each host
named once, with what went wrong.

Row ``status``: ``diagnosed`` (root cause found), ``healthy`` (maybe with risks),
``inconclusive`` (the bond's state, or the host's bond list, could not be fully read),
``no-bond``, ``bond-not-found`` (the bond named for the host is not on it), ``unreachable``,
``error`` (anything else).

Exit status: 0 every host reached and every bond conclusive (diagnosed, healthy, or no bond);
3 some host could not be reached; else 4 some bond inconclusive (or named but missing, or its
diagnosis failed); 2 bad input (unknown group, bad inventory, nothing contacted).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

__all__ = ["register", "audit_hosts", "audit_exit_status", "HostSummary"]

FAILURE_STATUSES = ("unreachable", "inconclusive", "bond-not-found", "error")


def _failed(row: dict[str, Any]) -> bool:
    """A row that is not conclusive: one of ``FAILURE_STATUSES`` or "<subject>-not-found"."""
    return row["status"] in FAILURE_STATUSES or str(row["status"]).endswith("-not-found")


class HostSummary(dict):
    """One row of the audit: host, bond, status, root_cause, severity, summary, risks, error_kind,
    error, duration."""


async def audit_hosts(pool: Any, hosts: list[Any], *, concurrency: int = 50, bond: str | None = None,
                      on_done: Any = None, runbook: Any = None, subject: str | None = None) -> list[HostSummary]:
    """Triage ``hosts`` through ``pool`` with ``runbook`` (default bonding); rows in inventory
    order, a host's subjects in its order. ``bond`` is ``subject`` for the bonding runbook."""
    from runbooks.engine import Runbook, SubjectNotFound, load_runbook, run_host_triage
    from ssh_exec import ConnectError, SshExecError, fan_out

    rb = runbook if isinstance(runbook, Runbook) else load_runbook(runbook)
    named = subject if subject is not None else bond
    noun = rb.subject.noun or "subject"

    async def one(host: Any) -> Any:
        try:
            return await run_host_triage(pool, host, subject=named, runbook=rb)
        finally:
            await pool.close_host(host)

    def summarize(outcome: Any) -> list[HostSummary]:
        name = outcome.item.name
        base = {"host": name, "bond": None, "runbook": rb.name, "subject": None, "root_cause": None,
                "severity": None, "summary": None, "risks": 0, "error_kind": None, "error": None, "duration": None}
        if outcome.error is not None:
            err = outcome.error
            if isinstance(err, SubjectNotFound):
                return [HostSummary(base, bond=err.subject if rb.subject.param == "bond" else None,
                                    subject=rb.subject_of(err.subject), status=f"{noun}-not-found",
                                    error_kind=f"{noun}-not-found", error=str(err))]
            kind = err.kind if isinstance(err, SshExecError) else type(err).__name__
            status = "unreachable" if isinstance(err, ConnectError) else "error"
            return [HostSummary(base, status=status, error_kind=kind, error=str(err))]
        ht = outcome.value
        if ht.no_subject is not None:
            return [HostSummary(base, status=f"no-{noun}", summary=ht.no_subject, duration=round(ht.duration, 3))]
        if ht.error is not None:
            return [HostSummary(base, status="inconclusive", error_kind=f"{rb.subject.plural or 'subjects'}-not-listed",
                                error=ht.error, duration=round(ht.duration, 3))]
        rows = []
        for r in ht.results:
            d = r.diagnosis
            root = d.root_cause if d else None
            status = r.verdict
            rows.append(HostSummary(
                base,
                bond=r.subject.get("bond"),
                subject=r.subject,
                status=status,
                root_cause=root.code if root else None,
                severity=root.severity.value if root else None,
                summary=(root.summary if root else d.headline()) if d else None,
                risks=len(d.risks) if d and not root else 0,
                error_kind="inconclusive" if status == "inconclusive" else ("diagnosis" if status == "error" else None),
                error=("; ".join(d.reasons) if d and status == "inconclusive" else r.diagnosis_error),
                duration=round(r.duration, 3),
            ))
        return rows

    def done(outcome: Any) -> None:
        if on_done:
            on_done(outcome)

    outcomes = await fan_out(hosts, one, concurrency=concurrency, on_done=done)
    return [row for o in outcomes for row in summarize(o)]


def audit_exit_status(rows: list[HostSummary]) -> int:
    """3 if a host was unreachable, else 4 if a subject was inconclusive (or missing, or failed), else 0."""
    statuses = {r["status"] for r in rows}
    if "unreachable" in statuses:
        return 3
    if statuses & {"inconclusive", "error"} or any(s.endswith("-not-found") for s in statuses):
        return 4
    return 0


def register(app: typer.Typer) -> None:
    @app.command("audit")
    def audit(
        groups: Annotated[list[str] | None, typer.Argument(help="Inventory groups (default: all hosts).")] = None,
        concurrency: Annotated[int, typer.Option("--concurrency", min=1, max=1000, help="Hosts in flight at once.")] = 50,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
        as_csv: Annotated[bool, typer.Option("--csv", help="Print CSV, one line per host.")] = False,
        bond: Annotated[str | None, typer.Option("--bond", help="Bond name for every host (default: the "
                "inventory's, else every bond each host has).")] = None,
        subject: Annotated[str | None, typer.Option("--subject", help="What to triage on every host, in the runbook's terms (default: "
                "the inventory's, else each one a host has).")] = None,
        runbook_name: Annotated[str | None, typer.Option("--runbook", help="Runbook name or path to its runbook.yaml (default: bonding).")] = None,
        inventory: Annotated[Path | None, typer.Option("--inventory", help="Inventory file.")] = None,
        timeout: Annotated[float, typer.Option("--timeout", help="Seconds per host.")] = 60.0,
        connect_timeout: Annotated[float, typer.Option("--connect-timeout", help="Seconds to connect.")] = 10.0,
    ) -> None:
        """Triage every host of GROUPs and group them by root cause."""
        import asyncio
        import csv
        import json
        import sys

        from bondbot.commands._remote import EXIT_BAD_INPUT, fail, load_inventory_or_exit
        from bondbot.settings import known_hosts_path, runbook_search_path
        from ssh_exec import ExecLimits, InvalidValue, InventoryError, SshPool

        if as_json and as_csv:
            fail("choose one of --json and --csv", EXIT_BAD_INPUT)
        from runbooks.engine import RunbookError, load_runbook

        inv = load_inventory_or_exit(inventory)
        try:
            runbook = load_runbook(runbook_name, search=runbook_search_path())
        except RunbookError as exc:
            fail(f"runbook error: {exc}", EXIT_BAD_INPUT)
        if bond is not None and runbook.subject.param != "bond":
            fail(f"--bond: runbook {runbook.name} has no bond (--subject)", EXIT_BAD_INPUT)
        if bond is not None and subject is not None and bond != subject:
            fail("give --subject or --bond, not both", EXIT_BAD_INPUT)
        named = subject if subject is not None else bond
        try:
            hosts = inv.select(groups or [])
            if named is not None:
                from runbooks.render import validate_value

                if runbook.subject.param is None:
                    raise InvalidValue(f"runbook {runbook.name} triages the host itself: it takes no subject")
                validate_value(runbook.parameters[runbook.subject.param].type, named)
        except (InventoryError, InvalidValue) as exc:
            fail(str(exc), EXIT_BAD_INPUT)
        if not hosts:
            fail(f"no hosts to audit in {inv.source}", EXIT_BAD_INPUT)
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        limits = ExecLimits(connect_timeout=connect_timeout, host_timeout=timeout)
        progress = Progress(TextColumn("audit"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                            console=Console(stderr=True), transient=False)

        async def go() -> list[HostSummary]:
            async with SshPool(inv, known_hosts=known_hosts_path(), limits=limits) as pool:
                with progress:
                    task = progress.add_task("audit", total=len(hosts))
                    return await audit_hosts(pool, hosts, concurrency=concurrency, subject=named, runbook=runbook,
                                             on_done=lambda _o: progress.advance(task))

        rows = asyncio.run(go())
        code = audit_exit_status(rows)
        if as_json:
            groups_out: dict[str, list[str]] = {}
            for r in rows:
                if r["status"] in ("diagnosed", "healthy"):
                    groups_out.setdefault(r["root_cause"] or "healthy", []).append(_who(r, rows))
            failures: dict[str, list[dict[str, Any]]] = {}
            for r in rows:
                if _failed(r):
                    failures.setdefault(_kind(r), []).append({"host": r["host"], "bond": r["bond"], "error": r["error"]})
            sys.stdout.write(json.dumps({
                "hosts": rows,
                "by_root_cause": groups_out,
                "no_bond": [r["host"] for r in rows if r["status"] == "no-bond"],
                "no_subject": [r["host"] for r in rows if str(r["status"]).startswith("no-")],
                "failures": failures,
                "unreachable": [{"host": r["host"], "error": r["error"]} for r in rows if r["status"] == "unreachable"],
                "inconclusive": [{"host": r["host"], "bond": r["bond"], "error": r["error"]}
                                 for r in rows if r["status"] == "inconclusive" or r["status"].endswith("-not-found")],
                "errors": [{"host": r["host"], "error": r["error"]} for r in rows if r["status"] == "error"],
                "exit_status": code,
            }, indent=2) + "\n")
        elif as_csv:
            w = csv.DictWriter(sys.stdout, fieldnames=["host", "bond", "status", "root_cause", "severity", "summary",
                                                       "risks", "error_kind", "error", "duration"], lineterminator="\n")
            w.writeheader()
            for r in rows:
                w.writerow({k: r.get(k) for k in w.fieldnames})
        else:
            _print_grouped(rows, code)
        if code:
            raise typer.Exit(code)


def _who(row: HostSummary, rows: list[HostSummary]) -> str:
    """The host, with its bond when the host has several rows (``edge-07:uplink1``)."""
    several = sum(1 for r in rows if r["host"] == row["host"]) > 1
    return f"{row['host']}:{row['bond']}" if several and row["bond"] else row["host"]


def _kind(row: HostSummary) -> str:
    if row["status"] == "unreachable":
        return f"unreachable: {row['error_kind']}"
    if row["status"].endswith("-not-found"):
        return f"no such {row['status'].removesuffix('-not-found')}"
    return str(row["status"])


def _detail(row: HostSummary) -> str:
    """The error without the host's name in front (the line already starts with it)."""
    text = str(row["error"] or "")
    return text.removeprefix(f"{row['host']}: ")


def _print_grouped(rows: list[HostSummary], code: int) -> None:
    from rich.console import Console
    from rich.markup import escape

    from ssh_exec.inventory import safe_text

    console = Console()
    by_cause: dict[str, list[HostSummary]] = {}
    for r in rows:
        if r["status"] in ("diagnosed", "healthy"):
            by_cause.setdefault(r["root_cause"] or "healthy", []).append(r)
    order = sorted(by_cause, key=lambda c: (c == "healthy", -len(by_cause[c]), c))
    for cause in order:
        members = by_cause[cause]
        style = "green" if cause == "healthy" else ("red" if members[0]["severity"] == "critical" else "yellow")
        if cause == "healthy":
            risky = sum(1 for m in members if m["risks"])
            head = "healthy" + (f" ({risky} with risks)" if risky else "")
        else:
            head = f"{cause}: {members[0]['summary']}"
        console.print(f"[bold {style}]{escape(safe_text(head))}[/] — {len(members)} host(s)", highlight=False)
        console.print("  " + ", ".join(safe_text(_who(m, rows)) for m in members), highlight=False, markup=False)
    no_bond = [r for r in rows if r["status"] == "no-bond"]
    if no_bond:
        console.print(f"[bold]no bond[/] — {len(no_bond)} host(s)", highlight=False)
        console.print("  " + ", ".join(safe_text(r["host"]) for r in no_bond), highlight=False, markup=False)
    bad = [r for r in rows if _failed(r)]
    if bad:
        kinds: dict[str, list[HostSummary]] = {}
        for r in bad:
            kinds.setdefault(_kind(r), []).append(r)
        hosts_bad = len({r["host"] for r in bad})
        console.print(f"[bold red]not conclusive — {hosts_bad} host(s), exit status {code}[/]", highlight=False)
        for kind in sorted(kinds, key=lambda k: (-len(kinds[k]), k)):
            members = kinds[kind]
            console.print(f"  [bold]{escape(kind)}[/] — {len(members)}", highlight=False)
            for r in members:
                console.print(f"    {safe_text(_who(r, rows))}: {safe_text(_detail(r))}", highlight=False, markup=False)
    console.print(f"[dim]{len({r['host'] for r in rows})} hosts audited, {len(rows)} row(s)[/]")
