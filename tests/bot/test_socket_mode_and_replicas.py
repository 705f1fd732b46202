"""Socket Mode through the WebSocket stand-in, and several bot replicas sharing one store."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlencode

import pytest

from bot.testing.harness import RunningBot, start_bot
from bot.views import ACTION_APPLY_FIX
from tests.bot.conftest import ALICE, BOB, CAROL, INCIDENTS, Clock, World, make_world
from tests.bot.host_remediation import FIX_COMMANDS


def _incident_messages(world: World) -> list:
    return [m for m in world.slack.channel_messages(INCIDENTS, include_ephemeral=False) if m.thread_ts is None]


@pytest.fixture
async def socket_bot(world: World) -> AsyncIterator[RunningBot]:
    bot = await start_bot(world.slack, world.deps, mode="socket", ping_interval=0.5)
    try:
        yield bot
    finally:
        await bot.stop()


async def test_socket_mode_command_and_click(world: World, socket_bot: RunningBot) -> None:
    ack = await socket_bot.command("triage test-host", user=ALICE, channel=INCIDENTS)
    assert ack.body["text"] == "Triage of test-host started; the incident follows in this channel."
    assert ack.seconds < 0.3
    await socket_bot.settle()
    [msg] = _incident_messages(world)
    click = await socket_bot.click(msg, ACTION_APPLY_FIX, user=BOB)
    assert click.body == {}
    await socket_bot.settle()
    assert world.remediation.applied == [("fix", "test-host")]


async def test_redelivery_with_retry_attempt_runs_once(world: World, socket_bot: RunningBot) -> None:
    payload = world.slack.slash_command_payload("triage test-host", user=ALICE, channel=INCIDENTS)
    await world.slack.send_envelope("slash_commands", payload)
    await world.slack.send_envelope("slash_commands", payload, retry_attempt=1, retry_reason="timeout")
    await socket_bot.settle()
    assert len(_incident_messages(world)) == 1
    assert len(world.store.list_incidents()) == 1


async def test_dropped_connection_is_reestablished_without_losing_or_repeating_work(
    world: World, socket_bot: RunningBot
) -> None:
    slack = world.slack
    # Slack sends a command and the connection dies before the app's ack can come back.
    first = slack.slash_command_payload("triage test-host", user=ALICE, channel=INCIDENTS)
    sent = await slack.send_envelope("slash_commands", first, drop_after_send=True, wait_ack=None)
    # A second command arrives while the app is disconnected: Slack queues it.
    second = await slack.command_over_socket("triage test-host", user=CAROL, channel=INCIDENTS, wait_ack=None)
    await slack.wait_for_socket(timeout=15)
    await slack.wait_ack(sent.envelope_id or "", timeout=15)
    await slack.wait_ack(second.envelope_id or "", timeout=15)
    await socket_bot.settle()
    assert slack.socket_connections_opened >= 2
    assert slack.envelope_attempts(sent.envelope_id or "") >= 1, "redelivered with retry_attempt"
    requesters = sorted(i.requester for i in world.store.list_incidents())
    assert requesters == [ALICE, CAROL], "each command once: none lost, none repeated"
    assert len(_incident_messages(world)) == 2


async def test_disconnect_message_reconnects(world: World, socket_bot: RunningBot) -> None:
    before = world.slack.socket_connections_opened
    await world.slack.send_disconnect()
    await world.slack.wait_for(lambda: world.slack.socket_connections_opened > before, timeout=15)
    await world.slack.wait_for_socket()
    ack = await socket_bot.command("help", user=ALICE, channel=INCIDENTS)
    assert ack.body["text"] == "bondbot help"


async def _replicas_run_once(world: World, url: str) -> None:
    second_world = await make_world(url, world.host, world.deps.policy, Clock())
    second_world.slack = world.slack
    try:
        a = await start_bot(world.slack, world.deps, mode="http")
        b = await start_bot(world.slack, second_world.deps, mode="http")
        try:
            fields = world.slack.slash_command_payload("triage test-host", user=ALICE, channel=INCIDENTS)
            body = urlencode(fields)
            # The same command delivered to both replicas (a retry that the load balancer sent elsewhere).
            await asyncio.gather(
                world.slack.post_signed(body, url=a.url), world.slack.post_signed(body, url=b.url, retry_num=1)
            )
            await asyncio.gather(a.settle(), b.settle())
            assert len(world.store.list_incidents()) == 1
            [msg] = _incident_messages(world)
            click_a = world.slack.block_action_payload(user=BOB, channel=INCIDENTS, message_ts=msg.ts, action_id=ACTION_APPLY_FIX)
            click_b = world.slack.block_action_payload(user=CAROL, channel=INCIDENTS, message_ts=msg.ts, action_id=ACTION_APPLY_FIX)
            await asyncio.gather(
                a.click(msg, ACTION_APPLY_FIX, user=BOB, payload=click_a),
                b.click(msg, ACTION_APPLY_FIX, user=CAROL, payload=click_b),
            )
            await asyncio.gather(a.settle(), b.settle())
            assert len(world.remediation.applied) + len(second_world.remediation.applied) == 1
            assert sum(1 for c in world.host.server.commands() if c == FIX_COMMANDS[0]) == 1
        finally:
            await a.stop()
            await b.stop()
    finally:
        await second_world.pool.close()
        second_world.store.close()


async def test_two_replicas_sharing_sqlite_run_everything_once(world: World, sqlite_url: str) -> None:
    await _replicas_run_once(world, sqlite_url)


@pytest.mark.postgres
async def test_two_replicas_sharing_postgresql_run_everything_once(
    seed_host, policy, clock, postgres_url: str, tmp_path: Path  # noqa: F811
) -> None:
    from tests.bot.conftest import create_database

    url = create_database(postgres_url, None)
    world = await make_world(url, seed_host, policy, clock)
    try:
        await _replicas_run_once(world, url)
    finally:
        await world.slack.stop()
        await world.pool.close()
        world.store.close()
