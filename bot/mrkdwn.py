"""Escaping for what the bot sends to Slack: the one place host-sourced text is made inert.

Why it exists: every string a host returns (a mode line, an NM profile name, stderr, a bond
name) is hostile. In Slack mrkdwn ``<!channel>`` pings everyone, ``<https://a|b>`` is a link that
shows another address, ``&lt;`` is decoded, and a run of backticks closes the code block the text
was put in, so that whatever follows becomes live markup next to an approval button. Each function
here makes text safe for one place it goes:

* :func:`text` — mrkdwn prose: ``& < >`` escaped, backticks replaced by a look-alike (they would
  open or close inline code), ``://`` broken so Slack does not auto-link an address, control
  characters shown visibly (``\\x1b``).
* :func:`inline_code` — inside `` `...` ``: as :func:`text` (no backtick can end it).
* :func:`code_block` — a ```` ``` ```` block of lines: ``& < >`` escaped, every run of two or more
  backticks and a backtick at either end broken with a zero-width space, so the block can only
  end where the bot ends it; single backticks (shell substitution in a command) stay as they are.
* :func:`plain` — ``plain_text`` objects (headers, buttons, options, the confirm dialog): no
  markup is parsed there, only control characters are shown visibly.
* :func:`fallback` — a message's ``text`` (notifications): everything escaped except the bot's
  own mentions of a user, channel or user group by id.
"""

from __future__ import annotations

import re

__all__ = ["code_block", "controls", "fallback", "inline_code", "plain", "text"]

#: Backtick look-alike (U+02CB MODIFIER LETTER GRAVE ACCENT): never mrkdwn code.
BACKTICK_LOOKALIKE = "\u02cb"
_ZWSP = "\u200b"

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]")
_BACKTICK_RUN = re.compile(r"`{2,}")
#: The bot's own mentions, kept live in a fallback text: <@U…>, <#C…>, <!subteam^S…>.
_OWN_MENTION = re.compile(r"<(@[UW][A-Z0-9]{2,20}|#C[A-Z0-9]{2,20}|!subteam\^S[A-Z0-9]{2,20})>")


def controls(value: object) -> str:
    """Control characters (ESC, OSC, C1, bidi overrides, line separators) shown as ``\\xNN``;
    line breaks and tabs kept."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100
                        else f"\\u{ord(m.group()):04x}", str(value))


def _entities(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def text(value: object) -> str:
    """Host text for mrkdwn prose: no mention, link, entity, code span or auto-link comes alive."""
    return _entities(controls(value)).replace("`", BACKTICK_LOOKALIKE).replace("://", ":" + _ZWSP + "//")


def inline_code(value: object) -> str:
    """Host text for inside a `` `...` `` span (the caller writes the backticks)."""
    return text(value)


def _break_backticks(line: str) -> str:
    line = _BACKTICK_RUN.sub(lambda m: _ZWSP.join(m.group()), line)
    if line.startswith("`"):
        line = _ZWSP + line
    if line.endswith("`"):
        line += _ZWSP
    return line


def code_block(lines: list[str] | tuple[str, ...]) -> str:
    """```` ```lines``` ```` with the lines made inert: the block ends only where it is closed here."""
    body = "\n".join(_break_backticks(_entities(controls(line))) for line in lines)
    return f"```{_break_backticks(body)}```"


def code_body_len(line: str) -> int:
    """How long ``line`` is once escaped for a code block (for fitting blocks into Slack's limits)."""
    return len(_break_backticks(_entities(controls(line))))


def plain(value: object) -> str:
    """Host text for a ``plain_text`` object: Slack parses no markup there; controls shown."""
    return controls(value)


def fallback(value: object) -> str:
    """A message's ``text`` (shown in notifications, parsed as mrkdwn): all escaped, the bot's
    own mentions by id kept."""
    raw = controls(value)
    kept: list[str] = []

    def hold(match: re.Match[str]) -> str:
        kept.append(match.group())
        return f"\x00{len(kept) - 1}\x00"

    held = _OWN_MENTION.sub(hold, raw)
    escaped = _entities(held).replace("://", ":" + _ZWSP + "//")
    return re.sub(r"\x00(\d+)\x00", lambda m: kept[int(m.group(1))], escaped)
