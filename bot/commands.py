"""Parsing the text of ``/bond``: what the user asked for, or exactly why it cannot be understood.

Parsing is strict and happens before anything is acknowledged as work: a host name, a runbook
name or a subject that could not be a real one is refused here with a specific message, so nothing
downstream (the runbook engine, a shell on a production host) ever sees it. ``/bond triage HOST
[SUBJECT] [--runbook NAME]``: the runbook (by name, from the registry: bonding by default) says what
the subject is and its type (bonding: a bond, an interface name), and the subject is checked by
that type, the same rule the engine applies.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "USAGE",
    "EXPORT_FORMATS",
    "BondCommand",
    "CommandError",
    "parse_command",
]

EXPORT_FORMATS = ("md", "json", "html")

USAGE = (
    "Usage: `/bond triage HOST [SUBJECT] [--runbook NAME]` · `/bond status INCIDENT` · "
    "`/bond export INCIDENT [md|json|html]` · `/bond audit [GROUP]` · `/bond schedule list|add|pause|resume|remove|history` · "
    "`/bond help`"
)

# An inventory name or a DNS name; no shell metacharacters, no leading dash (option injection).
_INCIDENT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_GROUP_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# A runbook's name in the registry (never a path: the bot loads no file a chat message names).
_RUNBOOK_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
#: How a value type is said in a message ("`x` is not a valid bond interface name.").
_TYPE_WORDS = {"interface": "interface name", "uuid": "UUID", "int": "number", "ipv4": "IPv4 address"}

Verb = Literal["triage", "status", "export", "audit", "schedule", "help"]


class CommandError(ValueError):
    """The command text could not be understood; the message says why, for the user."""


@dataclass(frozen=True)
class BondCommand:
    """What ``/bond`` asked for. ``subject`` is the value of the runbook's subject parameter (a bond
    for the bonding runbook; ``bond`` is the same value under that runbook's name for it);
    ``runbook`` None: the bot's default runbook."""

    verb: Verb
    host: str | None = None
    bond: str | None = None
    incident_id: str | None = None
    export_format: str = "md"
    group: str | None = None
    runbook: str | None = None
    subject: str | None = None
    #: ``/bond schedule ...``: the words after ``schedule``, as typed (``bot.schedule_commands`` parses them).
    schedule_text: str = ""

    def __post_init__(self) -> None:
        if self.subject is None and self.bond is not None:
            object.__setattr__(self, "subject", self.bond)
        elif self.bond is None and self.subject is not None:
            object.__setattr__(self, "bond", self.subject)


def _host(value: str) -> str:
    """A host name as the inventory spells it, by the inventory's own rule (``ssh_exec``): one rule
    for the chat, the CLI and the inventory, so every listed host can be named here."""
    from ssh_exec import InvalidValue, validate_host_name

    try:
        return validate_host_name(value)
    except InvalidValue:
        raise CommandError(f"`{value[:80]}` is not a valid host name.") from None


def _check(value: str, pattern: re.Pattern[str], what: str) -> str:
    if not pattern.match(value):
        raise CommandError(f"`{value[:80]}` is not a valid {what}.")
    return value


def _subject(runbook: str | None, value: str | None, runbooks: str = "") -> str | None:
    """Check ``value`` by the type the runbook declares for its subject (the engine's own rule)."""
    from runbooks.engine import RunbookError, load_runbook
    from runbooks.render import validate_value
    from runbooks.validation import InvalidValue

    try:
        rb = load_runbook(runbook, search=runbooks)
    except RunbookError as exc:
        raise CommandError(f"{exc}.") from None
    param = rb.subject.param
    if value is None:
        return None
    if param is None:
        raise CommandError(f"Runbook `{rb.name}` triages the host itself: it takes no subject (got `{value[:80]}`).")
    kind = rb.parameters[param].type
    try:
        validate_value(kind, value)
    except InvalidValue:
        raise CommandError(f"`{value[:80]}` is not a valid {rb.subject.noun} {_TYPE_WORDS.get(kind, kind)}.") from None
    return value


def _runbook_option(args: list[str]) -> tuple[str | None, list[str]]:
    """``--runbook NAME`` / ``--runbook=NAME`` anywhere in the arguments; the rest, in order."""
    rest: list[str] = []
    runbook: str | None = None
    i = 0
    while i < len(args):
        word = args[i]
        if word == "--runbook" or word.startswith("--runbook="):
            if runbook is not None:
                raise CommandError("`--runbook` given twice.")
            if word == "--runbook":
                if i + 1 >= len(args):
                    raise CommandError("`--runbook` needs a runbook name.")
                runbook, i = args[i + 1], i + 1
            else:
                runbook = word.split("=", 1)[1]
            runbook = _check(runbook, _RUNBOOK_RE, "runbook name")
        else:
            rest.append(word)
        i += 1
    return runbook, rest


def parse_command(text: str, *, runbooks: str = "") -> BondCommand:
    """``"triage web-01 bond0"`` -> ``BondCommand(verb="triage", host="web-01", subject="bond0")``
    (``bond="bond0"`` too); ``"triage web-01 --runbook loadavg"`` -> ``runbook="loadavg"``, a name
    among the built-in runbooks and those on ``runbooks`` (the bot's search path, ``BotDeps.runbooks``)."""
    words = text.split()
    if not words:
        raise CommandError("No subcommand given.")
    verb, args = words[0].lower(), words[1:]
    if verb == "help" and not args:
        return BondCommand("help")
    if verb == "triage":
        runbook, args = _runbook_option(args)
    if verb == "triage" and 1 <= len(args) <= 2:
        host = _host(args[0])
        subject = _subject(runbook, args[1] if len(args) == 2 else None, runbooks)
        if subject is None:
            _subject(runbook, None, runbooks)  # an unknown runbook is refused even with no subject named
        return BondCommand("triage", host=host, subject=subject, runbook=runbook)
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
    if verb == "schedule":
        return BondCommand("schedule", schedule_text=text.strip()[len(words[0]):].strip()[:2000])
    if verb in ("help", "triage", "status", "export", "audit"):
        raise CommandError(f"Wrong arguments for `{verb}`.")
    raise CommandError(f"Unknown subcommand `{verb[:40]}`.")
