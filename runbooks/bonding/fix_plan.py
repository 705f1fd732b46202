"""The fix plan: the exact commands, their verification and rollback, and the digest approved.

:func:`build_fix_plan` is pure (state in, plan out) so every command can be checked offline;
:func:`plan_fix` reads the host and calls it. The steps come from remediation.yaml's ``fix:``
list (roles, conditions), rendered by the one renderer; the result holds a
:class:`runbooks.plan.Plan` whose digest covers every step shown and run and the values shown
with them (the state before, the run id), so a bot can plan again at click time, with the same
run id, and compare digests.
"""

from __future__ import annotations

import re
import secrets
import shlex
from dataclasses import asdict, dataclass
from typing import Any, Literal

from runbooks.bonding.bond_options import (
    CHECKPOINT_PLACEHOLDER,
    Monitor,
    PlanRefused,
    RemediationError,
    action_steps,
    format_bond_options,
    merge_bond_options,
    remediation_spec,
    render,
    render_text,
    runtime_apply_commands,
    runtime_restore_commands,
    split_targets,
    step_spec,
    validate_dbus_path,
    validate_interface,
    validate_ipv4_target,
    validate_uuid,
)
from runbooks.bonding.bond_state import (
    RUNTIME_KEYS,
    BondState,
    Session,
    read_bond_state,
    session_host_name,
)
from runbooks.bonding.ifupdown_file import set_mii_monitor
from runbooks.plan import Plan, PlanStep

__all__ = [
    "CHECKPOINT_PLACEHOLDER",
    "WATCHDOG_GRACE",
    "FixPlan",
    "build_fix_plan",
    "persistence_steps",
    "plan_fix",
    "shown_name",
]


#: Seconds after the checkpoint's timeout at which the host's own undo restores runtime values:
#: NetworkManager's reactivation comes first, the watchdog fixes what it leaves.
WATCHDOG_GRACE = 8

#: Roles of the steps that make (and confirm) the change, in plan order.
_CHANGE_ROLES = ("checkpoint", "change", "confirm")


@dataclass(frozen=True)
class FixPlan:
    """The fix as the bonding runbook sees it: a :class:`runbooks.plan.Plan` (``plan``: every step
    shown, hashed and run, and the one digest) and the state it was planned from.

    ``steps``, ``fallback``, ``verify``, ``rollback`` and ``persistence`` are views of
    ``plan.steps`` by role; ``plan_hash`` is ``plan.digest``. Nothing here is hashed separately.
    """

    host: str
    bond: str
    backend: Literal["networkmanager", "ifupdown", "sysfs"]
    monitor: Monitor
    before: dict[str, Any]
    before_options: str | None
    new_options: str | None
    removed_options: tuple[str, ...]
    checkpoint_timeout: int
    target: str | None
    warnings: tuple[str, ...]
    state: BondState
    plan: Plan
    ifupdown_changes: tuple[str, ...] = ()  # the interfaces file's lines changed (backend ifupdown)
    run_id: str = ""  # in the host-side undo's unit and flag names; fixed when the plan is made

    @property
    def plan_hash(self) -> str:
        """The plan's digest: what an approval refers to."""
        return self.plan.digest

    @property
    def steps(self) -> tuple[PlanStep, ...]:
        """The change, in order (checkpoints, changes, confirmations), without the fallbacks."""
        return tuple(s for s in self.plan.steps_for(*_CHANGE_ROLES) if not _fallback_for(s.name))

    @property
    def fallback(self) -> tuple[PlanStep, ...]:
        """Steps that run only if the step they stand in for fails (reapply refused: down/up)."""
        return tuple(s for s in self.plan.steps_for("change") if _fallback_for(s.name))

    @property
    def verify(self) -> tuple[PlanStep, ...]:
        return self.plan.steps_for("verify")

    @property
    def rollback(self) -> tuple[PlanStep, ...]:
        return self.plan.steps_for("rollback")

    @property
    def persistence(self) -> str | None:
        """What the operator applies to keep the change after a reboot (backend sysfs), or None."""
        step = self.plan.step("persistence")
        return step.instruction if step is not None else None

    def to_json(self) -> dict[str, Any]:
        return {
            "host": self.host, "bond": self.bond, "backend": self.backend, "monitor": asdict(self.monitor),
            "before": self.before, "new_options": self.new_options, "before_options": self.before_options,
            "removed_options": list(self.removed_options), "checkpoint_timeout": self.checkpoint_timeout,
            "target": self.target, "warnings": list(self.warnings), "summary": self.summary(),
            "steps": [s.to_dict() for s in self.steps], "fallback": [s.to_dict() for s in self.fallback],
            "verify": [s.to_dict() for s in self.verify], "rollback": [s.to_dict() for s in self.rollback],
            "persistence": self.persistence, "plan_hash": self.plan_hash, "plan": self.plan.to_dict(),
        }

    def summary(self) -> str:
        return f"{self.host} {self.bond}: enable {self.monitor.describe()}"

    def profile_shown(self) -> str | None:
        """The NetworkManager profile as shown to people: its real name, shell-quoted, and its UUID."""
        if self.backend != "networkmanager" or self.state.nm_uuid is None:
            return None
        return f"{shown_name(self.state.nm_id or '')} (uuid {self.state.nm_uuid})"

    def rollback_note(self) -> dict[str, Any]:
        """What the incident log records before anything changes."""
        return {
            "host": self.host,
            "bond": self.bond,
            "plan_hash": self.plan_hash,
            "nm_profile": {"uuid": self.state.nm_uuid, "id": self.state.nm_id, "file": self.state.nm_file},
            "ifupdown_file": self.state.ifupdown_file if self.backend == "ifupdown" else None,
            "bond_options_before": self.before_options,
            "runtime_before": self.before["runtime"],
            "checkpoint_timeout_s": self.checkpoint_timeout if self.backend == "networkmanager" else None,
            "restore_commands": [c.command for c in self.rollback],
            "text": self.render_rollback(),
        }

    def render_rollback(self) -> str:
        lines = [f"Rollback for {self.host} {self.bond}:"]
        if self.profile_shown():
            lines.append(f"  NetworkManager profile: {self.profile_shown()}")
        if self.backend == "ifupdown":
            lines.append(f"  {self.state.ifupdown_file}: restored from its backup (first restore command)")
        if self.before_options is not None:
            lines.append(f"  bond.options before: {self.before_options}")
        lines.append("  runtime before: " + _runtime_before(self.before["runtime"]))
        if self.backend == "networkmanager":
            lines.append(f"  NetworkManager rolls back by itself if the change is not confirmed within "
                         f"{self.checkpoint_timeout} s (checkpoint).")
        lines.append("  restore commands, in order:")
        lines += [f"    {c.command}" for c in self.rollback]
        return "\n".join(lines)

    def render_text(self) -> str:
        """The plan as shown before approval: commands, verification, rollback, digest."""
        out = [f"Fix plan {self.plan_hash[:12]}: {self.summary()}"]
        if self.profile_shown():
            out.append(f"  NetworkManager profile: {self.profile_shown()}; commands name it by UUID")
        if self.before_options is not None:
            out.append(f"  bond.options now:   {self.before_options}")
            out.append(f"  bond.options after: {self.new_options}")
        if self.removed_options:
            out.append(f"  removed (belong to the other monitor): {', '.join(self.removed_options)}")
        out += [f"  warning: {w}" for w in self.warnings]
        out.append("Commands, in order:")
        out += [f"  {i}. {s.command}\n       # {s.purpose}" for i, s in enumerate(self.steps, 1)]
        if self.fallback:
            out.append("Only if reapply is refused:")
            out += [f"  - {s.command}\n       # {s.purpose}" for s in self.fallback]
        out.append("Verification (over a new SSH connection):")
        out += [f"  - {s.command}\n       # {s.purpose}" for s in self.verify]
        if self.ifupdown_changes:
            out.append(f"Persisted by bondbot in {self.state.ifupdown_file} (ifupdown; a backup first):")
            out += [f"  {c}" for c in self.ifupdown_changes]
        if self.persistence:
            out.append("Persistence (for you to apply; not NetworkManager):")
            out += ["  " + ln for ln in self.persistence.strip().splitlines()]
        out.append(self.render_rollback())
        if self.backend == "networkmanager":
            out.append(f"({CHECKPOINT_PLACEHOLDER} is the path NetworkManager returns when the checkpoint is "
                       "created; the command is rendered from the same template with it.)")
        return "\n".join(out)


def _fallback_for(name: str) -> str | None:
    """The step that ``name`` stands in for when it fails (``fallback_for`` in remediation.yaml)."""
    specs = step_spec("fix", name) if name else []
    return next((str(s["fallback_for"]) for s in specs if s.get("fallback_for")), None)


def _runtime_before(runtime: dict[str, str]) -> str:
    return ", ".join(f"{k}={runtime.get(k) or '-'}" for k in RUNTIME_KEYS)


def build_fix_plan(host: str, state: BondState, monitor: Monitor, *, target: str | None = None,
                   checkpoint_timeout: int = 60, run_id: str | None = None) -> FixPlan:
    """The plan for ``state`` (pure: no I/O). Raises :class:`PlanRefused` when it makes no sense.

    The steps are remediation.yaml's ``fix:`` list for the backend that holds the bond; this
    function only works out the values they are rendered with. ``run_id`` (hex) names the host's
    undo unit and flag; a fresh random one when not given. Planning again with the same ``run_id``
    on an unchanged host gives the same plan and digest (how an approval is re-checked).
    """
    bond = validate_interface(state.bond, "bond")
    if not 10 <= checkpoint_timeout <= 600:
        raise RemediationError("checkpoint timeout must be 10-600 seconds")
    if state.miimon == monitor.miimon and monitor.kind == "miimon" and state.arp_interval == 0:
        raise PlanRefused(f"{host} {bond}: miimon is already {state.miimon}; nothing to change")
    if monitor.kind == "arp" and state.arp_interval == monitor.arp_interval and state.miimon == 0 \
            and set(split_targets(state.runtime.get("arp_ip_target", ""))) == set(monitor.arp_targets):
        raise PlanRefused(f"{host} {bond}: ARP monitoring is already set this way; nothing to change")
    if not state.slaves:
        raise PlanRefused(f"{host} {bond}: the bond has no ports; a link monitor cannot help")
    run_id = run_id or secrets.token_hex(4)
    if not re.fullmatch(r"[0-9a-f]{4,32}", run_id):
        raise RemediationError(f"invalid run id {run_id!r}: hex digits")
    warnings: list[str] = []
    if target is None:
        target = state.nm_gateway or state.route_gateway
    if target is None:
        raise PlanRefused(f"{host} {bond}: no gateway found on {bond} (profile or route); pass the "
                          "address to ping after the change (--target IP)")
    target = validate_ipv4_target(target)
    if monitor.kind == "arp" and target not in monitor.arp_targets:
        warnings.append(f"the ARP targets do not include the verified target {target}")

    before_options = new_options = None
    removed: list[str] = []
    ifupdown_changes: tuple[str, ...] = ()
    restore_runtime = runtime_restore_commands(bond, state.runtime)
    delay = checkpoint_timeout + WATCHDOG_GRACE
    values: dict[str, Any] = {
        "bond": bond, "timeout": checkpoint_timeout, "delay": delay, "target": target,
        "count": remediation_spec()["defaults"]["verify_pings"],
        "runtime_apply": runtime_apply_commands(bond, state.runtime, monitor),
        "runtime_restore": restore_runtime,
        "flag": render("watchdog.flag", bond=bond, run=run_id),
        "unit": render("watchdog.unit", bond=bond, run=run_id),
        "checkpoint": CHECKPOINT_PLACEHOLDER,
    }
    undo = list(restore_runtime)
    conditions = {"systemd_run" if state.has_systemd_run else "no_systemd_run"}

    if state.managed_by_nm:
        backend: Literal["networkmanager", "ifupdown", "sysfs"] = "networkmanager"
        uuid = validate_uuid(state.nm_uuid or "")
        assert state.bond_options is not None
        before_options = format_bond_options(state.bond_options)
        merged, removed = merge_bond_options(state.bond_options, monitor)
        new_options = format_bond_options(merged)
        paths = [validate_dbus_path(p) for p in state.device_paths]
        if not paths:
            raise PlanRefused(f"{host} {bond}: NetworkManager did not name its device objects; cannot checkpoint")
        values.update(uuid=uuid, options=new_options, options_before=before_options, device_paths=paths,
                      profile=shown_name(state.nm_id or ""), bounce_unit=render("nm.bounce_unit", bond=bond),
                      bounce_script=render("nm.bounce_script", uuid=uuid))
        if state.nm_file:
            values["nm_file"] = state.nm_file
            conditions.add("nm_file")
    elif state.managed_by_ifupdown and monitor.kind == "miimon":
        backend = "ifupdown"
        assert state.ifupdown_file is not None and state.ifupdown_text is not None and state.ifupdown_sha256
        filename = _validate_config_path(state.ifupdown_file)
        edit = set_mii_monitor(state.ifupdown_text, bond, monitor.miimon)
        backup = render("ifupdown.backup_path", filename=filename, sha256=state.ifupdown_sha256)
        undo.insert(0, render("ifupdown.restore_if_backed_up", backup=backup, filename=filename))
        values.update(filename=filename, backup=backup, sha256=state.ifupdown_sha256, content=edit.content,
                      tmp=render("ifupdown.tmp_path", bond=bond, sha256=state.ifupdown_sha256),
                      changes="; ".join(edit.changes) or "no line changes")
        ifupdown_changes = edit.changes
    else:
        backend = "sysfs"
        values["persistence"] = persistence_steps(state, monitor)
        if state.managed_by_ifupdown:
            warnings.append("bondbot persists only MII monitoring in ifupdown files; apply the ARP monitor "
                            "there by hand (steps below)")
        warnings.append("neither NetworkManager nor a file bondbot edits holds this bond: the runtime change "
                        "is lost at reboot unless the persistence steps below are applied")
    conditions.add(backend)
    values["backend"] = backend
    values["script"] = render("watchdog.script", delay=delay, flag=values["flag"],
                              restore=render("shell.sequence", commands=undo))
    steps = action_steps("fix", values, conditions)
    params: list[tuple[str, str]] = [
        ("backend", backend), ("monitor", monitor.describe()), ("target", target),
        ("checkpoint_timeout", str(checkpoint_timeout)), ("run", run_id),
        ("runtime_before", _runtime_before(state.fingerprint()["runtime"])),
    ]
    if backend == "networkmanager":
        params += [("profile", f"{shown_name(state.nm_id or '')} (uuid {state.nm_uuid})"),
                   ("bond_options_before", before_options or ""), ("bond_options_after", new_options or "")]
    params += [("removed_option", r) for r in removed]
    params += [("warning", w) for w in warnings]
    params += [("ifupdown_change", c) for c in ifupdown_changes]
    plan = Plan(
        runbook="bonding", action="fix", host=host, subject=(("bond", bond),),
        title=f"enable {monitor.describe()}", steps=steps, params=tuple(params),
        context={"before": state.fingerprint(), "monitor": asdict(monitor), "backend": backend,
                 "checkpoint_timeout": checkpoint_timeout, "target": target},
    )
    return FixPlan(
        host=host, bond=bond, backend=backend, monitor=monitor, before=state.fingerprint(),
        before_options=before_options, new_options=new_options, removed_options=tuple(removed),
        checkpoint_timeout=checkpoint_timeout, target=target, warnings=tuple(warnings), state=state,
        plan=plan, ifupdown_changes=ifupdown_changes, run_id=run_id,
    )


def shown_name(name: str) -> str:
    """A host-sourced name for a terminal or a log: control characters as \\xNN, then shell-quoted
    (a NetworkManager profile may be called ``Bond connection 1`` or ``it's "bond"``)."""
    from ssh_exec.inventory import safe_text

    return shlex.quote(safe_text(name))


_CONFIG_PATH_RE = re.compile(r"/etc/network/[A-Za-z0-9_.@:+-]+(/[A-Za-z0-9_.@:+-]+)?")


def _validate_config_path(path: str) -> str:
    if not _CONFIG_PATH_RE.fullmatch(path) or "/../" in path or path.endswith("/.."):
        raise RemediationError(f"unexpected ifupdown file name {path!r}")
    return path


def persistence_steps(state: BondState, monitor: Monitor) -> str:
    """The exact steps that make the runtime change survive a reboot, for the system in use."""
    files = state.config_files
    if any(f.startswith("/etc/netplan/") for f in files):
        system = "netplan"
    elif any(f.startswith("/etc/network/") for f in files):
        system = "ifupdown"
    elif any(f.startswith("/etc/sysconfig/") for f in files):
        system = "ifcfg"
    else:
        system = "unknown"
    other_present = (state.arp_interval > 0) if monitor.kind == "miimon" else (state.miimon > 0)
    runtime_opts = {k: state.runtime[k] for k in ("mode", "primary", "updelay", "downdelay", "xmit_hash_policy")
                    if state.runtime.get(k) and state.runtime.get(k) != "0"}
    for key in ("mode", "xmit_hash_policy"):  # sysfs prints "active-backup 1": the name only
        if key in runtime_opts:
            runtime_opts[key] = runtime_opts[key].split()[0]
    merged, _ = merge_bond_options(runtime_opts, monitor)
    spaced = " ".join(f"{k}={v}" for k, v in merged.items())
    text = render_text(f"persistence.{system}", bond=state.bond, monitor=monitor,
                       other_monitor_present=other_present, options_spaced=spaced)
    where = f" ({', '.join(files)})" if files else ""
    return f"[{system}{where}]\n{text}"


async def plan_fix(session: Session, bond: str, monitor: Monitor | None = None, *, host: str | None = None,
                   target: str | None = None, checkpoint_timeout: int | None = None,
                   run_id: str | None = None, state: BondState | None = None) -> FixPlan:
    """Read the host and build the plan that enables ``monitor`` (default: miimon=100).

    ``run_id``: the one of a plan already shown, to plan again and compare digests.
    ``state``: a reading of this bond made just now (``read_bond_state``), so that one reading
    serves the fix and every failover method offered with it; the same state gives the same plan."""
    monitor = monitor or Monitor.mii(remediation_spec()["defaults"]["miimon"])
    name = session_host_name(session, host)
    if state is None:
        state = await read_bond_state(session, bond)
    elif state.bond != validate_interface(bond, "bond"):
        raise RemediationError(f"the state given is of {state.bond}, not {bond}")
    return build_fix_plan(name, state, monitor, target=target, run_id=run_id,
                          checkpoint_timeout=checkpoint_timeout or remediation_spec()["defaults"]["checkpoint_timeout_seconds"])
