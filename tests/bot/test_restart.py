"""Restarts and crashes with real processes: SIGTERM lets running work finish or records it
interrupted (exit 0, no message left "running"); after ``kill -9`` another replica, or the
restarted one, records the work as interrupted within the lease time, once, with the chain intact
and no host command run twice. On SQLite and on PostgreSQL.

The replicas are separate processes serving HTTP: ``bondbot serve --http`` itself for triages,
``replica_worker.py`` (``serve``'s own serving and shutdown code with the tests' remediation) for
fixes. Slack is the stand-in in this process; the host is the test sshd, slowed down where the
test stops the bot (``set_replay(delays=...)``).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import yaml

from bot.views import ACTION_APPLY_FIX, ACTION_RERUN_TRIAGE
from incidents import IncidentStore, Status
from tests.bot.conftest import ALICE, BOB, INCIDENTS, seed_table
from tests.bot.host_remediation import FIX_COMMANDS
from tests.slack_standin import SlackStandin, StandinMessage
from tests.ssh.fixtures import SshTestHost

REPO = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).resolve().parent / "replica_worker.py"
LEASE_S = 2.0
#: The scan runs every third of the lease; allow the recovery's own work (re-read, Slack) on top.
RECOVERY_BOUND_S = LEASE_S + LEASE_S / 3 + 3.0
SLOW_STEP = "ethtool eno1"


@dataclass
class Replica:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/slack/events"

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def slow_host(seed_host: SshTestHost) -> SshTestHost:
    return seed_host


@pytest.fixture
async def slack() -> AsyncIterator[SlackStandin]:
    standin = SlackStandin(users={ALICE: "alice", BOB: "bob"}, channels={INCIDENTS: "incident"})
    await standin.start()
    try:
        yield standin
    finally:
        await standin.stop()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'incidents.sqlite3'}"
    from tests.bot.conftest import create_database

    return create_database(request.getfixturevalue("postgres_url"), None)


@pytest.fixture
def store(db_url: str) -> Iterator[IncidentStore]:
    s = IncidentStore.open(db_url)
    try:
        yield s
    finally:
        s.close()


class Replicas:
    """Starts replica processes; kills whatever is left at the end of the test."""

    def __init__(self, slack: SlackStandin, host: SshTestHost, db_url: str, tmp: Path) -> None:
        self.slack, self.host, self.db_url, self.tmp = slack, host, db_url, tmp
        self.started: list[Replica] = []
        authz = tmp / "authz.yaml"
        authz.write_text(yaml.safe_dump({
            "triage": {"channels": [INCIDENTS]}, "approve": {"users": [BOB]}, "two_person_rule": True,
        }))
        self.authz = authz

    async def start(self, *, kind: str = "serve", grace: float = 10.0) -> Replica:
        port = _free_port()
        env = {
            **os.environ, "PYTHONPATH": str(REPO), "SLACK_BOT_TOKEN": self.slack.bot_token,
            "SLACK_SIGNING_SECRET": self.slack.signing_secret, "SLACK_API_URL": self.slack.api_url,
            "BONDBOT_DATABASE_URL": self.db_url, "BONDBOT_SLACK_AUTHZ": str(self.authz),
            "BONDBOT_LEASE_SECONDS": str(LEASE_S), "BONDBOT_SHUTDOWN_GRACE": str(grace),
            "BONDBOT_INVENTORY": str(self.host.inventory_path), "BONDBOT_KNOWN_HOSTS": str(self.host.known_hosts_path),
        }
        if kind == "serve":
            argv = [sys.executable, "-c", "from bondbot.cli import main; main()", "serve", "--http",
                    "--host", "127.0.0.1", "--port", str(port)]
        elif kind == "socket":
            env["SLACK_APP_TOKEN"] = self.slack.app_token
            argv = [sys.executable, "-c", "from bondbot.cli import main; main()", "serve"]
        else:
            argv = [sys.executable, str(WORKER), str(port)]
        log = self.tmp / f"replica-{len(self.started)}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
        replica = Replica(proc, port, log)
        self.started.append(replica)
        deadline = time.monotonic() + 60
        while "on SIGTERM running work gets" not in replica.output():
            assert proc.poll() is None, f"replica exited {proc.returncode}:\n{replica.output()}"
            assert time.monotonic() < deadline, f"replica never got ready:\n{replica.output()}"
            await asyncio.sleep(0.05)
        return replica

    async def command(self, replica: Replica, text: str, *, user: str = ALICE) -> Any:
        fields = self.slack.slash_command_payload(text, user=user, channel=INCIDENTS)
        return await self.slack.post_signed(urlencode(fields), url=replica.url)

    async def click(self, replica: Replica, message: StandinMessage, action_id: str, *, user: str) -> Any:
        body = self.slack.block_action_payload(user=user, channel=INCIDENTS, message_ts=message.ts, action_id=action_id)
        return await self.slack.post_signed(urlencode({"payload": json.dumps(body)}), url=replica.url)

    def stop_all(self) -> None:
        for r in self.started:
            if r.proc.poll() is None:
                r.proc.kill()
                r.proc.wait(10)


@pytest.fixture
async def replicas(slack: SlackStandin, slow_host: SshTestHost, db_url: str, tmp_path: Path) -> AsyncIterator[Replicas]:
    group = Replicas(slack, slow_host, db_url, tmp_path)
    try:
        yield group
    finally:
        group.stop_all()


async def _until(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def _exit_code(replica: Replica, timeout: float) -> int:
    return await asyncio.to_thread(replica.proc.wait, timeout)


def _incident_message(slack: SlackStandin) -> StandinMessage:
    [msg] = [m for m in slack.channel_messages(INCIDENTS, include_ephemeral=False) if m.thread_ts is None]
    return msg


def _buttons(msg: StandinMessage) -> list[str]:
    return [e.get("action_id") for b in msg.blocks if b.get("type") == "actions" for e in b.get("elements", [])]


def _text(msg: StandinMessage) -> str:
    return json.dumps(msg.blocks)


def _host_commands(host: SshTestHost) -> list[str]:
    return host.server.commands()


def _no_duplicates(commands: list[str]) -> None:
    seen = [c for c in commands if commands.count(c) > 1]
    assert not seen, f"commands run twice on the host: {sorted(set(seen))}"


# ------------------------------------------------------------------ SIGTERM


async def test_sigterm_lets_a_running_triage_finish_and_refuses_new_work(
    replicas: Replicas, slack: SlackStandin, slow_host: SshTestHost, store: IncidentStore
) -> None:
    slow_host.server.set_replay(seed_table(), delays={SLOW_STEP: 2.0})
    a = await replicas.start(grace=15)
    ack = await replicas.command(a, "triage test-host")
    assert ack.status == 200
    await _until(lambda: SLOW_STEP in _host_commands(slow_host), 20, "the slow step to start")
    started = time.monotonic()
    a.proc.send_signal(signal.SIGTERM)
    # New work while it drains: answered at once, nothing started.
    await _until(lambda: "received: taking no new work" in a.output(), 10, "the drain to begin")
    refused = await replicas.command(a, "triage test-host", user=BOB)
    assert refused.status == 200 and "restarting" in refused.body["text"], refused.body
    assert await _exit_code(a, 30) == 0, a.output()
    took = time.monotonic() - started
    print(f"\nMEASURED sigterm with a triage 2 s from its end: exit 0 after {took:.2f} s")
    assert took < 15, f"shutdown took {took:.1f} s"
    [incident] = store.list_incidents()  # the refused command opened nothing
    assert incident.status is Status.DIAGNOSED, incident
    assert store.verify(incident.id).ok
    assert store.leases() == []
    msg = _incident_message(slack)
    assert "NO_LINK_MONITORING" in _text(msg) and "running" not in msg.text, msg.text
    assert _host_commands(slow_host).count(SLOW_STEP) == 1


async def test_sigterm_when_the_grace_period_runs_out_records_the_triage_interrupted(
    replicas: Replicas, slack: SlackStandin, slow_host: SshTestHost, store: IncidentStore, db_url: str
) -> None:
    slow_host.server.set_replay(seed_table(), delays={SLOW_STEP: 5.0})
    a = await replicas.start(grace=0.5)
    await replicas.command(a, "triage test-host")
    await _until(lambda: SLOW_STEP in _host_commands(slow_host), 20, "the slow step to start")
    started = time.monotonic()
    a.proc.send_signal(signal.SIGTERM)
    assert await _exit_code(a, 20) == 0, a.output()
    took = time.monotonic() - started
    print(f"\nMEASURED sigterm, grace 0.5 s ran out: recorded interrupted, exit 0 after {took:.2f} s")
    assert took < 4.5, "recorded and gone before the slow step would have ended"
    [incident] = store.list_incidents()
    assert incident.status is Status.INTERRUPTED
    [event] = [e for e in store.events(incident.id) if e.kind == "interrupted"]
    assert event.payload["work"] == "triage" and "grace period (0.5 s) ran out" in event.payload["reason"]
    assert store.verify(incident.id).ok
    assert store.leases() == []
    msg = _incident_message(slack)
    assert "Interrupted" in _text(msg) and "/bond triage test-host bond0" in _text(msg)
    assert ACTION_RERUN_TRIAGE in _buttons(msg)
    assert "recorded interrupted" in a.output()

    if not db_url.startswith("sqlite"):
        return  # the button's round trip does not depend on the database
    # The re-run button works on any replica: a new incident, triaged to the end.
    slow_host.server.set_replay(seed_table())
    b = await replicas.start()
    await replicas.click(b, msg, ACTION_RERUN_TRIAGE, user=ALICE)
    await _until(lambda: any(i.status is Status.DIAGNOSED for i in store.list_incidents()), 20, "the re-run")
    b.proc.send_signal(signal.SIGTERM)
    assert await _exit_code(b, 20) == 0, b.output()


async def test_sigint_then_a_second_signal_ends_the_grace_period_at_once(
    replicas: Replicas, slack: SlackStandin, slow_host: SshTestHost, store: IncidentStore, db_url: str
) -> None:
    if not db_url.startswith("sqlite"):
        pytest.skip("signal handling does not depend on the database")
    slow_host.server.set_replay(seed_table(), delays={SLOW_STEP: 6.0})
    a = await replicas.start(grace=60)
    await replicas.command(a, "triage test-host")
    await _until(lambda: SLOW_STEP in _host_commands(slow_host), 20, "the slow step to start")
    started = time.monotonic()
    a.proc.send_signal(signal.SIGINT)  # Ctrl-C: the same graceful stop
    await _until(lambda: "SIGINT received: taking no new work" in a.output(), 10, "the drain to begin")
    a.proc.send_signal(signal.SIGTERM)  # impatient: stop now
    assert await _exit_code(a, 20) == 0, a.output()
    assert time.monotonic() - started < 5, "the 60 s grace period was cut short"
    [incident] = store.list_incidents()
    assert incident.status is Status.INTERRUPTED and store.verify(incident.id).ok and store.leases() == []
    [event] = [e for e in store.events(incident.id) if e.kind == "interrupted"]
    assert "a second stop signal ended the grace period" in event.payload["reason"]


async def test_sigterm_in_socket_mode_finishes_the_triage_and_answers_restarting(
    replicas: Replicas, slack: SlackStandin, slow_host: SshTestHost, store: IncidentStore, db_url: str
) -> None:
    if not db_url.startswith("sqlite"):
        pytest.skip("the transport does not depend on the database: SQLite is enough")
    slow_host.server.set_replay(seed_table(), delays={SLOW_STEP: 2.0})
    a = await replicas.start(kind="socket", grace=15)
    await slack.wait_for_socket()
    await slack.command_over_socket("triage test-host", user=ALICE, channel=INCIDENTS)
    await _until(lambda: SLOW_STEP in _host_commands(slow_host), 20, "the slow step to start")
    a.proc.send_signal(signal.SIGTERM)
    await _until(lambda: "received: taking no new work" in a.output(), 10, "the drain to begin")
    refused = await slack.command_over_socket("triage test-host", user=BOB, channel=INCIDENTS)
    assert "restarting" in refused.body["text"], refused.body
    assert await _exit_code(a, 30) == 0, a.output()
    [incident] = store.list_incidents()
    assert incident.status is Status.DIAGNOSED and store.verify(incident.id).ok
    assert store.leases() == []
    assert "running" not in _incident_message(slack).text


async def test_sigterm_cutting_a_fix_records_where_with_the_rollback_note(
    replicas: Replicas, slack: SlackStandin, slow_host: SshTestHost, store: IncidentStore, db_url: str
) -> None:
    if not db_url.startswith("sqlite"):
        pytest.skip("what is recorded does not depend on the database (the kill -9 tests run on both)")
    slow_host.server.set_replay(seed_table(), delays={FIX_COMMANDS[1]: 6.0})
    a = await replicas.start(kind="worker", grace=0.5)
    await replicas.command(a, "triage test-host")
    await _until(lambda: slack.channel_messages(INCIDENTS, include_ephemeral=False)
                 and ACTION_APPLY_FIX in _buttons(_incident_message(slack)), 20, "the fix offer")
    await replicas.click(a, _incident_message(slack), ACTION_APPLY_FIX, user=BOB)
    await _until(lambda: FIX_COMMANDS[1] in _host_commands(slow_host), 20, "the change to be under way")
    a.proc.send_signal(signal.SIGTERM)
    assert await _exit_code(a, 30) == 0, a.output()
    [incident] = store.list_incidents()
    assert incident.status is Status.INTERRUPTED
    events = store.events(incident.id)
    [event] = [e for e in events if e.kind == "interrupted"]
    p = event.payload
    note = next(e for e in events if e.kind == "rollback_note")
    assert p["work"] == "fix" and "grace period (0.5 s) ran out" in p["reason"]
    assert "between the change and its verification" in p["phase"] and f"seq {note.seq}" in p["phase"]
    assert p["rollback_note_seq"] == note.seq and p["restore_commands"] == note.payload["restore_commands"]
    assert p["host_as_before"] is True, p  # re-read before exiting: the replayed host did not change
    assert store.verify(incident.id).ok and store.leases() == []
    assert [_host_commands(slow_host).count(c) for c in FIX_COMMANDS] == [1, 1]
    msg = _incident_message(slack)
    assert ACTION_RERUN_TRIAGE in _buttons(msg) and "Interrupted" in _text(msg)


# ------------------------------------------------------------------ kill -9


async def test_kill_during_a_triage_is_recorded_once_by_another_replica_within_the_lease(
    replicas: Replicas, slack: SlackStandin, slow_host: SshTestHost, store: IncidentStore
) -> None:
    slow_host.server.set_replay(seed_table(), delays={SLOW_STEP: 6.0})
    a, b, c = await asyncio.gather(replicas.start(), replicas.start(), replicas.start())
    await replicas.command(a, "triage test-host")
    await _until(lambda: SLOW_STEP in _host_commands(slow_host), 20, "the slow step to start")
    await _until(lambda: slack.channel_messages(INCIDENTS, include_ephemeral=False), 10, "the incident message")
    a.proc.kill()
    killed = time.monotonic()
    assert await _exit_code(a, 10) == -signal.SIGKILL
    [incident] = store.list_incidents()

    def interrupted() -> bool:
        return store.get(incident.id).status is Status.INTERRUPTED

    await _until(interrupted, RECOVERY_BOUND_S + 5, "the other replica to record the interruption")
    took = time.monotonic() - killed
    print(f"\nMEASURED kill -9 mid-triage: the other replica recorded it {took:.2f} s later (lease {LEASE_S} s)")
    assert took <= RECOVERY_BOUND_S, f"recorded {took:.1f} s after the kill (lease {LEASE_S} s)"
    events = store.events(incident.id)
    [event] = [e for e in events if e.kind == "interrupted"]
    assert "stopped: no heartbeat since" in event.payload["reason"]
    assert event.payload["recorded_by"] != event.payload["owner"]
    assert store.verify(incident.id).ok
    assert store.leases() == []
    await _until(lambda: ACTION_RERUN_TRIAGE in _buttons(_incident_message(slack)), 10, "the message update")
    msg = _incident_message(slack)
    assert "Interrupted" in _text(msg) and "running" not in msg.text
    await _until(lambda: any("interrupted" in m.text for m in slack.thread(INCIDENTS, msg.ts)), 10, "the thread note")
    # b did not re-run anything: every command the host saw, it saw once.
    await asyncio.sleep(LEASE_S / 2)  # longer than a scan: time to (wrongly) run anything again
    _no_duplicates(_host_commands(slow_host))
    # Two live replicas scanned for it; one recorded it, and said so once.
    assert [e.kind for e in store.events(incident.id)].count("interrupted") == 1
    assert sum("interrupted" in m.text for m in slack.thread(INCIDENTS, msg.ts)) == 1
    for live in (b, c):
        live.proc.send_signal(signal.SIGTERM)
    for live in (b, c):
        assert await _exit_code(live, 20) == 0, live.output()


async def test_kill_during_a_fix_is_recorded_by_the_restarted_replica_with_the_host_state(
    replicas: Replicas, slack: SlackStandin, slow_host: SshTestHost, store: IncidentStore, db_url: str
) -> None:
    slow_host.server.set_replay(seed_table(), delays={FIX_COMMANDS[1]: 6.0})
    a = await replicas.start(kind="worker")
    await replicas.command(a, "triage test-host")
    await _until(lambda: slack.channel_messages(INCIDENTS, include_ephemeral=False)
                 and ACTION_APPLY_FIX in _buttons(_incident_message(slack)), 20, "the fix offer")
    await replicas.click(a, _incident_message(slack), ACTION_APPLY_FIX, user=BOB)
    await _until(lambda: FIX_COMMANDS[1] in _host_commands(slow_host), 20, "the change to be under way")
    a.proc.kill()
    killed = time.monotonic()
    assert await _exit_code(a, 10) == -signal.SIGKILL
    [incident] = store.list_incidents()
    # On PostgreSQL the host is left changed (as if the change had taken), on SQLite as before.
    changed = db_url.startswith("postgresql")
    if changed:
        slow_host.server.set_replay(seed_table(miimon=100))
    b = await replicas.start(kind="worker")  # the restarted replica
    await _until(lambda: store.get(incident.id).status is Status.INTERRUPTED, RECOVERY_BOUND_S + 10,
                 "the restarted replica to record the interruption")
    took = time.monotonic() - killed
    print(f"\nMEASURED kill -9 mid-fix: the restarted replica recorded it {took:.2f} s later (lease {LEASE_S} s)")
    assert took <= RECOVERY_BOUND_S + 3, f"recorded {took:.1f} s after the kill (incl. the restart)"
    events = store.events(incident.id)
    [event] = [e for e in events if e.kind == "interrupted"]
    p = event.payload
    # Cut during the second command: the first is logged, and the rollback note before it.
    assert p["work"] == "fix" and p["last_command"] == FIX_COMMANDS[0], p
    assert "between the change and its verification" in p["phase"]
    note = next(e for e in events if e.kind == "rollback_note")
    assert p["rollback_note_seq"] == note.seq and p["restore_commands"] == note.payload["restore_commands"]
    assert p["host_as_before"] is (not changed), p
    assert ("CHANGED" in p["host_state"]) is changed
    [result] = [e.payload["action_result"] for e in events if e.kind == "note" and "action_result" in e.payload]
    assert result["ok"] is False and result["interrupted"] is True
    assert store.verify(incident.id).ok
    assert store.leases() == []
    await _until(lambda: ACTION_RERUN_TRIAGE in _buttons(_incident_message(slack)), 10, "the message update")
    # The change commands ran once: the recovery only re-read the host.
    await asyncio.sleep(LEASE_S / 2)  # longer than a scan: time to (wrongly) run anything again
    commands = _host_commands(slow_host)
    assert [commands.count(c) for c in FIX_COMMANDS] == [1, 1]
    b.proc.send_signal(signal.SIGTERM)
    assert await _exit_code(b, 20) == 0, b.output()
