"""``bondbot fix HOST`` and ``bondbot failover-test HOST``: the approved change and its proof.

Both show the exact commands and the rollback first and ask for approval (``--yes`` skips the
question, for automation). The answer goes through ``runbooks.approvals``, like an approval click
in Slack: the plan is offered and decided once (after a prompt a person answered, the host is read
again and the plan must have the same digest). Everything is recorded in the incident log
(``--incident ID``, or a new incident whose id is printed): the plan with its digest, the approval
(or the refusal, and a "no" when ``--incident`` names where to record it), the run, the rollback
note before the change, every command and its output, the verification or the rollback, the result.

Exit status: 0 verified / test passed; 1 rolled back, refused or test failed; 2 bad input or the
host could not be reached (nothing changed), including a named bond the host does not have, a
host with no bond, or a host with several bonds and none named (the message lists its bonds). asyncssh, jinja2 and the runbook modules are imported
inside the commands so that ``bondbot --help`` stays fast.
"""

from __future__ import annotations

import enum
import getpass
from typing import Annotated, Any, NoReturn, Optional

import typer

from bondbot.commands._remote import EXIT_BAD_INPUT, fail

__all__ = ["register"]


class Method(str, enum.Enum):
    lab = "lab"
    manual = "manual"
    host = "host"


HostArg = Annotated[str, typer.Argument(help="Host name from the inventory (e.g. lab-host).")]
BondOpt = Annotated[Optional[str], typer.Option("--bond", help="Bond interface (default: the inventory's, else the host's only bond).")]  # noqa: UP045
InventoryOpt = Annotated[Optional[str], typer.Option("--inventory", envvar="BONDBOT_INVENTORY", help="Inventory file.")]  # noqa: UP045
YesOpt = Annotated[bool, typer.Option("--yes", help="Approve without asking (automation).")]
IncidentOpt = Annotated[Optional[str], typer.Option("--incident", help="Record into this incident's log (default: a new incident).")]  # noqa: UP045
DbOpt = Annotated[Optional[str], typer.Option("--database-url", envvar="BONDBOT_DATABASE_URL", help="Incident database URL.", show_default=False)]  # noqa: UP045
TargetOpt = Annotated[Optional[str], typer.Option("--target", help="Address to ping through the bond (default: the bond's gateway).")]  # noqa: UP045
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]


def _approve(text: str, yes: bool) -> bool:
    typer.echo(text)
    if yes:
        typer.echo("approved (--yes)")
        return True
    return typer.confirm("Run this?", default=False)


async def _with_pool(inventory: str | None, fn: Any) -> Any:
    from bondbot.commands._remote import open_inventory, open_pool

    inv = open_inventory(inventory)
    async with open_pool(inv) as pool:
        return await fn(pool)


def _run_and_exit(inventory: str | None, main: Any) -> NoReturn:
    """Run ``main(pool)`` and exit with its status; a refused plan, an unreachable host or an
    incident-log error is one line on stderr and exit status 2."""
    import asyncio

    from incidents.errors import IncidentError
    from runbooks.bonding.remediation import RemediationError
    from runbooks.engine import BondSelectionError
    from ssh_exec.errors import SshExecError

    try:
        code = asyncio.run(_with_pool(inventory, main))
    except (RemediationError, SshExecError, IncidentError, BondSelectionError) as exc:
        fail(str(exc), EXIT_BAD_INPUT)
    raise typer.Exit(code)


async def _which_bond(pool: Any, host: Any, bond: str | None) -> str:
    """The bond a change acts on: ``--bond``, else the inventory's, else the host's only bond.

    Read from the host (``/sys/class/net/bonding_masters``) before anything is planned: a named
    bond the host does not have, a host with no bond or with several (and none named) is an error
    that lists what the host has (exit 2). A change is never made to a guessed bond.
    """
    from runbooks.engine import BondNotFound, BondSelectionError, bonds_text, discover_bonds, resolve_bond

    named = resolve_bond(host, bond)
    found, _record = await discover_bonds(pool, host)
    if named is not None:
        if found.names is not None and named not in found.names:
            raise BondNotFound(f"{host.name} has no bond {named}: {bonds_text(found.names, found.why_none)}",
                               host=host.name, bond=named, bonds=found.names)
        return named
    if found.names is None:
        raise BondSelectionError(f"{host.name}: {found.error}; name the bond with --bond", host=host.name)
    if not found.names:
        raise BondSelectionError(f"{host.name} has no bond ({found.why_none}): nothing to change", host=host.name,
                                 bonds=())
    if len(found.names) > 1:
        raise BondSelectionError(f"{host.name} has {len(found.names)} bonds ({', '.join(found.names)}): name the one "
                                 f"to change with --bond", host=host.name, bonds=found.names)
    return found.names[0]


def _open_incident(url: str | None, incident: str | None, *, host: str, bond: str, actor: str,
                   purpose: str) -> tuple[Any, str]:
    """The incident log to record into: ``--incident ID``, or else a new incident, because every
    change bondbot makes must be on the record (its rollback note above all). Called after the
    operator's approval and before anything runs: an unknown incident or an unreachable database
    stops here, with nothing changed."""
    from bondbot.settings import database_url
    from incidents import IncidentStore

    store = IncidentStore.open(url or database_url())
    try:
        if incident is not None:
            store.get(incident)  # unknown incident: a clear error before anything runs
            return store, incident
        created = store.create_incident(host=host, bond=bond, requester=actor, channel="cli")
        store.append(created.id, actor=actor, kind="note", payload={"text": purpose})
        typer.echo(f"recording into new incident {created.id} (bondbot incident show {created.id})", err=True)
        return store, created.id
    except BaseException:
        store.close()
        raise


#: How long an offer made at the terminal stays open; it is decided at once (the operator answered).
_CLI_OFFER_TTL_S = 15 * 60


async def _reread(replan: Any, *, interactive: bool, shown: Any) -> tuple[Any, str | None]:
    """The plan as the host is now, to compare with the one shown: read again after a person
    answered the prompt (minutes may have passed); with ``--yes``, the plan just read is current."""
    if not interactive:
        return shown, None
    try:
        return await replan(), None
    except Exception as exc:  # the host cannot be read or refuses the plan now: not run
        return None, f"re-reading the host refused the plan: {exc}"


def _decide(store: Any, incident: str, shown: Any, current: Any, *, action: str, actor: str, approve: bool,
            current_error: str | None = None) -> tuple[Any, Any]:
    """The operator's answer through ``runbooks.approvals``: the same rules, events and
    exactly-once claim as an approval click in Slack.

    The plan shown is offered (a ``proposal`` with the whole plan and its digest), then decided:
    approved only if ``current`` (the plan read again) has the same digest and nobody else (a
    click, another CLI run) decided it first. The two-person rule is the bot's: at a terminal the
    operator who asks is the one who answers. Returns the service and its ``Decision``.
    """
    import secrets
    from datetime import UTC, datetime

    from runbooks.approvals import Approvals, plan_of

    approvals = Approvals(store, clock=lambda: datetime.now(UTC), ttl_seconds=_CLI_OFFER_TTL_S, two_person=False)
    plan = plan_of(shown, action=action)
    approvals.offer(incident, plan, actor=actor, requester=actor, action=action,
                    batch=f"cli-{secrets.token_hex(4)}")
    now = plan_of(current, action=action) if current is not None else None
    decision = approvals.decide(incident, plan.digest, actor=actor, approve=approve, current=now, action=action,
                                current_error=current_error)
    if not decision and approve:
        typer.echo(f"not run: {decision.message}")
    return approvals, decision


async def _run_decided(approvals: Any, decision: Any, run: Any) -> Any:
    """Run the approved plan, recording the run and its result (or the error) with its digest."""
    approvals.begin_run(decision)
    try:
        result = await run()
    except BaseException as exc:
        approvals.record_run(decision, exc)
        raise
    approvals.record_run(decision, _Outcome(result))
    return result


class _Outcome:
    """A fix result or failover report as ``runbooks.approvals.RunResult``."""

    def __init__(self, result: Any) -> None:
        self.ok = bool(getattr(result, "ok", getattr(result, "passed", False)))
        self.summary = str(result.render_text())


def fix(
    host: HostArg,
    bond: BondOpt = None,
    miimon: Annotated[Optional[int], typer.Option("--miimon", help="MII monitor interval in ms (default 100).")] = None,  # noqa: UP045
    arp_target: Annotated[Optional[list[str]], typer.Option("--arp-target", help="ARP monitoring instead: target IP (repeatable).")] = None,  # noqa: UP045
    arp_interval: Annotated[Optional[int], typer.Option("--arp-interval", help="ARP monitor interval in ms (with --arp-target).")] = None,  # noqa: UP045
    arp_validate: Annotated[Optional[str], typer.Option("--arp-validate", help="With ARP: "  # noqa: UP045
            "none|active|backup|all|filter|filter_active|filter_backup.")] = None,
    target: TargetOpt = None,
    checkpoint_timeout: Annotated[int, typer.Option("--checkpoint-timeout", help="Seconds before NetworkManager rolls back by itself.")] = 60,
    inventory: InventoryOpt = None,
    incident: IncidentOpt = None,
    database_url: DbOpt = None,
    yes: YesOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Enable link monitoring on a bond: show the plan and rollback, ask, apply, verify (or roll back)."""
    import json

    from runbooks.bonding.remediation import Monitor, RemediationError, apply_fix, plan_fix

    try:
        if arp_target or arp_interval is not None or arp_validate is not None:
            if miimon is not None:
                raise RemediationError("--miimon and --arp-target/--arp-interval are exclusive: the bonding "
                                       "driver runs one link monitor, never both")
            if not arp_target:
                raise RemediationError("--arp-interval needs --arp-target IP")
            from runbooks.bonding.bond_options import remediation_spec

            monitor = Monitor.arp(arp_interval or remediation_spec()["defaults"]["arp_interval"], arp_target,
                                  validate=arp_validate)
        else:
            monitor = Monitor.mii(miimon if miimon is not None else 100)
    except RemediationError as exc:
        fail(str(exc), EXIT_BAD_INPUT)
    actor = f"cli:{getpass.getuser()}"

    async def main(pool: Any) -> int:
        h = pool.host(host)
        b = await _which_bond(pool, h, bond)
        plan = await plan_fix(pool.session(h), b, monitor, host=h.name, target=target,
                              checkpoint_timeout=checkpoint_timeout)
        approved = _approve(plan.render_text(), yes)
        if not approved and incident is None:  # no incident to record the "no" in: nothing is written
            typer.echo("not approved; nothing was changed")
            return 1
        current, error = await _reread(
            lambda: plan_fix(pool.session(h), b, monitor, host=h.name, target=target,
                             checkpoint_timeout=checkpoint_timeout, run_id=plan.run_id),
            interactive=approved and not yes, shown=plan)
        store, incident_id = _open_incident(database_url, incident, host=h.name, bond=b, actor=actor,
                                            purpose=f"bondbot fix on {h.name}: {plan.summary()}")
        try:
            if incident is None:  # a new incident: the plan, read from the host just now, is its diagnosis
                store.set_status(incident_id, "diagnosed", actor=actor,
                                 reason=f"bondbot fix planned from the host's current state: {plan.summary()}")
            approvals, decision = _decide(store, incident_id, plan, current, action="fix", actor=actor,
                                          approve=approved, current_error=error)
            if not decision:
                if not approved:
                    typer.echo("not approved; nothing was changed")
                return 1
            result = await _run_decided(approvals, decision, lambda: apply_fix(
                current, pool=pool, actor=actor, incident_store=store, incident_id=incident_id,
                approved_hash=decision.digest))
        finally:
            store.close()
        typer.echo(json.dumps(result.to_json(), indent=2) if as_json else result.render_text())
        return 0 if result.ok else 1

    _run_and_exit(inventory, main)


def failover_test(
    host: HostArg,
    method: Annotated[Method, typer.Option("--method", help="How to cut the active port.")],
    bond: BondOpt = None,
    target: TargetOpt = None,
    hold: Annotated[float, typer.Option("--hold", help="Seconds the port stays down.")] = 3.0,
    allow_unmonitored: Annotated[bool, typer.Option("--allow-unmonitored", help="Run even without link monitoring, to "
            "demonstrate the outage.")] = False,
    lab_instance: Annotated[Optional[str], typer.Option("--lab-instance", help="Lab VM instance directory (method lab).")] = None,  # noqa: UP045
    inventory: InventoryOpt = None,
    incident: IncidentOpt = None,
    database_url: DbOpt = None,
    yes: YesOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Cut the bond's active port, measure failover and outage on the host, always restore the port."""
    import json

    from runbooks.bonding.failover import plan_failover_test, run_failover_test

    actor = f"cli:{getpass.getuser()}"
    link_control: Any = None
    if method is Method.lab:
        from pathlib import Path

        from bondbot.settings import lab_dir
        from lab.vm import LabVM

        # The switch port of the lab VM, through QMP (quick and synchronous).
        link_control = LabVM(Path(lab_instance) if lab_instance else None, lab_dir=lab_dir()).link

    async def main(pool: Any) -> int:
        h = pool.host(host)
        b = await _which_bond(pool, h, bond)
        plan = await plan_failover_test(pool.session(h), b, method.value, host=h.name, target=target,
                                        hold_seconds=hold, allow_unmonitored=allow_unmonitored)
        typer.echo(plan.render_text())
        if not plan.ready:
            typer.echo("preconditions not met; nothing was done")
            return 1
        approved = yes or typer.confirm("Is this host in a maintenance window, and do you approve the test?",
                                        default=False)
        if not approved and incident is None:  # no incident to record the "no" in: nothing is written
            typer.echo("not approved; nothing was done")
            return 1
        current, error = await _reread(
            lambda: plan_failover_test(pool.session(h), b, method.value, host=h.name, target=target,
                                       hold_seconds=hold, allow_unmonitored=allow_unmonitored,
                                       token=plan.token),
            interactive=approved and not yes, shown=plan)
        summary = f"failover test {method.value} on {h.name} {b}"
        store, incident_id = _open_incident(database_url, incident, host=h.name, bond=b, actor=actor,
                                            purpose=f"bondbot {summary}")
        try:
            approvals, decision = _decide(store, incident_id, plan, current, action="failover_test", actor=actor,
                                          approve=approved, current_error=error)
            if not decision:
                if not approved:
                    typer.echo("not approved; nothing was done")
                return 1
            report = await _run_decided(approvals, decision, lambda: run_failover_test(
                current, pool=pool, actor=actor, maintenance_window_confirmed=True, link_control=link_control,
                notify=typer.echo, incident_store=store, incident_id=incident_id))
        finally:
            store.close()
        typer.echo(json.dumps(report.to_json(), indent=2) if as_json else report.render_text())
        return 0 if report.passed else 1

    _run_and_exit(inventory, main)


def register(app: typer.Typer) -> None:
    app.command("fix")(fix)
    app.command("failover-test")(failover_test)
