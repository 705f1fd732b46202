"""``bondbot triage HOST``: run the bonding triage over SSH, then show the diagnosis and each step.

Exit status: 0 the triage ran (whatever it found), 2 bad input (unknown host, invalid bond,
bad inventory; nothing was contacted), 3 the host could not be reached or its key is not trusted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    @app.command("triage")
    def triage(
        host: Annotated[str, typer.Argument(help="A host of the inventory.")],
        bond: Annotated[Optional[str], typer.Option("--bond", help="Bond to triage (default: inventory's, else bond0).")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
        inventory: Annotated[Optional[Path], typer.Option("--inventory", help="Inventory file (bondbot YAML, Ansible INI/YAML, ssh_config).")] = None,
        timeout: Annotated[float, typer.Option("--timeout", help="Seconds for the whole triage on the host.")] = 60.0,
        connect_timeout: Annotated[float, typer.Option("--connect-timeout", help="Seconds to set up the SSH connection.")] = 10.0,
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
        from runbooks.engine import RunbookError, StepEvent, run_triage
        from ssh_exec import ExecLimits, HostNotAllowed, InvalidValue, SshExecError, SshPool

        inv = load_inventory_or_exit(inventory)
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
                return await run_triage(pool, host, bond=bond, progress=progress if err else None)

        try:
            result = asyncio.run(go())
        except (HostNotAllowed, InvalidValue) as exc:
            fail(str(exc), EXIT_BAD_INPUT)
        except SshExecError as exc:
            fail(str(exc), EXIT_UNREACHABLE)
        except RunbookError as exc:
            fail(f"runbook error: {exc}", EXIT_BAD_INPUT)
        if as_json:
            sys.stdout.write(json.dumps(result.to_json(), indent=2) + "\n")
            return
        from rich.console import Console

        out = Console()
        out.print()
        print_diagnosis(out, result)
        out.print()
        print_step_table(out, result)
        out.print(f"[dim]{len(result.steps)} steps in {result.duration:.2f} s over one SSH connection[/]", highlight=False)
