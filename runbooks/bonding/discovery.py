"""What the host-level reads say: which bonds there are, their ports, the profile that owns each.

The engine runs the runbook's ``discover:`` commands and hands their results here; nothing in
this module runs anything. Every name that comes back from the host is validated before it can
reach a command (interface names, UUIDs); a name that fails is reported, never used.

How each read's failures are told apart from "nothing there", because a host with no bond is a
fact ("no bond on this host"), while a host whose bonds could not be listed is *inconclusive*:

- ``cat /sys/class/net/bonding_masters``: exit 0 -> the names (maybe none: the driver is loaded
  but has no bond). "No such file or directory" -> the bonding driver is not loaded: no bond.
  Anything else (permission, timeout) -> the bonds could not be listed.
- ``grep -H . /sys/class/net/*/bonding/slaves``: grep exits 1 when no bond has a port and 2 when
  the glob matched nothing (no bond): both are answers, not failures, when stderr says only
  "No such file or directory". Otherwise the ports come from /proc/net/bonding instead.
- ``nmcli -t -f UUID,TYPE,DEVICE,NAME connection show``: "not found" (exit 127) -> NetworkManager
  is not installed; "NetworkManager is not running" -> it is not running; either way no profile
  can own the bond and the nmcli step is not applicable. Anything else is a failed step.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from runbooks.validation import InvalidValue, validate_interface_name, validate_uuid
from ssh_exec import CommandResult

from .parsers import ParseError, parse_bonding_masters, parse_nmcli_list, parse_sysfs_slaves
from .parsers.nmcli import NmcliListRow

__all__ = [
    "BondList",
    "NmProfiles",
    "SlaveLists",
    "read_bond_list",
    "read_nm_profiles",
    "read_slave_lists",
]

_NO_SUCH_FILE = "No such file or directory"


def _only_missing_files(stderr: str) -> bool:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    return all(_NO_SUCH_FILE in ln for ln in lines)


@dataclass(frozen=True)
class BondList:
    """The bonds of a host. ``names`` is None when they could not be listed (``error`` says why);
    an empty tuple is a host with no bond (``why_none`` says what was seen)."""

    names: tuple[str, ...] | None
    error: str | None = None
    why_none: str = ""
    rejected: tuple[str, ...] = ()  # names from the host that failed validation (reported, not used)


def read_bond_list(result: CommandResult | None) -> BondList:
    if result is None:
        return BondList(None, "the bond list was not read")
    if result.exit_status not in (0, None) and _NO_SUCH_FILE in result.stderr and not result.timed_out:
        return BondList((), why_none="the bonding driver is not loaded (no /sys/class/net/bonding_masters)")
    reason = result.failure_reason
    if reason is not None:
        return BondList(None, f"cannot list the bonds ({result.command}): {reason}")
    try:
        raw = parse_bonding_masters(result.stdout)
    except ParseError as exc:
        return BondList(None, f"cannot list the bonds: {exc}")
    names: list[str] = []
    rejected: list[str] = []
    for name in raw:
        try:
            names.append(validate_interface_name(name))
        except InvalidValue:
            rejected.append(name)
    if rejected and not names:
        return BondList(None, f"the host lists bond names that fail validation: {', '.join(map(repr, rejected))}",
                        rejected=tuple(rejected))
    return BondList(tuple(names), why_none="" if names else "the bonding driver has no bond (bonding_masters is empty)",
                    rejected=tuple(rejected))


@dataclass(frozen=True)
class SlaveLists:
    """Each bond's ports from sysfs; ``by_bond`` None when that read failed (use /proc instead)."""

    by_bond: dict[str, list[str]] | None
    error: str | None = None

    def of(self, bond: str) -> list[str] | None:
        if self.by_bond is None:
            return None
        return list(self.by_bond.get(bond, []))


def read_slave_lists(result: CommandResult | None) -> SlaveLists:
    if result is None:
        return SlaveLists(None, "not read")
    answered = result.exit_status == 0 or (
        result.exit_status in (1, 2) and not result.timed_out and not result.truncated
        and _only_missing_files(result.stderr) and not result.privilege_denied)
    if not answered:
        return SlaveLists(None, result.failure_reason or "failed")
    try:
        return SlaveLists(parse_sysfs_slaves(result.stdout))
    except ParseError as exc:
        return SlaveLists(None, str(exc))


@dataclass(frozen=True)
class NmProfiles:
    """NetworkManager's profiles. ``absent`` says why there are none to own a bond (not installed,
    not running); ``error`` that the list could not be read (the nmcli step then fails)."""

    rows: tuple[NmcliListRow, ...] = ()
    absent: str | None = None
    error: str | None = None
    rejected: tuple[str, ...] = field(default=())

    def active_on(self, bond: str) -> NmcliListRow | None:
        """The device's active connection: the profile NetworkManager has up on ``bond`` now."""
        rows = [r for r in self.rows if r.device == bond]
        bonds = [r for r in rows if r.type == "bond"]
        return next(iter(bonds or rows), None)

    def bond_profiles(self) -> list[NmcliListRow]:
        """Every bond-type profile (candidates when the device has no active connection)."""
        return [r for r in self.rows if r.type == "bond"]


def read_nm_profiles(result: CommandResult | None) -> NmProfiles:
    if result is None:
        return NmProfiles(error="not read")
    err = result.stderr
    if result.exit_status == 127 or (result.exit_status not in (0, None) and "not found" in err
                                      and "nmcli" in err):
        return NmProfiles(absent="NetworkManager is not installed (no nmcli)")
    if result.exit_status not in (0, None) and "NetworkManager is not running" in err:
        return NmProfiles(absent="NetworkManager is not running")
    reason = result.failure_reason
    if reason is not None:
        return NmProfiles(error=reason)
    try:
        rows = parse_nmcli_list(result.stdout)
    except ParseError as exc:
        return NmProfiles(error=f"unparseable: {exc.message}")
    good: list[NmcliListRow] = []
    rejected: list[str] = []
    for row in rows:
        try:
            validate_uuid(row.uuid)
            good.append(row)
        except InvalidValue:
            rejected.append(row.uuid)
    return NmProfiles(tuple(good), rejected=tuple(rejected))
