"""Issue 14 end to end on the real lab VM: an alert for the lab host's bond (sent by the real
Alertmanager) -> the triage posted in the channel -> the fix approved by a person -> a scheduled
failover drill (method lab, under an approver's standing approval) passes.

One scenario reset (the shared ``lab_env`` fixture), no reboot.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from bot.alert_flow import AlertReceiver, AlertSettings
from bot.alertmanager import WebhookAuth
from bot.app import BotDeps
from bot.authz import AuthzPolicy
from bot.schedule_flow import ScheduleRunner
from bot.testing.harness import start_bot
from bot.testing.standin import SlackStandin
from bot.views import ACTION_APPLY_FIX
from bot.wiring import EngineRemediation, EngineTriage
from incidents import IncidentStore, automation
from runbooks.scheduler import ScheduleService
from ssh_exec import SshPool, load_inventory
from tests.alertmanager import RealAlertmanager
from tests.bot.conftest import Clock

pytestmark = pytest.mark.lab

APPROVER, CHANNEL, TOKEN = "U0APPROVER", "C0INCIDENT", "lab-am-token"


async def test_alert_triage_fix_then_scheduled_drill_passes(lab_env: Any, tmp_path: Path) -> None:
    clock = Clock()
    store = IncidentStore.open(f"sqlite:///{tmp_path / 'incidents.sqlite3'}")
    inventory = load_inventory(lab_env.inventory_path)
    pool = SshPool(inventory, known_hosts=lab_env.known_hosts_path)
    policy = AuthzPolicy(triage_channels=frozenset({CHANNEL}), approver_users=frozenset({APPROVER}))
    deps = BotDeps(store=store, triage=EngineTriage(pool, store), policy=policy, clock=clock,
                   remediation=EngineRemediation(pool, store, link_control=lab_env.link, hold_seconds=2.0))
    slack = SlackStandin(users={APPROVER: "approver"}, channels={CHANNEL: "incident"})
    await slack.start()
    settings = AlertSettings(auth=WebhookAuth(tokens=(TOKEN,)), channel=CHANNEL)
    bot = await start_bot(slack, deps, mode="http", alerts=lambda b: AlertReceiver(b, settings, inventory))
    (tmp_path / "token").write_text(TOKEN)
    try:
        # 1. The seed's alert for the lab host's bond: the real Alertmanager -> the triage in the channel.
        with RealAlertmanager(tmp_path, bot.alerts_url,
                              {"authorization": {"type": "Bearer", "credentials_file": str(tmp_path / "token")}}) as am:
            am.post([{"labels": {"alertname": "BondSlaveNoCarrier", "instance": "lab-host:9100", "master": "bond0",
                                 "device": "eno1", "severity": "critical"}}])
            deadline = time.monotonic() + 60
            while not automation.alert_records(store) and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            await bot.settle(timeout=180)
        [record] = automation.alert_records(store)
        assert record.outcome == "triaged"
        [incident] = store.list_incidents()
        assert incident.id == record.incident_id and incident.requester == "alertmanager:bondbot"
        assert store.get(incident.id).root_cause.startswith("bond0 has no link monitoring")
        [msg] = [m for m in slack.channel_messages(CHANNEL, include_ephemeral=False) if m.thread_ts is None]
        assert "requested by Alertmanager receiver bondbot" in str(msg.blocks)

        # 2. A person approves the fix (the alert offered it; it did not approve it).
        assert store.approvals(incident.id) == []
        await bot.click(msg, ACTION_APPLY_FIX, user=APPROVER)
        await bot.settle(timeout=300)
        assert store.get(incident.id).status.value == "verified"
        assert lab_env.ssh("cat /sys/class/net/bond0/bonding/miimon", check=True).stdout.strip() == "100"

        # 3. The approver schedules the failover drill; at its occurrence it runs and passes.
        service = ScheduleService(store, clock)
        drill = service.add(kind="drill", cron="*/5 * * * *", tz="UTC", window="4m", channel=CHANNEL,
                            created_by=APPROVER, hosts=("lab-host",), bond="bond0", method="lab")
        now = clock()
        clock.advance(minutes=5 - now.minute % 5, seconds=-now.second + 10)
        runner = ScheduleRunner(bot.bot)
        assert len(await runner.tick()) == 1
        await bot.settle(timeout=300)
        [run] = automation.schedule_runs(store, drill.id)
        assert run.outcome == "passed", run.result
        drilled = [i for i in store.list_incidents() if i.requester == f"schedule:{drill.id}"]
        assert len(drilled) == 1
        events = store.events(drilled[0].id)
        [standing] = [e.payload["standing_approval"] for e in events if e.kind == "note" and "standing_approval" in e.payload]
        assert standing["scope_digest"] == drill.scope_digest()
        [measured] = [e.payload["failover_test"] for e in events if e.kind == "verification" and "failover_test" in e.payload]
        assert measured["passed"] and measured["failed_over"]
        assert service.get(drill.id).state == "active"
        assert any(m.text.startswith(f"✅ Scheduled failover drill {drill.id}") for m in slack.channel_messages(CHANNEL))
        assert lab_env.ssh("cat /sys/class/net/eno1/operstate", check=True).stdout.strip() == "up"
    finally:
        await bot.stop()
        await slack.stop()
        await pool.close()
        store.close()
