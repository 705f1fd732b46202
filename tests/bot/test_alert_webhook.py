"""The Alertmanager webhook against the real bot: the real prometheus-alertmanager (on loopback,
its receiver the bot) sends what it sends; the real Bolt app, the Slack stand-in and a real sshd
replaying the seed incident do the rest. Nothing here builds a payload by hand except the
refusals that Alertmanager would never send."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest

from bot.alert_flow import AlertReceiver, AlertSettings
from bot.alertmanager import WebhookAuth
from bot.testing.harness import RunningBot, start_bot
from incidents import automation
from tests.alertmanager import RealAlertmanager
from tests.bot.conftest import INCIDENTS, World

TOKEN = "am-webhook-token-1"


def _alert(host: str = "test-host", bond: str = "bond0", *, resolved: bool = False) -> dict:
    return {"labels": {"alertname": "BondSlaveNoCarrier", "instance": f"{host}:9100", "master": bond,
                       "device": "eno1", "severity": "critical"},
            "annotations": {"summary": f"Slave eno1 of {bond} has no carrier"}, "resolved": resolved}


async def _until(what: Callable[[], object], timeout: float = 40.0, why: str = "") -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await asyncio.to_thread(what)
        if value:
            return value
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out waiting for {why or what}")


def _receiver(world: World) -> Callable[[object], AlertReceiver]:
    settings = AlertSettings(auth=WebhookAuth(tokens=(TOKEN,)), channel=INCIDENTS)
    return lambda bot: AlertReceiver(bot, settings, world.host.inventory())  # type: ignore[arg-type]


@pytest.fixture(params=["http", "socket"])
async def alert_bot(request: pytest.FixtureRequest, world: World) -> AsyncIterator[RunningBot]:
    bot = await start_bot(world.slack, world.deps, mode=request.param, alerts=_receiver(world))
    try:
        yield bot
    finally:
        await bot.stop()


def _token_file(tmp_path: Path, token: str) -> dict:
    path = tmp_path / "token"
    path.write_text(token)
    return {"authorization": {"type": "Bearer", "credentials_file": str(path)}}


async def test_firing_opens_one_incident_repeats_update_it_resolved_is_shown(
        world: World, alert_bot: RunningBot, tmp_path: Path) -> None:
    with RealAlertmanager(tmp_path, alert_bot.alerts_url, _token_file(tmp_path, TOKEN), repeat_interval="2s") as am:
        am.post([_alert()])
        records = await _until(lambda: [r for r in automation.alert_records(world.store) if r.outcome == "updated"],
                               why="a repeat notification")
        incidents = world.store.list_incidents()
        assert len(incidents) == 1, incidents
        incident = incidents[0]
        assert incident.host == "test-host" and incident.bond == "bond0"
        assert incident.requester == "alertmanager:bondbot"
        all_records = automation.alert_records(world.store)
        assert [r.outcome for r in all_records][0] == "triaged"
        assert {r.incident_id for r in all_records} == {incident.id}
        assert records[0].incident_id == incident.id
        await alert_bot.settle()
        # The triage ran as /bond triage does: the root cause is in the channel, the fix offered.
        incident = world.store.get(incident.id)
        assert incident.root_cause and "miimon" in incident.root_cause.lower()
        [message] = [m for m in world.slack.channel_messages(INCIDENTS, include_ephemeral=False)
                     if m.thread_ts is None]
        text = str(message.blocks)
        assert "requested by Alertmanager receiver bondbot" in text
        assert "Alert BondSlaveNoCarrier from Alertmanager receiver bondbot: firing since" in text
        assert "bond_apply_fix" in text  # offered; approval stays a person's click
        assert not [e for e in world.store.events(incident.id) if e.kind == "approval"]
        am.post([_alert(resolved=True)])
        await _until(lambda: [r for r in automation.alert_records(world.store) if r.outcome == "resolved"],
                     why="the resolved notification")
        await alert_bot.settle()
        assert len(world.store.list_incidents()) == 1
        notes = [e.payload["alert"] for e in world.store.events(incident.id) if "alert" in e.payload]
        assert notes[0]["status"] == "firing" and notes[-1]["status"] == "resolved"
        assert len(notes) >= 3  # opened, at least one repeat, resolved
        [message] = [m for m in world.slack.channel_messages(INCIDENTS, include_ephemeral=False)
                     if m.thread_ts is None]
        assert "Alert BondSlaveNoCarrier from Alertmanager receiver bondbot: resolved (ended" in str(message.blocks)


async def test_wrong_token_is_401_and_nothing_runs(world: World, alert_bot: RunningBot, tmp_path: Path) -> None:
    with RealAlertmanager(tmp_path, alert_bot.alerts_url, _token_file(tmp_path, "not-the-token")) as am:
        am.post([_alert()])
        await _until(lambda: "401" in am.log.read_text(), why="Alertmanager's failed notification")
    async with aiohttp.ClientSession() as http:
        for headers in ({}, {"Authorization": "Basic Ym9uZGJvdDp4"}, {"Authorization": f"Token {TOKEN}"}):
            async with http.post(alert_bot.alerts_url, data=b"not even json", headers=headers) as resp:
                assert resp.status == 401
        async with http.post(alert_bot.alerts_url, data=b"not json",
                             headers={"Authorization": f"Bearer {TOKEN}"}) as resp:
            assert resp.status == 400  # authenticated, but not a v4 payload: refused, nothing recorded
    await alert_bot.settle()
    assert automation.alert_records(world.store) == []
    assert world.store.list_incidents() == []
    assert world.slack.channel_messages(INCIDENTS) == []
    assert world.host.server.commands() == []


async def test_alert_for_a_host_not_in_the_inventory_is_reported_not_triaged(
        world: World, alert_bot: RunningBot, tmp_path: Path) -> None:
    with RealAlertmanager(tmp_path, alert_bot.alerts_url, _token_file(tmp_path, TOKEN)) as am:
        am.post([_alert(host="db-99")])
        await _until(lambda: automation.alert_records(world.store), why="the unmapped alert's record")
        await _until(lambda: world.slack.channel_messages(INCIDENTS), why="the report in the channel")
    await alert_bot.settle()
    [record] = automation.alert_records(world.store)
    assert record.outcome == "unmapped" and record.incident_id is None
    assert "names no inventory host" in record.detail
    [message] = world.slack.channel_messages(INCIDENTS)
    assert "was not triaged" in message.text and "db-99" in message.text
    assert world.store.list_incidents() == []
    assert world.host.server.commands() == []
