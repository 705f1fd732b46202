"""The ``bondbot`` command.

Each group of commands lives in its own module under ``bondbot.commands`` and exposes
``register(app)``. Command modules import heavy libraries (asyncssh, SQLAlchemy, slack-bolt)
inside the command functions, so that ``bondbot triage`` does not pay for the bot's imports.
"""

from __future__ import annotations

import importlib

import typer

COMMAND_MODULES = (
    "diagnose",
    "demo",
    "incident",
    "remediate",
    "triage",
    "audit",
    "hosts",
    "lab",
    "serve",
)

app = typer.Typer(
    name="bondbot",
    help="Triage and fix Linux bonding failover incidents over SSH, with an auditable incident log.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _register_commands() -> None:
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"bondbot.commands.{name}")
        module.register(app)


_register_commands()


def main() -> None:
    app()
