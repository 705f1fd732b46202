"""The proof that the engine knows no bonding: a second runbook that lives in the tests.

``tests/runbook_engine/loadavg/`` is a YAML file and a module of parsers and one rule; nothing in
bondbot was changed for it. It runs through the engine, ``bondbot triage --runbook`` over a real
sshd on loopback (exec mode: ``cat /proc/loadavg`` and ``nproc`` really run on this machine; replay
mode: a recorded overload for a fixed verdict), the incident log (its runbook and subject recorded,
``bondbot incident verify`` passes), the exports, and its one harmless action (``sync``) planned
from data, offered and approved through the approvals service and run by role.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bondbot.cli import app
from runbooks.engine import RunbookError, find_runbook, load_runbook, run_host_triage, run_triage
from ssh_exec import SshPool
from tests.ssh.fixtures import SshTestHost

LOADAVG = Path(__file__).parent / "loadavg"
OVERLOADED = {"cat /proc/loadavg": (0, "7.95 3.10 1.20 9/412 12345\n", ""), "nproc": (0, "4\n", "")}
CALM = {"cat /proc/loadavg": (0, "0.08 0.12 0.10 1/398 4242\n", ""), "nproc": (0, "4\n", "")}


def _pool(ssh_host: SshTestHost) -> SshPool:
    return SshPool(ssh_host.inventory(), known_hosts=ssh_host.known_hosts_path)


def _cli(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


async def _acli(*args: str):  # type: ignore[no-untyped-def]
    return await asyncio.to_thread(_cli, *args)


def test_the_runbook_is_pure_data_beside_its_rules() -> None:
    rb = load_runbook(LOADAVG)
    assert (rb.name, rb.subject.params, rb.subject.discover) == ("loadavg", (), None)
    assert [(s.name, s.command, s.output) for s in rb.triage] == [
        ("loadavg", "cat /proc/loadavg", "loadavg"), ("nproc", "nproc", "nproc")]
    assert rb.diagnosis == "loadavg_rules:diagnose" and set(rb.actions) == {"sync"}
    assert load_runbook(LOADAVG / "runbook.yaml") is rb  # by folder or file: loaded once


async def test_engine_runs_it_over_one_connection(ssh_host: SshTestHost) -> None:
    ssh_host.server.set_replay(OVERLOADED)
    async with _pool(ssh_host) as pool:
        ht = await run_host_triage(pool, "test-host", runbook=LOADAVG)
    assert sorted(ssh_host.server.commands()) == ["cat /proc/loadavg", "nproc"]  # nothing else was sent
    assert ht.runbook == "loadavg" and ht.verdict == "diagnosed" and ht.discovery == []
    [r] = ht.results
    assert r.subject == {} and r.runbook == "loadavg" and [s.status for s in r.steps] == ["ok", "ok"]
    d = r.diagnosis
    assert d is not None and d.root_cause is not None and d.root_cause.code == "LOAD_ABOVE_CPUS"
    assert [(e.source, e.line) for e in d.root_cause.evidence] == [
        ("cat /proc/loadavg", "7.95 3.10 1.20 9/412 12345"), ("nproc", "4")]
    assert d.details == {"cpus": "4"} and d.subject == {}


async def test_a_failed_step_is_inconclusive_never_healthy(ssh_host: SshTestHost) -> None:
    ssh_host.server.set_replay({"cat /proc/loadavg": CALM["cat /proc/loadavg"],
                                "nproc": (127, "", "sh: nproc: not found\n")})
    async with _pool(ssh_host) as pool:
        r = await run_triage(pool, "test-host", runbook=LOADAVG)
    assert r.verdict == "inconclusive" and "nproc" in r.outputs.failed_steps
    assert r.diagnosis is not None and any("nproc" in reason for reason in r.diagnosis.reasons)


async def test_real_outputs_of_this_machine_parse(ssh_host: SshTestHost) -> None:
    """exec mode: the commands really run (as the test user) and their real output is diagnosed."""
    ssh_host.server.set_exec()
    async with _pool(ssh_host) as pool:
        r = await run_triage(pool, "test-host", runbook=LOADAVG)
    assert r.verdict in ("diagnosed", "healthy"), r.to_json()
    assert r.outputs.failed_steps == {} and r.diagnosis is not None and r.diagnosis.reasons == ()
    import os

    assert r.diagnosis.details == {"cpus": str(len(os.sched_getaffinity(0)))}  # the oracle: this machine
    fields = r.outputs.loadavg.text.split()
    assert len(fields) == 5 and fields[3].count("/") == 1  # the kernel's own format, as read over SSH
    overloaded = float(fields[0]) > len(os.sched_getaffinity(0))
    assert r.verdict == ("diagnosed" if overloaded else "healthy")


async def test_cli_triage_json_and_text(ssh_host: SshTestHost) -> None:
    ssh_host.server.set_replay(OVERLOADED)
    r = await _acli("triage", "test-host", "--runbook", str(LOADAVG), "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert (data["runbook"], data["verdict"], data["subject_named"]) == ("loadavg", "diagnosed", None)
    assert "bonds_found" not in data and data["results"][0]["subject"] == {}
    assert data["results"][0]["diagnosis"]["root_cause"]["code"] == "LOAD_ABOVE_CPUS"
    text = await _acli("triage", "test-host", "--runbook", str(LOADAVG))
    assert text.exit_code == 0 and "LOAD_ABOVE_CPUS" in text.stdout and "test-host (cpus 4)" in text.stdout
    ssh_host.server.set_replay(CALM)
    calm = await _acli("triage", "test-host", "--runbook", str(LOADAVG), "--json")
    assert calm.exit_code == 0 and json.loads(calm.stdout)["verdict"] == "healthy"


def test_found_by_name_through_bondbot_runbooks(ssh_host: SshTestHost, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(RunbookError, match="unknown runbook 'loadavg'; known: bonding"):
        find_runbook("loadavg")
    assert find_runbook("loadavg", search=str(LOADAVG.parent)) == LOADAVG / "runbook.yaml"  # a folder of <name>/runbook.yaml
    with pytest.raises(RunbookError, match="unknown runbook 'loadavg'"):
        monkeypatch.setenv("BONDBOT_RUNBOOKS", str(LOADAVG.parent))
        find_runbook("loadavg")  # the engine reads no environment: the CLI (below) and the bot pass it
    ssh_host.server.set_replay(CALM)
    r = _cli("triage", "test-host", "--runbook", "loadavg", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["runbook"] == "loadavg"


def test_bad_runbook_input_is_refused_before_connecting(ssh_host: SshTestHost) -> None:
    r = _cli("triage", "test-host", "--runbook", "no-such-runbook")
    assert r.exit_code == 2 and "unknown runbook 'no-such-runbook'" in r.stderr
    r = _cli("triage", "test-host", "--runbook", str(LOADAVG), "--bond", "bond0")
    assert r.exit_code == 2 and "runbook loadavg has no bond" in r.stderr
    r = _cli("triage", "test-host", "--runbook", str(LOADAVG), "--subject", "x")
    assert r.exit_code == 2 and "takes no subject" in r.stderr
    assert ssh_host.server.commands() == []


def test_recorded_verified_and_exported(ssh_host: SshTestHost, tmp_path: Path) -> None:
    from jsonschema import Draft202012Validator

    from incidents import IncidentStore
    from incidents.export import json_schema_text

    url = f"sqlite:///{tmp_path / 'incidents.sqlite3'}"
    ssh_host.server.set_replay(OVERLOADED)
    r = _cli("triage", "test-host", "--runbook", str(LOADAVG), "--record", "--database-url", url)
    assert r.exit_code == 0, r.output
    assert "recording into new incident INC-" in r.stderr and "(runbook loadavg;" in r.stderr
    with IncidentStore.open(url) as store:
        [inc] = store.list_incidents()
        assert (inc.runbook, inc.subject, inc.bond, inc.status.value) == ("loadavg", {}, None, "diagnosed")
        assert inc.root_cause == "1-minute load 7.95 is above the 4 CPU(s)"
        events = store.events(inc.id)
        assert events[0].payload["runbook"] == "loadavg" and events[0].payload["subject"] == {}
        assert [e.payload["command"] for e in events if e.kind == "triage_step"] == ["cat /proc/loadavg", "nproc"]
    v = _cli("incident", "verify", inc.id, "--database-url", url)
    assert v.exit_code == 0 and "chain valid" in v.stdout, v.output
    md = _cli("incident", "export", inc.id, "--format", "md", "--database-url", url)
    assert md.exit_code == 0 and md.stdout.startswith(f"# {inc.id}: loadavg on test-host")
    assert "| Runbook | loadavg (the host) |" in md.stdout and "1-minute load 7.95 is above the 4 CPU(s)" in md.stdout
    js = _cli("incident", "export", inc.id, "--format", "json", "--database-url", url)
    doc = json.loads(js.stdout)
    Draft202012Validator(json.loads(json_schema_text())).validate(doc)
    assert (doc["incident"]["runbook"], doc["incident"]["subject"], doc["incident"]["bond"]) == ("loadavg", {}, None)
    html = _cli("incident", "export", inc.id, "--format", "html", "--database-url", url)
    assert html.exit_code == 0 and f"{inc.id}: loadavg on test-host" in html.stdout
    assert 'id="runbook">loadavg (the host)<' in html.stdout
    listing = _cli("incident", "list", "--database-url", url)
    assert inc.id in listing.stdout and "loadavg" in listing.stdout


async def test_its_action_is_planned_offered_approved_and_run(ssh_host: SshTestHost, tmp_path: Path) -> None:
    """``sync`` from the YAML: one Plan, its digest in the proposal, the approval and the run."""
    from incidents import IncidentStore
    from runbooks.actions import plan_action, run_plan
    from runbooks.approvals import Approvals

    rb = load_runbook(LOADAVG)
    plan = plan_action(rb, "sync", host="test-host", subject={})
    assert [(s.role, s.command) for s in plan.steps] == [("change", "sync")] and plan.runbook == "loadavg"
    assert plan_action(rb, "sync", host="test-host", subject={}).digest == plan.digest
    with pytest.raises(RunbookError, match="no action 'reboot'"):
        plan_action(rb, "reboot", host="test-host")

    ssh_host.server.set_exec()  # sync really runs on this machine (harmless)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    with IncidentStore.open(f"sqlite:///{tmp_path / 'i.sqlite3'}") as store:
        inc = store.create_incident(host="test-host", runbook="loadavg", subject={}, requester="U1", channel="#ops")
        approvals = Approvals(store, clock=lambda: now, ttl_seconds=300, two_person=True)
        approvals.offer(inc.id, plan, actor="bondbot")
        refused = approvals.decide(inc.id, plan.digest, actor="U1", approve=True, current=plan)
        assert not refused and refused.code  # the requester may not approve under the two-person rule
        decision = approvals.decide(inc.id, plan.digest, actor="U2", approve=True,
                                    current=plan_action(rb, "sync", host="test-host", subject={}))
        assert decision, decision.message
        approvals.begin_run(decision)
        async with _pool(ssh_host) as pool:
            result = await run_plan(pool, decision.plan or plan, store=store, incident_id=inc.id, actor="U2")
        approvals.record_run(decision, result)
        assert result.ok and result.steps[0][:3] == ("change", "sync", 0), result
        assert ssh_host.server.commands() == ["sync"]
        events = store.events(inc.id)
        by_kind = {}
        for e in events:
            by_kind.setdefault(e.kind, []).append(e.payload)
        assert by_kind["proposal"][0]["digest"] == plan.digest
        assert [a["plan_hash"] for a in by_kind["approval"]] == [plan.digest]
        assert [c["digest"] for c in by_kind["command"]] == [plan.digest]
        results = [n["action_result"] for n in by_kind["note"] if "action_result" in n]
        assert results == [{"action": "sync", "plan_hash": plan.digest, "digest": plan.digest, "ok": True,
                            "summary": result.summary}]
        assert store.verify(inc.id).ok


async def test_inventory_parameters_per_runbook(ssh_host: SshTestHost) -> None:
    """``runbooks: {bonding: {bond: ...}}`` is what ``bond:`` has always meant; ``bond:`` still works."""
    from runbooks.engine import resolve_subject
    from ssh_exec import InvalidValue, load_inventory

    inv_path = ssh_host.server.write_inventory(ssh_host.inventory_path, bond=None,
                                               runbooks={"bonding": {"bond": "uplink7"}})
    host = load_inventory(inv_path).get("test-host")
    assert host.params_for("bonding") == {"bond": "uplink7"} and host.bond == "uplink7"
    assert resolve_subject(host, None, load_runbook()) == "uplink7"
    assert resolve_subject(host, "bond2", load_runbook()) == "bond2"  # the command line wins
    assert resolve_subject(host, None, load_runbook(LOADAVG)) is None
    old_style = load_inventory(ssh_host.server.write_inventory(ssh_host.inventory_path, bond="bond0")).get("test-host")
    assert old_style.params_for("bonding") == {"bond": "bond0"} and old_style.bond == "bond0"
    bad = load_inventory(ssh_host.server.write_inventory(ssh_host.inventory_path, bond=None,
                                                         runbooks={"bonding": {"bond": "a b"}}))
    with pytest.raises(InvalidValue, match="invalid interface name 'a b'"):
        resolve_subject(bad.get("test-host"), None, load_runbook())
    skipped = load_inventory(ssh_host.server.write_inventory(ssh_host.inventory_path, runbooks=["bonding"]))
    assert "test-host" not in skipped.hosts and any("runbooks" in w.message for w in skipped.warnings)
