"""The named states the lab host can be put in, as NetworkManager keyfiles.

Each scenario is a bond0 profile plus its port profiles, written as NetworkManager 1.42 keyfiles
(ports use ``master=``/``slave-type=``: NM 1.42 ignores the newer ``controller=``/``port-type=``
keys and would leave the ports unenslaved). Keyfiles rather than ``nmcli con add`` so that the
saved profile is exactly what the scenario says, and persists across a guest reboot like a real
host's configuration does. The image is built in the ``incident`` state.
"""

from __future__ import annotations

import shlex
import uuid
from dataclasses import dataclass
from typing import Any

from lab.errors import InvalidArgument
from lab.network import BOND, BOND_ADDRESS, BOND_PREFIX, GATEWAY, MGMT, MGMT_ADDRESS, SEED, Persona

__all__ = [
    "Scenario",
    "SCENARIOS",
    "DEFAULT_SCENARIO",
    "get_scenario",
    "keyfiles",
    "base_keyfiles",
    "apply_script",
    "KEYFILE_DIR",
    "scenarios_for",
    "script_for",
]

KEYFILE_DIR = "/etc/NetworkManager/system-connections"
_UUID_NS = uuid.UUID("6f1c2a8e-33b1-4c53-9a55-0b0d6b1a1ab0")


@dataclass(frozen=True)
class Scenario:
    """A bond configuration the lab can reproduce.

    ``ssh_via_bond``: the operator's SSH goes through the bond itself (the management NIC is cut),
    so a change that takes the bond down cuts the operator off, as on a production host.
    """

    name: str
    summary: str
    bond_options: tuple[tuple[str, str], ...]
    ports: tuple[str, ...] = ("eno1", "eno2")
    ssh_via_bond: bool = False

    @property
    def options_text(self) -> str:
        """The options as ``nmcli con modify bond0 bond.options`` takes them."""
        return ",".join(f"{k}={v}" for k, v in self.bond_options)


_INCIDENT_OPTIONS = (("mode", "active-backup"), ("miimon", "0"), ("primary", "eno1"))

SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "incident",
            "the seed's incident: active-backup, miimon=0 (no link monitoring), primary eno1",
            _INCIDENT_OPTIONS,
        ),
        Scenario(
            "healthy",
            "active-backup with MII monitoring every 100 ms, primary eno1 (the fixed state)",
            (("mode", "active-backup"), ("miimon", "100"), ("primary", "eno1")),
        ),
        Scenario(
            "arp",
            f"active-backup with ARP monitoring of the gateway {GATEWAY} every 1000 ms",
            (
                ("mode", "active-backup"),
                ("arp_interval", "1000"),
                ("arp_ip_target", GATEWAY),
                ("primary", "eno1"),
            ),
        ),
        Scenario(
            "lacp-no-partner",
            "802.3ad (LACP) with miimon=100, but the switch side speaks no LACP: no partner",
            (("mode", "802.3ad"), ("miimon", "100")),
        ),
        Scenario(
            "single-port",
            "active-backup with miimon=100 and only eno1 enslaved: no redundancy at all",
            (("mode", "active-backup"), ("miimon", "100")),
            ports=("eno1",),
        ),
        Scenario(
            "rr-no-monitor",
            "balance-rr without link monitoring (miimon=0)",
            (("mode", "balance-rr"), ("miimon", "0")),
        ),
        Scenario(
            "ssh-via-bond",
            "the incident's bond, with SSH reaching the host only through bond0 "
            "(management NIC cut): a change that drops the bond cuts the operator off",
            _INCIDENT_OPTIONS,
            ssh_via_bond=True,
        ),
    )
}
DEFAULT_SCENARIO = "incident"


def scenarios_for(persona: Persona | None = None) -> dict[str, Any]:
    """The scenarios of ``persona`` (default: the seed): :data:`SCENARIOS` or the trixie ones."""
    if persona is None or persona.id == SEED.id:
        return SCENARIOS
    from lab.edge_scenarios import EDGE_SCENARIOS

    return EDGE_SCENARIOS


def get_scenario(name: str, persona: Persona | None = None) -> Any:
    """The scenario called ``name`` (of ``persona``, default the seed), or a clear error listing
    the ones that exist."""
    known = scenarios_for(persona)
    try:
        return known[name]
    except KeyError:
        of = f" of the {persona.id} persona" if persona is not None and persona.id != SEED.id else ""
        raise InvalidArgument(
            f"unknown lab scenario {name!r}{of}: choose one of {', '.join(known)}"
        ) from None


def script_for(persona: Persona, scenario: Any) -> str:
    """The shell script that puts ``persona``'s host into ``scenario``."""
    if persona.id == SEED.id:
        return apply_script(scenario)
    from lab.edge_scenarios import edge_apply_script

    return edge_apply_script(persona, scenario)


def _uuid(name: str) -> str:
    # Stable UUIDs keep the image recipe (and so its hash) deterministic.
    return str(uuid.uuid5(_UUID_NS, name))


def _bond_keyfile(scenario: Scenario) -> str:
    options = "".join(f"{k}={v}\n" for k, v in scenario.bond_options)
    return (
        "[connection]\n"
        f"id={BOND}\n"
        f"uuid={_uuid(BOND)}\n"
        "type=bond\n"
        f"interface-name={BOND}\n"
        "autoconnect-slaves=1\n"
        "\n[bond]\n"
        f"{options}"
        "\n[ipv4]\n"
        "method=manual\n"
        f"address1={BOND_ADDRESS}/{BOND_PREFIX},{GATEWAY}\n"
        "\n[ipv6]\n"
        "method=disabled\n"
    )


def _port_keyfile(port: str) -> str:
    name = f"{BOND}-{port}"
    return (
        "[connection]\n"
        f"id={name}\n"
        f"uuid={_uuid(name)}\n"
        "type=ethernet\n"
        f"interface-name={port}\n"
        f"master={BOND}\n"
        "slave-type=bond\n"
        "\n[ethernet]\n"
    )


def keyfiles(scenario: Scenario) -> dict[str, str]:
    """File name (in :data:`KEYFILE_DIR`) -> content, for the bond and its ports."""
    files = {f"{BOND}.nmconnection": _bond_keyfile(scenario)}
    for port in scenario.ports:
        files[f"{BOND}-{port}.nmconnection"] = _port_keyfile(port)
    return files


def base_keyfiles() -> dict[str, str]:
    """Profiles that every scenario shares: the management NIC (static, never the default route)."""
    mgmt = (
        "[connection]\n"
        f"id={MGMT.name}\n"
        f"uuid={_uuid(MGMT.name)}\n"
        "type=ethernet\n"
        f"interface-name={MGMT.name}\n"
        "\n[ethernet]\n"
        "\n[ipv4]\n"
        "method=manual\n"
        f"address1={MGMT_ADDRESS}/24\n"
        "never-default=true\n"
        "\n[ipv6]\n"
        "method=disabled\n"
    )
    return {f"{MGMT.name}.nmconnection": mgmt}


def apply_script(scenario: Scenario, *, timeout_s: int = 30) -> str:
    """A POSIX shell script, run as root in the guest, that puts bond0 into ``scenario``.

    The bond is deleted before the new profile comes up because the kernel cannot change the mode
    of a bond that has slaves; the script then waits until every port is enslaved, so callers see
    the scenario's state, not a half-activated one.
    """
    lines = [
        "set -eu",
        f"cd {KEYFILE_DIR}",
        f"nmcli -w 15 connection down {BOND} >/dev/null 2>&1 || true",
        f"rm -f {BOND}.nmconnection {BOND}-*.nmconnection",
    ]
    for fname, content in keyfiles(scenario).items():
        lines.append(f"cat > {shlex.quote(fname)} <<'BONDBOT_EOF'\n{content}BONDBOT_EOF")
        lines.append(f"chmod 600 {shlex.quote(fname)}")
    lines += [
        f"ip link delete {BOND} 2>/dev/null || true",
        "nmcli connection reload",
        f"nmcli -w {timeout_s} connection up {BOND} >/dev/null",
    ]
    for port in scenario.ports:
        lines.append(f"nmcli -w {timeout_s} connection up {BOND}-{port} >/dev/null 2>&1 || true")
    expected = " ".join(scenario.ports)
    lines.append(
        f"i=0; while [ $i -lt {timeout_s * 5} ]; do ok=1; "
        f"for p in {expected}; do grep -qx \"Slave Interface: $p\" /proc/net/bonding/{BOND} "
        f"2>/dev/null || ok=0; done; [ $ok = 1 ] && break; i=$((i+1)); sleep 0.2; done; "
        f"if [ $ok != 1 ]; then echo 'ports not enslaved in time' >&2; "
        f"cat /proc/net/bonding/{BOND} >&2 || true; exit 1; fi"
    )
    return "\n".join(lines) + "\n"
