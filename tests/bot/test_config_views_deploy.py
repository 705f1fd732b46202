"""Authorization config, Block Kit limits, the deploy files, the transcript, and `bondbot serve`."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import pytest
import yaml

from bot import views
from bot.authz import AuthzConfigError, AuthzPolicy, load_policy
from bot.commands import CommandError, parse_command
from bot.testing.standin import SlackStandin
from bot.testing.transcript import render_html, render_text
from runbooks.findings import Diagnosis, Evidence, Finding, Severity

REPO = Path(__file__).resolve().parents[2]


def test_manifest_names_the_command_socket_mode_and_scopes() -> None:
    manifest = yaml.safe_load((REPO / "deploy" / "slack-app-manifest.yaml").read_text())
    assert [c["command"] for c in manifest["features"]["slash_commands"]] == ["/bond"]
    scopes = manifest["oauth_config"]["scopes"]["bot"]
    assert {"commands", "chat:write", "files:write"} <= set(scopes)
    assert manifest["settings"]["socket_mode_enabled"] is True
    assert manifest["settings"]["interactivity"]["is_enabled"] is True
    compose = yaml.safe_load((REPO / "deploy" / "compose.yaml").read_text())
    assert compose["services"]["bondbot-1"]["build"]["dockerfile"] == "deploy/Containerfile"  # tests/deploy: the rest
    assert "ENTRYPOINT [\"bondbot\", \"serve\"]" in (REPO / "deploy" / "Containerfile").read_text()
    assert "ExecStart=/opt/bondbot/venv/bin/bondbot serve" in (REPO / "deploy" / "bondbot.service").read_text()
    load_policy(REPO / "deploy" / "authz.example.yaml", env={})


def test_policy_from_yaml_and_env(tmp_path: Path) -> None:
    f = tmp_path / "authz.yaml"
    f.write_text("triage: {channels: [C0001]}\napprove: {users: [U0001], usergroups: [S0001]}\napproval_ttl_minutes: 5\n")
    p = load_policy(f, env={"BONDBOT_TWO_PERSON_RULE": "false"})
    assert p == AuthzPolicy(frozenset({"C0001"}), frozenset(), frozenset({"U0001"}), frozenset({"S0001"}), False, 300)
    assert load_policy(None, env={}).approver_users == frozenset()  # nobody approves by default
    assert load_policy(None, env={}).two_person_rule is True
    for text, message in [
        ("approve: {users: [alice]}", "approve.users: 'alice' is not a Slack id"),
        ("nonsense: 1", "unknown keys ['nonsense']"),
        ("approval_ttl_minutes: -1", "must be between 0 and 1440 minutes"),
    ]:
        f.write_text(text)
        with pytest.raises(AuthzConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
            load_policy(f, env={})


async def test_no_approvers_configured_means_nobody_approves() -> None:
    async def none(_: str) -> frozenset[str]:
        return frozenset()

    decision = await AuthzPolicy().may_approve("U2", "U1", none)
    assert not decision and decision.reason == "no approvers are configured for this bot"


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("", "No subcommand given."),
        ("triage", "Wrong arguments for `triage`."),
        ("triage -oProxyCommand=x", "`-oProxyCommand=x` is not a valid host name."),
        ("triage web-01 bond0;id", "`bond0;id` is not a valid bond interface name."),
        ("export INC-1234 pdf", "`pdf` is not an export format (md, json or html)."),
    ],
)
def test_command_parsing_refuses_bad_input(text: str, error: str) -> None:
    with pytest.raises(CommandError) as info:
        parse_command(text)
    assert str(info.value) == error


def test_huge_diagnosis_stays_within_slack_limits() -> None:
    evidence = tuple(Evidence("cat /proc/net/bonding/bond0", "x" * 200) for _ in range(100))
    findings = tuple(
        Finding(f"CODE_{i}", Severity.WARNING, "s" * 300, "e" * 5000, evidence) for i in range(80)
    )
    now = datetime.now(UTC)
    offer = views.Offer("fix", "t", "m", tuple("c" * 400 for _ in range(10)), ("r" * 400,), "a" * 64, now + timedelta(minutes=5))
    card = views.IncidentCard(
        "INC-ABCD", "h", "bond0", "U1", now, "diagnosed",
        diagnosis=Diagnosis({"bond": "bond0"}, findings[0], findings, details={"mode": "active-backup"}), offers=(offer,),
    )
    rendered = views.incident_message(card)
    assert len(rendered.blocks) <= 50
    for block in rendered.blocks:
        if block["type"] == "section":
            assert len(block["text"]["text"]) <= 3000
    button = rendered.blocks[-1]["elements"][0]
    assert len(button["confirm"]["text"]["text"]) <= 300
    assert button["confirm"]["text"]["text"].startswith("t on h: the 10 command(s) and the rollback listed in the message")


async def test_transcript_shows_the_channel() -> None:
    async with SlackStandin(users={"U1": "alice"}, channels={"C1": "incident"}) as slack:
        from bot.server import make_web_client

        client = make_web_client(slack.bot_token, slack.api_url)
        posted = await client.chat_postMessage(channel="C1", text="hello <@U1>")
        await client.chat_postMessage(channel="C1", thread_ts=posted["ts"], text="reply")
        await client.chat_postEphemeral(channel="C1", user="U1", text="psst")
        await client.session.close() if client.session else None
        text = render_text(slack, "C1")
        assert "bondbot:\n  hello @alice" in text
        assert "└ 1 reply in thread:" in text and "(only visible to @alice)" in text
        page = render_html(slack, "C1")
        assert page.startswith("<!doctype html>") and "<details class=thread>" in page


def test_serve_over_http_answers_signed_requests_only(tmp_path: Path) -> None:
    asyncio.run(_serve_http(tmp_path))


def test_serve_refuses_malformed_limits_before_it_starts(tmp_path: Path) -> None:
    env = dict(os.environ, SLACK_BOT_TOKEN="xoxb-1", SLACK_SIGNING_SECRET="s", BONDBOT_TRIAGE_PER_USER="lots",
               BONDBOT_DATA_DIR=str(tmp_path / "data"), BONDBOT_CONFIG_DIR=str(tmp_path / "config"))
    r = subprocess.run([str(Path(sys.executable).parent / "bondbot"), "serve", "--http", "--port", "9"],
                       env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stderr
    assert "error: BONDBOT_TRIAGE_PER_USER: expected N/SECONDS (e.g. 5/60) or 0, got 'lots'" in r.stderr
    assert not (tmp_path / "data").exists(), "nothing was created"


async def _serve_http(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with SlackStandin() as slack:
        env = dict(os.environ)
        env.update(
            SLACK_BOT_TOKEN=slack.bot_token, SLACK_SIGNING_SECRET=slack.signing_secret, SLACK_API_URL=slack.api_url,
            BONDBOT_DATA_DIR=str(tmp_path / "data"), BONDBOT_CONFIG_DIR=str(tmp_path / "config"),
            BONDBOT_INVENTORY=str(tmp_path / "inventory.yaml"),
            BONDBOT_RUNBOOKS=str(REPO / "tests" / "runbook_engine"),  # holds loadavg/runbook.yaml
            BONDBOT_TRIAGE_CHANNELS="C0ELSEWHERE",  # a triage is parsed, then refused here: none runs
        )
        (tmp_path / "inventory.yaml").write_text("hosts: {}\n")
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "bondbot"), "serve", "--http", "--port", str(port), "--host", "127.0.0.1"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            url = f"http://127.0.0.1:{port}/slack/events"
            body = urlencode(slack.slash_command_payload("help", user="U1", channel="C1"))
            for _ in range(100):
                try:
                    ok = await slack.post_signed(body, url=url)
                    break
                except OSError:
                    await asyncio.sleep(0.1)
            else:
                raise AssertionError("bondbot serve did not start")
            assert ok.status == 200 and ok.body["text"] == "bondbot help"
            assert (await slack.post_signed(body, url=url, secret="forged")).status == 401
            # serve hands BONDBOT_RUNBOOKS to the command parser: loadavg is a runbook name there
            for name, known in (("loadavg", True), ("no-such-runbook", False)):
                text = urlencode(slack.slash_command_payload(f"triage h1 --runbook {name}", user="U1", channel="C1"))
                answer = json.dumps((await slack.post_signed(text, url=url)).body)
                assert ("unknown runbook" not in answer) is known, answer
                assert ("not allowed" in answer.lower() or "🚫" in answer) is known, answer
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def test_chat_and_inventory_share_one_host_name_rule() -> None:
    """Every name the inventory accepts can be triaged from chat, and nothing else can (the
    inventory's own rule, ``ssh_exec.validate_host_name``, is the only one)."""
    from bot.schedule_commands import ScheduleRequest, ScheduleUsage, check_add
    from ssh_exec import InvalidValue, validate_host_name

    names = ["web-01", "_edge07", "db.example.com", "x" * 253, "x" * 254, "-oProxyCommand=x", ".hidden",
             "a;b", "h\u200bost", "web_01", "0"]
    for name in names:
        try:
            validate_host_name(name)
            inventory_ok = True
        except InvalidValue:
            inventory_ok = False
        try:
            assert parse_command(f"triage {name}").host == name
            chat_ok = True
        except CommandError:
            chat_ok = False
        request = ScheduleRequest("add", kind="audit", options={"hosts": name, "cron": "0 6 * * *", "tz": "UTC",
                                                               "window": "1h"})
        try:
            check_add(request, failover_methods=(), resolve_host=lambda h: h, group_exists=lambda g: None)
            schedule_ok = True
        except ScheduleUsage:
            schedule_ok = False
        assert chat_ok == schedule_ok == inventory_ok, name
