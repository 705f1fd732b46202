"""``bondbot hosts``: the inventory as bondbot reads it, and trusting a host's SSH key.

``hosts list`` prints the warnings (entries skipped, settings not followed) on stderr; ``hosts
show HOST`` prints each value with where it came from. Host-derived text is printed with control
characters escaped. ``hosts trust`` is the only way a key enters bondbot's known_hosts: it shows the fingerprint the
host presents and records it only when the operator confirms, interactively or by giving the
expected fingerprint with ``--fingerprint`` together with ``--yes`` (for automation that got the
fingerprint from a trusted source). Exit status: 0 done, 1 declined, 2 bad input, 3 unreachable
or fingerprint mismatch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

__all__ = ["register"]


def _load(path: Path | None, no_ansible_inventory: bool):
    """The inventory, or exit 2 with the reason."""
    from bondbot.commands._remote import EXIT_BAD_INPUT, fail, open_inventory
    from ssh_exec import InventoryError
    from ssh_exec.inventory import safe_text

    try:
        return open_inventory(path, use_ansible_inventory=False if no_ansible_inventory else None)
    except InventoryError as exc:
        fail(safe_text(exc), EXIT_BAD_INPUT)


def register(app: typer.Typer) -> None:
    hosts_app = typer.Typer(help="The inventory and SSH host keys.", no_args_is_help=True)
    app.add_typer(hosts_app, name="hosts")

    @hosts_app.command("list")
    def list_hosts(
        groups: Annotated[list[str] | None, typer.Argument(help="Only these groups.")] = None,
        inventory: Annotated[Path | None, typer.Option("--inventory", help="Inventory file or directory.")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
        no_ansible_inventory: Annotated[bool, typer.Option(
            "--no-ansible-inventory", help="Read Ansible inventories with bondbot's parser, not ansible-inventory.")] = False,
    ) -> None:
        """List the inventory's hosts, whether their SSH key is trusted, and what was skipped or not followed."""
        import json

        from bondbot.commands._remote import EXIT_BAD_INPUT, fail
        from bondbot.settings import known_hosts_path
        from ssh_exec import InventoryError, trusted_keys
        from ssh_exec.inventory import safe_text

        inv = _load(inventory, no_ansible_inventory)
        try:
            hosts = inv.select(groups or [])
        except InventoryError as exc:
            fail(safe_text(exc), EXIT_BAD_INPUT)
        rows = [dict(h.to_json(), trusted=bool(trusted_keys(h, known_hosts_path()))) for h in hosts]
        if as_json:
            typer.echo(json.dumps({"source": str(inv.source), "allow_unlisted_hosts": inv.allow_unlisted_hosts,
                                   "hosts": rows, "patterns": [{"pattern": p, "where": w} for p, w, _ in inv.patterns],
                                   "warnings": [w.to_json() for w in inv.warnings]}, indent=2))
            return
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text

        console = Console()
        table = Table(title=Text(f"{len(rows)} hosts from {safe_text(inv.source)}"), title_justify="left", show_edge=False)
        for col in ("name", "address", "user", "sudo", "bond", "groups", "jump", "host key"):
            table.add_column(col)
        for r in rows:
            cells = [r["name"], f"{r['address']}:{r['port']}", r["user"], "yes" if r["sudo"] else "no",
                     r["bond"] or "-", ",".join(r["groups"]) or "-", r["proxy_jump"] or r["jump"] or "-"]
            table.add_row(*(Text(safe_text(c)) for c in cells),
                          Text("trusted") if r["trusted"] else Text("unknown", style="yellow"))
        console.print(table)
        for pattern, where, _ in inv.patterns:
            typer.echo(safe_text(f"also any name matching ssh config 'Host {pattern.replace(',', ' ')}' ({where})"))
        if inv.allow_unlisted_hosts:
            typer.echo("allow_unlisted_hosts: true (hosts not listed here are allowed too)")
        if inv.warnings:
            typer.echo(f"{len(inv.warnings)} warning(s): entries skipped or settings not followed", err=True)
            for w in inv.warnings:
                typer.echo(f"  {w}", err=True)

    @hosts_app.command("show")
    def show_host(
        host: Annotated[str, typer.Argument(help="A host of the inventory (or a jump hop).")],
        inventory: Annotated[Path | None, typer.Option("--inventory", help="Inventory file or directory.")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
        no_ansible_inventory: Annotated[bool, typer.Option(
            "--no-ansible-inventory", help="Read Ansible inventories with bondbot's parser, not ansible-inventory.")] = False,
    ) -> None:
        """Show every value bondbot uses for HOST and where it came from (file:line, group, default)."""
        import json

        from bondbot.commands._remote import EXIT_BAD_INPUT, fail
        from bondbot.settings import known_hosts_path
        from ssh_exec import SshExecError, trusted_keys
        from ssh_exec.inventory import safe_text

        inv = _load(inventory, no_ansible_inventory)
        try:
            h = inv.jump_host(host)
        except SshExecError as exc:
            fail(safe_text(exc), EXIT_BAD_INPUT)
        origins = inv.origins.get(h.name, {})
        chain: list[Any] = []  # the jump hosts, first hop first
        jump = h.jump
        while jump:
            hop = inv.jump_host(jump)
            chain.insert(0, hop)
            jump = hop.jump
        values = {
            "address": f"{h.address}",
            "port": str(h.port),
            "user": h.user,
            "keys": ", ".join(str(k) for k in h.keys) or "default (~/.ssh/id_*, and ssh-agent when SSH_AUTH_SOCK is set)",
            "sudo": "yes" if h.sudo else "no",
            "bond": h.bond or "- (discovered on the host)",
            "groups": ", ".join(h.groups) or "-",
            "jump": " -> ".join(f"{c.user}@{c.address}:{c.port}" for c in chain) or "- (direct)",
        }
        field_origin = {"address": "address", "port": "port", "user": "user", "keys": "keys", "sudo": "sudo",
                        "bond": "bond", "groups": "groups", "jump": "jump"}
        defaults = {"address": "default (the name)", "port": "default", "user": "default (the local user)",
                    "keys": "default", "sudo": "default", "bond": "default", "groups": "-", "jump": "default"}
        rows = []
        for f, v in values.items():
            where = origins.get(field_origin[f]) or origins.get("key" if f == "keys" else f) or defaults[f]
            rows.append((f, v, where))
        warnings = [w for w in inv.warnings if w.host in {h.name, *(c.name for c in chain)}]
        trusted = bool(trusted_keys(h, known_hosts_path()))
        if as_json:
            typer.echo(json.dumps({"host": h.to_json(), "origins": {f: w for f, _, w in rows},
                                   "jump_chain": [c.to_json() for c in chain], "trusted": trusted,
                                   "defined_at": origins.get("name"),
                                   "warnings": [w.to_json() for w in warnings]}, indent=2))
            return
        typer.echo(safe_text(f"{h.name}" + (f"  (defined at {origins['name']})" if origins.get("name") else "")))
        width = max(len(v) for _, v, _ in rows)
        for f, v, where in rows:
            typer.echo(safe_text(f"  {f:<8} {v:<{width}}  {where}"))
        typer.echo(f"  {'host key':<8} {'trusted' if trusted else 'unknown: run bondbot hosts trust ' + safe_text(h.name)}")
        for w in warnings:
            typer.echo(f"  warning: {w}")

    @hosts_app.command("trust")
    def trust(
        host: Annotated[str, typer.Argument(help="A host of the inventory.")],
        fingerprint: Annotated[str | None, typer.Option("--fingerprint", help="The expected key fingerprint, SHA256:...")] = None,
        yes: Annotated[bool, typer.Option("--yes", help="Do not ask (only with a matching --fingerprint).")] = False,
        inventory: Annotated[Path | None, typer.Option("--inventory", help="Inventory file.")] = None,
    ) -> None:
        """Show HOST's SSH key fingerprint and record it in bondbot's known_hosts once confirmed."""
        import asyncio

        from bondbot.commands._remote import EXIT_BAD_INPUT, EXIT_UNREACHABLE, fail
        from bondbot.settings import known_hosts_path
        from ssh_exec import (
            HostNotAllowed,
            InvalidValue,
            InventoryError,
            SshExecError,
            SshPool,
            record_host_key,
            trusted_keys,
        )
        from ssh_exec import fingerprint as fp_of

        if yes and not fingerprint:
            fail("--yes needs --fingerprint SHA256:... (the fingerprint you got from a trusted source)", EXIT_BAD_INPUT)
        if fingerprint and not fingerprint.startswith("SHA256:"):
            fail(f"--fingerprint must look like SHA256:..., got {fingerprint!r}", EXIT_BAD_INPUT)
        inv = _load(inventory, False)

        async def fetch():
            async with SshPool(inv, known_hosts=known_hosts_path()) as pool:
                h = inv.hops[host] if host in inv.hops else pool.host(host)  # a jump hop too: its key is checked
                return h, await pool.fetch_host_key(h)

        try:
            h, key = asyncio.run(fetch())
        except (HostNotAllowed, InvalidValue, InventoryError) as exc:
            fail(str(exc), EXIT_BAD_INPUT)
        except SshExecError as exc:
            fail(str(exc), EXIT_UNREACHABLE)
        seen = fp_of(key)
        typer.echo(f"{h.name} ({h.known_hosts_pattern}) presents a {key.get_algorithm()} key with fingerprint")
        typer.echo(f"  {seen}")
        old = trusted_keys(h, known_hosts_path())
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
        path = record_host_key(h, key, known_hosts_path(), replace=bool(old))
        typer.echo(f"Recorded in {path}.")
