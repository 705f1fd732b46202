"""What the command modules share: inventory loading, limits, error exits, diagnosis output.

Not a command module (it registers nothing). Heavy imports stay inside functions.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, NoReturn

import typer

__all__ = ["EXIT_BAD_INPUT", "EXIT_UNREACHABLE", "fail", "load_inventory_or_exit", "print_step_table", "print_diagnosis"]

EXIT_BAD_INPUT = 2  # unknown host, invalid value, unreadable inventory: nothing was contacted
EXIT_UNREACHABLE = 3  # the host could not be reached or its key is not trusted


def fail(message: str, code: int) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def load_inventory_or_exit(path: Path | None) -> Any:
    from ssh_exec import InventoryError, load_inventory

    try:
        return load_inventory(path)
    except InventoryError as exc:
        fail(str(exc), EXIT_BAD_INPUT)


def print_diagnosis(console: Any, result: Any) -> None:
    from rich.panel import Panel
    from rich.text import Text

    d = result.diagnosis
    if d is None:
        console.print(Text(f"No diagnosis: {result.diagnosis_error}", style="red"))
        return
    console.print(Text(f"{result.host.name}: bond {d.bond} (mode {d.mode})", style="bold"))
    if d.root_cause is None:
        console.print(Panel(Text("No root cause found: the bond looks healthy on what was checked."), style="green"))
    else:
        root = d.root_cause
        body = Text(root.summary + "\n", style="bold")
        if root.explanation:
            body.append(root.explanation.strip() + "\n", style="")
        for ev in root.evidence:
            body.append(f"  {ev.source}: ", style="dim").append(ev.line + "\n", style="")
        style = "red" if root.severity.value == "critical" else "yellow"
        console.print(Panel(body, title=f"Root cause: {root.code} ({root.severity.value})", style=style))
    others = [f for f in d.findings if f is not d.root_cause]
    for f in others:
        console.print(f"  [{f.severity.value}] {f.code}: {f.summary}", markup=False, highlight=False)


def print_step_table(console: Any, result: Any) -> None:
    from rich.table import Table

    table = Table(title="Steps", title_justify="left", show_edge=False)
    for col in ("step", "command", "exit", "time", "status"):
        table.add_column(col, justify="right" if col in {"exit", "time"} else "left")
    for r in result.steps:
        exit_ = "-" if r.exit_status is None else str(r.exit_status)
        status = r.status if not r.reason else f"{r.status}: {r.reason}"
        style = {"ok": "green", "partial": "yellow", "skipped": "dim"}.get(r.status, "red")
        table.add_row(r.step, r.result.command if r.result else r.command, exit_, f"{r.duration:.3f}s",
                      f"[{style}]{_escape(status)}[/]")
    console.print(table)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def stderr_is_tty() -> bool:
    return sys.stderr.isatty()
