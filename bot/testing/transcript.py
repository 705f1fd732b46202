"""The channel as a person would see it, from what the Slack stand-in recorded: text and HTML.

Used by the demo (a transcript in the terminal and an HTML page of the messages and buttons) and
handy when a test fails. Mentions are shown with the stand-in's user names; ephemeral messages are
marked "only visible to"; thread replies are indented under their parent.
"""

from __future__ import annotations

import html
import re
from typing import Any

from bot.testing.standin import SlackStandin, StandinMessage

__all__ = ["message_lines", "render_html", "render_text"]

_MENTION = re.compile(r"<@([A-Z0-9]+)>")
_CHANNEL = re.compile(r"<#([A-Z0-9]+)>")


def _names(slack: SlackStandin, text: str) -> str:
    text = _MENTION.sub(lambda m: "@" + slack.users.get(m.group(1), m.group(1)), text)
    text = _CHANNEL.sub(lambda m: "#" + slack.channels.get(m.group(1), m.group(1)), text)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _block_lines(block: dict[str, Any]) -> list[str]:
    kind = block.get("type")
    if kind == "header":
        return [f"== {block['text']['text']} =="]
    if kind == "section":
        return (block.get("text") or {}).get("text", "").splitlines()
    if kind == "context":
        return ["  " + " ".join(e.get("text", "") for e in block.get("elements", []))]
    if kind == "divider":
        return ["-" * 40]
    if kind == "actions":
        return ["  " + "  ".join(f"[ {e['text']['text']} ]" for e in block.get("elements", []) if "text" in e)]
    return []


def _message_lines(slack: SlackStandin, msg: StandinMessage) -> list[str]:
    lines = [line for block in msg.blocks for line in _block_lines(block)] or msg.text.splitlines()
    lines += [f"📎 {f.get('title') or f.get('name')} ({f.get('size', 0)} bytes)" for f in msg.files]
    return [_names(slack, line) for line in lines]


def message_lines(slack: SlackStandin, msg: StandinMessage) -> list[str]:
    """One message as it reads now (blocks, buttons as ``[ label ]``, files), names resolved."""
    return _message_lines(slack, msg)


def render_text(slack: SlackStandin, channel: str) -> str:
    """The channel in plain text, oldest first, as it looks now (edits applied)."""
    out: list[str] = [f"#{slack.channels.get(channel, channel)}"]
    messages = slack.channel_messages(channel)
    for msg in messages:
        if msg.thread_ts is not None:
            continue
        who = "bondbot"
        if msg.ephemeral_to:
            who += f" (only visible to @{slack.users.get(msg.ephemeral_to, msg.ephemeral_to)})"
        out.append(f"\n{who}:")
        out += ["  " + line for line in _message_lines(slack, msg)]
        replies = [m for m in messages if m.thread_ts == msg.ts]
        if replies:
            out.append(f"  └ {len(replies)} repl{'y' if len(replies) == 1 else 'ies'} in thread:")
            for reply in replies:
                out += ["      " + line for line in _message_lines(slack, reply)[:3]]
    return "\n".join(out) + "\n"


def _mrkdwn_html(text: str) -> str:
    parts = text.split("```")
    out = []
    for i, part in enumerate(parts):
        if i % 2:
            out.append(f"<pre>{html.escape(part)}</pre>")
        else:
            escaped = html.escape(part)
            escaped = re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)
            escaped = re.sub(r"\*([^*\n]+)\*", r"<b>\1</b>", escaped)
            out.append(escaped.replace("\n", "<br>"))
    return "".join(out)


def _block_html(slack: SlackStandin, block: dict[str, Any]) -> str:
    kind = block.get("type")
    if kind == "header":
        return f"<h3>{html.escape(block['text']['text'])}</h3>"
    if kind == "section":
        return f"<div class=section>{_mrkdwn_html(_names(slack, block.get('text', {}).get('text', '')))}</div>"
    if kind == "context":
        inner = " ".join(_mrkdwn_html(_names(slack, e.get("text", ""))) for e in block.get("elements", []))
        return f"<div class=context>{inner}</div>"
    if kind == "divider":
        return "<hr>"
    if kind == "actions":
        buttons = "".join(
            f"<button class='{html.escape(e.get('style', ''))}' title='{html.escape((e.get('confirm') or {}).get('text', {}).get('text', ''))}'>"
            f"{html.escape(e['text']['text'])}</button>"
            for e in block.get("elements", [])
            if "text" in e
        )
        return f"<div class=actions>{buttons}</div>"
    return ""


def _message_html(slack: SlackStandin, msg: StandinMessage) -> str:
    body = "".join(_block_html(slack, b) for b in msg.blocks) or _mrkdwn_html(_names(slack, msg.text))
    body += "".join(
        f"<div class=file>📎 {html.escape(str(f.get('title') or f.get('name')))} ({f.get('size', 0)} bytes)</div>"
        for f in msg.files
    )
    note = ""
    if msg.ephemeral_to:
        note = f"<div class=eph>Only visible to @{html.escape(slack.users.get(msg.ephemeral_to, msg.ephemeral_to))}</div>"
    edited = " <span class=edited>(edited)</span>" if msg.versions else ""
    return f"<div class=msg><div class=who>bondbot <span class=app>APP</span>{edited}</div>{note}{body}</div>"


def render_html(slack: SlackStandin, channel: str, *, title: str = "bondbot demo") -> str:
    """One self-contained HTML page of the channel: messages, buttons (with their confirm text
    as a tooltip), files, and each thread under its message."""
    messages = slack.channel_messages(channel)
    items = []
    for msg in messages:
        if msg.thread_ts is not None:
            continue
        replies = "".join(_message_html(slack, r) for r in messages if r.thread_ts == msg.ts)
        thread = f"<details class=thread><summary>Thread</summary>{replies}</details>" if replies else ""
        items.append(_message_html(slack, msg) + thread)
    style = (
        "body{font-family:-apple-system,Segoe UI,sans-serif;max-width:900px;margin:2em auto;color:#1d1c1d}"
        ".msg{border-bottom:1px solid #eee;padding:.8em 0}.who{font-weight:bold}.app{font-size:.7em;background:#ddd;"
        "padding:0 .3em;border-radius:3px}.context{color:#616061;font-size:.85em}pre{background:#f8f8f8;"
        "border:1px solid #ddd;padding:.5em;white-space:pre-wrap}button{margin:.3em;padding:.4em .9em;border:1px solid #bbb;"
        "border-radius:4px;background:#fff}button.primary{background:#007a5a;color:#fff}button.danger{color:#e01e5a}"
        ".eph{color:#616061;font-style:italic}.thread{margin-left:2em}.edited{color:#999;font-weight:normal}"
    )
    return (
        f"<!doctype html><html><head><meta charset=utf-8><title>{html.escape(title)}</title>"
        f"<style>{style}</style></head><body><h2>#{html.escape(slack.channels.get(channel, channel))}</h2>"
        + "".join(items)
        + "</body></html>\n"
    )
