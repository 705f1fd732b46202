"""Fixtures for the bot tests: the real app, the Slack stand-in, a real sshd replaying the seed
incident, and a real incident store (SQLite here; PostgreSQL where a test asks for it)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.app import BotDeps
from bot.authz import AuthzPolicy
from bot.testing.harness import RunningBot, start_bot
from bot.wiring import EngineTriage
from incidents import IncidentStore
from lab.testing import lab_env, lab_host, lab_vm  # noqa: F401  (the lab VM, for tests marked lab)
from pg import create_database, postgres_url  # noqa: F401  (fixtures)
from ssh_exec import SshPool
from tests.bot.host_remediation import FIX_COMMANDS, TEST_COMMANDS, HostRemediation
from tests.slack_standin import SlackStandin
from tests.ssh.fixtures import SshTestHost, seed_replay, ssh_host, sshd_server  # noqa: F401

ALICE, BOB, CAROL, MALLORY = "U0ALICE", "U0BOB", "U0CAROL", "U0MALLORY"
INCIDENTS, RANDOM = "C0INCIDENT", "C0RANDOM"
NETOPS = "S0NETOPS"


class Clock:
    """A clock the tests move forward (approval expiry) instead of sleeping 15 minutes."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, **kw: float) -> None:
        self.offset += timedelta(**kw)


def seed_table(miimon: int = 0) -> dict[str, tuple[int, str, str]]:
    """The seed incident's outputs, plus the fix and failover-test commands (they succeed)."""
    table = seed_replay()
    if miimon:
        table = {
            cmd: (rc, out.replace("MII Polling Interval (ms): 0", f"MII Polling Interval (ms): {miimon}"), err)
            for cmd, (rc, out, err) in table.items()
        }
    for command in FIX_COMMANDS + TEST_COMMANDS + ("ip link set eno1 up",):
        table.setdefault(command, (0, "", ""))
    return table


@pytest.fixture
def policy() -> AuthzPolicy:
    return AuthzPolicy(
        triage_channels=frozenset({INCIDENTS}),
        approver_users=frozenset({BOB, ALICE}),
        approver_groups=frozenset({NETOPS}),
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def seed_host(ssh_host: SshTestHost) -> SshTestHost:  # noqa: F811
    ssh_host.server.set_replay(seed_table())
    return ssh_host


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'incidents.sqlite3'}"


@dataclass
class World:
    slack: SlackStandin
    store: IncidentStore
    pool: SshPool
    remediation: HostRemediation
    deps: BotDeps
    host: SshTestHost
    clock: Clock


async def make_world(url: str, host: SshTestHost, policy: AuthzPolicy, clock: Clock, *, runbooks: str = "") -> World:
    store = IncidentStore.open(url)
    pool = SshPool(host.inventory(), known_hosts=host.known_hosts_path)
    remediation = HostRemediation(pool)
    deps = BotDeps(store=store, triage=EngineTriage(pool, store, runbooks=runbooks), policy=policy,
                   remediation=remediation, clock=clock)
    slack = SlackStandin(
        users={ALICE: "alice", BOB: "bob", CAROL: "carol", MALLORY: "mallory"},
        usergroups={NETOPS: [CAROL]},
        channels={INCIDENTS: "incident", RANDOM: "random"},
    )
    await slack.start()
    return World(slack, store, pool, remediation, deps, host, clock)


@pytest.fixture
async def world(seed_host: SshTestHost, policy: AuthzPolicy, clock: Clock, sqlite_url: str) -> AsyncIterator[World]:
    w = await make_world(sqlite_url, seed_host, policy, clock)
    try:
        yield w
    finally:
        await w.slack.stop()
        await w.pool.close()
        w.store.close()


@pytest.fixture
async def http_bot(world: World) -> AsyncIterator[RunningBot]:
    bot = await start_bot(world.slack, world.deps, mode="http")
    try:
        yield bot
    finally:
        await bot.stop()
