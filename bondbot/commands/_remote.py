"""What the command modules share: inventory loading, limits, error exits, diagnosis output.

Not a command module (it registers nothing). Heavy imports stay inside functions.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, NoReturn

import typer

__all__ = ["EXIT_BAD_INPUT", "EXIT_UNREACHABLE", "EXIT_INCONCLUSIVE", "EXIT_NO_BOND", "fail", "load_inventory_or_exit",
           "open_inventory", "open_pool", "print_step_table", "print_diagnosis", "print_verdict",
           "print_command"]

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
                          use_ansible_inventory=use_ansible_inventory, cache_dir=settings.ansible_cache_dir(),
                          ansible_inventory=settings.ansible_inventory())


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
    """The verdict of one triaged subject on a host (see ``print_verdict``)."""
    from rich.text import Text

    d = result.diagnosis
    if d is None:
        console.print(Text(f"No diagnosis: {_lines_safe(result.diagnosis_error)}", style="red"))
        return
    print_verdict(console, d, host=result.host.name)


def _lines_safe(text: object) -> str:
    """Control characters escaped, line breaks and tabs kept (a profile name must not drive the terminal)."""
    from ssh_exec.inventory import safe_text as escape_controls

    return "\n".join("\t".join(escape_controls(part) for part in line.split("\t")) for line in str(text).split("\n"))


def _evidence(finding: Any) -> Any:
    """Evidence lines, one layout for triage and diagnose: ``  source  │ line``."""
    from rich.text import Text

    text = Text()
    for e in finding.evidence:
        text.append(f"  {_lines_safe(e.source)}", style="dim")
        text.append("  │ ")
        text.append(_lines_safe(e.line).replace("\t", "    ") + "\n")
    return text


def _without_commands(explanation: str, commands: list[str]) -> str:
    """The explanation with the command lines taken out (they are printed after the box, whole)."""
    kept = [line for line in explanation.strip().split("\n") if line.strip() not in commands]
    return "\n".join(kept)


def print_command(console: Any, command: str) -> None:
    """One command on its own line, never wrapped or cropped, so it can be copied whole at any width."""
    from rich.text import Text

    console.print(Text("  " + command), soft_wrap=True, crop=False, overflow="ignore", highlight=False)


def print_verdict(console: Any, d: Any, *, host: str | None) -> None:
    """The verdict of one bond: the root cause with its evidence, "inconclusive" with what could
    not be read (never "healthy"), or "healthy" with its risks; then what to do, outside the box.

    The box holds prose and evidence only. Commands are printed after it, one per line and never
    wrapped inside a border (a wrapped command cannot be pasted): the safe path first (``bondbot fix``:
    no down/up, rolls back by itself), the runbook's own commands (its down/up cycle) as the fallback.
    ``host`` is the inventory name (None for ``bondbot diagnose`` on saved files: ``HOST`` then).
    Host-sourced text is shown with control characters escaped.
    """
    import shlex

    from rich.panel import Panel
    from rich.text import Text

    # In the runbook's words: "web-01: bond bond0 (mode active-backup)"; "web-01" for a host-level runbook.
    about = " ".join(f"{k} {v}" for k, v in d.subject.items())
    details = ", ".join(f"{k} {v}" for k, v in d.details.items())
    head = f"{host}{': ' + about if about else ''}" if host else (about or "")
    console.print(Text(_lines_safe(f"{head}{f' ({details})' if details else ''}"), style="bold"))
    root = d.root_cause if d.verdict != "inconclusive" else None
    if d.verdict == "inconclusive":
        whose = f"the {next(iter(d.subject))}'s" if d.subject else "the host's"
        body = Text(f"Not healthy, not diagnosed: {whose} state could not be fully read.\n", style="bold")
        for reason in d.reasons:
            body.append(f"  - {_lines_safe(reason)}\n", style="")
        console.print(Panel(body, title="Inconclusive", style="yellow"))
    elif root is None:
        risks = d.risks
        text = "Healthy: no root cause in what was read."
        if risks:
            text += f" {len(risks)} risk{'s' if len(risks) != 1 else ''}:"
        body = Text(text + "\n", style="bold")
        for f in risks:
            body.append(f"  [{f.severity.value}] {f.code}: {_lines_safe(f.summary)}\n", style="")
        console.print(Panel(body, title="Healthy" + (f", {len(risks)} risk{'s' if len(risks) != 1 else ''}" if risks else ""),
                            style="green"))
    else:
        commands = [c for c in (root.facts.get("fix_commands") or []) if isinstance(c, str)]
        body = Text(_lines_safe(root.summary) + "\n", style="bold")
        if root.evidence:  # what proves it, before why
            body.append("\nEvidence:\n", style="bold")
            body.append_text(_evidence(root))
        if root.explanation:
            body.append("\n" + _lines_safe(_without_commands(root.explanation, commands)), style="")
        style = "red" if root.severity.value == "critical" else "yellow"
        console.print(Panel(body, title=f"Root cause: {root.code} ({root.severity.value})", style=style))
        if commands:
            bond = d.subject.get("bond")
            fix = ["bondbot", "fix", host or "HOST"] + (["--bond", bond] if bond else [])
            console.print(Text("Fix, the safe path (no down/up; undoes itself if the host goes quiet):",
                               style="bold green"))
            print_command(console, _lines_safe(" ".join(shlex.quote(w) for w in fix)))
            if host is None:
                console.print(Text("  (HOST: the inventory name of the host these files came from)", style="dim"))
            console.print(Text("Fallback, the runbook's commands as root (the down/up cuts traffic 1-2 s):",
                               style="bold"))
            for command in commands:
                print_command(console, _lines_safe(command))
    shown = set(d.risks) if root is None and d.verdict != "inconclusive" else set()
    others = [f for f in d.findings if f is not root and f not in shown]
    if others:
        console.print(Text("Other findings", style="bold"))
    for f in others:
        console.print(f"  [{f.severity.value}] {f.code}: {_lines_safe(f.summary)}", markup=False, highlight=False)
        if f.evidence:
            console.print(_evidence(f), end="")


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
