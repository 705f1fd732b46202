"""What bondbot reads from a host about one bond, and how two readings are compared.

:func:`read_bond_state` runs read-only commands only; the fix plans from its result, the apply
step's precheck and rollback check compare against it, and the failover test reads its
preconditions from it. :meth:`BondState.fingerprint` is what a plan pins: the configuration, not
the moving parts (MII status, counters), so a plan stays valid while the bond is merely running.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from runbooks.bonding.bond_options import (
    PlanRefused,
    RemediationError,
    format_bond_options,
    parse_sysfs_bonding,
    render,
    sh_c,
    validate_dbus_path,
    validate_interface,
    validate_uuid,
)
from runbooks.bonding.parsers.nmcli import split_terse

__all__ = [
    "RUNTIME_KEYS",
    "Session",
    "BondState",
    "fingerprint_differences",
    "parse_busctl_path",
    "read_bond_state",
    "session_host_name",
]


_FILE_RE = re.compile(r"/(etc|run|usr/lib)/[A-Za-z0-9_./@:+-]{1,200}")


#: sysfs files compared before/after: the bond's configuration, not its moving parts.
RUNTIME_KEYS = ("mode", "miimon", "arp_interval", "arp_ip_target", "arp_validate", "updelay",
                "downdelay", "primary", "slaves")


class Session(Protocol):  # ssh_exec.HostSession
    """What reading a bond needs from a session: ``run`` (``ssh_exec.HostSession`` has it)."""

    async def run(self, command: str, *, timeout: float | None = None) -> Any: ...


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
    # ifupdown (only read when NetworkManager does not hold the bond): what `ifquery BOND` says
    # (None: ifquery missing or the bond unknown to it), and the one file with the bond's stanza.
    ifquery: dict[str, str] | None = None
    ifupdown_file: str | None = None
    ifupdown_text: str | None = field(default=None, repr=False)
    ifupdown_sha256: str | None = None

    @property
    def managed_by_ifupdown(self) -> bool:
        """ifupdown knows the bond (ifquery) and exactly one file holds its stanza (read)."""
        return not self.managed_by_nm and self.ifquery is not None and self.ifupdown_text is not None

    @property
    def managed_by_nm(self) -> bool:
        return self.nm_uuid is not None

    @property
    def monitoring(self) -> bool:
        return self.miimon > 0 or self.arp_interval > 0

    def fingerprint(self) -> dict[str, Any]:
        return {
            "runtime": {k: self.runtime.get(k, "") for k in RUNTIME_KEYS},
            "nm_uuid": self.nm_uuid,
            "bond_options": self.bond_options,
            "ifupdown_sha256": self.ifupdown_sha256,
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
    if before.get("ifupdown_sha256") != now.get("ifupdown_sha256"):
        diffs.append(f"ifupdown file: content was sha256 {str(before.get('ifupdown_sha256'))[:12]}, "
                     f"now {str(now.get('ifupdown_sha256'))[:12]}")
    ob, on = before.get("bond_options"), now.get("bond_options")
    if ob != on:
        fmt = lambda o: format_bond_options(o) if o is not None else None  # noqa: E731
        diffs.append(f"bond.options: was {fmt(ob)!r}, now {fmt(on)!r}")
    return diffs


# --- reading the host ---------------------------------------------------------------------------


def parse_busctl_path(stdout: str) -> str:
    m = re.match(r'\s*o\s+"([^"]+)"', stdout)
    if not m:
        raise RemediationError(f"unexpected busctl output {stdout.strip()!r}")
    return validate_dbus_path(m.group(1))


def _gateway_from_route(text: str) -> str | None:
    m = re.search(r"^default via (\d+\.\d+\.\d+\.\d+)", text, re.M)
    return m.group(1) if m else None


async def read_bond_state(session: Session, bond: str, *, record: list[Any] | None = None) -> BondState:
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
        run(sh_c(render("read_state.has_systemd_run"))),
    )
    if proc.exit_status != 0:
        raise PlanRefused(f"{bond} is not a bond on this host ({proc.failure_reason}): "
                          f"{proc.command} failed")
    parsed = parse_proc_bonding(proc.stdout, source=proc.command)
    runtime = parse_sysfs_bonding(sysfs.stdout)
    if "miimon" not in runtime:
        raise RemediationError(f"could not read /sys/class/net/{bond}/bonding ({sysfs.failure_reason})")
    slaves = {s.name: (s.mii_status or "unknown") for s in parsed.slaves}
    nm_uuid = nm_id = nm_file = nm_gw = None
    options: dict[str, str] | None = None
    paths: list[str] = []
    config_files: tuple[str, ...] = ()
    ifquery: dict[str, str] | None = None
    ifupdown_file = ifupdown_text = ifupdown_sha256 = None
    if active.exit_status == 0:
        for line in active.stdout.splitlines():
            f = split_terse(line)
            if len(f) >= 4 and f[1] == bond and f[2] == "bond":
                nm_uuid, nm_id = validate_uuid(f[0]), ":".join(f[3:])
    if nm_uuid is not None:
        prof = await run(render("read_state.nm_show", uuid=nm_uuid))
        if prof.exit_status != 0:
            raise RemediationError(f"could not read the NetworkManager profile {nm_uuid}: {prof.failure_reason}")
        conn = parse_nmcli(prof.stdout, source=prof.command)
        options = dict(conn.bond_options)
        nm_gw = conn.properties.get("ipv4.gateway") or None
        ports = [bond, *slaves]
        files, *device_results = await asyncio.gather(
            run(render("read_state.nm_files")),
            *(run(render("checkpoint.device_path", iface=validate_interface(i))) for i in ports))
        for line in files.stdout.splitlines():
            f = split_terse(line)
            if len(f) >= 2 and f[0] == nm_uuid and _FILE_RE.fullmatch(":".join(f[1:])):
                nm_file = ":".join(f[1:])
        for iface, res in zip(ports, device_results, strict=True):
            if res.exit_status != 0:
                raise RemediationError(f"NetworkManager has no device {iface}: {res.failure_reason}")
            paths.append(parse_busctl_path(res.stdout))
    else:
        cfg = await run(sh_c(render("read_state.config_files", bond=bond)))
        config_files = tuple(ln.strip() for ln in cfg.stdout.splitlines() if _FILE_RE.fullmatch(ln.strip()))
        if any(f.startswith("/etc/network/") for f in config_files):
            ifq, ifiles = await asyncio.gather(
                run(render("read_state.ifquery", bond=bond)),
                run(sh_c(render("read_state.ifupdown_files", bond=bond))))
            if ifq.exit_status == 0:
                from runbooks.bonding.ifupdown_file import parse_ifquery

                ifquery = parse_ifquery(ifq.stdout)
                files = [ln.strip() for ln in ifiles.stdout.splitlines() if _FILE_RE.fullmatch(ln.strip())]
                if len(files) == 1:
                    text = await run(render("read_state.read_file", filename=files[0]))
                    if text.exit_status == 0:
                        ifupdown_file, ifupdown_text = files[0], text.stdout
                        ifupdown_sha256 = hashlib.sha256(text.stdout.encode()).hexdigest()

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
        ifquery=ifquery, ifupdown_file=ifupdown_file, ifupdown_text=ifupdown_text, ifupdown_sha256=ifupdown_sha256,
    )


def session_host_name(session: Any, host: str | None) -> str:
    """The host name a plan is made for: ``host`` if given, else the session's host, else "host"."""
    return host or getattr(getattr(session, "host", None), "name", None) or "host"
