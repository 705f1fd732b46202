"""The runbook engine: load a runbook, render its commands safely, run the triage over SSH.

It knows nothing of Slack: ``bondbot triage``, ``bondbot audit`` and the bot all call
``run_host_triage`` (every bond of a host, or the one named) or ``run_triage`` (exactly one bond)
and show their ``HostTriage`` / ``TriageResult``. The host is read first (its bonds, their ports,
NetworkManager's profiles: ``discover:`` in the runbook); no bond is ever assumed. A failing step
(not privileged, a timeout, output that does not parse) is recorded and the triage goes on; the
diagnosis sees what could not be checked in ``TriageOutputs.failed_steps`` and calls the bond
*inconclusive* instead of concluding from silence.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runbooks.bonding.outputs import SourceOutput, TriageOutputs
from runbooks.findings import Diagnosis
from runbooks.validation import InvalidValue, validate_interface_name, validator_for
from ssh_exec import CommandResult, Host, HostSession, SshPool

__all__ = [
    "RunbookError",
    "BondSelectionError",
    "BondNotFound",
    "Param",
    "DiscoverStep",
    "Step",
    "Runbook",
    "StepRecord",
    "StepEvent",
    "TriageResult",
    "HostTriage",
    "NO_BOND",
    "bonds_text",
    "load_runbook",
    "render_command",
    "resolve_bond",
    "discover_bonds",
    "run_host_triage",
    "run_triage",
    "BONDING_RUNBOOK",
]

BONDING_RUNBOOK = Path(__file__).parent / "bonding" / "runbook.yaml"
_OUTPUT_FIELDS = {"proc_bonding", "ip_details_json", "ip_link", "ethtool", "nmcli"}
_PER_SLAVE_FIELDS = {"ip_link", "ethtool"}


class RunbookError(Exception):
    """The runbook file itself is wrong (a bug in the runbook, not in the host)."""


@dataclass(frozen=True)
class Param:
    name: str
    type: str
    default: Any = None
    description: str = ""


@dataclass(frozen=True)
class DiscoverStep:
    """A host-level read with no values in it (the bonds, their ports, NetworkManager's profiles):
    run once per host, before or beside the per-bond steps."""

    name: str
    command: str
    title: str = ""
    timeout: float | None = None


@dataclass(frozen=True)
class Step:
    name: str
    command: str  # jinja2 template
    output: str
    title: str = ""
    for_each: str | None = None
    needs: str | None = None  # a discovered value the step is rendered with (nm_uuid); skipped without it
    privileged: bool = False
    unprivileged: str = ""
    privileged_when: str | None = None  # regex on stdout: privilege matters only if it matches
    timeout: float | None = None


@dataclass(frozen=True)
class Runbook:
    name: str
    title: str
    parameters: dict[str, Param]
    triage: tuple[Step, ...]
    slaves_from: str
    actions: dict[str, Any] = field(default_factory=dict)
    discover: tuple[DiscoverStep, ...] = ()

    def discover_step(self, name: str) -> DiscoverStep:
        for s in self.discover:
            if s.name == name:
                return s
        raise KeyError(name)

    def step(self, name: str) -> Step:
        for s in self.triage:
            if s.name == name:
                return s
        raise KeyError(name)


def load_runbook(path: Path = BONDING_RUNBOOK) -> Runbook:
    """Read and check a runbook YAML: unknown keys, types and output fields are errors here."""
    import yaml

    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except (OSError, yaml.YAMLError) as exc:
        raise RunbookError(f"cannot read runbook {path}: {exc}") from None
    if not isinstance(data, dict):
        raise RunbookError(f"{path}: expected a mapping")
    params: dict[str, Param] = {}
    for pname, spec in (data.get("parameters") or {}).items():
        validator_for(spec["type"])  # unknown type: error now, not at run time
        params[pname] = Param(pname, spec["type"], spec.get("default"), spec.get("description", ""))
    steps: list[Step] = []
    allowed = {"name", "title", "command", "output", "for_each", "needs", "privileged", "unprivileged",
               "privileged_when", "timeout"}
    for raw in data.get("triage") or []:
        extra = set(raw) - allowed
        if extra:
            raise RunbookError(f"{path}: step {raw.get('name')!r}: unknown key(s) {sorted(extra)}")
        step = Step(
            name=raw["name"],
            command=raw["command"],
            output=raw["output"],
            title=raw.get("title", ""),
            for_each=raw.get("for_each"),
            needs=raw.get("needs"),
            privileged=bool(raw.get("privileged", False)),
            unprivileged=" ".join(str(raw.get("unprivileged", "")).split()),
            privileged_when=raw.get("privileged_when"),
            timeout=raw.get("timeout"),
        )
        if step.output not in _OUTPUT_FIELDS:
            raise RunbookError(f"{path}: step {step.name!r}: output {step.output!r} is not one of {sorted(_OUTPUT_FIELDS)}")
        if (step.for_each is not None) != (step.output in _PER_SLAVE_FIELDS):
            raise RunbookError(f"{path}: step {step.name!r}: per-slave outputs need for_each: slave, and only they")
        if step.for_each is not None and step.for_each not in params:
            raise RunbookError(f"{path}: step {step.name!r}: for_each {step.for_each!r} is not a declared parameter")
        if step.needs is not None and step.needs not in params:
            raise RunbookError(f"{path}: step {step.name!r}: needs {step.needs!r} is not a declared parameter")
        steps.append(step)
    discover_raw = data.get("discover") or {}
    discover: list[DiscoverStep] = []
    for dname in ("bonds", "slaves", "nm_profiles"):
        spec = discover_raw.get(dname)
        if not isinstance(spec, dict) or "command" not in spec:
            raise RunbookError(f"{path}: discover.{dname} needs a command")
        extra = set(spec) - {"command", "title", "timeout", "from"}
        if extra:
            raise RunbookError(f"{path}: discover.{dname}: unknown key(s) {sorted(extra)}")
        try:
            render_command(spec["command"], {}, params)  # host-level: no values at all
        except RunbookError as exc:
            raise RunbookError(f"{path}: discover.{dname} must not use values: {exc}") from None
        discover.append(DiscoverStep(dname, spec["command"], spec.get("title", ""), spec.get("timeout")))
    slaves_from = (discover_raw.get("slaves") or {}).get("from", "")
    if any(s.for_each for s in steps) and slaves_from not in {s.name for s in steps if not s.for_each}:
        raise RunbookError(f"{path}: discover.slaves.from must name a bond-level step")
    return Runbook(
        name=data.get("name", path.stem),
        title=data.get("title", ""),
        parameters=params,
        triage=tuple(steps),
        slaves_from=slaves_from,
        actions=data.get("actions") or {},
        discover=tuple(discover),
    )


# --- rendering ------------------------------------------------------------------------------------


# One renderer for every command in the project (runbooks.render): validated, quoted, strict.


def render_command(template: str, values: Mapping[str, object], params: Mapping[str, Param]) -> str:
    """Render one command: every value validated by its declared type, then shell-quoted.

    Raises ``InvalidValue`` for a value that fails validation and ``RunbookError`` for a template
    that uses a value not given or not declared. Nothing is rendered half-way.
    """
    from runbooks.render import TemplateError
    from runbooks.render import render_command as _render

    try:
        return _render(template, values, params)
    except TemplateError as exc:
        raise RunbookError(str(exc)) from None


# --- running --------------------------------------------------------------------------------------


class BondSelectionError(Exception):
    """Which bond(s) to triage could not be settled: the named bond is not on the host, the host
    has no bond, or it has several where one was needed. ``bonds`` is what the host has (None:
    the list could not be read)."""

    def __init__(self, message: str, *, host: str, bond: str | None = None,
                 bonds: tuple[str, ...] | None = None) -> None:
        super().__init__(message)
        self.host = host
        self.bond = bond
        self.bonds = bonds


class BondNotFound(BondSelectionError):
    """A bond was named (command or inventory) that the host does not have."""


def bonds_text(bonds: tuple[str, ...] | None, why_none: str = "") -> str:
    """What a host has, in words: "its bonds: bond0, bond1" / "it has no bond (...)"."""
    if bonds is None:
        return "its bonds could not be listed"
    if not bonds:
        return "it has no bond" + (f" ({why_none})" if why_none else "")
    return ("its bond: " if len(bonds) == 1 else "its bonds: ") + ", ".join(bonds)


@dataclass
class StepRecord:
    """What one step did, for display and the incident log."""

    step: str  # "ethtool eno1" for per-slave steps; "discover bonds" for host-level reads
    command: str  # as written in the runbook, rendered (what evidence cites)
    status: str  # ok | failed | not-privileged | partial | skipped
    reason: str | None = None
    result: CommandResult | None = None
    bond: str | None = None  # None: a host-level discovery read

    @property
    def exit_status(self) -> int | None:
        return self.result.exit_status if self.result else None

    @property
    def duration(self) -> float:
        return self.result.duration if self.result else 0.0

    @property
    def stderr(self) -> str:
        return self.result.stderr if self.result else ""

    def to_json(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "bond": self.bond,
            "command": self.command,
            "sent": self.result.command if self.result else None,
            "status": self.status,
            "reason": self.reason,
            "exit_status": self.exit_status,
            "duration": round(self.duration, 4),
            "stderr": self.stderr,
            "truncated": bool(self.result and self.result.truncated),
            "timed_out": bool(self.result and self.result.timed_out),
        }


@dataclass(frozen=True)
class StepEvent:
    """Progress: ``kind`` is "start" (record has no result yet) or "done"."""

    kind: str
    host: str
    record: StepRecord


@dataclass
class TriageResult:
    """One bond's triage. ``steps`` starts with the host-level discovery reads it relied on."""

    host: Host
    bond: str
    outputs: TriageOutputs
    steps: list[StepRecord]
    diagnosis: Diagnosis | None
    duration: float
    diagnosis_error: str | None = None

    @property
    def verdict(self) -> str:
        """diagnosed | healthy | inconclusive, or "error" when the diagnosis itself failed."""
        if self.diagnosis is None:
            return "error" if self.diagnosis_error else "inconclusive"
        return self.diagnosis.verdict

    def to_json(self) -> dict[str, Any]:
        return {
            "host": self.host.name,
            "bond": self.bond,
            "verdict": self.verdict,
            "duration": round(self.duration, 4),
            "diagnosis": self.diagnosis.to_json() if self.diagnosis else None,
            "diagnosis_error": self.diagnosis_error,
            "failed_steps": dict(self.outputs.failed_steps),
            "not_applicable": dict(self.outputs.not_applicable),
            "steps": [s.to_json() for s in self.steps],
        }


#: Host-level verdicts besides the per-bond ones (see ``HostTriage.verdict``).
NO_BOND = "no-bond"
_VERDICT_ORDER = ("error", "inconclusive", "diagnosed", "healthy")


@dataclass
class HostTriage:
    """Everything one ``bondbot triage HOST`` learned: the host's bonds and one result per bond
    triaged (one incident per bond: each has its own root cause, fix, approvals and rollback)."""

    host: Host
    bonds: tuple[str, ...] | None  # the bonds the host has; None when they could not be listed
    results: list[TriageResult]
    discovery: list[StepRecord]
    duration: float
    named: str | None = None
    no_bond: str | None = None  # "no bond on this host (...)"
    error: str | None = None  # no bond named and the bonds could not be listed: inconclusive

    @property
    def verdict(self) -> str:
        """no-bond | inconclusive | error | diagnosed | healthy: the worst over the bonds."""
        if self.no_bond is not None:
            return NO_BOND
        if self.error is not None or not self.results:
            return "inconclusive"
        verdicts = {r.verdict for r in self.results}
        return next(v for v in _VERDICT_ORDER if v in verdicts)

    def to_json(self) -> dict[str, Any]:
        return {
            "host": self.host.name,
            "verdict": self.verdict,
            "bonds_found": list(self.bonds) if self.bonds is not None else None,
            "bond_named": self.named,
            "no_bond": self.no_bond,
            "error": self.error,
            "duration": round(self.duration, 4),
            "discovery": [s.to_json() for s in self.discovery],
            "results": [r.to_json() for r in self.results],
        }


def _discover_slaves(text: str) -> list[str]:
    """Slave names as the kernel lists them in /proc/net/bonding/<bond>, each validated."""
    from runbooks.bonding.parsers.proc_bonding import parse_proc_bonding

    return [validate_interface_name(s.name) for s in parse_proc_bonding(text).slaves]


def resolve_bond(host: Host, bond: str | None, runbook: Runbook | None = None) -> str | None:
    """``--bond``, else the inventory's ``bond:``, else None (discover); validated. Never a guess."""
    value = bond if bond is not None else host.bond
    return validate_interface_name(value) if value is not None else None


class _Runner:
    """Runs steps over the host's one connection and reports progress."""

    def __init__(self, session: HostSession, host: Host, progress: Callable[[StepEvent], None] | None) -> None:
        self.session = session
        self.host = host
        self.progress = progress

    def start(self, label: str, command: str, bond: str | None, timeout: float | None,
              settle: Callable[[StepRecord], None] | None = None) -> asyncio.Future[StepRecord]:
        record = StepRecord(step=label, command=command, status="running", bond=bond)

        async def go() -> StepRecord:
            if self.progress:
                self.progress(StepEvent("start", self.host.name, record))
            result = await self.session.run(command, timeout=timeout)
            record.result = result
            if settle is not None:
                settle(record)
            else:
                record.status, record.reason = ("ok", None) if result.failure_reason is None else ("failed", result.failure_reason)
            if self.progress:
                self.progress(StepEvent("done", self.host.name, record))
            return record

        return asyncio.ensure_future(go())


async def run_host_triage(
    pool: SshPool,
    host: Host | str,
    *,
    bond: str | None = None,
    runbook: Runbook | None = None,
    progress: Callable[[StepEvent], None] | None = None,
    diagnose: bool = True,
    known_bonds: tuple[Any, StepRecord] | None = None,
) -> HostTriage:
    """Find the host's bonds, triage the named one or each one, and diagnose what they printed.

    Validated before connecting: an invalid bond name or an unlisted host raises ``InvalidValue`` /
    ``HostNotAllowed`` and nothing is sent. Connection failures raise the ``SshExecError`` that
    says why. A named bond the host does not have raises :class:`BondNotFound` listing the bonds it
    has. Step failures are recorded in the results; a host with no bond, or whose bonds could not
    be listed, is said in ``no_bond`` / ``error``.

    Round trips: the discovery reads run first, all at once (with a named bond, its bond-level
    steps run beside them); then every other step of every bond at once. That is the same two
    rounds a named bond always took (bond status, then its ports), so discovery costs no round.
    """
    rb = runbook or load_runbook()
    h = pool.host(host)
    named = resolve_bond(h, bond, rb)
    bond_steps = [s for s in rb.triage if not s.for_each and not s.needs]
    nm_steps = [s for s in rb.triage if s.needs]
    per_slave = [s for s in rb.triage if s.for_each]
    early_commands = (
        {s.name: render_command(s.command, {"bond": named}, rb.parameters) for s in bond_steps} if named else {}
    )
    discover_commands = {d.name: render_command(d.command, {}, rb.parameters) for d in rb.discover}
    started = time.monotonic()
    session = pool.session(h)
    await session.connect()
    runner = _Runner(session, h, progress)

    from runbooks.bonding import discovery as disc

    def settle_discovery(record: StepRecord) -> None:
        result = record.result
        assert result is not None
        name = record.step.removeprefix("discover ")
        if name == "bonds":
            bl = disc.read_bond_list(result)
            record.status, record.reason = ("ok", bl.why_none or None) if bl.names is not None else ("failed", bl.error)
        elif name == "slaves":
            sl = disc.read_slave_lists(result)
            record.status, record.reason = ("ok", None) if sl.by_bond is not None else (
                "failed", f"{sl.error}; ports read from /proc/net/bonding instead")
        else:
            nm = disc.read_nm_profiles(result)
            if nm.absent:
                record.status, record.reason = "skipped", nm.absent
            elif nm.error:
                record.status, record.reason = "failed", nm.error
            else:
                record.status, record.reason = "ok", None

    discover_tasks = {
        d.name: runner.start(f"discover {d.name}", discover_commands[d.name], None, d.timeout, settle_discovery)
        for d in rb.discover if not (known_bonds is not None and d.name == "bonds")
    }
    if known_bonds is not None:  # read just before by discover_bonds: not again
        done: asyncio.Future[StepRecord] = asyncio.get_running_loop().create_future()
        done.set_result(known_bonds[1])
        discover_tasks = {"bonds": done, **discover_tasks}
    outputs_by_bond: dict[str, TriageOutputs] = {}
    early: dict[str, asyncio.Future[StepRecord]] = {}
    if named:
        out = outputs_by_bond[named] = TriageOutputs(bond=named)
        for s in bond_steps:
            early[s.name] = runner.start(s.name, early_commands[s.name], named, s.timeout,
                                         _settler(s, h, out))

    async def finish_all() -> None:
        await asyncio.gather(*discover_tasks.values(), *early.values())

    try:
        bonds_record = await discover_tasks["bonds"]
    except BaseException:
        await asyncio.gather(*discover_tasks.values(), *early.values(), return_exceptions=True)
        raise
    bond_list = disc.read_bond_list(bonds_record.result)
    discovery_records = list(discover_tasks.values())

    def host_result(**kw: Any) -> HostTriage:
        return HostTriage(h, bond_list.names, [], [t.result() for t in discovery_records],
                          time.monotonic() - started, named=named, **kw)

    if named:
        if bond_list.names is not None and named not in bond_list.names:
            await finish_all()
            raise BondNotFound(f"{h.name} has no bond {named}: {bonds_text(bond_list.names, bond_list.why_none)}",
                               host=h.name, bond=named, bonds=bond_list.names)
        targets = [named]
    else:
        if bond_list.names is None:
            await finish_all()
            return host_result(error=bond_list.error or "the bonds could not be listed")
        if not bond_list.names:
            await finish_all()
            return host_result(no_bond=f"no bond on this host: {bond_list.why_none}")
        targets = list(bond_list.names)

    # Each later step waits only for the read it needs: the ports for the per-port steps, the
    # profile list for the profile read; the bond-level steps of a discovered bond start at once.
    slaves_task, nm_task = discover_tasks["slaves"], discover_tasks["nm_profiles"]

    async def slave_lists() -> Any:
        return disc.read_slave_lists((await slaves_task).result)

    async def nm_profiles() -> Any:
        return disc.read_nm_profiles((await nm_task).result)
    profile_reads: dict[str, asyncio.Future[StepRecord]] = {}  # by UUID: shared by the host's bonds

    def read_profile(step: Step, uuid: str, bond_name: str, *, candidate: bool) -> asyncio.Future[StepRecord]:
        """One read per UUID per host; a candidate's label names its UUID (several may be read)."""
        if uuid not in profile_reads:
            command = render_command(step.command, {step.needs or "nm_uuid": uuid}, rb.parameters)
            label = f"{step.name} {uuid}" if candidate else step.name
            profile_reads[uuid] = runner.start(label, command, bond_name, step.timeout)
        return profile_reads[uuid]

    async def triage_bond(b: str) -> TriageResult:
        outputs = outputs_by_bond.setdefault(b, TriageOutputs(bond=b))
        tasks: dict[str, asyncio.Future[StepRecord]] = dict(early) if b == named else {
            s.name: runner.start(s.name, render_command(s.command, {"bond": b}, rb.parameters), b, s.timeout,
                                 _settler(s, h, outputs))
            for s in bond_steps
        }
        records: list[StepRecord] = []
        nm_futures = [asyncio.ensure_future(_profile_step(s, b, nm_profiles(), outputs, records, read_profile))
                      for s in nm_steps]

        slave_tasks: list[asyncio.Future[StepRecord]] = []
        if per_slave:
            slaves: list[str] = []
            why_not: str | None = None
            sysfs_slaves = (await slave_lists()).of(b)
            if sysfs_slaves is not None:
                try:
                    slaves = [validate_interface_name(s) for s in sysfs_slaves]
                    if not slaves:
                        why_not = f"the bond has no slaves (/sys/class/net/{b}/bonding/slaves is empty)"
                except InvalidValue as exc:
                    why_not = f"a slave name from the host failed validation: {exc}"
            else:
                source = await tasks[rb.slaves_from]
                if source.status in {"ok", "partial"} and source.result is not None:
                    try:
                        slaves = _discover_slaves(source.result.stdout)
                        if not slaves:
                            why_not = f"the bond has no slaves ({source.command})"
                    except InvalidValue as exc:
                        why_not = f"a slave name from the host failed validation: {exc}"
                    except Exception as exc:  # ParseError: the text is not /proc/net/bonding output
                        why_not = f"cannot read slave names from {source.command}: {exc}"
                else:
                    why_not = f"slave names unknown: {source.step} {source.reason or 'failed'}"
            for step in per_slave:
                if why_not:
                    if "no slaves" not in why_not:
                        outputs.failed_steps[step.name] = f"not run: {why_not}"
                    records.append(StepRecord(step=step.name, command=step.command, status="skipped",
                                              reason=why_not, bond=b))
                    continue
                for slave in slaves:
                    command = render_command(step.command, {"bond": b, step.for_each or "slave": slave}, rb.parameters)
                    slave_tasks.append(runner.start(f"{step.name} {slave}", command, b, step.timeout,
                                                    _settler(step, h, outputs)))
        done = await asyncio.gather(*tasks.values(), *slave_tasks)
        await asyncio.gather(*nm_futures)
        records.extend(done)
        diagnosis: Diagnosis | None = None
        diagnosis_error: str | None = None
        if diagnose:
            try:
                from runbooks.bonding.diagnosis import diagnose as run_diagnosis

                diagnosis = run_diagnosis(outputs)
            except Exception as exc:  # the report still shows every step's output and status
                diagnosis_error = f"{type(exc).__name__}: {exc}"
        order = {s.name: i for i, s in enumerate(rb.triage)}
        records.sort(key=lambda r: (order.get(r.step.split(" ")[0], 99), r.step))
        # Each bond's duration runs from the start of the host's triage: its discovery is part of it.
        discovered = [bonds_record, slaves_task.result(), nm_task.result()]
        return TriageResult(h, b, outputs, discovered + records, diagnosis, time.monotonic() - started, diagnosis_error)

    try:
        results = list(await asyncio.gather(*(triage_bond(b) for b in targets)))
    finally:
        await asyncio.gather(*discover_tasks.values(), *early.values(), *profile_reads.values(),
                             return_exceptions=True)
    discovered = [bonds_record, slaves_task.result(), nm_task.result()]
    return HostTriage(h, bond_list.names, results, discovered, time.monotonic() - started, named=named)


async def _profile_step(step: Step, bond: str, profiles: Awaitable[Any], outputs: TriageOutputs, records: list[StepRecord],
                        read_profile: Callable[..., asyncio.Future[StepRecord]]) -> None:
    """Find the NetworkManager profile that owns ``bond`` and file it as the step's output.

    The device's active connection first; else every bond profile is read by UUID and those whose
    ``connection.interface-name`` is the bond are candidates, the most recently used first
    (``connection.timestamp``). The name people see is the profile's own ``connection.id``.
    """
    from runbooks.bonding.parsers import ParseError, parse_nmcli

    nm = await profiles

    def skip(reason: str, *, failed: bool) -> None:
        if failed:
            outputs.failed_steps[step.name] = reason
        else:
            outputs.not_applicable[step.name] = reason
        records.append(StepRecord(step=step.name, command=step.command, status="skipped", reason=reason, bond=bond))

    if nm.absent:
        skip(nm.absent, failed=False)
        return
    if nm.error:
        skip(f"NetworkManager's profiles could not be listed: {nm.error}", failed=True)
        return
    active = nm.active_on(bond)
    if active is not None:
        record = await read_profile(step, active.uuid, bond, candidate=False)
        records.append(record)
        _file_profile(step, record, outputs)
        return
    candidates = nm.bond_profiles()
    if not candidates:
        skip(f"no NetworkManager profile owns {bond}: it is configured outside NetworkManager", failed=False)
        return
    reads = await asyncio.gather(*(read_profile(step, c.uuid, bond, candidate=True) for c in candidates))
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
        records.append(chosen)
        _file_profile(step, chosen, outputs)
        if len(owners) > 1:
            chosen.reason = (f"not active; {len(owners)} profiles name {bond} as their interface, the most recently "
                             f"used is shown")
        else:
            chosen.reason = f"not active on {bond}; the profile whose connection.interface-name is {bond}"
        return
    if unread:
        records.extend(unread)
        skip(f"no active profile on {bond}, and {len(unread)} bond profile(s) could not be read: "
             f"{unread[0].result.failure_reason if unread[0].result else 'not run'}", failed=True)
        return
    skip(f"no NetworkManager profile owns {bond} (none is active on it or names it as connection.interface-name)",
         failed=False)


def _file_profile(step: Step, record: StepRecord, outputs: TriageOutputs) -> None:
    result = record.result
    assert result is not None
    reason = result.failure_reason
    if reason is not None:
        record.status, record.reason = "failed", reason
        outputs.failed_steps[step.name] = reason
        return
    record.status = "ok"
    setattr(outputs, step.output, SourceOutput(command=record.command, text=result.stdout))


def _settler(step: Step, host: Host, outputs: TriageOutputs) -> Callable[[StepRecord], None]:
    def settle(record: StepRecord) -> None:
        assert record.result is not None
        _settle(step, record.step, record, record.result, host, outputs)

    return settle


async def run_triage(
    pool: SshPool,
    host: Host | str,
    *,
    bond: str | None = None,
    runbook: Runbook | None = None,
    progress: Callable[[StepEvent], None] | None = None,
    diagnose: bool = True,
    known_bonds: tuple[Any, StepRecord] | None = None,
) -> TriageResult:
    """One bond's triage: the named bond, or the host's only bond. Raises :class:`BondSelectionError`
    when the host has no bond, several (name one), or its bonds could not be listed and none was named."""
    ht = await run_host_triage(pool, host, bond=bond, runbook=runbook, progress=progress, diagnose=diagnose,
                               known_bonds=known_bonds)
    if len(ht.results) == 1:
        return ht.results[0]
    if ht.no_bond:
        raise BondSelectionError(f"{ht.host.name}: {ht.no_bond}", host=ht.host.name, bonds=ht.bonds)
    if ht.error:
        raise BondSelectionError(f"{ht.host.name}: {ht.error}; name the bond", host=ht.host.name, bonds=ht.bonds)
    raise BondSelectionError(f"{ht.host.name} has several bonds ({', '.join(ht.bonds or ())}): name one",
                             host=ht.host.name, bonds=ht.bonds)


def _settle(step: Step, label: str, record: StepRecord, result: CommandResult, host: Host, outputs: TriageOutputs) -> None:
    """Record the step's status and file its output where the diagnosis will look for it."""
    if result.privilege_denied:
        record.status, record.reason = "not-privileged", result.failure_reason
        outputs.failed_steps[label] = record.reason or "not privileged"
        return
    reason = result.failure_reason
    if reason is not None:
        record.status, record.reason = "failed", reason
        outputs.failed_steps[label] = reason
        return
    source = SourceOutput(command=record.command, text=result.stdout)
    if step.for_each:
        slave = label.split(" ", 1)[1]
        getattr(outputs, step.output)[slave] = source
    else:
        setattr(outputs, step.output, source)
    record.status = "ok"
    import re

    matters = step.privileged_when is None or re.search(step.privileged_when, result.stdout, re.M)
    if step.privileged and not host.privileged and matters:
        record.status = "partial"
        record.reason = f"not privileged: {step.unprivileged or 'this step needs root'}"
        outputs.failed_steps[f"{label} (privileged details)"] = record.reason


async def discover_bonds(pool: SshPool, host: Host | str, *, runbook: Runbook | None = None) -> tuple[Any, StepRecord]:
    """Only the bond list of ``host``: ``(runbooks.bonding.discovery.BondList, its StepRecord)``, one
    read, for a caller that must know the bonds before it opens anything (the bot opens one
    incident per bond). Hand the pair to ``run_host_triage(known_bonds=...)`` so the triage does not
    read the list again and its incident still shows the read."""
    from runbooks.bonding.discovery import read_bond_list

    rb = runbook or load_runbook()
    step = rb.discover_step("bonds")
    h = pool.host(host)
    session = pool.session(h)
    await session.connect()
    command = render_command(step.command, {}, rb.parameters)
    result = await session.run(command, timeout=step.timeout)
    found = read_bond_list(result)
    record = StepRecord(step="discover bonds", command=command, status="ok" if found.names is not None else "failed",
                        reason=(found.why_none or None) if found.names is not None else found.error, result=result)
    return found, record
