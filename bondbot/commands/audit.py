"""``bondbot audit [GROUP ...]``: the triage on many hosts, grouped by root cause.

Each host gets one connection, closed once its triage is done (1,000 hosts must fit in little
memory); at most ``--concurrency`` hosts are in flight. Unreachable hosts are listed with the error
that says why. Exit status: 0 the audit ran, 2 bad input (unknown group, bad inventory).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

__all__ = ["register", "audit_hosts", "HostSummary"]


class HostSummary(dict):  # type: ignore[type-arg]
    """One host's line of the audit: host, status, root_cause, severity, summary, error, duration."""


async def audit_hosts(pool: Any, hosts: list[Any], *, concurrency: int = 50, bond: str | None = None,
                      on_done: Any = None) -> list[HostSummary]:
    """Triage ``hosts`` through ``pool``; one summary per host, in inventory order."""
    from runbooks.engine import load_runbook, run_triage
    from ssh_exec import ConnectError, SshExecError, fan_out

    runbook = load_runbook()

    async def one(host: Any) -> Any:
        try:
            return await run_triage(pool, host, bond=bond, runbook=runbook)
        finally:
            await pool.close_host(host)

    def summarize(outcome: Any) -> HostSummary:
        base = {"host": outcome.item.name, "root_cause": None, "severity": None, "summary": None,
                "error": None, "duration": None}
        if outcome.error is not None:
            err = outcome.error
            kind = err.kind if isinstance(err, SshExecError) else type(err).__name__
            status = "unreachable" if isinstance(err, ConnectError) else "error"
            return HostSummary(base, status=status, error_kind=kind, error=str(err))
        r = outcome.value
        root = r.diagnosis.root_cause if r.diagnosis else None
        return HostSummary(
            base,
            status="diagnosed" if r.diagnosis else "error",
            root_cause=root.code if root else None,
            severity=root.severity.value if root else None,
            summary=root.summary if root else ("healthy" if r.diagnosis else None),
            error=r.diagnosis_error,
            error_kind=None,
            duration=round(r.duration, 3),
        )

    summaries: list[HostSummary] = []

    def done(outcome: Any) -> None:
        if on_done:
            on_done(outcome)

    outcomes = await fan_out(hosts, one, concurrency=concurrency, on_done=done)
    summaries = [summarize(o) for o in outcomes]
    return summaries


def register(app: typer.Typer) -> None:
    @app.command("audit")
    def audit(
        groups: Annotated[Optional[list[str]], typer.Argument(help="Inventory groups (default: all hosts).")] = None,
        concurrency: Annotated[int, typer.Option("--concurrency", min=1, max=1000, help="Hosts in flight at once.")] = 50,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
        as_csv: Annotated[bool, typer.Option("--csv", help="Print CSV, one line per host.")] = False,
        bond: Annotated[Optional[str], typer.Option("--bond", help="Bond name for every host (default: each host's).")] = None,
        inventory: Annotated[Optional[Path], typer.Option("--inventory", help="Inventory file.")] = None,
        timeout: Annotated[float, typer.Option("--timeout", help="Seconds per host.")] = 60.0,
        connect_timeout: Annotated[float, typer.Option("--connect-timeout", help="Seconds to connect.")] = 10.0,
    ) -> None:
        """Triage every host of GROUPs and group them by root cause."""
        import asyncio
        import csv
        import json
        import sys

        from bondbot.commands._remote import EXIT_BAD_INPUT, fail, load_inventory_or_exit
        from ssh_exec import ExecLimits, InvalidValue, InventoryError, SshPool

        if as_json and as_csv:
            fail("choose one of --json and --csv", EXIT_BAD_INPUT)
        inv = load_inventory_or_exit(inventory)
        try:
            hosts = inv.select(groups or [])
            if bond is not None:
                from runbooks.validation import validate_interface_name

                validate_interface_name(bond)
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
            async with SshPool(inv, limits=limits) as pool:
                with progress:
                    task = progress.add_task("audit", total=len(hosts))
                    return await audit_hosts(pool, hosts, concurrency=concurrency, bond=bond,
                                             on_done=lambda _o: progress.advance(task))

        rows = asyncio.run(go())
        if as_json:
            groups_out: dict[str, list[str]] = {}
            for r in rows:
                if r["status"] == "diagnosed":
                    groups_out.setdefault(r["root_cause"] or "healthy", []).append(r["host"])
            sys.stdout.write(json.dumps({
                "hosts": rows,
                "by_root_cause": groups_out,
                "unreachable": [{"host": r["host"], "error": r["error"]} for r in rows if r["status"] == "unreachable"],
                "errors": [{"host": r["host"], "error": r["error"]} for r in rows if r["status"] == "error"],
            }, indent=2) + "\n")
            return
        if as_csv:
            w = csv.DictWriter(sys.stdout, fieldnames=["host", "status", "root_cause", "severity", "summary",
                                                       "error_kind", "error", "duration"], lineterminator="\n")
            w.writeheader()
            for r in rows:
                w.writerow({k: r.get(k) for k in w.fieldnames})
            return
        _print_grouped(rows)


def _print_grouped(rows: list[HostSummary]) -> None:
    from rich.console import Console
    from rich.markup import escape

    console = Console()
    by_cause: dict[str, list[HostSummary]] = {}
    for r in rows:
        if r["status"] == "diagnosed":
            by_cause.setdefault(r["root_cause"] or "healthy", []).append(r)
    order = sorted(by_cause, key=lambda c: (c == "healthy", -len(by_cause[c]), c))
    for cause in order:
        members = by_cause[cause]
        style = "green" if cause == "healthy" else ("red" if members[0]["severity"] == "critical" else "yellow")
        head = "healthy (no root cause found)" if cause == "healthy" else f"{cause}: {members[0]['summary']}"
        console.print(f"[bold {style}]{escape(head)}[/] — {len(members)} host(s)", highlight=False)
        console.print("  " + ", ".join(m["host"] for m in members), highlight=False, markup=False)
    bad = [r for r in rows if r["status"] != "diagnosed"]
    if bad:
        console.print(f"[bold red]unreachable or failed — {len(bad)} host(s)[/]")
        for r in bad:
            console.print(f"  {r['host']}: {r['error']}", highlight=False, markup=False)
    console.print(f"[dim]{len(rows)} hosts audited[/]")
