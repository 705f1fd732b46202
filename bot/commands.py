"""Parsing the text of ``/bond``: what the user asked for, or exactly why it cannot be understood.

Parsing is strict and happens before anything is acknowledged as work: a host or bond name that
could not be a real one is refused here with a specific message, so nothing downstream (the runbook
engine, a shell on a production host) ever sees it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from runbooks.validation import interface_name_problem

__all__ = [
    "USAGE",
    "EXPORT_FORMATS",
    "BondCommand",
    "CommandError",
    "parse_command",
]

EXPORT_FORMATS = ("md", "json", "html")

USAGE = (
    "Usage: `/bond triage HOST [BOND]` · `/bond status INCIDENT` · "
    "`/bond export INCIDENT [md|json|html]` · `/bond audit [GROUP]` · `/bond help`"
)

# An inventory name or a DNS name; no shell metacharacters, no leading dash (option injection).
_HOST_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,252})$")
_INCIDENT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_GROUP_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

Verb = Literal["triage", "status", "export", "audit", "help"]


class CommandError(ValueError):
    """The command text could not be understood; the message says why, for the user."""


@dataclass(frozen=True)
class BondCommand:
    verb: Verb
    host: str | None = None
    bond: str | None = None
    incident_id: str | None = None
    export_format: str = "md"
    group: str | None = None


def _check(value: str, pattern: re.Pattern[str], what: str) -> str:
    if not pattern.match(value):
        raise CommandError(f"`{value[:80]}` is not a valid {what}.")
    return value


def _interface_name(value: str, what: str) -> str:
    """The project's one rule for interface names (``runbooks.validation``), in the bot's words."""
    if interface_name_problem(value) is not None:
        raise CommandError(f"`{value[:80]}` is not a valid {what}.")
    return value


def parse_command(text: str) -> BondCommand:
    """``"triage web-01 bond0"`` -> ``BondCommand(verb="triage", host="web-01", bond="bond0")``."""
    words = text.split()
    if not words:
        raise CommandError("No subcommand given.")
    verb, args = words[0].lower(), words[1:]
    if verb == "help" and not args:
        return BondCommand("help")
    if verb == "triage" and 1 <= len(args) <= 2:
        host = _check(args[0], _HOST_RE, "host name")
        bond = _interface_name(args[1], "bond interface name") if len(args) == 2 else None
        return BondCommand("triage", host=host, bond=bond)
    if verb == "status" and len(args) == 1:
        return BondCommand("status", incident_id=_check(args[0], _INCIDENT_RE, "incident id"))
    if verb == "export" and 1 <= len(args) <= 2:
        fmt = args[1].lower() if len(args) == 2 else "md"
        if fmt not in EXPORT_FORMATS:
            raise CommandError(f"`{args[1][:20]}` is not an export format (md, json or html).")
        return BondCommand(
            "export", incident_id=_check(args[0], _INCIDENT_RE, "incident id"), export_format=fmt
        )
    if verb == "audit" and len(args) <= 1:
        group = _check(args[0], _GROUP_RE, "inventory group") if args else None
        return BondCommand("audit", group=group)
    if verb in ("help", "triage", "status", "export", "audit"):
        raise CommandError(f"Wrong arguments for `{verb}`.")
    raise CommandError(f"Unknown subcommand `{verb[:40]}`.")
