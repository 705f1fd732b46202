"""The ``bondbot`` command.

Each group of commands lives in its own module under ``bondbot.commands`` and exposes
``register(app)``. Command modules import heavy libraries (asyncssh, SQLAlchemy, slack-bolt)
inside the command functions, so that ``bondbot triage`` does not pay for the bot's imports; and
``main()`` registers only the module of the command being run (every module for ``--help`` or a
mistyped command), so it does not pay for the other command modules either.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

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
    "schedule",
)

# Top-level command name -> the module that registers it, where the two differ.
_MODULE_OF_COMMAND = {"fix": "remediate", "failover-test": "remediate"}


def build_app(modules: tuple[str, ...] = COMMAND_MODULES) -> typer.Typer:
    """The Typer application with the commands of ``modules`` registered."""
    app = typer.Typer(
        name="bondbot",
        help="Triage and fix Linux bonding failover incidents over SSH, with an auditable incident log.",
        no_args_is_help=True,
        add_completion=True,  # --install-completion / --show-completion (bash, zsh, fish, PowerShell)
        pretty_exceptions_enable=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )

    @app.callback()
    def bondbot(
        version: bool = typer.Option(False, "--version", "-V", is_eager=True, callback=_print_version,
                                     help="Print bondbot's version and exit."),
    ) -> None:
        """Triage and fix Linux bonding failover incidents over SSH, with an auditable incident log."""
        # A callback keeps ``bondbot`` a command group even when main() registered one command.

    for name in modules:
        importlib.import_module(f"bondbot.commands.{name}").register(app)
    return app


def _print_version(value: bool) -> None:
    if value:
        from bondbot import __version__

        typer.echo(f"bondbot {__version__}")
        raise typer.Exit()


def _modules_for(argv: list[str]) -> tuple[str, ...]:
    if argv and argv[0] in ("--version", "-V"):
        return ()  # nothing to register: the eager option prints and exits
    command = argv[0] if argv else ""
    module = _MODULE_OF_COMMAND.get(command, command)
    return (module,) if module in COMMAND_MODULES else COMMAND_MODULES


def __getattr__(name: str) -> Any:
    # ``from bondbot.cli import app`` (tests, embedding) gets every command.
    if name == "app":
        globals()["app"] = full = build_app()
        return full
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main() -> None:
    build_app(_modules_for(sys.argv[1:]))()
