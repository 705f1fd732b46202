"""The fix and the failover test on the real lab VM (bonding driver, NetworkManager 1.42, QMP).

Three stories, kept short because the VM runs under TCG on two shared cores:
1. the seed's: incident -> failover test fails -> ``bondbot fix`` -> failover test passes -> reboot
   -> the setting persisted;
2. a fix whose verification fails is rolled back and the host is as before;
3. with SSH through the bond, a change that cuts the bot off is rolled back by the host itself.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from incidents import IncidentStore
from lab.network import GATEWAY
from runbooks.bonding.failover import PASS_OUTAGE_MS, plan_failover_test, run_failover_test
from runbooks.bonding.remediation import Monitor, apply_fix, plan_fix, read_bond_state
from ssh_exec.pool import SshPool
from ssh_exec.sources import load_inventory

pytestmark = pytest.mark.lab

HOLD = 2.0


def _pool(lab: Any) -> SshPool:
    return SshPool(load_inventory(lab.inventory_path), known_hosts=lab.known_hosts_path)


def _incident(tmp_path: Path) -> tuple[IncidentStore, str, str]:
    url = f"sqlite:///{tmp_path / 'incidents.sqlite3'}"
    store = IncidentStore.open(url)
    inc = store.create_incident(host="lab-host", bond="bond0", requester="alice", channel="#ops")
    store.set_status(inc.id, "diagnosed", actor="bondbot", reason="BOND_NO_LINK_MONITOR")
    return store, inc.id, url


async def _failover(lab: Any, **kwargs: Any):
    async with _pool(lab) as pool:
        plan = await plan_failover_test(pool.session("lab-host"), "bond0", "lab", hold_seconds=HOLD, **kwargs)
        assert plan.ready, plan.render_text()
        return await run_failover_test(plan, pool=pool, actor="test", maintenance_window_confirmed=True,
                                       link_control=lab.link)


def test_seed_story_fail_fix_pass_reboot_persisted(lab_env: Any, tmp_path: Path) -> None:
    # 1. The incident: no monitor, the bond keeps the dead port, pings are lost until it returns.
    before = asyncio.run(_failover(lab_env, allow_unmonitored=True))
    assert not before.passed and not before.failed_over, before.render_text()
    assert before.lost_pings and before.lost_pings > 10 and before.outage_ms > 1000
    assert before.restored

    # 2. The fix, through the CLI as an operator runs it, recorded in an incident.
    store, incident_id, url = _incident(tmp_path)
    env = {**os.environ, "BONDBOT_DATABASE_URL": url}
    proc = subprocess.run([str(Path(sys.executable).parent / "bondbot"), "fix", "lab-host", "--yes", "--incident", incident_id,
                           "--json"], capture_output=True, text=True, env=env, timeout=300,
                          cwd=Path(__file__).resolve().parents[2])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout[re.search(r"^\{$", proc.stdout, re.M).start():])
    assert result["status"] == "verified" and all(c["ok"] for c in result["checks"])

    events = store.events(incident_id)
    kinds = [e.kind for e in events]
    assert "approval" in kinds and "rollback_note" in kinds and "verification" in kinds
    note = events[kinds.index("rollback_note")]
    changes = [i for i, e in enumerate(events)
               if e.kind == "command" and not e.payload.get("purpose", "").startswith("precheck")]
    assert changes and kinds.index("rollback_note") < changes[0], "the rollback note must come before any change"
    assert "CheckpointCreate" in events[changes[0]].payload["command"]
    assert note.payload["before"]["bond_options_before"] == "mode=active-backup,miimon=0,primary=eno1"
    assert any("miimon=0" in c for c in note.payload["restore_commands"])
    assert all(e.actor.startswith("cli:") for e in events if e.kind == "command")
    assert store.get(incident_id).status.value == "verified"
    assert store.verify(incident_id).ok
    store.close()

    # 3. The failover test passes (through the CLI): fails over within 300 ms, the primary returns.
    proc = subprocess.run([str(Path(sys.executable).parent / "bondbot"), "failover-test", "lab-host", "--method", "lab",
                           "--lab-instance", str(lab_env.vm.dir), "--hold", str(HOLD), "--yes", "--json"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    after = json.loads(proc.stdout[re.search(r"^\{$", proc.stdout, re.M).start():])
    assert after["passed"] and after["failed_over_to"] == "eno2", after["verdict"]
    assert after["outage_ms"] <= PASS_OUTAGE_MS and after["primary_returned"]
    # Measured with sh, iproute2 and ping only; its figures are the kernel's own lines of this run.
    from tests.remediation.test_lab_persona2 import _check_against_kernel

    _check_against_kernel(after, lab_env, "bond0", "eno1")
    # Without --incident the CLI opened an incident of its own: the test is on the record too.
    new_id = re.search(r"recording into new incident (\S+)", proc.stderr).group(1)
    recorded = IncidentStore.open(url)
    kinds = [e.kind for e in recorded.events(new_id)]
    assert kinds.count("approval") == 1 and "command" in kinds, kinds
    assert recorded.get(new_id).channel == "cli" and recorded.verify(new_id).ok
    recorded.close()

    # 3b. Method manual: the "operator" (here: QMP, driven by bondbot's own instructions) shuts the
    #     switch port when told; bondbot watches the carrier, measures, waits for the port to return.
    def operator(message: str) -> None:
        if message.startswith("Shut the switch port"):
            lab_env.link("eno1", False)
        elif message.startswith("Re-enable the switch port"):
            lab_env.link("eno1", True)

    async def manual():
        async with _pool(lab_env) as pool:
            # The manual method's wait is part of the plan (its sampler deadline is shown and hashed).
            plan = await plan_failover_test(pool.session("lab-host"), "bond0", "manual", hold_seconds=HOLD,
                                            manual_timeout=60)
            return await run_failover_test(plan, pool=pool, actor="test", maintenance_window_confirmed=True,
                                           notify=operator)

    by_hand = asyncio.run(manual())
    assert by_hand.passed and by_hand.method == "manual", by_hand.render_text()

    # 4. Reboot: the setting persisted.
    lab_env.reboot()
    proc_bonding = lab_env.ssh("cat /proc/net/bonding/bond0", check=True).stdout
    assert "MII Polling Interval (ms): 100" in proc_bonding
    assert "miimon=100" in lab_env.ssh("nmcli -g bond.options connection show bond0", check=True).stdout


def test_failed_verification_is_rolled_back_and_the_host_is_as_before(lab_host: Any, tmp_path: Path) -> None:
    store, incident_id, _ = _incident(tmp_path)

    async def main():
        async with _pool(lab_host) as pool:
            before = await read_bond_state(pool.session("lab-host"), "bond0")
            # A gateway that does not answer: the operator gave the wrong --target.
            plan = await plan_fix(pool.session("lab-host"), "bond0", Monitor.mii(100), host="lab-host",
                                  target="10.20.0.99", checkpoint_timeout=60)
            result = await apply_fix(plan, pool=pool, actor="test", incident_store=store, incident_id=incident_id)
            after = await read_bond_state(pool.session("lab-host"), "bond0")
            return before, result, after

    before, result, after = asyncio.run(main())
    assert result.status == "rolled_back", result.render_text()
    assert [c.name for c in result.checks if not c.ok] == ["gateway answers"]
    assert result.rolled_back_by.startswith("bondbot") and result.host_as_before
    assert after.fingerprint() == before.fingerprint()
    assert after.bond_options == {"mode": "active-backup", "miimon": "0", "primary": "eno1"}
    kinds = [e.kind for e in store.events(incident_id)]
    assert "rollback" in kinds and store.get(incident_id).status.value == "rolled_back"
    store.close()


def test_ssh_via_bond_cut_is_rolled_back_by_the_host_itself(lab_host: Any) -> None:
    lab_host.scenario("ssh-via-bond")

    async def main():
        async with _pool(lab_host) as pool:
            before = await read_bond_state(pool.session("lab-host"), "bond0")
            # ARP monitoring with validation against an address nobody answers for: every port goes
            # down, the bond with it, and with it the only SSH path.
            plan = await plan_fix(pool.session("lab-host"), "bond0", Monitor.arp(100, ["10.20.0.77"], validate="all"),
                                  host="lab-host", target=GATEWAY, checkpoint_timeout=20)
            result = await apply_fix(plan, pool=pool, actor="test")
            await pool.close_host("lab-host")
            after = await read_bond_state(pool.session("lab-host"), "bond0")  # reachable again
            return before, result, after

    before, result, after = asyncio.run(main())
    assert result.status == "rolled_back", result.render_text()
    assert result.rolled_back_by.startswith("the host itself"), result.render_text() + "\n" + "\n".join(
        f"$ {s.command[:120]} -> {s.exit_status} {s.stderr[:200]}" for s in result.steps)
    assert result.host_as_before and after.fingerprint() == before.fingerprint()
    assert result.duration < 20 + 8 + 60  # the checkpoint's timeout, the undo's grace, reconnecting
