"""The fix plan: the exact commands, their verification and rollback, and the hash approved.

:func:`build_fix_plan` is pure (state in, plan out) so every command can be checked offline;
:func:`plan_fix` reads the host and calls it. A plan is plain data: its ``plan_hash`` covers the
host's state and every command, so a bot can plan again at click time and compare hashes.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

from runbooks.bonding.bond_options import (
    Monitor,
    PlanRefused,
    RemediationError,
    format_bond_options,
    merge_bond_options,
    remediation_spec,
    render,
    runtime_apply_commands,
    runtime_restore_commands,
    sh_c,
    split_targets,
    validate_dbus_path,
    validate_interface,
    validate_ipv4_target,
    validate_uuid,
)
from runbooks.bonding.bond_state import RUNTIME_KEYS, BondState, Session, read_bond_state, session_host_name
from runbooks.bonding.ifupdown_file import set_mii_monitor

__all__ = [
    "CHECKPOINT_PLACEHOLDER",
    "RUN_PLACEHOLDER",
    "WATCHDOG_GRACE",
    "PlannedCommand",
    "FixPlan",
    "build_fix_plan",
    "with_hash",
    "persistence_steps",
    "plan_fix",
    "shown_name",
]


@dataclass(frozen=True)
class PlannedCommand:
    """One command of a plan and why it is there."""

    purpose: str
    command: str

    def to_json(self) -> dict[str, str]:
        return {"purpose": self.purpose, "command": self.command}


CHECKPOINT_PLACEHOLDER = "<checkpoint>"
RUN_PLACEHOLDER = "<run>"  # a fresh random id per run, in the host-side undo's unit and flag names
#: Seconds after the checkpoint's timeout at which the host's own undo restores runtime values:
#: NetworkManager's reactivation comes first, the watchdog fixes what it leaves.
WATCHDOG_GRACE = 8


@dataclass(frozen=True)
class FixPlan:
    """Everything the operator approves: the exact commands, their verification and rollback."""

    host: str
    bond: str
    backend: Literal["networkmanager", "ifupdown", "sysfs"]
    monitor: Monitor
    before: dict[str, Any]
    before_options: str | None
    new_options: str | None
    removed_options: tuple[str, ...]
    steps: tuple[PlannedCommand, ...]
    fallback: tuple[PlannedCommand, ...]
    verify: tuple[PlannedCommand, ...]
    rollback: tuple[PlannedCommand, ...]
    persistence: str | None
    checkpoint_timeout: int
    target: str | None
    warnings: tuple[str, ...]
    state: BondState
    ifupdown_changes: tuple[str, ...] = ()  # the interfaces file's lines changed (backend ifupdown)
    plan_hash: str = ""

    def hashed_content(self) -> dict[str, Any]:
        return {
            "host": self.host, "bond": self.bond, "backend": self.backend,
            "monitor": asdict(self.monitor), "before": self.before,
            "new_options": self.new_options,
            "steps": [s.to_json() for s in self.steps],
            "fallback": [s.to_json() for s in self.fallback],
            "verify": [s.to_json() for s in self.verify],
            "rollback": [s.to_json() for s in self.rollback],
            "persistence": self.persistence, "checkpoint_timeout": self.checkpoint_timeout,
            "target": self.target,
        }

    def to_json(self) -> dict[str, Any]:
        data = self.hashed_content()
        data.update(plan_hash=self.plan_hash, warnings=list(self.warnings),
                    before_options=self.before_options, removed_options=list(self.removed_options),
                    summary=self.summary())
        return data

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
        rt = self.before["runtime"]
        lines.append("  runtime before: " + ", ".join(f"{k}={rt.get(k) or '-'}" for k in RUNTIME_KEYS))
        if self.backend == "networkmanager":
            lines.append(f"  NetworkManager rolls back by itself if the change is not confirmed within "
                         f"{self.checkpoint_timeout} s (checkpoint).")
        lines.append("  restore commands, in order:")
        lines += [f"    {c.command}" for c in self.rollback]
        return "\n".join(lines)

    def render_text(self) -> str:
        """The plan as shown before approval: commands, verification, rollback, hash."""
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
        if any(RUN_PLACEHOLDER in s.command for s in self.steps):
            out.append(f"({RUN_PLACEHOLDER} is a fresh random id given when the plan runs; "
                       f"{CHECKPOINT_PLACEHOLDER} is the path NetworkManager returns.)")
        return "\n".join(out)


def _hash(content: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(content, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def build_fix_plan(host: str, state: BondState, monitor: Monitor, *, target: str | None = None,
                   checkpoint_timeout: int = 60) -> FixPlan:
    """The plan for ``state`` (pure: no I/O). Raises :class:`PlanRefused` when it makes no sense."""
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
    warnings: list[str] = []
    if target is None:
        target = state.nm_gateway or state.route_gateway
    if target is None:
        raise PlanRefused(f"{host} {bond}: no gateway found on {bond} (profile or route); pass the "
                          "address to ping after the change (--target IP)")
    target = validate_ipv4_target(target)
    if monitor.kind == "arp" and target not in monitor.arp_targets:
        warnings.append(f"the ARP targets do not include the verified target {target}")

    steps: list[PlannedCommand] = []
    fallback: list[PlannedCommand] = []
    rollback: list[PlannedCommand] = []
    verify: list[PlannedCommand] = [
        PlannedCommand("the bonding driver reports the monitor and every port's MII status",
                       render("read_state.proc", bond=bond)),
        PlannedCommand("runtime values", render("read_state.sysfs", bond=bond)),
    ]
    persistence: str | None = None
    ifupdown_changes: tuple[str, ...] = ()
    before_options = new_options = None
    removed: list[str] = []
    restore_runtime = runtime_restore_commands(bond, state.runtime)
    flag = render("watchdog.flag", bond=bond)
    unit = render("watchdog.unit", bond=bond)
    watchdog = PlannedCommand(
        f"arm the host's own undo: {checkpoint_timeout + WATCHDOG_GRACE} s from now it restores the runtime "
        "values unless bondbot confirms",
        sh_c(render("watchdog.arm", flag=flag, unit=unit,
                    script=render("watchdog.script", delay=checkpoint_timeout + WATCHDOG_GRACE, flag=flag,
                                  restore="; ".join(restore_runtime)))))
    confirm = PlannedCommand("confirm: disarm the host's own undo", sh_c(render("watchdog.confirm", flag=flag, unit=unit)))

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
        steps.append(PlannedCommand(
            f"NetworkManager checkpoint of {bond} and its ports; rolls back by itself after "
            f"{checkpoint_timeout} s unless confirmed",
            render("checkpoint.create", device_paths=paths, timeout=checkpoint_timeout)))
        steps.append(watchdog)
        profile = shown_name(state.nm_id or "")
        steps.append(PlannedCommand(f"save the new options in the profile {profile} (keeps every other option)",
                                    render("nm.modify", uuid=uuid, options=new_options)))
        for cmd in runtime_apply_commands(bond, state.runtime, monitor):
            steps.append(PlannedCommand("runtime change through the bonding driver (no outage)", cmd))
        steps.append(PlannedCommand("NetworkManager applies the profile to the running bond without taking it down",
                                    render("nm.reapply", bond=bond)))
        script = render("nm.bounce_script", uuid=uuid)
        bounce = (render("nm.bounce_systemd", unit=f"bondbot-bounce-{bond}", script=script) if state.has_systemd_run
                  else sh_c(render("nm.bounce_nohup", script=script)))
        fallback.append(PlannedCommand(
            "the seed's down/up, detached on the host so a dropped SSH session cannot leave the bond down",
            bounce))
        verify.append(PlannedCommand(f"the profile {profile} has the new options",
                                     f"nmcli -t connection show uuid {shlex.quote(uuid)}"))
        if state.nm_file:
            verify.append(PlannedCommand("the profile on disk has them (survives a reboot)",
                                         render("read_state.persisted", filename=state.nm_file)))
        steps.append(confirm)
        steps.append(PlannedCommand("confirm: destroy the checkpoint (after verification passed)",
                                    render("checkpoint.destroy", checkpoint=CHECKPOINT_PLACEHOLDER)))
        rollback.append(PlannedCommand("NetworkManager restores profile and bond (while the checkpoint exists)",
                                        render("checkpoint.rollback", checkpoint=CHECKPOINT_PLACEHOLDER)))
        rollback.append(PlannedCommand(f"the options of the profile {profile} as before",
                                       render("nm.modify", uuid=uuid, options=before_options)))
        rollback.append(PlannedCommand("apply them to the running bond", render("nm.reapply", bond=bond)))
    elif state.managed_by_ifupdown and monitor.kind == "miimon":
        backend = "ifupdown"
        assert state.ifupdown_file is not None and state.ifupdown_text is not None and state.ifupdown_sha256
        filename = _validate_config_path(state.ifupdown_file)
        edit = set_mii_monitor(state.ifupdown_text, bond, monitor.miimon)
        backup = f"/var/backups/bondbot/{filename.rsplit('/', 1)[1]}.{state.ifupdown_sha256[:12]}.bak"
        tmp = f"/etc/network/.bondbot-{bond}.{state.ifupdown_sha256[:12]}.new"
        file_undo = render("ifupdown.restore_if_backed_up", backup=backup, filename=filename)
        watchdog = PlannedCommand(
            watchdog.purpose + f" and {filename} from its backup",
            sh_c(render("watchdog.arm", flag=flag, unit=unit,
                        script=render("watchdog.script", delay=checkpoint_timeout + WATCHDOG_GRACE, flag=flag,
                                      restore="; ".join([file_undo, *restore_runtime])))))
        steps.append(watchdog)
        steps.append(PlannedCommand(f"back up {filename} (outside /etc/network/interfaces.d/, which ifupdown reads)",
                                    sh_c(render("ifupdown.backup", filename=filename, backup=backup))))
        changes = "; ".join(edit.changes) or "no line changes"
        steps.append(PlannedCommand(
            f"persist the monitor in {filename}, every other line kept ({changes}); only if the file is "
            "still what the plan read",
            sh_c(render("ifupdown.write", filename=filename, sha256=state.ifupdown_sha256, tmp=tmp,
                        content=edit.content))))
        for cmd in runtime_apply_commands(bond, state.runtime, monitor):
            steps.append(PlannedCommand("runtime change through the bonding driver (no outage)", cmd))
        steps.append(confirm)
        verify.append(PlannedCommand("ifupdown reads the new monitor from its configuration",
                                     render("read_state.ifquery", bond=bond)))
        verify.append(PlannedCommand(f"the monitor lines of {filename}",
                                     render("ifupdown.check", filename=filename)))
        rollback.append(PlannedCommand(f"{filename} as before, from the backup",
                                       render("ifupdown.restore", backup=backup, filename=filename)))
        ifupdown_changes = edit.changes
    else:
        backend = "sysfs"
        steps.append(watchdog)
        for cmd in runtime_apply_commands(bond, state.runtime, monitor):
            steps.append(PlannedCommand("runtime change through the bonding driver (no outage)", cmd))
        steps.append(confirm)
        persistence = persistence_steps(state, monitor)
        if state.managed_by_ifupdown:
            warnings.append("bondbot persists only MII monitoring in ifupdown files; apply the ARP monitor "
                            "there by hand (steps below)")
        warnings.append("neither NetworkManager nor a file bondbot edits holds this bond: the runtime change "
                        "is lost at reboot unless the persistence steps below are applied")
    for cmd in restore_runtime:
        rollback.append(PlannedCommand("runtime values as before", cmd))
    verify.append(PlannedCommand(f"the gateway {target} answers through {bond}",
                                 render("verify.gateway", count=remediation_spec()["defaults"]["verify_pings"],
                                        bond=bond, target=target)))
    plan = FixPlan(
        host=host, bond=bond, backend=backend, monitor=monitor, before=state.fingerprint(),
        before_options=before_options, new_options=new_options, removed_options=tuple(removed),
        steps=tuple(steps), fallback=tuple(fallback), verify=tuple(verify), rollback=tuple(rollback),
        persistence=persistence, checkpoint_timeout=checkpoint_timeout, target=target,
        warnings=tuple(warnings), state=state, ifupdown_changes=ifupdown_changes,
    )
    return with_hash(plan)


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


def with_hash(plan: FixPlan) -> FixPlan:
    from dataclasses import replace

    return replace(plan, plan_hash=_hash(plan.hashed_content()))


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
    text = render(f"persistence.{system}", bond=state.bond, monitor=monitor,
                  other_monitor_present=other_present, options_spaced=spaced)
    where = f" ({', '.join(files)})" if files else ""
    return f"[{system}{where}]\n{text}"


async def plan_fix(session: Session, bond: str, monitor: Monitor | None = None, *, host: str | None = None,
                   target: str | None = None, checkpoint_timeout: int | None = None) -> FixPlan:
    """Read the host and build the plan that enables ``monitor`` (default: miimon=100)."""
    monitor = monitor or Monitor.mii(remediation_spec()["defaults"]["miimon"])
    name = session_host_name(session, host)
    state = await read_bond_state(session, bond)
    return build_fix_plan(name, state, monitor, target=target,
                          checkpoint_timeout=checkpoint_timeout or remediation_spec()["defaults"]["checkpoint_timeout_seconds"])
