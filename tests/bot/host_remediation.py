"""A small remediation for the bot tests, satisfying ``bot.remediation.Remediation`` for real:
it reads the bond over SSH (the test sshd) to plan, and runs the plan's commands over SSH to apply.

The bot's approval logic (who, when, which plan, exactly once) is what these tests check, so the
remediation here is deliberately simple and fully observable: ``applied`` counts runs, ``gate``
can hold a run open to test clicks that arrive while it is still running. The real remediation
(runbooks.bonding.remediation, through bot.wiring.EngineRemediation) is exercised by its own tests.
"""

from __future__ import annotations

import asyncio
import shlex
from dataclasses import dataclass, field
from typing import Any

FIX_COMMANDS = (
    'nmcli con modify bond0 bond.options "mode=active-backup,miimon=100,primary=eno1"',
    "nmcli con down bond0 && nmcli con up bond0",
)
FIX_ROLLBACK = ('nmcli con modify bond0 bond.options "mode=active-backup,miimon=0,primary=eno1"',)
TEST_COMMANDS = ("ip link set eno1 down", "cat /proc/net/bonding/bond0", "ip link set eno1 up")


@dataclass(frozen=True)
class Plan:
    host: str
    bond: str
    commands: tuple[str, ...]
    rollback: tuple[str, ...]
    title: str
    method: str


@dataclass(frozen=True)
class Result:
    ok: bool
    summary: str


@dataclass
class HostRemediation:
    pool: Any
    applied: list[tuple[str, str]] = field(default_factory=list)
    gate: asyncio.Event | None = None

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
        return Plan(host, bond, FIX_COMMANDS, FIX_ROLLBACK, "enable MII link monitoring (miimon=100)", "nmcli")

    async def plan_failover_test(self, host: str, bond: str) -> Plan | None:
        return Plan(host, bond, TEST_COMMANDS, ("ip link set eno1 up",), "fail eno1 over to eno2",
                    "carrier loss on the active slave eno1 (ip link set eno1 down)")

    async def _run(self, kind: str, plan: Plan) -> Result:
        self.applied.append((kind, plan.host))
        if self.gate is not None:
            await self.gate.wait()
        failures = []
        for command in plan.commands:
            result = await self.pool.run(plan.host, command)
            if result.exit_status != 0:
                failures.append(f"{command}: exit {result.exit_status}")
        return Result(not failures, "; ".join(failures) or f"{len(plan.commands)} commands ran")

    async def apply_fix(self, plan: Plan, *, incident_id: str, actor: str) -> Result:
        return await self._run("fix", plan)

    async def run_failover_test(self, plan: Plan, *, incident_id: str, actor: str) -> Result:
        return await self._run("failover_test", plan)
