"""What the command modules share: inventory loading, limits, error exits, diagnosis output.

Not a command module (it registers nothing). Heavy imports stay inside functions.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, NoReturn

import typer

__all__ = ["EXIT_BAD_INPUT", "EXIT_UNREACHABLE", "EXIT_INCONCLUSIVE", "EXIT_NO_BOND", "fail", "load_inventory_or_exit",
           "open_inventory", "open_pool", "print_step_table", "print_diagnosis"]

EXIT_BAD_INPUT = 2  # unknown host, invalid value, unreadable inventory: nothing was contacted
EXIT_UNREACHABLE = 3  # the host could not be reached or its key is not trusted
EXIT_INCONCLUSIVE = 4  # triage: a bond's state could not be fully read (audit: a host unreachable or inconclusive)
EXIT_NO_BOND = 5  # triage: the host has no bond at all


def fail(message: str, code: int) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def open_inventory(path: Path | str | None, *, use_ansible_inventory: bool | None = None) -> Any:
    """The inventory at ``path``, else at the settings' location (``BONDBOT_INVENTORY``, else the
    config directory), where a missing file is an empty inventory. Raises ``InventoryError``.

    The one place the CLI, ``serve`` and the demo turn settings into what ssh_exec takes as arguments.
    """
    from bondbot import settings
    from ssh_exec import load_inventory

    return load_inventory(path if path is not None else settings.inventory_path(), missing_ok=path is None,
                          use_ansible_inventory=use_ansible_inventory, cache_dir=settings.ansible_cache_dir())


def open_pool(inventory: Any, *, limits: Any = None) -> Any:
    """An ``SshPool`` over ``inventory`` that trusts bondbot's known_hosts file (``BONDBOT_KNOWN_HOSTS``)."""
    from bondbot import settings
    from ssh_exec import SshPool

    return SshPool(inventory, known_hosts=settings.known_hosts_path(), limits=limits)


def load_inventory_or_exit(path: Path | None) -> Any:
    from ssh_exec import InventoryError

    try:
        return open_inventory(path)
    except InventoryError as exc:
        fail(str(exc), EXIT_BAD_INPUT)


def print_diagnosis(console: Any, result: Any) -> None:
    """The verdict of one bond: the root cause with its evidence, "inconclusive" with what could
    not be read (never "healthy"), or "healthy" with its risks. Host-sourced text is shown with
    control characters escaped (a profile name must not drive the terminal)."""
    from rich.panel import Panel
    from rich.text import Text

    def safe_text(text: object) -> str:  # control characters escaped, line breaks and tabs kept
        from ssh_exec.inventory import safe_text as escape_controls

        return "\n".join("\t".join(escape_controls(part) for part in line.split("\t"))
                         for line in str(text).split("\n"))

    d = result.diagnosis
    if d is None:
        console.print(Text(f"No diagnosis: {safe_text(result.diagnosis_error)}", style="red"))
        return
    # In the runbook's words: "web-01: bond bond0 (mode active-backup)"; "web-01" for a host-level runbook.
    about = " ".join(f"{k} {v}" for k, v in d.subject.items())
    details = ", ".join(f"{k} {v}" for k, v in d.details.items())
    console.print(Text(safe_text(f"{result.host.name}{': ' + about if about else ''}{f' ({details})' if details else ''}"),
                       style="bold"))
    if d.verdict == "inconclusive":
        whose = f"the {next(iter(d.subject))}'s" if d.subject else "the host's"
        body = Text(f"Not healthy, not diagnosed: {whose} state could not be fully read.\n", style="bold")
        for reason in d.reasons:
            body.append(f"  - {safe_text(reason)}\n", style="")
        console.print(Panel(body, title="Inconclusive", style="yellow"))
    elif d.root_cause is None:
        risks = d.risks
        text = "Healthy: no root cause in what was read."
        if risks:
            text += f" {len(risks)} risk{'s' if len(risks) != 1 else ''}:"
        body = Text(text + "\n", style="bold")
        for f in risks:
            body.append(f"  [{f.severity.value}] {f.code}: {safe_text(f.summary)}\n", style="")
        console.print(Panel(body, title="Healthy" + (f", {len(risks)} risk{'s' if len(risks) != 1 else ''}" if risks else ""),
                            style="green"))
    else:
        root = d.root_cause
        body = Text(safe_text(root.summary) + "\n", style="bold")
        if root.explanation:
            body.append(safe_text(root.explanation.strip()) + "\n", style="")
        for ev in root.evidence:
            body.append(f"  {safe_text(ev.source)}: ", style="dim").append(safe_text(ev.line) + "\n", style="")
        style = "red" if root.severity.value == "critical" else "yellow"
        console.print(Panel(body, title=f"Root cause: {root.code} ({root.severity.value})", style=style))
    shown = set(d.risks) if d.root_cause is None and d.verdict != "inconclusive" else set()
    others = [f for f in d.findings if f is not d.root_cause and f not in shown]
    for f in others:
        console.print(f"  [{f.severity.value}] {f.code}: {safe_text(f.summary)}", markup=False, highlight=False)


def print_step_table(console: Any, result: Any, steps: Any = None, title: str = "Steps") -> None:
    from rich.table import Table

    table = Table(title=title, title_justify="left", show_edge=False)
    for col in ("step", "command", "exit", "time", "status"):
        table.add_column(col, justify="right" if col in {"exit", "time"} else "left")
    for r in (result.steps if steps is None else steps):
        exit_ = "-" if r.exit_status is None else str(r.exit_status)
        status = r.status if not r.reason else f"{r.status}: {r.reason}"
        style = {"ok": "green", "partial": "yellow", "skipped": "dim"}.get(r.status, "red")
        table.add_row(r.step, r.result.command if r.result else r.command, exit_, f"{r.duration:.3f}s",
                      f"[{style}]{_escape(_safe(status))}[/]")
    console.print(table)


def _safe(text: str) -> str:
    from ssh_exec.inventory import safe_text

    return safe_text(text)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def stderr_is_tty() -> bool:
    return sys.stderr.isatty()
