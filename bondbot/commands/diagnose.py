"""``bondbot diagnose``: diagnose a bond from saved command outputs, offline.

Anyone can check a diagnosis without access to the host: save what the triage commands printed
and point this command at the files. Evidence names the command each line came from (e.g.
``cat /proc/net/bonding/bond0``), as it would on the host.

Heavy imports (Rich, the parsers, jinja2) happen inside the command so that CLI start-up stays fast.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, TypeGuard

import typer

__all__ = ["register"]

#: What commands and fix steps show when the files do not tell the bond's name: never a guess.
BOND_PLACEHOLDER = "<BOND>"
_SAVED_NAME_RE = re.compile(r"proc_net_bonding_([A-Za-z0-9_.:@-]{1,15}?)(?:\.txt)?|([A-Za-z0-9_:@-]{1,15})")


class _InputError(Exception):
    """A file that cannot be read or parsed: reported on one line, exit status 2."""


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise _InputError(f"{path}: cannot read: {exc.strerror or exc}") from None


def _pairs(values: list[str], option: str) -> list[tuple[str, Path]]:
    from runbooks.validation import interface_name_problem

    out = []
    for value in values:
        name, sep, file = value.partition("=")
        if not sep or not file or interface_name_problem(name) is not None:
            raise typer.BadParameter(
                f"{value!r}: expected IF=FILE with a valid interface name", param_hint=option)
        out.append((name, Path(file)))
    return out


def _infer_bond(ip_json_text: str | None, nmcli_text: str | None, proc_text: str,
                proc_path: Path) -> str:
    """The bond's name from the outputs themselves; the proc file does not print it. A name that
    is not an interface name by the project's one rule is not taken (the files are host-sourced)."""
    from runbooks.bonding.parsers import ParseError, parse_ip_details, parse_nmcli
    from runbooks.validation import interface_name_problem

    def valid(name: str | None) -> TypeGuard[str]:
        return bool(name) and interface_name_problem(name) is None

    if ip_json_text is not None:
        try:
            name = parse_ip_details(ip_json_text).ifname
            if valid(name):
                return name
        except ParseError:
            pass  # reported with the file name by the diagnosis
    if nmcli_text is not None:
        try:
            nm = parse_nmcli(nmcli_text)
            if valid(nm.interface_name):
                return nm.interface_name
        except ParseError:
            pass
    m = re.search(r"^bond (\S+) has no active aggregator$", proc_text, re.M)
    if m and valid(m.group(1)):
        return m.group(1)
    m = _SAVED_NAME_RE.fullmatch(proc_path.name)
    if m and valid(m.group(1) or m.group(2)):
        # copied as /proc/net/bonding/<bond> keeps the bond's name (no extension), or saved as
        # proc_net_bonding_<bond>[.txt]; any other file name says nothing about the bond
        return m.group(1) or m.group(2)
    return BOND_PLACEHOLDER


def _print_human(diagnosis) -> None:
    """The same layout as ``bondbot triage`` (one printer): the box, then the commands outside it."""
    from rich.console import Console

    from bondbot.commands._remote import print_verdict

    print_verdict(Console(), diagnosis, host=None)


def diagnose_command(
    proc: Annotated[Path, typer.Option("--proc", help="Saved /proc/net/bonding/<bond>.",
                                       metavar="FILE")],
    ip_json: Annotated[Path | None, typer.Option(
        "--ip-json", help="Saved `ip -d -j link show <bond>` (or `ip -d link show <bond>`).",
        metavar="FILE")] = None,
    ip_link: Annotated[list[str] | None, typer.Option(
        "--ip-link", help="Saved `ip link show <IF>`, per slave; repeatable.",
        metavar="IF=FILE")] = None,
    ethtool: Annotated[list[str] | None, typer.Option(
        "--ethtool", help="Saved `ethtool <IF>`, per slave; repeatable.",
        metavar="IF=FILE")] = None,
    nmcli: Annotated[Path | None, typer.Option(
        "--nmcli", help="Saved `nmcli -t con show <bond>` (or plain `nmcli con show`).",
        metavar="FILE")] = None,
    bond: Annotated[str | None, typer.Option(
        "--bond", help="The bond's name, when the files do not tell it.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Diagnose a bond from saved triage outputs: root cause, evidence, other findings."""
    import json

    from runbooks.bonding.diagnosis import diagnose
    from runbooks.bonding.outputs import SourceOutput, TriageOutputs
    from runbooks.bonding.parsers import ParseError
    from runbooks.validation import interface_name_problem

    problem = interface_name_problem(bond) if bond is not None else None
    if problem is not None:
        raise typer.BadParameter(f"{bond!r} is not an interface name: {problem}", param_hint="--bond")
    link_pairs = _pairs(ip_link or [], "--ip-link")
    ethtool_pairs = _pairs(ethtool or [], "--ethtool")
    try:
        proc_text = _read(proc)
        ip_text = _read(ip_json) if ip_json else None
        nm_text = _read(nmcli) if nmcli else None
        links = {name: _read(path) for name, path in link_pairs}
        eths = {name: _read(path) for name, path in ethtool_pairs}
        name = bond or _infer_bond(ip_text, nm_text, proc_text, proc)
        files: dict[str, Path] = {}

        def source(command: str, text: str, path: Path) -> SourceOutput:
            files[command] = path
            return SourceOutput(command, text)

        outputs = TriageOutputs(
            bond=name,
            proc_bonding=source(f"cat /proc/net/bonding/{name}", proc_text, proc),
            ip_details_json=(source(f"ip -d -j link show {name}", ip_text, ip_json)
                             if ip_text is not None and ip_json else None),
            ip_link={i: source(f"ip link show {i}", t, dict(link_pairs)[i])
                     for i, t in links.items()},
            ethtool={i: source(f"ethtool {i}", t, dict(ethtool_pairs)[i])
                     for i, t in eths.items()},
            nmcli=(source(f"nmcli -t con show {name}", nm_text, nmcli)
                   if nm_text is not None and nmcli else None),
        )
        try:
            diagnosis = diagnose(outputs, strict=True)
        except ParseError as exc:
            path = files.get(exc.source, exc.source)
            where = f"line {exc.line_number}" if exc.line_number else "input"
            shown = f": {exc.line!r}" if exc.line_number else ""
            raise _InputError(f"{path}: {where}: {exc.message}{shown}") from None
    except _InputError as exc:
        typer.echo(f"bondbot diagnose: {exc}", err=True)
        raise typer.Exit(2) from None

    if as_json:
        typer.echo(json.dumps(diagnosis.to_json()))
    else:
        if name == BOND_PLACEHOLDER:
            typer.echo(f"The bond's name is not in these files: commands below show {BOND_PLACEHOLDER}; "
                       "replace it with the bond's name, or run again with --bond NAME.", err=True)
        _print_human(diagnosis)


def register(app: typer.Typer) -> None:
    app.command("diagnose")(diagnose_command)
