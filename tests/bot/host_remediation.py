"""A small remediation for the bot tests, satisfying ``bot.remediation.Remediation`` for real:
it reads the bond over SSH (the test sshd) to plan a ``runbooks.plan.Plan``, and runs the plan's
commands over SSH to apply (every step with a command, except the rollback).

The bot's approval logic (who, when, which plan, exactly once) is what these tests check, so the
remediation here is deliberately simple and fully observable: ``applied`` counts runs, ``gate``
can hold a run open to test clicks that arrive while it is still running. The real remediation
(runbooks.bonding.remediation, through bot.wiring.EngineRemediation) is exercised by its own tests.
"""

from __future__ import annotations

import asyncio
import shlex
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from runbooks.plan import Plan, PlanStep

FIX_COMMANDS = (
    'nmcli con modify bond0 bond.options "mode=active-backup,miimon=100,primary=eno1"',
    "nmcli con down bond0 && nmcli con up bond0",
)
FIX_ROLLBACK = ('nmcli con modify bond0 bond.options "mode=active-backup,miimon=0,primary=eno1"',)
TEST_COMMANDS = ("ip link set eno1 down", "cat /proc/net/bonding/bond0", "ip link set eno1 up")
#: The ``manual`` method: the operator cuts the port when told to (``notify``), the bot only reads.
MANUAL_COMMANDS = ("cat /proc/net/bonding/bond0",)


@dataclass(frozen=True)
class Result:
    ok: bool
    summary: str


@dataclass
class HostRemediation:
    pool: Any
    methods: tuple[str, ...] = ("host",)
    applied: list[tuple[str, str]] = field(default_factory=list)
    approved_hashes: list[str] = field(default_factory=list)
    gate: asyncio.Event | None = None
    #: Like the real one: no failover test while the bond has no link monitoring.
    require_monitor: bool = False
    #: An ``IncidentStore``: when given, a run is logged like the real remediation's (the rollback
    #: note before the first command of a fix, then each command with its result once it ran).
    store: Any = None

    def failover_methods(self) -> tuple[str, ...]:
        return self.methods

    async def _miimon(self, host: str, bond: str) -> int:
        result = await self.pool.run(host, f"cat /proc/net/bonding/{shlex.quote(bond)}")
        for line in result.stdout.splitlines():
            if line.startswith("MII Polling Interval (ms):"):
                return int(line.split(":")[1])
        raise RuntimeError(
            f"cannot read miimon of {bond} on {host}: exit {result.exit_status}, {result.stderr.strip()[:200]}"
        )

    async def plan_fix(self, host: str, bond: str) -> Plan | None:
        if await self._miimon(host, bond) != 0:
            return None
        steps = [PlanStep("change", "enable link monitoring", c) for c in FIX_COMMANDS]
        steps += [PlanStep("rollback", "restore the options before", c) for c in FIX_ROLLBACK]
        return Plan("bonding", "fix", host, (("bond", bond),), "enable MII link monitoring (miimon=100)",
                    tuple(steps), params=(("method_text", "nmcli"),))

    async def plan_failover_test(self, host: str, bond: str, method: str) -> Plan | None:
        if method not in self.methods:
            raise ValueError(f"no method {method}")
        if self.require_monitor and await self._miimon(host, bond) == 0:
            raise ValueError("preconditions not met (link monitoring on: miimon=0)")
        if method == "manual":
            steps = (
                PlanStep("read", "watch the bond", MANUAL_COMMANDS[0]),
                PlanStep("operator", "restore", instruction="re-enable the switch port of eno1"),
            )
            text = "manual: you shut the switch port of eno1"
        else:
            steps = (
                PlanStep("change", "cut the active port", TEST_COMMANDS[0]),
                PlanStep("read", "watch the bond", TEST_COMMANDS[1]),
                PlanStep("restore", "bring the port back", TEST_COMMANDS[2]),
            )
            text = "host: carrier loss on the active slave eno1 (ip link set eno1 down)"
        return Plan("bonding", "failover-test", host, (("bond", bond),), "fail eno1 over to eno2", steps,
                    params=(("method", method), ("method_text", text)))

    async def _run(self, kind: str, plan: Plan, approved_hash: str, incident_id: str = "", actor: str = "") -> Result:
        self.applied.append((kind, plan.host))
        self.approved_hashes.append(approved_hash)
        if approved_hash != plan.digest:
            return Result(False, "approved hash differs")
        if self.gate is not None:
            await self.gate.wait()
        log = self.store is not None and incident_id
        if log and kind == "fix":
            await asyncio.to_thread(
                self.store.add_rollback_note, incident_id, actor=actor, before={"miimon": 0},
                restore_commands=[st.command for st in plan.steps_for("rollback")], for_change=plan.title,
            )
        failures = []
        commands = [st.command for st in plan.steps if st.command and st.role != "rollback"]
        for command in commands:
            result = await self.pool.run(plan.host, command)
            if log:
                await asyncio.to_thread(
                    self.store.append, incident_id, actor=actor, kind="command",
                    payload={"command": command, "host": plan.host, "exit_status": result.exit_status},
                )
            if result.exit_status != 0:
                failures.append(f"{command}: exit {result.exit_status}")
        return Result(not failures, "; ".join(failures) or f"{len(commands)} commands ran")

    async def apply_fix(self, plan: Plan, *, incident_id: str, actor: str, approved_hash: str) -> Result:
        return await self._run("fix", plan, approved_hash, incident_id, actor)

    async def run_failover_test(self, plan: Plan, *, incident_id: str, actor: str, approved_hash: str,
                                notify: Callable[[str], Awaitable[None]]) -> Result:
        if plan.param("method") == "manual":
            await notify("Shut the switch port of eno1 now.")
        return await self._run("failover_test", plan, approved_hash, incident_id, actor)
