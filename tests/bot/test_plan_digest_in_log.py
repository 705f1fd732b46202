"""One plan, one digest: the fix and the failover test, approved in Slack and from the CLI, carry
the same ``Plan.digest`` in the button, the proposal (and the plan logged with it), the approval,
the run and its result, and the remediation is handed that digest as the approved one.

In Slack: the real Bolt app over signed HTTP requests to the local stand-in, with the tests'
``HostRemediation`` (real commands over SSH) and with the real ``EngineRemediation`` (the bonding
fix planned and applied over SSH against the replayed seed host). From the CLI: ``bondbot fix`` and
``bondbot failover-test --yes`` against the same replayed host. The replayed host cannot arm the
fix's host-side undo nor start the failover sampler (those commands hold a per-run id), so those
runs end rolled back / failed, for real: what is checked is that they ran the approved digest.
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from bondbot.cli import app as cli_app
from bot.testing.harness import RunningBot, start_bot
from bot.testing.standin import StandinMessage
from bot.views import ACTION_APPLY_FIX, failover_action_id, parse_button_value
from bot.wiring import EngineRemediation
from incidents import IncidentStore
from runbooks.plan import Plan
from tests.bot.conftest import ALICE, BOB, INCIDENTS, World, seed_table
from tests.ssh.fixtures import SshTestHost


def _top(world: World) -> StandinMessage:
    [msg] = [m for m in world.slack.channel_messages(INCIDENTS, include_ephemeral=False) if m.thread_ts is None]
    return msg


def _button_digest(msg: StandinMessage, action_id: str) -> str:
    [button] = [e for b in msg.blocks if b["type"] == "actions" for e in b["elements"] if e["action_id"] == action_id]
    return parse_button_value(button["value"])["plan"]


def one_digest(store: IncidentStore, incident_id: str, action: str) -> str:
    """The digest of the action's run, after checking that every event about it carries it."""
    events = store.events(incident_id)
    [result] = [e.payload["action_result"] for e in events
                if e.kind == "note" and (e.payload.get("action_result") or {}).get("action") == action]
    digest = result["digest"]
    assert result["plan_hash"] == digest and len(digest) == 64
    offered = [e.payload for e in events if e.kind == "proposal" and e.payload["plan_hash"] == digest]
    assert offered, "the plan run was offered"  # the same plan offered again (a later batch): the same digest
    for proposal in offered:
        assert proposal["digest"] == digest and proposal["action"] == action
        assert Plan.from_dict(proposal["plan"]).digest == digest, "the logged plan is the one approved"
    [approval] = [e for e in events if e.kind == "approval" and e.payload["plan_hash"] == digest]
    [run] = [e.payload["action_run"] for e in events if e.kind == "note" and "action_run" in e.payload
             and e.payload["action_run"]["digest"] == digest]
    assert run["plan_hash"] == digest and run["approval_seq"] == approval.seq
    assert [a.plan_hash for a in store.approvals(incident_id)].count(digest) == 1
    seqs = [e.seq for e in events]
    assert seqs.index(approval.seq) < seqs.index(next(e.seq for e in events if e.payload.get("action_run") == run))
    assert store.verify(incident_id).ok
    return digest


async def test_fix_and_failover_test_approved_in_slack_carry_one_digest(world: World, http_bot: RunningBot) -> None:
    await http_bot.command("triage test-host", user=ALICE, channel=INCIDENTS)
    await http_bot.settle()
    msg = _top(world)
    fix_button = _button_digest(msg, ACTION_APPLY_FIX)
    await http_bot.click(msg, ACTION_APPLY_FIX, user=BOB)
    await http_bot.settle()
    msg = world.slack.message(INCIDENTS, msg.ts)
    test_button = _button_digest(msg, failover_action_id("host"))  # offered afresh after the fix
    await http_bot.click(msg, failover_action_id("host"), user=BOB)
    await http_bot.settle()
    [incident] = world.store.list_incidents()
    fix = one_digest(world.store, incident.id, "fix")
    test = one_digest(world.store, incident.id, "failover_test")
    assert (fix, test) == (fix_button, test_button) and fix != test
    assert world.remediation.approved_hashes == [fix, test], "the domain was handed the digest approved"


async def test_the_real_fix_approved_in_slack_runs_the_digest_approved(world: World) -> None:
    table = _real_fix_table()
    world.host.server.set_replay(table)
    deps = dataclasses.replace(world.deps, remediation=EngineRemediation(world.pool, world.store))
    bot = await start_bot(world.slack, deps, mode="http")
    try:
        await bot.command("triage test-host", user=ALICE, channel=INCIDENTS)
        await bot.settle()
        msg = _top(world)
        button = _button_digest(msg, ACTION_APPLY_FIX)
        await bot.click(msg, ACTION_APPLY_FIX, user=BOB)
        await bot.settle()
    finally:
        await bot.stop()
    [incident] = world.store.list_incidents()
    digest = one_digest(world.store, incident.id, "fix")
    assert digest == button
    _ran_the_approved_fix(world.store, incident.id, digest)


def _real_fix_table(miimon: int = 0) -> dict[str, tuple[int, str, str]]:
    """The seed host, plus what the real fix planner reads: sysfs, the default route, ssh itself."""
    from runbooks.bonding.bond_options import render
    from tests.remediation.test_plan import SYSFS

    table = seed_table(miimon)
    table[render("read_state.sysfs", bond="bond0")] = (0, SYSFS.replace("miimon:0", f"miimon:{miimon}"), "")
    table["ip -4 route show default dev bond0"] = (0, "default via 10.0.0.1 dev bond0 proto static\n", "")
    table["true"] = (0, "", "")  # the reachability probe after a failed change
    return table


def _ran_the_approved_fix(store: IncidentStore, incident_id: str, digest: str) -> None:
    """The real remediation accepted the approval: it wrote its rollback note for this very plan
    and started the change (the replay cannot arm the host's undo, so it rolled back)."""
    events = store.events(incident_id)
    [note] = [e for e in events if e.kind == "rollback_note"]
    assert note.payload["before"]["plan_hash"] == digest
    assert any(e.kind == "command" and e.seq > note.seq for e in events), "the change was started"
    assert store.get(incident_id).status.value == "rolled_back"


def _cli(*args: str) -> Any:
    return CliRunner().invoke(cli_app, list(args), catch_exceptions=False)


async def test_fix_and_failover_test_approved_from_the_cli_carry_one_digest(ssh_host: SshTestHost,
                                                                             tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'incidents.sqlite3'}"
    ssh_host.server.set_replay(_real_fix_table())
    fixed = await asyncio.to_thread(_cli, "fix", "test-host", "--yes", "--database-url", url)
    assert fixed.exit_code == 1 and "ROLLED_BACK" in fixed.stdout, fixed.stdout
    store = IncidentStore.open(url)
    try:
        [incident] = store.list_incidents()
        digest = one_digest(store, incident.id, "fix")
        assert digest[:12] in fixed.stdout, "the digest shown is the one approved"
        _ran_the_approved_fix(store, incident.id, digest)
        [proposal] = [e for e in store.events(incident.id) if e.kind == "proposal"]
        assert proposal.actor == "cli:" + __import__("getpass").getuser()

        # The failover test into the same incident, on the host with link monitoring. The tools
        # probe is answered like the seed host would (its command is taken from the host's log).
        table = _real_fix_table(miimon=100)
        ssh_host.server.set_replay(table)
        before = len(ssh_host.server.commands())
        probe = await asyncio.to_thread(_cli, "failover-test", "test-host", "--method", "host", "--yes",
                                        "--database-url", url, "--incident", incident.id)
        assert probe.exit_code == 1 and "preconditions not met" in probe.stdout
        [tools] = [c for c in ssh_host.server.commands()[before:] if "tool $t" in c]
        table[tools] = (0, "".join(f"tool {t} /usr/bin/{t}\n" for t in (
            "ip", "ping", "cat", "sed", "grep", "sleep", "date", "uname", "mkdir", "rm", "systemd-run", "setsid",
            "nohup")) + "ipver ip utility, iproute2-6.1.0\npingver ping from iputils 20221126\n"
            "date 1700000000.123456789\nkmsg readable\nkmsgw writable\n", "")
        ssh_host.server.set_replay(table)
        tested = await asyncio.to_thread(_cli, "failover-test", "test-host", "--method", "host", "--yes",
                                         "--database-url", url, "--incident", incident.id)
        assert tested.exit_code == 1, tested.stdout
        test = one_digest(store, incident.id, "failover_test")
        assert test != digest
        # The run started (the domain read the host again and tried to start its sampler on it), the
        # replay could not start the sampler, so the port was never cut.
        events = store.events(incident.id)
        approved = next(e.seq for e in events if e.kind == "approval" and e.payload["plan_hash"] == test)
        assert any(e.kind in ("command", "verification") for e in events if e.seq > approved)
        assert not any("eno1 down" in c for c in ssh_host.server.commands()[before:])
    finally:
        store.close()


async def test_the_cli_prompt_rereads_the_host_and_records_a_no(ssh_host: SshTestHost, tmp_path: Path) -> None:
    """A person's "y" re-reads the host (same plan, same digest: it runs); a "n" into an incident is
    a recorded decision that closes the offer."""
    url = f"sqlite:///{tmp_path / 'incidents.sqlite3'}"
    ssh_host.server.set_replay(_real_fix_table())

    def prompt(answer: str, *extra: str) -> Any:
        return CliRunner().invoke(cli_app, ["fix", "test-host", "--database-url", url, *extra], input=answer,
                                  catch_exceptions=False)

    sysfs_reads = sum(1 for c in ssh_host.server.commands() if c.startswith("grep -H '' /sys/class/net/bond0/bonding"))
    yes = await asyncio.to_thread(prompt, "y\n")
    assert yes.exit_code == 1 and "ROLLED_BACK" in yes.stdout, yes.stdout
    store = IncidentStore.open(url)
    try:
        [incident] = store.list_incidents()
        one_digest(store, incident.id, "fix")
        reads = sum(1 for c in ssh_host.server.commands() if c.startswith("grep -H '' /sys/class/net/bond0/bonding"))
        assert reads - sysfs_reads >= 3, "planned, re-read after the answer, and the domain's own precheck"

        no = await asyncio.to_thread(prompt, "n\n", "--incident", incident.id)
        assert no.exit_code == 1 and "not approved; nothing was changed" in no.stdout
        [refusal] = [e for e in store.events(incident.id) if e.kind == "refusal"]
        assert refusal.payload["code"] == "declined" and refusal.actor.startswith("cli:")
        assert len(store.approvals(incident.id)) == 1
    finally:
        store.close()
