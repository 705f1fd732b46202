"""Bond options and the commands that change them: the fix's vocabulary, with no I/O.

Everything here is pure: the :class:`Monitor` to enable, merging it into a profile's
``bond.options`` without touching any other option, parsing the bonding driver's sysfs files,
and the sysfs writes that apply a monitor to the running bond or restore what it had. Every value
that reaches a command is validated here first and every command is rendered from the templates in
``remediation.yaml`` with each value shell-quoted, so the planner, the apply step and the failover
test share one set of checks instead of each growing its own.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from runbooks.validation import InvalidValue

__all__ = [
    "CHECKPOINT_PLACEHOLDER",
    "REMEDIATION_YAML",
    "Monitor",
    "PlanRefused",
    "RemediationError",
    "action_steps",
    "format_bond_options",
    "merge_bond_options",
    "parse_sysfs_bonding",
    "remediation_spec",
    "render",
    "render_text",
    "runtime_apply_commands",
    "runtime_restore_commands",
    "sh_c",
    "split_targets",
    "step_spec",
    "templates",
    "validate_dbus_path",
    "validate_interface",
    "validate_ipv4_target",
    "validate_uuid",
]


REMEDIATION_YAML = Path(__file__).with_name("remediation.yaml")


_UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_DBUS_PATH_RE = re.compile(r"/org/freedesktop/NetworkManager/(Devices|Checkpoint)/\d+")
_OPTION_NAME_RE = re.compile(r"[a-z][a-z0-9_]{0,31}")
_OPTION_VALUE_RE = re.compile(r"[A-Za-z0-9_.:,/+ -]{0,256}")
_SYSFS_VALUE_RE = re.compile(r"[A-Za-z0-9_.:,/+-]{1,256}")
#: What a plan shows for the checkpoint NetworkManager will create (its D-Bus path is only known then).
CHECKPOINT_PLACEHOLDER = "<checkpoint>"


#: Options that only mean something with one monitor, removed when switching to the other, so
#: that NetworkManager and the kernel never see both (the seed's trap: they are exclusive).
_ARP_ONLY = ("arp_interval", "arp_ip_target", "arp_validate", "arp_all_targets", "arp_missed_max")
_MII_ONLY = ("miimon", "updelay", "downdelay")


_ARP_VALIDATE = ("none", "active", "backup", "all", "filter", "filter_active", "filter_backup")


class RemediationError(Exception):
    """The fix cannot be planned or run as asked; ``str()`` says why and what to do."""


class PlanRefused(RemediationError):
    """The host's state does not allow the plan (or no longer matches it); nothing was changed."""


# --- validation and rendering -------------------------------------------------------------------


def validate_interface(name: object, what: str = "interface") -> str:
    """An interface name, by the runbook engine's rule (``runbooks.validation``)."""
    from runbooks.validation import validate_interface_name

    try:
        return validate_interface_name(name)
    except ValueError as exc:
        raise RemediationError(f"{what}: {exc}") from None


def validate_uuid(value: str) -> str:
    if not _UUID_RE.fullmatch(value):
        raise RemediationError(f"NetworkManager returned {value!r}, which is not a connection UUID")
    return value


def validate_dbus_path(value: str) -> str:
    if not _DBUS_PATH_RE.fullmatch(value):
        raise RemediationError(f"unexpected D-Bus object path {value!r} from NetworkManager")
    return value


def validate_ipv4_target(value: object) -> str:
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
def remediation_spec() -> dict[str, Any]:
    return yaml.safe_load(REMEDIATION_YAML.read_text())


#: Sections of remediation.yaml that are not command templates.
_NOT_TEMPLATES = ("version", "defaults", "types", "fix", "failover_test")


def _register_types() -> None:
    from runbooks.render import register_type

    def as_invalid(check: Any) -> Any:
        def validator(value: object) -> object:
            try:
                return check(value)
            except RemediationError as exc:
                raise InvalidValue(str(exc)) from None
        return validator

    def dbus_path(value: object) -> str:
        return validate_dbus_path(str(value)) if isinstance(value, str) else validate_dbus_path(repr(value))

    def checkpoint_ref(value: object) -> str:
        # The checkpoint's path is NetworkManager's answer at run time: a plan shows (and hashes)
        # the placeholder; the executor renders the same template again with the validated path.
        return CHECKPOINT_PLACEHOLDER if value == CHECKPOINT_PLACEHOLDER else dbus_path(value)

    def option_name(value: object) -> str:
        if not isinstance(value, str) or not _OPTION_NAME_RE.fullmatch(value):
            raise RemediationError(f"invalid bond option name {value!r}")
        return value

    def sysfs_value(value: object) -> str:
        if not isinstance(value, str) or not _SYSFS_VALUE_RE.fullmatch(value):
            raise RemediationError(f"bond option value {value!r} has characters bondbot will not pass on")
        return value

    def bond_options(value: object) -> str:
        if not isinstance(value, str):
            raise RemediationError(f"invalid bond options {value!r}")
        for item in filter(None, value.split(",")):
            key, _, val = item.partition("=")
            _validate_options({key: val})
        return value

    for name, fn in (("dbus_path", dbus_path), ("checkpoint_ref", checkpoint_ref), ("option_name", option_name),
                     ("sysfs_value", sysfs_value), ("bond_options", bond_options)):
        register_type(name, as_invalid(fn))


@functools.lru_cache(maxsize=1)
def templates() -> Any:
    """remediation.yaml's command templates, with their declared value types (``runbooks.render``)."""
    from runbooks.render import TemplateSet

    _register_types()
    spec = remediation_spec()
    return TemplateSet({k: v for k, v in spec.items() if k not in _NOT_TEMPLATES}, spec["types"])


def render(key: str, **values: Any) -> Any:
    """Render the command template at dotted ``key`` of remediation.yaml (e.g. ``nm.modify``):
    every value validated by its declared type and shell-quoted (``runbooks.render``)."""
    try:
        return templates().render(key, **values)
    except InvalidValue as exc:
        raise RemediationError(str(exc)) from None


def render_text(key: str, **values: Any) -> str:
    """Render an operator instruction (shown, never run) at ``key``: values validated, not quoted."""
    try:
        return templates().text(key, **values).strip()
    except InvalidValue as exc:
        raise RemediationError(str(exc)) from None


def action_steps(action: str, values: Mapping[str, Any], conditions: Any) -> tuple[Any, ...]:
    """The steps of ``action`` (``fix`` or ``failover_test`` in remediation.yaml) for ``conditions``."""
    from runbooks.render import build_steps

    try:
        return build_steps(remediation_spec()[action], templates(), values, conditions)
    except InvalidValue as exc:
        raise RemediationError(str(exc)) from None


def step_spec(action: str, name: str) -> list[dict[str, Any]]:
    """Every YAML entry of ``action`` called ``name`` (an executor reads e.g. ``fallback_for`` here)."""
    return [s for s in remediation_spec()[action] if s["name"] == name]


def sh_c(script: Any) -> Any:
    """Run ``script`` (a rendered command) through ``sh -c`` so redirections and ``if`` also work
    under ``sudo -n`` (template ``shell.sh_c``)."""
    return render("shell.sh_c", script=script)


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
        checked = tuple(dict.fromkeys(validate_ipv4_target(t) for t in targets))
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
    return sh_c(render("runtime.set_option", bond=bond, option=option, value=value))


def split_targets(value: str) -> list[str]:
    return [t for t in re.split(r"[\s,]+", value.strip()) if t]


def runtime_apply_commands(bond: str, runtime: Mapping[str, str], monitor: Monitor) -> list[str]:
    """sysfs writes that switch the running bond to ``monitor``.

    For ARP the targets go in before the interval (an interval without targets marks every port
    down); setting ``arp_interval`` makes the kernel turn MII off and vice versa.
    """
    if monitor.kind == "miimon":
        cmds = [_sysfs_write(bond, "miimon", str(monitor.miimon))]
        for t in split_targets(runtime.get("arp_ip_target", "")):
            cmds.append(_sysfs_write(bond, "arp_ip_target", f"-{t}"))
        return cmds
    current = set(split_targets(runtime.get("arp_ip_target", "")))
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
    targets = split_targets(before.get("arp_ip_target", ""))
    validate = (before.get("arp_validate") or "none").split()[0]  # sysfs prints "none 0"
    cmds: list[str] = [_sysfs_write(bond, "arp_validate", validate)]
    if arp_interval != "0":
        cmds.append(sh_c(render("runtime.clear_targets", bond=bond)))
        cmds += [_sysfs_write(bond, "arp_ip_target", f"+{t}") for t in targets]
        cmds.append(_sysfs_write(bond, "arp_interval", arp_interval))
    else:
        cmds.append(_sysfs_write(bond, "arp_interval", "0"))
        cmds.append(sh_c(render("runtime.clear_targets", bond=bond)))
        cmds += [_sysfs_write(bond, "arp_ip_target", f"+{t}") for t in targets]
        cmds.append(_sysfs_write(bond, "miimon", miimon))
        for key in ("updelay", "downdelay"):
            if before.get(key, "0") not in ("", "0") and miimon != "0":
                cmds.append(_sysfs_write(bond, key, before[key]))
    return cmds
