"""The approved fix "enable link monitoring": plan, precheck, rollback note, apply, verify, roll back.

Public API (the CLI ``bondbot fix`` and the Slack bot's approval buttons call exactly this)::

    from runbooks.bonding.remediation import Monitor, plan_fix, apply_fix
    from runbooks.bonding.failover import plan_failover_test, run_failover_test

    monitor = Monitor.mii(100)                      # or Monitor.arp(1000, ["10.20.0.1"], validate=None)
    plan = await plan_fix(pool.session("web-01"), "bond0", monitor, host="web-01",
                          target=None, checkpoint_timeout=60)            # -> FixPlan (reads only)
    plan.render_text()    # exact commands, verification, rollback: show this before approval
    plan.plan_hash        # what an approval refers to (sha256 of host state + commands)
    plan.to_json()        # for Block Kit / logs
    result = await apply_fix(plan, pool=pool, actor="slack:U123", incident_store=store,
                             incident_id="INC-...", approved_hash=clicked_hash)  # -> FixResult
    result.ok; result.status  # "verified" | "rolled_back" | "refused" | "failed"
    result.render_text(); result.to_json(); result.checks; result.host_as_before

    fplan = await plan_failover_test(pool.session("web-01"), "bond0", "lab"|"manual"|"host",
                                     host="web-01", target=None, hold_seconds=3.0,
                                     allow_unmonitored=False)            # -> FailoverPlan
    fplan.ready; fplan.preconditions; fplan.render_text(); fplan.plan_hash
    report = await run_failover_test(fplan, pool=pool, actor=..., maintenance_window_confirmed=True,
                                     link_control=None, notify=None,     # notify(text): tell the operator
                                     incident_store=None, incident_id=None)  # -> FailoverReport
    report.passed; report.detection_ms; report.outage_ms; report.lost_pings; report.primary_returned

``pool`` is an ``ssh_exec.SshPool``. A plan is plain data; a bot that does not keep it between
showing and clicking can plan again at click time and compare hashes: the hash is equal only if
the host's state and every command are. ``apply_fix`` refuses a plan whose ``approved_hash`` differs,
that was altered after hashing, or whose host changed since (precheck). Verification uses a NEW
SSH connection (the pool's connection to the host is closed first): a change that broke the path
the bot came in on must not look healthy because an old TCP session survived. Everything is
recorded in the incident log when ``incident_store``/``incident_id`` are given: the rollback note
before any change, every command with its output and the actor, the verification, the rollback.

How the change is made on a NetworkManager host, and why in this order:

1. precheck: read the state again; refuse if it differs from the plan (someone changed the bond
   since the diagnosis, or the plan is stale).
2. rollback note, recorded in the incident log BEFORE anything changes: bond.options and the
   runtime values as they are, and the exact commands that restore them.
3. NM checkpoint (D-Bus ``CheckpointCreate`` with a rollback timeout) over the bond and its ports,
   and an undo armed on the host (systemd-run, else setsid nohup) that restores the note's runtime
   values a few seconds after that timeout unless bondbot confirms: NetworkManager 1.42's rollback
   restores the profile and reactivates the bond but leaves options the old profile did not name
   (measured in the lab: arp_interval and arp_ip_target stayed).
   nmcli 1.42 has no checkpoint command; we call D-Bus with ``busctl``, which systemd ships on
   every host where NetworkManager runs; ``gdbus`` (libglib2.0-bin) or python3-dbus are often
   absent (the lab image has python3-minimal only). If the bot cannot confirm in time, e.g. because
   the change cut its SSH path, NetworkManager restores the profile and reactivates the bond itself.
4. ``nmcli connection modify`` first: the checkpoint only reactivates the bond on rollback when the
   profile or the active connection changed, so the profile change comes before the runtime one.
5. runtime change through sysfs (immediate, no outage), then ``nmcli device reapply`` so that
   NetworkManager's applied connection agrees with the kernel. If reapply is refused, the seed's
   ``nmcli con down/up``, detached on the host (systemd-run, else setsid nohup).
6. verify over a new connection: the monitor is on, every port's MII status is up, the profile on
   disk has it, the gateway answers. Then confirm: disarm the undo, destroy the checkpoint.
7. on any failure: roll back (checkpoint rollback, then the note's commands for whatever still
   differs), compare the host with the plan's "before" state and report.

Hosts without NetworkManager get the armed undo, the runtime change (sysfs) and the exact
persistence steps for the system that holds the bond (ifupdown, netplan, ifcfg), which the
operator applies; bondbot does not edit those files.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import ipaddress
import json
import re
import secrets
import shlex
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import yaml

__all__ = [
    "Monitor",
    "BondState",
    "PlannedCommand",
    "FixPlan",
    "Check",
    "StepRecord",
    "FixResult",
    "RemediationError",
    "PlanRefused",
    "plan_fix",
    "apply_fix",
    "read_bond_state",
    "build_fix_plan",
    "merge_bond_options",
    "format_bond_options",
    "parse_sysfs_bonding",
    "runtime_restore_commands",
    "render",
    "validate_interface",
]

REMEDIATION_YAML = Path(__file__).with_name("remediation.yaml")

_UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_DBUS_PATH_RE = re.compile(r"/org/freedesktop/NetworkManager/(Devices|Checkpoint)/\d+")
_OPTION_NAME_RE = re.compile(r"[a-z][a-z0-9_]{0,31}")
_OPTION_VALUE_RE = re.compile(r"[A-Za-z0-9_.:,/+ -]{0,256}")
_FILE_RE = re.compile(r"/(etc|run|usr/lib)/[A-Za-z0-9_./@:+-]{1,200}")

#: Options that only mean something with one monitor, removed when switching to the other, so
#: that NetworkManager and the kernel never see both (the seed's trap: they are exclusive).
_ARP_ONLY = ("arp_interval", "arp_ip_target", "arp_validate", "arp_all_targets", "arp_missed_max")
_MII_ONLY = ("miimon", "updelay", "downdelay")

#: sysfs files compared before/after: the bond's configuration, not its moving parts.
_ARP_VALIDATE = ("none", "active", "backup", "all", "filter", "filter_active", "filter_backup")
_RUNTIME_KEYS = ("mode", "miimon", "arp_interval", "arp_ip_target", "arp_validate", "updelay",
                 "downdelay", "primary", "slaves")


class RemediationError(Exception):
    """The fix cannot be planned or run as asked; ``str()`` says why and what to do."""


class PlanRefused(RemediationError):
    """The host's state does not allow the plan (or no longer matches it); nothing was changed."""


class _Session(Protocol):  # ssh_exec.HostSession
    async def run(self, command: str, *, timeout: float | None = None) -> Any: ...


# --- validation and rendering -------------------------------------------------------------------


def validate_interface(name: object, what: str = "interface") -> str:
    """An interface name, by the runbook engine's rule (``runbooks.validation``)."""
    from runbooks.validation import validate_interface_name

    try:
        return validate_interface_name(name)
    except ValueError as exc:
        raise RemediationError(f"{what}: {exc}") from None


def _validate_uuid(value: str) -> str:
    if not _UUID_RE.fullmatch(value):
        raise RemediationError(f"NetworkManager returned {value!r}, which is not a connection UUID")
    return value


def _validate_dbus_path(value: str) -> str:
    if not _DBUS_PATH_RE.fullmatch(value):
        raise RemediationError(f"unexpected D-Bus object path {value!r} from NetworkManager")
    return value


def _validate_ipv4_target(value: object) -> str:
    try:
        ip = ipaddress.IPv4Address(str(value))
    except ValueError:
        raise RemediationError(f"invalid ARP/ping target {value!r}: expected an IPv4 address") from None
    if ip.is_multicast or ip.is_unspecified or ip.is_loopback or str(ip) == "255.255.255.255":
        raise RemediationError(f"invalid target {value}: must be a unicast address on the bond's network")
    return str(ip)


def _validate_options(options: Mapping[str, str]) -> None:
    for key, value in options.items():
        if not _OPTION_NAME_RE.fullmatch(key) or not _OPTION_VALUE_RE.fullmatch(value):
            raise RemediationError(f"bond option {key}={value!r} has characters bondbot will not pass on")


@functools.lru_cache(maxsize=1)
def _spec() -> dict[str, Any]:
    return yaml.safe_load(REMEDIATION_YAML.read_text())


@functools.lru_cache(maxsize=1)
def _env() -> Any:
    import jinja2

    env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=False)
    env.filters["q"] = lambda v: shlex.quote(str(v))
    return env


def render(key: str, **values: Any) -> str:
    """Render the template at dotted ``key`` of remediation.yaml (e.g. ``nm.modify``)."""
    node: Any = _spec()
    for part in key.split("."):
        node = node[part]
    text = _env().from_string(node).render(**values)
    return text.strip()


def _sh(script: str) -> str:
    """Run ``script`` through ``sh -c`` so redirections and ``if`` also work under ``sudo -n``."""
    return f"sh -c {shlex.quote(script)}"


# --- the monitor --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Monitor:
    """The link monitor to enable: MII (``miimon``) or ARP (``arp_interval`` + targets), never both."""

    kind: Literal["miimon", "arp"]
    miimon: int = 0
    arp_interval: int = 0
    arp_targets: tuple[str, ...] = ()
    arp_validate: str | None = None  # None: leave as it is

    @classmethod
    def mii(cls, ms: int = 100) -> Monitor:
        if isinstance(ms, bool) or not isinstance(ms, int) or not 10 <= ms <= 10000:
            raise RemediationError(f"invalid miimon {ms!r}: expected milliseconds from 10 to 10000 (the seed: 100; 200 or 500 if 100 flaps)")
        return cls("miimon", miimon=ms)

    @classmethod
    def arp(cls, interval_ms: int, targets: list[str] | tuple[str, ...], validate: str | None = None) -> Monitor:
        if isinstance(interval_ms, bool) or not isinstance(interval_ms, int) or not 10 <= interval_ms <= 60000:
            raise RemediationError(f"invalid arp_interval {interval_ms!r}: expected milliseconds from 10 to 60000")
        checked = tuple(dict.fromkeys(_validate_ipv4_target(t) for t in targets))
        if not checked:
            raise RemediationError("ARP monitoring needs at least one --arp-target (e.g. the gateway)")
        if len(checked) > 16:
            raise RemediationError("at most 16 ARP targets (the bonding driver's limit)")
        if validate is not None and validate not in _ARP_VALIDATE:
            raise RemediationError(f"invalid arp_validate {validate!r}: one of {', '.join(_ARP_VALIDATE)}")
        return cls("arp", arp_interval=interval_ms, arp_targets=checked, arp_validate=validate)

    def options(self) -> dict[str, str]:
        if self.kind == "miimon":
            return {"miimon": str(self.miimon)}
        opts = {"arp_interval": str(self.arp_interval), "arp_ip_target": ",".join(self.arp_targets)}
        if self.arp_validate is not None:
            opts["arp_validate"] = self.arp_validate
        return opts

    def describe(self) -> str:
        if self.kind == "miimon":
            return f"MII link monitoring every {self.miimon} ms (miimon={self.miimon})"
        validate = f", arp_validate={self.arp_validate}" if self.arp_validate else ""
        return (f"ARP monitoring every {self.arp_interval} ms to {', '.join(self.arp_targets)} "
                f"(arp_interval={self.arp_interval}, arp_ip_target={','.join(self.arp_targets)}{validate})")


# --- pure logic ---------------------------------------------------------------------------------


def parse_sysfs_bonding(text: str) -> dict[str, str]:
    """``grep -H '' /sys/class/net/<bond>/bonding/*`` -> {file name: value}.

    Empty files (no primary, no ARP targets) print nothing: their keys are absent, read as "".
    """
    values: dict[str, str] = {}
    for line in text.splitlines():
        path, sep, value = line.partition(":")
        if not sep or "/bonding/" not in path:
            continue
        values[path.rsplit("/", 1)[1]] = value.strip()
    return values


def merge_bond_options(existing: Mapping[str, str], monitor: Monitor) -> tuple[dict[str, str], list[str]]:
    """The profile's options with ``monitor`` set, every other option kept, in the same order.

    Returns the new options and the keys removed because they belong to the other monitor
    (``miimon`` and ``arp_interval`` are exclusive; ``updelay``/``downdelay`` only work with MII,
    ``arp_validate`` and friends only with ARP).
    """
    drop = _ARP_ONLY if monitor.kind == "miimon" else _MII_ONLY
    wanted = monitor.options()
    merged: dict[str, str] = {}
    removed: list[str] = []
    for key, value in existing.items():
        if key in wanted:
            merged[key] = wanted[key]
        elif key in drop:
            if value not in ("", "0", "none") or key in ("miimon", "arp_interval"):
                removed.append(key)
        else:
            merged[key] = value
    for key, value in wanted.items():
        merged.setdefault(key, value)
    _validate_options(merged)
    return merged, removed


def format_bond_options(options: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in options.items())


def _sysfs_write(bond: str, option: str, value: str) -> str:
    return _sh(render("runtime.set_option", bond=bond, option=option, value=value))


def _targets(value: str) -> list[str]:
    return [t for t in re.split(r"[\s,]+", value.strip()) if t]


def runtime_apply_commands(bond: str, runtime: Mapping[str, str], monitor: Monitor) -> list[str]:
    """sysfs writes that switch the running bond to ``monitor``.

    For ARP the targets go in before the interval (an interval without targets marks every port
    down); setting ``arp_interval`` makes the kernel turn MII off and vice versa.
    """
    if monitor.kind == "miimon":
        cmds = [_sysfs_write(bond, "miimon", str(monitor.miimon))]
        for t in _targets(runtime.get("arp_ip_target", "")):
            cmds.append(_sysfs_write(bond, "arp_ip_target", f"-{t}"))
        return cmds
    current = set(_targets(runtime.get("arp_ip_target", "")))
    cmds = [_sysfs_write(bond, "arp_ip_target", f"+{t}") for t in monitor.arp_targets if t not in current]
    cmds += [_sysfs_write(bond, "arp_ip_target", f"-{t}") for t in sorted(current - set(monitor.arp_targets))]
    if monitor.arp_validate is not None:
        cmds.append(_sysfs_write(bond, "arp_validate", monitor.arp_validate))
    cmds.append(_sysfs_write(bond, "arp_interval", str(monitor.arp_interval)))
    return cmds


def runtime_restore_commands(bond: str, before: Mapping[str, str]) -> list[str]:
    """sysfs writes that put the monitor back as ``before`` had it (whatever was changed since).

    Order matters: the monitor that was on is written last, because writing one monitor's
    interval makes the kernel switch the other one off.
    """
    miimon = before.get("miimon", "0") or "0"
    arp_interval = before.get("arp_interval", "0") or "0"
    targets = _targets(before.get("arp_ip_target", ""))
    validate = (before.get("arp_validate") or "none").split()[0]  # sysfs prints "none 0"
    cmds: list[str] = [_sysfs_write(bond, "arp_validate", validate)]
    if arp_interval != "0":
        cmds.append(_sh(f"for t in $(cat /sys/class/net/{shlex.quote(bond)}/bonding/arp_ip_target); "
                        f"do echo -$t > /sys/class/net/{shlex.quote(bond)}/bonding/arp_ip_target; done"))
        cmds += [_sysfs_write(bond, "arp_ip_target", f"+{t}") for t in targets]
        cmds.append(_sysfs_write(bond, "arp_interval", arp_interval))
    else:
        cmds.append(_sysfs_write(bond, "arp_interval", "0"))
        cmds.append(_sh(f"for t in $(cat /sys/class/net/{shlex.quote(bond)}/bonding/arp_ip_target); "
                        f"do echo -$t > /sys/class/net/{shlex.quote(bond)}/bonding/arp_ip_target; done"))
        cmds += [_sysfs_write(bond, "arp_ip_target", f"+{t}") for t in targets]
        cmds.append(_sysfs_write(bond, "miimon", miimon))
        for key in ("updelay", "downdelay"):
            if before.get(key, "0") not in ("", "0") and miimon != "0":
                cmds.append(_sysfs_write(bond, key, before[key]))
    return cmds


@dataclass(frozen=True)
class BondState:
    """What bondbot read from the host about one bond; ``fingerprint()`` is what a plan pins."""

    bond: str
    runtime: dict[str, str]
    slaves: dict[str, str]  # port -> MII status as the bonding driver reports it
    active_slave: str | None
    miimon: int
    arp_interval: int
    nm_uuid: str | None = None
    nm_id: str | None = None
    bond_options: dict[str, str] | None = None
    nm_file: str | None = None
    nm_gateway: str | None = None
    route_gateway: str | None = None
    device_paths: tuple[str, ...] = ()
    config_files: tuple[str, ...] = ()
    has_systemd_run: bool = False

    @property
    def managed_by_nm(self) -> bool:
        return self.nm_uuid is not None

    @property
    def monitoring(self) -> bool:
        return self.miimon > 0 or self.arp_interval > 0

    def fingerprint(self) -> dict[str, Any]:
        return {
            "runtime": {k: self.runtime.get(k, "") for k in _RUNTIME_KEYS},
            "nm_uuid": self.nm_uuid,
            "bond_options": self.bond_options,
        }

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def fingerprint_differences(before: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
    """Human-readable differences between two fingerprints (empty: the same)."""
    diffs: list[str] = []
    rb, rn = before.get("runtime", {}), now.get("runtime", {})
    for key in sorted(set(rb) | set(rn)):
        if rb.get(key, "") != rn.get(key, ""):
            diffs.append(f"{key}: was {rb.get(key, '')!r}, now {rn.get(key, '')!r}")
    if before.get("nm_uuid") != now.get("nm_uuid"):
        diffs.append(f"NetworkManager profile: was {before.get('nm_uuid')}, now {now.get('nm_uuid')}")
    ob, on = before.get("bond_options"), now.get("bond_options")
    if ob != on:
        fmt = lambda o: format_bond_options(o) if o is not None else None  # noqa: E731
        diffs.append(f"bond.options: was {fmt(ob)!r}, now {fmt(on)!r}")
    return diffs


@dataclass(frozen=True)
class PlannedCommand:
    """One command of a plan and why it is there."""

    purpose: str
    command: str

    def to_json(self) -> dict[str, str]:
        return {"purpose": self.purpose, "command": self.command}


CHECKPOINT_PLACEHOLDER = "<checkpoint>"
RUN_PLACEHOLDER = "<run>"  # a fresh random id per run, in the host-side undo's unit and flag names
#: Seconds one change or verification command may take. Short, because a command that hangs
#: usually means the change cut the bot's path; the checkpoint's timeout is the real deadline.
COMMAND_TIMEOUT = 15.0
#: Seconds after the checkpoint's timeout at which the host's own undo restores runtime values:
#: NetworkManager's reactivation comes first, the watchdog fixes what it leaves.
WATCHDOG_GRACE = 8


@dataclass(frozen=True)
class FixPlan:
    """Everything the operator approves: the exact commands, their verification and rollback."""

    host: str
    bond: str
    backend: Literal["networkmanager", "sysfs"]
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

    def rollback_note(self) -> dict[str, Any]:
        """What the incident log records before anything changes."""
        return {
            "host": self.host,
            "bond": self.bond,
            "plan_hash": self.plan_hash,
            "nm_profile": {"uuid": self.state.nm_uuid, "id": self.state.nm_id, "file": self.state.nm_file},
            "bond_options_before": self.before_options,
            "runtime_before": self.before["runtime"],
            "checkpoint_timeout_s": self.checkpoint_timeout if self.backend == "networkmanager" else None,
            "restore_commands": [c.command for c in self.rollback],
            "text": self.render_rollback(),
        }

    def render_rollback(self) -> str:
        lines = [f"Rollback for {self.host} {self.bond}:"]
        if self.before_options is not None:
            lines.append(f"  bond.options before: {self.before_options}")
        rt = self.before["runtime"]
        lines.append("  runtime before: " + ", ".join(f"{k}={rt.get(k) or '-'}" for k in _RUNTIME_KEYS))
        if self.backend == "networkmanager":
            lines.append(f"  NetworkManager rolls back by itself if the change is not confirmed within "
                         f"{self.checkpoint_timeout} s (checkpoint).")
        lines.append("  restore commands, in order:")
        lines += [f"    {c.command}" for c in self.rollback]
        return "\n".join(lines)

    def render_text(self) -> str:
        """The plan as shown before approval: commands, verification, rollback, hash."""
        out = [f"Fix plan {self.plan_hash[:12]}: {self.summary()}"]
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
            and set(_targets(state.runtime.get("arp_ip_target", ""))) == set(monitor.arp_targets):
        raise PlanRefused(f"{host} {bond}: ARP monitoring is already set this way; nothing to change")
    if not state.slaves:
        raise PlanRefused(f"{host} {bond}: the bond has no ports; a link monitor cannot help")
    warnings: list[str] = []
    if target is None:
        target = state.nm_gateway or state.route_gateway
    if target is None:
        raise PlanRefused(f"{host} {bond}: no gateway found on {bond} (profile or route); pass the "
                          "address to ping after the change (--target IP)")
    target = _validate_ipv4_target(target)
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
    before_options = new_options = None
    removed: list[str] = []
    restore_runtime = runtime_restore_commands(bond, state.runtime)
    flag = render("watchdog.flag", bond=bond)
    unit = render("watchdog.unit", bond=bond)
    watchdog = PlannedCommand(
        f"arm the host's own undo: {checkpoint_timeout + WATCHDOG_GRACE} s from now it restores the runtime "
        "values unless bondbot confirms",
        _sh(render("watchdog.arm", flag=flag, unit=unit,
                   script=render("watchdog.script", delay=checkpoint_timeout + WATCHDOG_GRACE, flag=flag,
                                 restore="; ".join(restore_runtime)))))
    confirm = PlannedCommand("confirm: disarm the host's own undo", _sh(render("watchdog.confirm", flag=flag, unit=unit)))

    if state.managed_by_nm:
        backend: Literal["networkmanager", "sysfs"] = "networkmanager"
        uuid = _validate_uuid(state.nm_uuid or "")
        assert state.bond_options is not None
        before_options = format_bond_options(state.bond_options)
        merged, removed = merge_bond_options(state.bond_options, monitor)
        new_options = format_bond_options(merged)
        paths = [_validate_dbus_path(p) for p in state.device_paths]
        if not paths:
            raise PlanRefused(f"{host} {bond}: NetworkManager did not name its device objects; cannot checkpoint")
        steps.append(PlannedCommand(
            f"NetworkManager checkpoint of {bond} and its ports; rolls back by itself after "
            f"{checkpoint_timeout} s unless confirmed",
            render("checkpoint.create", device_paths=paths, timeout=checkpoint_timeout)))
        steps.append(watchdog)
        steps.append(PlannedCommand("save the new options in the profile (keeps every other option)",
                                    render("nm.modify", uuid=uuid, options=new_options)))
        for cmd in runtime_apply_commands(bond, state.runtime, monitor):
            steps.append(PlannedCommand("runtime change through the bonding driver (no outage)", cmd))
        steps.append(PlannedCommand("NetworkManager applies the profile to the running bond without taking it down",
                                    render("nm.reapply", bond=bond)))
        script = render("nm.bounce_script", uuid=uuid)
        bounce = (render("nm.bounce_systemd", unit=f"bondbot-bounce-{bond}", script=script) if state.has_systemd_run
                  else _sh(render("nm.bounce_nohup", script=script)))
        fallback.append(PlannedCommand(
            "the seed's down/up, detached on the host so a dropped SSH session cannot leave the bond down",
            bounce))
        verify.append(PlannedCommand("the profile has the new options",
                                     f"nmcli -t connection show uuid {shlex.quote(uuid)}"))
        if state.nm_file:
            verify.append(PlannedCommand("the profile on disk has them (survives a reboot)",
                                         render("read_state.persisted", filename=state.nm_file)))
        steps.append(confirm)
        steps.append(PlannedCommand("confirm: destroy the checkpoint (after verification passed)",
                                    render("checkpoint.destroy", checkpoint=CHECKPOINT_PLACEHOLDER)))
        rollback.append(PlannedCommand("NetworkManager restores profile and bond (while the checkpoint exists)",
                                        render("checkpoint.rollback", checkpoint=CHECKPOINT_PLACEHOLDER)))
        rollback.append(PlannedCommand("the profile's options as before",
                                       render("nm.modify", uuid=uuid, options=before_options)))
        rollback.append(PlannedCommand("apply them to the running bond", render("nm.reapply", bond=bond)))
    else:
        backend = "sysfs"
        steps.append(watchdog)
        for cmd in runtime_apply_commands(bond, state.runtime, monitor):
            steps.append(PlannedCommand("runtime change through the bonding driver (no outage)", cmd))
        steps.append(confirm)
        persistence = persistence_steps(state, monitor)
        warnings.append("NetworkManager does not manage this bond: the runtime change is lost at reboot "
                        "unless the persistence steps below are applied")
    for cmd in restore_runtime:
        rollback.append(PlannedCommand("runtime values as before", cmd))
    verify.append(PlannedCommand(f"the gateway {target} answers through {bond}",
                                 render("verify.gateway", count=_spec()["defaults"]["verify_pings"],
                                        bond=bond, target=target)))
    plan = FixPlan(
        host=host, bond=bond, backend=backend, monitor=monitor, before=state.fingerprint(),
        before_options=before_options, new_options=new_options, removed_options=tuple(removed),
        steps=tuple(steps), fallback=tuple(fallback), verify=tuple(verify), rollback=tuple(rollback),
        persistence=persistence, checkpoint_timeout=checkpoint_timeout, target=target,
        warnings=tuple(warnings), state=state,
    )
    return _with_hash(plan)


def _with_hash(plan: FixPlan) -> FixPlan:
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


# --- reading the host ---------------------------------------------------------------------------


def _parse_busctl_path(stdout: str) -> str:
    m = re.match(r'\s*o\s+"([^"]+)"', stdout)
    if not m:
        raise RemediationError(f"unexpected busctl output {stdout.strip()!r}")
    return _validate_dbus_path(m.group(1))


def _split_terse(line: str) -> list[str]:
    """Split an ``nmcli -t`` line on unescaped ':' and unescape the fields."""
    fields, cur, esc = [], [], False
    for ch in line:
        if esc:
            cur.append(ch)
            esc = False
        elif ch == "\\":
            esc = True
        elif ch == ":":
            fields.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    fields.append("".join(cur))
    return fields


def _gateway_from_route(text: str) -> str | None:
    m = re.search(r"^default via (\d+\.\d+\.\d+\.\d+)", text, re.M)
    return m.group(1) if m else None


async def read_bond_state(session: _Session, bond: str, *, record: list[Any] | None = None) -> BondState:
    """Read what the plan, the precheck and the rollback check compare (read-only commands)."""
    from runbooks.bonding.parsers import parse_nmcli, parse_proc_bonding

    bond = validate_interface(bond, "bond")

    async def run(cmd: str) -> Any:
        result = await session.run(cmd)
        if record is not None:
            record.append(result)
        return result

    sysfs, proc, active, route, sdrun = await asyncio.gather(
        run(render("read_state.sysfs", bond=bond)),
        run(render("read_state.proc", bond=bond)),
        run(render("read_state.nm_active")),
        run(render("read_state.default_gateway", bond=bond)),
        run(_sh("command -v systemd-run")),
    )
    if proc.exit_status != 0:
        raise PlanRefused(f"{bond} is not a bond on this host ({proc.failure_reason}): "
                          f"cat /proc/net/bonding/{bond} failed")
    parsed = parse_proc_bonding(proc.stdout, source=f"cat /proc/net/bonding/{bond}") \
        if "source" in parse_proc_bonding.__code__.co_varnames else parse_proc_bonding(proc.stdout)
    runtime = parse_sysfs_bonding(sysfs.stdout)
    if "miimon" not in runtime:
        raise RemediationError(f"could not read /sys/class/net/{bond}/bonding ({sysfs.failure_reason})")
    slaves = {s.name: (s.mii_status or "unknown") for s in parsed.slaves}
    nm_uuid = nm_id = nm_file = nm_gw = None
    options: dict[str, str] | None = None
    paths: list[str] = []
    config_files: tuple[str, ...] = ()
    if active.exit_status == 0:
        for line in active.stdout.splitlines():
            f = _split_terse(line)
            if len(f) >= 4 and f[1] == bond and f[2] == "bond":
                nm_uuid, nm_id = _validate_uuid(f[0]), ":".join(f[3:])
    if nm_uuid is not None:
        prof = await run(f"nmcli -t connection show uuid {shlex.quote(nm_uuid)}")
        if prof.exit_status != 0:
            raise RemediationError(f"could not read the NetworkManager profile {nm_uuid}: {prof.failure_reason}")
        conn = parse_nmcli(prof.stdout, source=f"nmcli -t connection show uuid {nm_uuid}")
        options = dict(conn.bond_options)
        nm_gw = conn.properties.get("ipv4.gateway") or None
        ports = [bond, *slaves]
        files, *device_results = await asyncio.gather(
            run(render("read_state.nm_files")),
            *(run(render("checkpoint.device_path", iface=validate_interface(i))) for i in ports))
        for line in files.stdout.splitlines():
            f = _split_terse(line)
            if len(f) >= 2 and f[0] == nm_uuid and _FILE_RE.fullmatch(":".join(f[1:])):
                nm_file = ":".join(f[1:])
        for iface, res in zip(ports, device_results):
            if res.exit_status != 0:
                raise RemediationError(f"NetworkManager has no device {iface}: {res.failure_reason}")
            paths.append(_parse_busctl_path(res.stdout))
    else:
        cfg = await run(_sh(
            "grep -l -s -w -- " + shlex.quote(bond) + " /etc/netplan/*.yaml /etc/network/interfaces "
            "/etc/network/interfaces.d/* /etc/sysconfig/network-scripts/ifcfg-*; true"))
        config_files = tuple(ln.strip() for ln in cfg.stdout.splitlines() if _FILE_RE.fullmatch(ln.strip()))

    def as_int(key: str) -> int:
        try:
            return int(runtime.get(key, "0") or "0")
        except ValueError:
            return 0

    return BondState(
        bond=bond, runtime=runtime, slaves=slaves, active_slave=parsed.active_slave,
        miimon=as_int("miimon"), arp_interval=as_int("arp_interval"),
        nm_uuid=nm_uuid, nm_id=nm_id, bond_options=options, nm_file=nm_file, nm_gateway=nm_gw,
        route_gateway=_gateway_from_route(route.stdout) if route.exit_status == 0 else None,
        device_paths=tuple(paths), config_files=config_files,
        has_systemd_run=sdrun.exit_status == 0,
    )


async def plan_fix(session: _Session, bond: str, monitor: Monitor | None = None, *, host: str | None = None,
                   target: str | None = None, checkpoint_timeout: int | None = None) -> FixPlan:
    """Read the host and build the plan that enables ``monitor`` (default: miimon=100)."""
    monitor = monitor or Monitor.mii(_spec()["defaults"]["miimon"])
    name = host or getattr(getattr(session, "host", None), "name", None) or "host"
    state = await read_bond_state(session, bond)
    return build_fix_plan(name, state, monitor, target=target,
                          checkpoint_timeout=checkpoint_timeout or _spec()["defaults"]["checkpoint_timeout_seconds"])


# --- applying -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    """One verification check and what proved it (or did not)."""

    name: str
    ok: bool
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail}


@dataclass(frozen=True)
class StepRecord:
    """One command that was run, with its result."""

    purpose: str
    command: str
    exit_status: int | None
    stdout: str
    stderr: str
    duration: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class FixResult:
    """What happened. ``status``: verified | rolled_back | refused | failed (see ``message``)."""

    plan_hash: str
    host: str
    bond: str
    status: str
    message: str
    steps: list[StepRecord] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    checkpoint: str | None = None
    rolled_back: bool = False
    rolled_back_by: str | None = None  # "bondbot" | "host (checkpoint timeout)"
    host_as_before: bool | None = None
    differences: list[str] = field(default_factory=list)
    fallback_used: bool = False
    left_by_checkpoint: list[str] = field(default_factory=list)  # what NM's rollback did not restore
    duration: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == "verified"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["ok"] = self.ok
        return data

    def render_text(self) -> str:
        out = [f"{self.status.upper()}: {self.message}"]
        for c in self.checks:
            out.append(f"  [{'ok' if c.ok else 'FAIL'}] {c.name}: {c.detail}")
        if self.rolled_back:
            out.append(f"  rolled back by {self.rolled_back_by}; host as before: "
                       f"{'yes' if self.host_as_before else 'NO'}")
            out += [f"    differs: {d}" for d in self.differences]
        return "\n".join(out)


class _Recorder:
    """Writes to the incident log when given one; does nothing otherwise."""

    def __init__(self, store: Any, incident_id: str | None, actor: str) -> None:
        self.store, self.incident_id, self.actor = store, incident_id, actor

    @property
    def active(self) -> bool:
        return self.store is not None and self.incident_id is not None

    def event(self, kind: str, payload: dict[str, Any]) -> None:
        if self.active:
            self.store.append(self.incident_id, actor=self.actor, kind=kind, payload=payload)

    def rollback_note(self, plan: FixPlan) -> None:
        if not self.active:
            return
        note = plan.rollback_note()
        self.store.add_rollback_note(
            self.incident_id, actor=self.actor, before=note, restore_commands=note["restore_commands"],
            for_change=f"plan {plan.plan_hash[:12]}: {plan.summary()}")

    def status(self, status: str, reason: str) -> None:
        if self.active and hasattr(self.store, "set_status"):
            try:
                self.store.set_status(self.incident_id, status, actor=self.actor, reason=reason)
            except Exception as exc:  # an incident already in another state: record, do not fail the fix
                self.event("note", {"text": f"status not changed to {status}: {exc}"})


class _HostLost(Exception):
    """The host stopped answering during the change."""


async def apply_fix(plan: FixPlan, *, pool: Any, actor: str, incident_store: Any = None,
                    incident_id: str | None = None, approved_hash: str | None = None) -> FixResult:
    """Run an approved plan: precheck, rollback note, change, verify, confirm or roll back.

    ``approved_hash``, when given, must equal ``plan.plan_hash`` (the bot passes the hash the
    approver clicked).
    """
    started = time.monotonic()
    rec = _Recorder(incident_store, incident_id, actor)
    result = FixResult(plan_hash=plan.plan_hash, host=plan.host, bond=plan.bond, status="failed", message="")
    if approved_hash is not None and approved_hash != plan.plan_hash:
        result.status, result.message = "refused", "the approved plan hash does not match this plan; nothing was changed"
        rec.event("refusal", {"reason": result.message, "plan_hash": plan.plan_hash})
        return result
    if _with_hash(plan).plan_hash != plan.plan_hash:
        result.status, result.message = "refused", "the plan was altered after it was hashed; nothing was changed"
        rec.event("refusal", {"reason": result.message, "plan_hash": plan.plan_hash})
        return result

    session = pool.session(plan.host, budget=plan.checkpoint_timeout * 3 + 120)

    run_id = secrets.token_hex(4)

    async def step(purpose: str, command: str, *, timeout: float = COMMAND_TIMEOUT, sess: Any = None) -> Any:
        command = command.replace(RUN_PLACEHOLDER, run_id)
        res = await (sess or session).run(command, timeout=timeout)
        rec_ = StepRecord(purpose, command, res.exit_status, res.stdout, res.stderr, round(res.duration, 3))
        result.steps.append(rec_)
        rec.event("command", rec_.to_json())
        if res.exit_status is None and (res.timed_out or "connection lost" in res.stderr
                                        or "could not run" in res.stderr):
            raise _HostLost(f"{command}: {res.failure_reason or res.stderr.strip()}")
        return res

    # 1. precheck
    reads: list[Any] = []
    try:
        now = await read_bond_state(session, plan.bond, record=reads)
    except Exception as exc:
        result.status, result.message = "refused", f"precheck could not read the host: {exc}; nothing was changed"
        rec.event("refusal", {"reason": result.message, "plan_hash": plan.plan_hash})
        return result
    for res in reads:
        rec.event("command", {"purpose": "precheck: read the bond again", "command": res.command,
                              "exit_status": res.exit_status, "stdout": res.stdout, "stderr": res.stderr})
    diffs = fingerprint_differences(plan.before, now.fingerprint())
    if diffs:
        result.status = "refused"
        result.message = ("the bond changed since the plan was made; nothing was changed. Triage again. "
                          + "; ".join(diffs))
        result.differences = diffs
        rec.event("refusal", {"reason": result.message, "plan_hash": plan.plan_hash})
        return result

    # 2. the rollback note, before anything changes
    rec.rollback_note(plan)
    rec.status("fixing", f"applying plan {plan.plan_hash[:12]}")

    checkpoint: str | None = None
    checkpoint_deadline = 0.0
    armed = False
    confirm_cmd: str | None = None
    failure: str | None = None
    lost = False
    try:
        confirms = [p for p in plan.steps if p.purpose.startswith("confirm:")]
        confirm_cmd = next((p.command for p in confirms if "CheckpointDestroy" not in p.command), None)
        for planned in plan.steps:
            if planned in confirms:
                continue  # confirmation comes after verification
            if "CheckpointCreate" in planned.command or planned.purpose.startswith("arm the host's own undo"):
                res = await step(planned.purpose, planned.command)
                if res.exit_status != 0:
                    raise RemediationError(f"{planned.purpose.split(':')[0]} failed: {res.failure_reason}")
                if "CheckpointCreate" in planned.command:
                    checkpoint = _parse_busctl_path(res.stdout)
                    result.checkpoint = checkpoint
                    rec.event("note", {"text": f"checkpoint {checkpoint} created; NetworkManager rolls back by "
                                               f"itself in {plan.checkpoint_timeout} s unless confirmed"})
                else:
                    armed = True
                if not checkpoint_deadline:
                    checkpoint_deadline = time.monotonic() + plan.checkpoint_timeout
                continue
            res = await step(planned.purpose, planned.command)
            if res.exit_status != 0:
                if planned.command.startswith("nmcli device reapply") and plan.fallback:
                    await _bounce(plan, step, result, session)
                    continue
                raise RemediationError(f"{planned.command}: {res.failure_reason}")
        # 3. verify over a NEW connection
        await pool.close_host(plan.host)
        checks = await _verify(plan, pool, step)
        result.checks = checks
        rec.event("verification", {"checks": [c.to_json() for c in checks]})
        failed = [c for c in checks if not c.ok]
        if failed:
            raise RemediationError("verification failed: " + "; ".join(f"{c.name}: {c.detail}" for c in failed))
        if time.monotonic() >= checkpoint_deadline:
            raise _HostLost("verification finished after the rollback timeout: the host rolls back by itself")
        for planned in confirms:
            command = planned.command
            if CHECKPOINT_PLACEHOLDER in command:
                if checkpoint is None:
                    continue
                command = render("checkpoint.destroy", checkpoint=checkpoint)
            res = await step(planned.purpose, command)
            if res.exit_status != 0:
                raise RemediationError(f"could not confirm ({planned.purpose}): {res.failure_reason}")
    except _HostLost as exc:
        failure, lost = str(exc), True
    except Exception as exc:  # noqa: BLE001 - any failure leads to a rollback and a report
        failure = str(exc) or type(exc).__name__
        from ssh_exec.errors import SshExecError

        lost = isinstance(exc, SshExecError)

    if failure is None:
        result.status = "verified"
        result.message = f"{plan.monitor.describe()} is on for {plan.bond} and verified"
        if plan.persistence:
            result.message += "; apply the persistence steps to keep it after a reboot"
        rec.status("verified", result.message)
        result.duration = round(time.monotonic() - started, 2)
        return result

    # 4. roll back
    rec.event("note", {"text": f"change failed: {failure}; rolling back"})
    await _rollback(plan, pool, result, rec, step, checkpoint, checkpoint_deadline, lost, armed, confirm_cmd)
    result.message = (f"{failure}. Rolled back by {result.rolled_back_by}; host "
                      + ("is as before" if result.host_as_before else "is NOT as before: " + "; ".join(result.differences)))
    result.status = "rolled_back" if result.host_as_before else "failed"
    rec.event("rollback", {"by": result.rolled_back_by, "host_as_before": result.host_as_before,
                           "differences": result.differences, "reason": failure})
    rec.status("rolled_back", result.message)
    result.duration = round(time.monotonic() - started, 2)
    return result


async def _bounce(plan: FixPlan, step: Any, result: FixResult, session: Any) -> None:
    """The fallback: down/up detached on the host, then wait until the bond is back."""
    result.fallback_used = True
    res = await step(plan.fallback[0].purpose, plan.fallback[0].command)
    if res.exit_status != 0:
        raise RemediationError(f"the detached down/up could not be started: {res.failure_reason}")
    await asyncio.sleep(3)


async def _verify(plan: FixPlan, pool: Any, step: Any) -> list[Check]:
    from runbooks.bonding.parsers import parse_nmcli, parse_proc_bonding

    session = pool.session(plan.host, budget=plan.checkpoint_timeout)
    checks: list[Check] = []
    deadline = time.monotonic() + 10
    # The bonding driver needs a few monitor intervals to report fresh MII states after a change.
    while True:
        proc = await step("verify: bonding driver state", render("read_state.proc", bond=plan.bond),
                          sess=session, timeout=15)
        if proc.exit_status != 0:
            return [Check("bond", False, f"cannot read /proc/net/bonding/{plan.bond}: {proc.failure_reason}")]
        parsed = parse_proc_bonding(proc.stdout)
        down = [s.name for s in parsed.slaves if not s.mii_up]
        if not down or time.monotonic() > deadline:
            break
        await asyncio.sleep(1)
    m = plan.monitor
    if m.kind == "miimon":
        ok = parsed.miimon == m.miimon and parsed.arp_interval == 0
        detail = parsed.lines.get("miimon", f"MII Polling Interval (ms): {parsed.miimon}")
    else:
        ok = parsed.arp_interval == m.arp_interval and set(parsed.arp_targets) == set(m.arp_targets) \
            and not parsed.miimon
        detail = f"arp_interval={parsed.arp_interval} targets={','.join(parsed.arp_targets)} miimon={parsed.miimon}"
    checks.append(Check("monitor on", ok, detail))
    checks.append(Check("every port up", not down and bool(parsed.slaves),
                        ", ".join(f"{s.name}: MII {s.mii_status}" for s in parsed.slaves)))
    if plan.backend == "networkmanager":
        uuid = plan.state.nm_uuid or ""
        prof = await step("verify: the saved profile", f"nmcli -t connection show uuid {shlex.quote(uuid)}",
                          sess=session)
        saved = parse_nmcli(prof.stdout).bond_options if prof.exit_status == 0 else {}
        wanted = merge_bond_options(plan.state.bond_options or {}, m)[0]
        checks.append(Check("profile has the options", saved == wanted,
                            f"bond.options={format_bond_options(saved)}"))
        if plan.state.nm_file:
            per = await step("verify: the profile on disk", render("read_state.persisted", filename=plan.state.nm_file),
                             sess=session)
            needle = f"miimon={m.miimon}" if m.kind == "miimon" else f"arp_interval={m.arp_interval}"
            checks.append(Check("persisted on disk", needle in per.stdout,
                                f"{plan.state.nm_file}: {' '.join(per.stdout.split()) or 'no monitor line'}"))
    target = plan.target
    ping = await step("verify: the gateway answers",
                      render("verify.gateway", count=_spec()["defaults"]["verify_pings"], bond=plan.bond,
                             target=_validate_ipv4_target(target)), sess=session, timeout=20)
    last = ping.stdout.strip().splitlines()[-2:] if ping.stdout.strip() else [ping.stderr.strip()]
    checks.append(Check("gateway answers", ping.exit_status == 0, f"{target}: {' / '.join(last)}"))
    return checks


async def _rollback(plan: FixPlan, pool: Any, result: FixResult, rec: _Recorder, step: Any,
                    checkpoint: str | None, checkpoint_deadline: float, lost: bool, armed: bool,
                    disarm: str | None) -> None:
    result.rolled_back = True
    result.rolled_back_by = "bondbot"
    await pool.close_host(plan.host)
    session = pool.session(plan.host, budget=plan.checkpoint_timeout * 2 + 120)

    async def reachable() -> bool:
        try:
            res = await session.run("true", timeout=10)
            return res.exit_status == 0
        except Exception:  # noqa: BLE001 - unreachable for any reason
            return False

    if lost or not await reachable():
        # The host's own safety nets: NetworkManager's checkpoint at the deadline, then the armed
        # undo for the runtime values. Wait for both, then come back over a new connection.
        nets = [n for n, on in (("NetworkManager's checkpoint", checkpoint is not None),
                                ("bondbot's armed undo", armed)) if on]
        result.rolled_back_by = "the host itself (" + " and ".join(nets) + ")" if nets else "nobody"
        rec.event("note", {"text": "host unreachable; waiting for its own rollback: " + (", ".join(nets) or "none armed")})
        ready_at = checkpoint_deadline + (WATCHDOG_GRACE + 2 if armed else 2)
        until = max(ready_at, time.monotonic()) + 90
        while time.monotonic() < until:
            await asyncio.sleep(max(0.0, min(3.0, ready_at - time.monotonic())) or 3.0)
            if time.monotonic() < ready_at:
                continue
            await pool.close_host(plan.host)
            session = pool.session(plan.host, budget=plan.checkpoint_timeout * 2 + 120)
            if await reachable():
                break
        else:
            result.host_as_before = False
            result.differences = ["the host did not answer again after its rollback timeout"]
            return
        rec.event("note", {"text": "the host answers again after its own rollback"})
        armed = False  # it has fired
    elif checkpoint is not None:
        res = await step("roll back: NetworkManager checkpoint",
                         render("checkpoint.rollback", checkpoint=checkpoint), sess=session)
        if res.exit_status != 0:
            rec.event("note", {"text": f"checkpoint rollback refused ({res.failure_reason}); "
                                       "restoring with the note's commands"})
    # Wait for NetworkManager's reactivation to settle, then restore whatever still differs with
    # the note's commands, and say so: the report must not credit the checkpoint with more than it did.
    diffs = await _settled_differences(plan, session)
    if diffs:
        result.left_by_checkpoint = list(diffs)
        rec.event("note", {"text": "after the checkpoint rollback still different: " + "; ".join(diffs)
                                   + "; running the rollback note's commands"})
        now_options = None
        try:
            now_options = (await read_bond_state(session, plan.bond)).bond_options
        except Exception:  # noqa: BLE001 - then the nmcli restore runs too
            pass
        for cmd in plan.rollback:
            if "Checkpoint" in cmd.command:
                continue
            if cmd.command.startswith("nmcli") and now_options == plan.before.get("bond_options"):
                continue
            await step("roll back: " + cmd.purpose, cmd.command, sess=session)
        result.rolled_back_by = f"{result.rolled_back_by}, completed by the rollback note's commands"
        diffs = await _settled_differences(plan, session)
    if armed and disarm:  # rolled back by bondbot: the host's own undo is no longer needed
        await step("disarm the host's own undo", disarm, sess=session)
    result.differences = diffs
    result.host_as_before = not diffs


async def _settled_differences(plan: FixPlan, session: Any, *, tries: int = 5) -> list[str]:
    """Differences from the plan's "before" state, once they stop changing (NM may be reactivating)."""
    previous: list[str] | None = None
    diffs: list[str] = ["the bond could not be read"]
    for _ in range(tries):
        try:
            now = await read_bond_state(session, plan.bond)
            diffs = fingerprint_differences(plan.before, now.fingerprint())
        except Exception as exc:  # noqa: BLE001
            diffs = [f"could not read the bond: {exc}"]
        if not diffs or diffs == previous:
            return diffs
        previous = diffs
        await asyncio.sleep(2)
    return diffs
