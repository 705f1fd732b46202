"""The ``bondbot incident`` command group alone, for the CLI tests of tests/incidents/."""

from __future__ import annotations

import typer

from bondbot.commands import incident as incident_cmd


def incident_cli() -> typer.Typer:
    """Only this command group: the tests do not depend on the other groups being importable."""
    app = typer.Typer()
    incident_cmd.register(app)

    @app.callback()
    def _root() -> None:
        pass

    return app
