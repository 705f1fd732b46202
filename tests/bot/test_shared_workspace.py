"""A shared workspace (issue 12): access follows the incident's channel, the workspace is pinned,
malformed signed payloads get 400 with nothing run, triages are rate-limited, a removed approver
is refused at once, every click is on the record. All through the real Bolt app over signed HTTP
(and Socket Mode where said), the Slack stand-in and the replaying sshd."""

from __future__ import annotations

import dataclasses
import json
from typing import Any
from urllib.parse import urlencode

import pytest

from bot.authz import AuthzPolicy
from bot.limits import RateLimit, SlackLimits
from bot.testing.harness import RunningBot, start_bot
from bot.testing.standin import StandinMessage
from bot.views import ACTION_APPLY_FIX, ACTION_EXPORT
from tests.bot.conftest import ALICE, BOB, CAROL, INCIDENTS, MALLORY, NETOPS, RANDOM, World

OPEN = AuthzPolicy(approver_users=frozenset({BOB}), approver_groups=frozenset({NETOPS}))


async def _bot(world: World, **deps: Any) -> RunningBot:
    return await start_bot(world.slack, dataclasses.replace(world.deps, **deps), mode="http")


async def _triaged(world: World, bot: RunningBot) -> tuple[str, StandinMessage]:
    await bot.command("triage test-host", user=ALICE, channel=INCIDENTS)
    await bot.settle()
    [incident] = world.store.list_incidents()
    [msg] = [m for m in world.slack.channel_messages(INCIDENTS, include_ephemeral=False) if m.thread_ts is None]
    return incident.id, msg


def _refusals(world: World, incident_id: str) -> list[dict[str, Any]]:
    return [e.payload | {"actor": e.actor} for e in world.store.events(incident_id) if e.kind == "refusal"]


async def test_export_and_status_from_another_channel_are_refused_and_logged(world: World) -> None:
    bot = await _bot(world, policy=OPEN)  # the default: anyone may triage anywhere
    try:
        incident_id, _msg = await _triaged(world, bot)
        uploads_before = len(world.slack.calls_to("files.completeUploadExternal"))
        await bot.command(f"export {incident_id} json", user=MALLORY, channel=RANDOM)
        await bot.command(f"status {incident_id}", user=MALLORY, channel=RANDOM)
        await bot.settle()
        assert len(world.slack.calls_to("files.completeUploadExternal")) == uploads_before, "nothing uploaded"
        assert not [m for m in world.slack.channel_messages(RANDOM) if m.files]
        told = world.slack.ephemerals(MALLORY)
        print([(m.text, m.via) for m in told])
        assert told and all(m.channel == RANDOM and f"belongs to <#{INCIDENTS}>" in m.text for m in told)
        codes = [(r["action"], r["code"], r["user"]) for r in _refusals(world, incident_id)]
        assert ("export", "wrong_channel", MALLORY) in codes and ("status", "wrong_channel", MALLORY) in codes
        # In the incident's own channel the export goes through.
        await bot.command(f"export {incident_id} json", user=ALICE, channel=INCIDENTS)
        await bot.settle()
        assert len(world.slack.calls_to("files.completeUploadExternal")) == uploads_before + 1
    finally:
        await bot.stop()


def _elsewhere(world: World, msg: StandinMessage, action_id: str) -> dict[str, Any]:
    """The incident message's button, pressed in #random (a forwarded or copied message)."""
    body = world.slack.block_action_payload(user=BOB, channel=INCIDENTS, message_ts=msg.ts,
                                            action_id=action_id)
    body["channel"] = {"id": RANDOM, "name": "random"}
    body["container"]["channel_id"] = RANDOM
    return body


async def test_a_button_clicked_from_another_channel_is_refused_on_the_record(world: World) -> None:
    bot = await _bot(world, policy=OPEN)
    try:
        incident_id, msg = await _triaged(world, bot)
        await bot.click(msg, ACTION_APPLY_FIX, user=BOB, payload=_elsewhere(world, msg, ACTION_APPLY_FIX))
        await bot.settle()
        assert world.remediation.applied == []
        assert [(r["code"], r["user"]) for r in _refusals(world, incident_id)] == [("wrong_channel", BOB)]
        await bot.click(msg, ACTION_EXPORT, user=BOB, payload=_elsewhere(world, msg, ACTION_EXPORT))
        await bot.settle()
        assert not world.slack.calls_to("files.completeUploadExternal")
        assert ("export", "wrong_channel") in [(r["action"], r["code"]) for r in _refusals(world, incident_id)]
    finally:
        await bot.stop()


async def test_another_workspace_is_refused_the_pinned_one_served(world: World) -> None:
    bot = await _bot(world, policy=OPEN)  # no team configured: auth.test's team_id is pinned
    try:
        fields = world.slack.slash_command_payload("triage test-host", user=ALICE, channel=INCIDENTS)
        fields["team_id"] = "T0OTHER"
        answer = await world.slack.post_signed(urlencode(fields), url=bot.url)
        assert answer.status == 200 and "another Slack workspace" in answer.body["text"]
        await bot.settle()
        assert world.store.list_incidents() == [] and world.host.server.commands() == []
        assert world.slack.calls_to("auth.test")
        await _triaged(world, bot)  # the pinned workspace's own request is served
    finally:
        await bot.stop()


async def test_a_configured_team_id_is_pinned(world: World) -> None:
    bot = await _bot(world, policy=OPEN, team_id="T0CONFIGURED")
    try:
        answer = await bot.command("triage test-host", user=ALICE, channel=INCIDENTS)  # the stand-in's team
        assert "another Slack workspace" in answer.body["text"]
        await bot.settle()
        assert world.store.list_incidents() == []
    finally:
        await bot.stop()


def _click(action: object) -> dict[str, Any]:
    return {"type": "block_actions", "user": {"id": BOB, "team_id": "T0STANDIN"}, "team": {"id": "T0STANDIN"},
            "channel": {"id": INCIDENTS}, "container": {"channel_id": INCIDENTS, "message_ts": "1.1"},
            "actions": action}


MALFORMED = {
    "payload not JSON": urlencode({"payload": "{not json"}),
    "payload a list": urlencode({"payload": json.dumps([1, 2])}),
    "click without actions": urlencode({"payload": json.dumps(_click(None) | {"actions": None})}),
    "click with empty actions": urlencode({"payload": json.dumps(_click([]))}),
    "action not an object": urlencode({"payload": json.dumps(_click(["x"]))}),
    "action without id": urlencode({"payload": json.dumps(_click([{"value": "{}"}]))}),
    "value not a string": urlencode({"payload": json.dumps(_click([{"action_id": ACTION_APPLY_FIX, "value": 7}]))}),
    "click without user": urlencode({"payload": json.dumps(_click([{"action_id": ACTION_APPLY_FIX}]) | {"user": "x"})}),
    "click without channel": urlencode({"payload": json.dumps(
        _click([{"action_id": ACTION_APPLY_FIX, "value": "{}"}]) | {"channel": None, "container": {}})}),
    "unknown type": urlencode({"payload": json.dumps({"type": "nonsense", "team": {"id": "T0STANDIN"}})}),
    "command without user": urlencode({"command": "/bond", "text": "triage test-host", "channel_id": INCIDENTS,
                                       "team_id": "T0STANDIN", "trigger_id": "t"}),
    "command without channel": urlencode({"command": "/bond", "text": "triage test-host", "user_id": ALICE,
                                          "team_id": "T0STANDIN", "trigger_id": "t"}),
    "empty body": "",
}


@pytest.mark.parametrize("shape", sorted(MALFORMED))
async def test_a_malformed_signed_payload_is_400_and_runs_nothing(world: World, http_bot: RunningBot,
                                                                  shape: str) -> None:
    answer = await world.slack.post_signed(MALFORMED[shape], url=http_bot.url)
    assert answer.status == 400, (shape, answer)
    await http_bot.settle()
    assert world.store.list_incidents() == [] and world.host.server.commands() == []
    assert not [c for c in world.slack.calls if c.method != "auth.test"]
    # Unsigned, the same body is still refused as a forgery (401), not parsed.
    unsigned = await world.slack.post_signed(MALFORMED[shape], url=http_bot.url, secret="wrong")
    assert unsigned.status == 401


async def test_triage_rate_limits_answer_try_again(world: World) -> None:
    limits = SlackLimits(triage_per_user=RateLimit(2, 60), triage_per_channel=RateLimit(3, 60))
    bot = await _bot(world, limits=limits)
    try:
        answers = [await bot.command("triage test-host", user=ALICE, channel=INCIDENTS) for _ in range(3)]
        assert [a.body["text"].startswith("Triage of") for a in answers] == [True, True, False]
        assert "try again in " in answers[2].body["text"] and answers[2].body["response_type"] == "ephemeral"
        other = await bot.command("triage test-host", user=BOB, channel=INCIDENTS)
        assert other.body["text"].startswith("Triage of")  # the channel's third
        fourth = await bot.command("triage test-host", user=CAROL, channel=INCIDENTS)
        assert "try again in " in fourth.body["text"]  # the channel's limit
        await bot.settle()
        assert len(world.store.list_incidents()) == 3
    finally:
        await bot.stop()


async def test_a_removed_approver_is_refused_at_once(world: World, http_bot: RunningBot) -> None:
    incident_id, msg = await _triaged(world, http_bot)
    world.slack.usergroups[NETOPS] = [CAROL]
    await http_bot.bot._members_of(NETOPS)  # the display cache holds Carol as a member
    world.slack.usergroups[NETOPS] = []  # removed from the group in Slack
    calls = len(world.slack.calls_to("usergroups.users.list"))
    await http_bot.click(msg, ACTION_APPLY_FIX, user=CAROL)
    await http_bot.settle()
    assert len(world.slack.calls_to("usergroups.users.list")) == calls + 1, "membership read at the click"
    assert world.remediation.applied == []
    [refusal] = _refusals(world, incident_id)
    assert (refusal["code"], refusal["user"]) == ("unauthorized", CAROL)
    world.slack.usergroups[NETOPS] = [CAROL]  # added back: approved on the next click
    await http_bot.click(msg, ACTION_APPLY_FIX, user=CAROL)
    await http_bot.settle()
    assert world.remediation.applied


async def test_every_click_is_one_event_and_the_export_shows_one_hash(world: World, http_bot: RunningBot) -> None:
    """The issue's 11 clicks: the requester, a non-approver, a tampered hash, the approver 8 times."""
    incident_id, msg = await _triaged(world, http_bot)
    fix = next(e for b in msg.blocks if b["type"] == "actions" for e in b["elements"]
               if e["action_id"] == ACTION_APPLY_FIX)
    digest = json.loads(fix["value"])["plan"]
    # The approver's eight clicks, on the button as the clients showed it (double clicks, stale screens).
    eight = [world.slack.block_action_payload(user=BOB, channel=INCIDENTS, message_ts=msg.ts,
                                              action_id=ACTION_APPLY_FIX) for _ in range(8)]
    await http_bot.click(msg, ACTION_APPLY_FIX, user=ALICE)  # the requester... an approver too: two-person
    await http_bot.click(msg, ACTION_APPLY_FIX, user=MALLORY)
    tampered = world.slack.block_action_payload(user=BOB, channel=INCIDENTS, message_ts=msg.ts,
                                                action_id=ACTION_APPLY_FIX)
    tampered["actions"][0]["value"] = json.dumps({"incident": incident_id, "plan": "0" * 64})
    await http_bot.click(msg, ACTION_APPLY_FIX, user=BOB, payload=tampered)
    await http_bot.settle()
    for body in eight:
        await http_bot.click(msg, ACTION_APPLY_FIX, user=BOB, payload=body)
    await http_bot.settle()
    events = world.store.events(incident_id)
    approvals = [e for e in events if e.kind == "approval"]
    refusals = _refusals(world, incident_id)
    assert len(approvals) == 1 and len(refusals) == 10, [(r["code"], r["user"]) for r in refusals]
    assert sorted({str(r["code"]) for r in refusals}) == ["already_decided", "no_offer", "self_approval",
                                                         "unauthorized"]
    assert all(r["user"] and r["reason"] for r in refusals)
    # One hash: the exported timeline names only the digest offered, approved and run.
    await http_bot.command(f"export {incident_id} json", user=ALICE, channel=INCIDENTS)
    await http_bot.settle()
    [upload] = [u for u in world.slack.uploads.values() if str(u.get("name", "")).endswith(".json")]
    content = upload["content"]
    exported = json.loads(content.decode() if isinstance(content, bytes) else content)
    hashes = {str(e["payload"].get("plan_hash")) for e in exported["events"]
              if isinstance(e.get("payload"), dict) and e["payload"].get("plan_hash")
              and e["kind"] in ("proposal", "approval")}
    assert digest in hashes
    fix_hashes = {str(e["payload"].get("plan_hash")) for e in exported["events"]
                  if isinstance(e.get("payload"), dict) and e["kind"] in ("approval", "note")
                  and (e["payload"].get("plan_hash") or (e["payload"].get("action_run") or {}).get("plan_hash"))}
    assert fix_hashes <= {digest, "None"} or fix_hashes == {digest}


async def test_the_bots_audit_is_bounded_like_the_clis(world: World) -> None:
    """Six hosts (all the replaying sshd), two connections allowed: three rounds of a slow read."""
    import time

    from bot.wiring import EngineTriage
    from ssh_exec import SshPool
    from tests.bot.conftest import seed_table

    server = world.host.server
    extra = {f"web-{i:02d}": server.inventory_entry() for i in range(5)}
    server.write_inventory(world.host.inventory_path, name=world.host.name, extra_hosts=extra)
    server.set_replay(seed_table(), delays={"cat /proc/net/bonding/bond0": 0.4})
    pool = SshPool(world.host.inventory(), known_hosts=world.host.known_hosts_path)
    limits = SlackLimits(audit_connections=2)
    bot = await _bot(world, triage=EngineTriage(pool, world.store), limits=limits)
    try:
        started = time.monotonic()
        await bot.command("audit test", user=ALICE, channel=INCIDENTS)
        await world.slack.wait_for(lambda: [m for m in world.slack.channel_messages(INCIDENTS)
                                            if m.text.startswith("Audit of test")], timeout=60)
        took = time.monotonic() - started
        await bot.settle()
        assert bot.bot.audit_peak == 2
        assert took >= 3 * 0.4, f"six slow hosts two at a time take three rounds, not {took:.2f} s"
        [report] = [m for m in world.slack.channel_messages(INCIDENTS) if m.text.startswith("Audit of test")]
        assert "6 host(s)" in report.text
    finally:
        await bot.stop()
        await pool.close()


async def test_not_in_the_channel_the_requester_is_told_and_the_incident_records_it(world: World) -> None:
    world.slack.not_member_of.add(INCIDENTS)
    bot = await _bot(world)
    try:
        await bot.command("triage test-host", user=ALICE, channel=INCIDENTS)
        await bot.settle()
    finally:
        await bot.stop()
    assert world.slack.calls_to("chat.postMessage"), "it tried"
    assert world.slack.channel_messages(INCIDENTS, include_ephemeral=False) == []
    told = [m for m in world.slack.ephemerals(ALICE) if "invite me" in m.text]
    assert told and "not_in_channel" in told[0].text and told[0].channel == INCIDENTS
    [incident] = world.store.list_incidents()
    events = world.store.events(incident.id)
    notes = [e.payload["slack_post_failed"] for e in events if "slack_post_failed" in e.payload]
    assert notes == [{"channel": INCIDENTS, "error": "not_in_channel", "requester": ALICE}]
    [cut] = [e.payload for e in events if e.kind == "interrupted"]
    assert "not_in_channel" in str(cut["reason"]) and "invite" in str(cut["reason"])
    assert "cat /proc/net/bonding/bond0" not in world.host.server.commands(), "no triage step ran"
    assert world.store.leases() == []


async def test_slack_429_is_retried_after_retry_after(world: World, http_bot: RunningBot) -> None:
    """slack_sdk's rate-limit retry handler (bot.server.make_web_client) against the stand-in's 429."""
    world.slack.rate_limited["chat.postMessage"] = 2
    world.slack.retry_after = 1
    await http_bot.command("triage test-host", user=ALICE, channel=INCIDENTS)
    await http_bot.settle()
    posts = world.slack.calls_to("chat.postMessage")
    assert len(posts) >= 3 and posts[2].at - posts[0].at >= 1.9, "waited Retry-After twice"
    top = [m for m in world.slack.channel_messages(INCIDENTS, include_ephemeral=False) if m.thread_ts is None]
    assert len(top) == 1, "posted once, after the retries"
    [incident] = world.store.list_incidents()
    assert incident.status.value == "diagnosed"


async def test_over_socket_mode_the_same_gates_hold(world: World) -> None:
    """Socket Mode: another team refused, a malformed envelope runs nothing, a cross-channel export refused."""
    bot = await start_bot(world.slack, dataclasses.replace(world.deps, policy=OPEN), mode="socket")
    try:
        other = world.slack.slash_command_payload("triage test-host", user=ALICE, channel=INCIDENTS)
        other["team_id"] = "T0OTHER"
        answer = await world.slack.send_envelope("slash_commands", other)
        assert "another Slack workspace" in json.dumps(answer.body)
        broken = await world.slack.send_envelope("interactive", _click([]) | {"actions": "x"}, wait_ack=None)
        await bot.settle()
        assert broken.envelope_id and world.store.list_incidents() == [] and world.host.server.commands() == []
        await bot.command("triage test-host", user=ALICE, channel=INCIDENTS)
        await bot.settle()
        [incident] = world.store.list_incidents()
        await bot.command(f"export {incident.id} json", user=MALLORY, channel=RANDOM)
        await bot.settle()
        assert not world.slack.calls_to("files.completeUploadExternal")
        assert ("export", "wrong_channel", MALLORY) in [(r["action"], r["code"], r["user"])
                                                      for r in _refusals(world, incident.id)]
    finally:
        await bot.stop()
