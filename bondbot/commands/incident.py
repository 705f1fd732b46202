"""``bondbot incident list|show|verify|export``: read the incident log from the command line.

Exit status: 0 success; 1 ``verify`` found a broken chain; 2 an error (unknown incident, unwritable
output file, database unavailable), reported on stderr with nothing changed.
SQLAlchemy and the store are imported inside the commands so other commands start fast.
"""

from __future__ import annotations

import enum
import getpass
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from bondbot.commands._remote import EXIT_BAD_INPUT, fail

if TYPE_CHECKING:
    from incidents import IncidentStore

__all__ = ["register"]

DbOption = Annotated[
    Optional[str],  # noqa: UP045 - typer needs Optional at runtime on 3.11
    typer.Option(
        "--database-url",
        envvar="BONDBOT_DATABASE_URL",
        help="Incident database URL (default: SQLite in bondbot's data directory).",
        show_default=False,
    ),
]


class ExportFormat(str, enum.Enum):
    md = "md"
    json = "json"
    html = "html"


@contextmanager
def _store(url: str | None) -> Iterator[IncidentStore]:
    """Open the store; any ``IncidentError`` inside becomes a one-line message and exit status 2."""
    from bondbot.settings import database_url
    from incidents import IncidentError, IncidentStore

    try:
        with IncidentStore.open(url or database_url()) as store:
            yield store
    except IncidentError as exc:
        fail(str(exc), EXIT_BAD_INPUT)


def _write_atomically(path: Path, text: str, mode: int | None = None) -> None:
    """Write via a temporary file in the same directory, so a failure never leaves half a file.

    The export holds raw host outputs: it is written with ``mode`` (``--mode``, else
    ``BONDBOT_FILE_MODE``, default 0600), never made world-readable by itself."""
    from bondbot.settings import file_mode
    from incidents import ExportError

    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as exc:
        raise ExportError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, file_mode() if mode is None else mode)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise ExportError(f"cannot write {path}: {exc.strerror or exc}") from None


def _octal_mode(text: str | None) -> int | None:
    """``--mode 640`` as an int; a mode without owner read/write, or with x bits, is refused."""
    if text is None:
        return None
    try:
        mode = int(text, 8)
    except ValueError:
        fail(f"--mode {text!r} is not an octal mode like 600 or 640", EXIT_BAD_INPUT)
    if not 0 <= mode <= 0o666 or mode & 0o600 != 0o600:
        fail(f"--mode {text}: the owner must read and write the file, and no x bits", EXIT_BAD_INPUT)
    return mode


def _describe_line(ev: Any) -> str:
    from incidents.export.describe import describe, display_ts

    return f"{ev.seq:>4}  {display_ts(ev.ts)}  {ev.actor:<12} {ev.kind:<14} {describe(ev)}"


def register(app: typer.Typer) -> None:
    group = typer.Typer(
        name="incident",
        help="The incident log: list, show, verify and export incidents.",
        no_args_is_help=True,
    )

    @group.command("list")
    def list_cmd(
        status: Annotated[Optional[str], typer.Option(help="Only incidents in this status.")] = None,  # noqa: UP045
        host: Annotated[Optional[str], typer.Option(help="Only incidents on this host.")] = None,  # noqa: UP045
        limit: Annotated[int, typer.Option(min=1, help="At most this many.")] = 50,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
        database_url: DbOption = None,
    ) -> None:
        """List incidents, most recently active first."""
        with _store(database_url) as store:
            items = store.list_incidents(status=status, host=host, limit=limit)
        if as_json:
            typer.echo(json.dumps([i.to_json() for i in items], indent=2))
            return
        if not items:
            typer.echo("no incidents")
            return
        typer.echo(f"{'ID':<10} {'STATUS':<12} {'HOST':<20} {'SUBJECT':<8} {'OPENED (UTC)':<24} ROOT CAUSE")
        for i in items:
            typer.echo(
                f"{i.id:<10} {i.status.value:<12} {i.host:<20} {i.about:<8} {i.created_at:<24} {i.root_cause or '-'}"
            )

    @group.command("show")
    def show_cmd(
        incident_id: Annotated[str, typer.Argument(metavar="ID", help="Incident id, e.g. INC-7K3F.")],
        as_json: Annotated[bool, typer.Option("--json", help="Print the JSON export.")] = False,
        database_url: DbOption = None,
    ) -> None:
        """Show an incident and its timeline."""
        from incidents.export import export_incident

        with _store(database_url) as store:
            if as_json:
                typer.echo(export_incident(store, incident_id, "json").text, nl=False)
                return
            inc = store.get(incident_id)
            events = store.events(incident_id)
            result = store.verify(incident_id)
        typer.echo(f"{inc.id}  {inc.about} on {inc.host}  [{inc.status.value}]  (runbook {inc.runbook})")
        typer.echo(f"requested by {inc.requester} in {inc.channel}, opened {inc.created_at}")
        typer.echo(f"root cause: {inc.root_cause or 'not established'}")
        typer.echo(f"log: {result}")
        typer.echo("")
        for ev in events:
            typer.echo(_describe_line(ev))

    @group.command("verify")
    def verify_cmd(
        incident_id: Annotated[str, typer.Argument(metavar="ID", help="Incident id.")],
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
        database_url: DbOption = None,
    ) -> None:
        """Check the incident's hash chain; report the first broken link (exit 1) if any."""
        with _store(database_url) as store:
            result = store.verify(incident_id)
        typer.echo(json.dumps({"incident_id": result.incident_id, **result.to_json()}) if as_json else str(result))
        if not result.ok:
            raise typer.Exit(1)

    @group.command("export")
    def export_cmd(
        incident_id: Annotated[str, typer.Argument(metavar="ID", help="Incident id.")],
        fmt: Annotated[ExportFormat, typer.Option("--format", "-f", help="md, json or html.")] = ExportFormat.md,
        output: Annotated[
            Optional[Path],  # noqa: UP045
            typer.Option("--output", "-o", help="Write to this file (and log the export) instead of stdout."),
        ] = None,
        actor: Annotated[
            Optional[str], typer.Option(help="Who exports, for the log (default: your user name).")  # noqa: UP045
        ] = None,
        mode: Annotated[
            Optional[str],  # noqa: UP045
            typer.Option("--mode", help="Octal mode of the -o file (default: $BONDBOT_FILE_MODE, else 600)."),
        ] = None,
        database_url: DbOption = None,
    ) -> None:
        """Export the timeline as Markdown, JSON or a self-contained HTML page."""
        from incidents.export import export_incident

        with _store(database_url) as store:
            doc = export_incident(store, incident_id, fmt.value)
            if output is None:
                typer.echo(doc.text, nl=False)
                return
            _write_atomically(output, doc.text, _octal_mode(mode))
            store.record_export(doc, actor=actor or getpass.getuser(), destination=str(output))
        typer.echo(f"wrote {output} ({doc.fmt}, {len(doc.text.encode())} bytes, sha256 {doc.sha256})", err=True)

    app.add_typer(group, name="incident")
