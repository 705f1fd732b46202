"""``bondbot hosts``: the inventory as bondbot reads it, and trusting a host's SSH key.

``hosts trust`` is the only way a key enters bondbot's known_hosts: it shows the fingerprint the
host presents and records it only when the operator confirms, interactively or by giving the
expected fingerprint with ``--fingerprint`` together with ``--yes`` (for automation that got the
fingerprint from a trusted source). Exit status: 0 done, 1 declined, 2 bad input, 3 unreachable
or fingerprint mismatch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    hosts_app = typer.Typer(help="The inventory and SSH host keys.", no_args_is_help=True)
    app.add_typer(hosts_app, name="hosts")

    @hosts_app.command("list")
    def list_hosts(
        groups: Annotated[Optional[list[str]], typer.Argument(help="Only these groups.")] = None,
        inventory: Annotated[Optional[Path], typer.Option("--inventory", help="Inventory file.")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    ) -> None:
        """List the inventory's hosts and whether their SSH key is trusted."""
        import json

        from bondbot.commands._remote import EXIT_BAD_INPUT, fail, load_inventory_or_exit
        from ssh_exec import InventoryError, trusted_keys

        inv = load_inventory_or_exit(inventory)
        try:
            hosts = inv.select(groups or [])
        except InventoryError as exc:
            fail(str(exc), EXIT_BAD_INPUT)
        rows = [dict(h.to_json(), trusted=bool(trusted_keys(h))) for h in hosts]
        if as_json:
            typer.echo(json.dumps({"source": str(inv.source), "allow_unlisted_hosts": inv.allow_unlisted_hosts,
                                   "hosts": rows}, indent=2))
            return
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"{len(rows)} hosts from {inv.source}", title_justify="left", show_edge=False)
        for col in ("name", "address", "user", "sudo", "bond", "groups", "jump", "host key"):
            table.add_column(col)
        for r in rows:
            table.add_row(r["name"], f"{r['address']}:{r['port']}", r["user"], "yes" if r["sudo"] else "no",
                          r["bond"] or "-", ",".join(r["groups"]) or "-", r["jump"] or "-",
                          "trusted" if r["trusted"] else "[yellow]unknown[/]")
        Console().print(table)
        if inv.allow_unlisted_hosts:
            typer.echo("allow_unlisted_hosts: true (hosts not listed here are allowed too)")

    @hosts_app.command("trust")
    def trust(
        host: Annotated[str, typer.Argument(help="A host of the inventory.")],
        fingerprint: Annotated[Optional[str], typer.Option("--fingerprint", help="The expected key fingerprint, SHA256:...")] = None,
        yes: Annotated[bool, typer.Option("--yes", help="Do not ask (only with a matching --fingerprint).")] = False,
        inventory: Annotated[Optional[Path], typer.Option("--inventory", help="Inventory file.")] = None,
    ) -> None:
        """Show HOST's SSH key fingerprint and record it in bondbot's known_hosts once confirmed."""
        import asyncio

        from bondbot.commands._remote import EXIT_BAD_INPUT, EXIT_UNREACHABLE, fail, load_inventory_or_exit
        from ssh_exec import HostNotAllowed, InvalidValue, SshExecError, SshPool, record_host_key, trusted_keys
        from ssh_exec import fingerprint as fp_of

        if yes and not fingerprint:
            fail("--yes needs --fingerprint SHA256:... (the fingerprint you got from a trusted source)", EXIT_BAD_INPUT)
        if fingerprint and not fingerprint.startswith("SHA256:"):
            fail(f"--fingerprint must look like SHA256:..., got {fingerprint!r}", EXIT_BAD_INPUT)
        inv = load_inventory_or_exit(inventory)

        async def fetch():  # type: ignore[no-untyped-def]
            async with SshPool(inv) as pool:
                h = pool.host(host)
                return h, await pool.fetch_host_key(h)

        try:
            h, key = asyncio.run(fetch())
        except (HostNotAllowed, InvalidValue) as exc:
            fail(str(exc), EXIT_BAD_INPUT)
        except SshExecError as exc:
            fail(str(exc), EXIT_UNREACHABLE)
        seen = fp_of(key)
        typer.echo(f"{h.name} ({h.known_hosts_pattern}) presents a {key.get_algorithm()} key with fingerprint")
        typer.echo(f"  {seen}")
        old = trusted_keys(h)
        if any(fp_of(k) == seen for k in old):
            typer.echo("This key is already trusted; nothing to do.")
            return
        if old:
            typer.echo("WARNING: bondbot's known_hosts has a DIFFERENT key for this host: "
                       + ", ".join(fp_of(k) for k in old), err=True)
            typer.echo("Replace it only if the host was reinstalled and you verified the new key.", err=True)
        if fingerprint and fingerprint != seen:
            fail(f"fingerprint mismatch: expected {fingerprint}, the host presents {seen}; nothing recorded",
                 EXIT_UNREACHABLE)
        if not yes:
            typer.echo("Compare it with the key on the host: ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub")
            if not typer.confirm("Trust this key?", default=False):
                typer.echo("Not recorded.")
                raise typer.Exit(1)
        path = record_host_key(h, key, replace=bool(old))
        typer.echo(f"Recorded in {path}.")
