"""The bonding runbook's triage callables, named by ``runbook.yaml`` (``module:function``).

The engine knows no bonding: it runs the YAML's steps and calls these where the YAML says. They
read what the host-level discovery printed (``runbooks.bonding.discovery`` does the reading), find
each bond's ports for the per-port steps, find the NetworkManager profile that owns a bond, and
diagnose. None of them builds a command: every command is a template in ``runbook.yaml``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from runbooks.engine import Read, Skip, Step, StepRecord, SubjectContext
from runbooks.findings import Diagnosis
from runbooks.validation import InvalidValue, validate_interface_name
from ssh_exec import CommandResult

from . import discovery as disc
from .outputs import TriageOutputs

__all__ = ["diagnose", "nm_profile", "read_bonds", "read_nm_profiles", "read_slaves", "slaves"]


def read_bonds(result: CommandResult) -> Read:
    """``discover.bonds``: the bond list (a ``BondList``: names / error / why_none)."""
    bl = disc.read_bond_list(result)
    return Read(bl, *(("ok", bl.why_none or None) if bl.names is not None else ("failed", bl.error)))


def read_slaves(result: CommandResult) -> Read:
    """``discover.slaves``: every bond's ports from sysfs (or why not: then /proc is read)."""
    sl = disc.read_slave_lists(result)
    if sl.by_bond is not None:
        return Read(sl)
    return Read(sl, "failed", f"{sl.error}; ports read from /proc/net/bonding instead")


def read_nm_profiles(result: CommandResult) -> Read:
    """``discover.nm_profiles``: NetworkManager's profiles (absent: not installed / not running)."""
    nm = disc.read_nm_profiles(result)
    if nm.absent:
        return Read(nm, "skipped", nm.absent)
    if nm.error:
        return Read(nm, "failed", nm.error)
    return Read(nm)


async def slaves(ctx: SubjectContext) -> list[str]:
    """The bond's ports for ``for_each: slave``: sysfs's list, else the names in
    /proc/net/bonding/<bond> (the ``proc_bonding`` step's output); every name validated."""
    from .parsers import ParseError
    from .parsers.proc_bonding import parse_proc_bonding

    bond = ctx.subject["bond"]
    sysfs_slaves = (await ctx.discovered("slaves")).of(bond)
    if sysfs_slaves is not None:
        try:
            names = [validate_interface_name(s) for s in sysfs_slaves]
        except InvalidValue as exc:
            raise Skip(f"a slave name from the host failed validation: {exc}") from None
        if not names:
            raise Skip(f"the bond has no slaves (/sys/class/net/{bond}/bonding/slaves is empty)", failed=False)
        return names
    source = await ctx.step("proc_bonding")
    if source.status not in {"ok", "partial"} or source.result is None:
        raise Skip(f"slave names unknown: {source.step} {source.reason or 'failed'}")
    try:
        names = [validate_interface_name(s.name) for s in parse_proc_bonding(source.result.stdout).slaves]
    except InvalidValue as exc:
        raise Skip(f"a slave name from the host failed validation: {exc}") from None
    except ParseError as exc:  # the text is not /proc/net/bonding output
        raise Skip(f"cannot read slave names from {source.command}: {exc}") from None
    if not names:
        raise Skip(f"the bond has no slaves ({source.command})", failed=False)
    return names


async def nm_profile(ctx: SubjectContext, step: Step) -> None:
    """Find the NetworkManager profile that owns the bond and file it as the step's output.

    The device's active connection first; else every bond profile is read by UUID and those whose
    ``connection.interface-name`` is the bond are candidates, the most recently used first
    (``connection.timestamp``). The name people see is the profile's own ``connection.id``. Each
    UUID is read once per host, whichever of its bonds asks.
    """
    from .parsers import ParseError, parse_nmcli

    bond = ctx.subject["bond"]
    nm = await ctx.discovered("nm_profiles")
    needs = step.needs or "nm_uuid"

    def read(uuid: str, *, candidate: bool) -> asyncio.Future[StepRecord]:
        label = f"{step.name} {uuid}" if candidate else step.name
        return ctx.run(label, ctx.render(step, {needs: uuid}), timeout=step.timeout, key=f"{step.name}:{uuid}")

    if nm.absent:
        ctx.skip(step, nm.absent, failed=False)
        return
    if nm.error:
        ctx.skip(step, f"NetworkManager's profiles could not be listed: {nm.error}", failed=True)
        return
    active = nm.active_on(bond)
    if active is not None:
        record = await read(active.uuid, candidate=False)
        ctx.records.append(record)
        ctx.file(step, record)
        return
    candidates = nm.bond_profiles()
    if not candidates:
        ctx.skip(step, f"no NetworkManager profile owns {bond}: it is configured outside NetworkManager", failed=False)
        return
    reads = await asyncio.gather(*(read(c.uuid, candidate=True) for c in candidates))
    owners: list[tuple[int, StepRecord]] = []
    unread: list[StepRecord] = []
    for record in reads:
        if record.result is None or record.result.failure_reason is not None:
            unread.append(record)
            continue
        try:
            conn = parse_nmcli(record.result.stdout, record.command)
        except ParseError:
            unread.append(record)
            continue
        if conn.interface_name == bond:
            try:
                stamp = int(conn.properties.get("connection.timestamp") or 0)
            except ValueError:
                stamp = 0
            owners.append((stamp, record))
    if owners:
        owners.sort(key=lambda o: -o[0])
        chosen = owners[0][1]
        ctx.records.append(chosen)
        ctx.file(step, chosen)
        if len(owners) > 1:
            chosen.reason = (f"not active; {len(owners)} profiles name {bond} as their interface, the most recently "
                             f"used is shown")
        else:
            chosen.reason = f"not active on {bond}; the profile whose connection.interface-name is {bond}"
        return
    if unread:
        ctx.records.extend(unread)
        ctx.skip(step, f"no active profile on {bond}, and {len(unread)} bond profile(s) could not be read: "
                       f"{unread[0].result.failure_reason if unread[0].result else 'not run'}", failed=True)
        return
    ctx.skip(step, f"no NetworkManager profile owns {bond} (none is active on it or names it as "
                   f"connection.interface-name)", failed=False)


def diagnose(outputs: Any) -> Diagnosis:
    """The runbook's ``diagnosis:``: the bonding rules over what the triage collected."""
    from .diagnosis import diagnose as run_diagnosis

    assert isinstance(outputs, TriageOutputs)
    return run_diagnosis(outputs)
