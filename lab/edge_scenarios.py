"""The ``trixie`` persona's scenarios, made the way an operator makes them: with ``nmcli``.

Unlike the seed (exact keyfiles), these profiles are created by ``nmcli connection add`` in the
guest, so their names are the ones NetworkManager 1.52 itself chooses (``bond-uplink0`` for the
bond, its own name for each port), and renamed with ``nmcli connection modify`` where a scenario
says so (``Bond connection 1``, nmtui style). The ``ifupdown`` scenario puts the bond in
``/etc/network/interfaces`` instead (Debian's ifenslave), which NetworkManager's ifupdown plugin
(``managed=false``) then leaves alone.

Every script first removes what any scenario may have made (all profiles but the management
NIC's, the lab's block in /etc/network/interfaces, leftover bond devices), then builds its own
state and waits until the ports are enslaved. The NIC names are the guest's own (the persona,
resolved from the image manifest); nothing here assumes ``ens4``.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from lab.errors import InvalidArgument
from lab.network import TRIXIE, Persona

__all__ = [
    "EdgeScenario",
    "EDGE_SCENARIOS",
    "MGMT_PROFILE",
    "MGMT_UUID",
    "IFUPDOWN_BEGIN",
    "IFUPDOWN_END",
    "mgmt_keyfile",
    "edge_apply_script",
]

MGMT_PROFILE = "mgmt"
MGMT_UUID = "3c1f52a4-6f0e-5d7e-9b0a-7a3c1e0b7700"
# The lab's block in /etc/network/interfaces (the ifupdown scenario), so a reset removes only it.
IFUPDOWN_BEGIN = "# bondbot-lab scenario ifupdown: begin"
IFUPDOWN_END = "# bondbot-lab scenario ifupdown: end"
PRIMARY = "@first"  # placeholder in bond options: the first bond NIC's guest name


@dataclass(frozen=True)
class EdgeScenario:
    """One state of ``edge-07``; ``bond_options`` may say ``primary=@first``."""

    name: str
    summary: str
    bond_options: tuple[tuple[str, str], ...] = ()
    ports: tuple[int, ...] = (0, 1)  # indexes into the persona's bond NICs
    profile: str = ""  # the bond profile renamed to this; "" keeps the name nmcli chose
    second_bond: bool = False
    bond: bool = True
    ifupdown: bool = False
    ssh_via_bond: bool = False

    def options(self, persona: Persona) -> tuple[tuple[str, str], ...]:
        first = persona.bond_nics[0].name
        return tuple((k, first if v == PRIMARY else v) for k, v in self.bond_options)

    def options_text(self, persona: Persona) -> str:
        return ",".join(f"{k}={v}" for k, v in self.options(persona))

    def port_names(self, persona: Persona) -> tuple[str, ...]:
        return tuple(persona.bond_nics[i].name for i in self.ports) if self.bond else ()


_INCIDENT = (("mode", "active-backup"), ("miimon", "0"), ("primary", PRIMARY))
_HEALTHY = (("mode", "active-backup"), ("miimon", "100"), ("primary", PRIMARY))

EDGE_SCENARIOS: dict[str, EdgeScenario] = {
    s.name: s
    for s in (
        EdgeScenario("incident", "the seed's incident on uplink0: active-backup, miimon=0, primary the first NIC",
                     _INCIDENT),
        EdgeScenario("healthy", "uplink0 active-backup with MII monitoring every 100 ms, primary the first NIC",
                     _HEALTHY),
        EdgeScenario("two-bonds", "the incident's uplink0 and a second, healthy bond uplink1 on the spare NICs",
                     _INCIDENT, second_bond=True),
        EdgeScenario("no-bond", "no bond at all (the bonding driver loaded, bonding_masters empty)", bond=False),
        EdgeScenario("spaced-profile", "the incident, with uplink0's profile renamed 'Bond connection 1' "
                     "(nmtui style: a name with spaces)", _INCIDENT, profile="Bond connection 1"),
        EdgeScenario("quoted-profile", "the incident, with uplink0's profile renamed with quotes and spaces: "
                     "Bond \"edge\" it's", _INCIDENT, profile="Bond \"edge\" it's"),
        EdgeScenario("ifupdown", "the incident's bond in /etc/network/interfaces (ifenslave: active-backup, "
                     "bond-miimon 0, primary the first NIC); NetworkManager does not manage it",
                     _INCIDENT, ifupdown=True),
    )
}


def mgmt_keyfile(persona: Persona = TRIXIE) -> str:
    """The management NIC's profile, matched by MAC (the guest names the NIC), baked into the image."""
    return (
        "[connection]\n"
        f"id={MGMT_PROFILE}\n"
        f"uuid={MGMT_UUID}\n"
        "type=ethernet\n"
        "\n[ethernet]\n"
        f"mac-address={persona.mgmt.mac.upper()}\n"
        "\n[ipv4]\n"
        "method=manual\n"
        f"address1={persona.mgmt_address}/24\n"
        "never-default=true\n"
        "\n[ipv6]\n"
        "method=disabled\n"
    )


# Restart NetworkManager and wait (bounded) until it answers and has the management NIC back.
_RESTART_NM = (
    "  systemctl restart NetworkManager\n"
    "  i=0; until nmcli -t -f STATE general 2>/dev/null | grep -q '^connected'; do "
    "i=$((i+1)); [ $i -lt 150 ] || { echo 'NetworkManager did not come back' >&2; exit 1; }; sleep 0.2; done"
)


def _reset_lines(persona: Persona) -> list[str]:
    bonds = " ".join(b for b in (persona.bond, persona.second_bond) if b)
    return [
        # The ifupdown bond first: ifdown needs the stanza that brought it up.
        f"if grep -qxF {shlex.quote(IFUPDOWN_BEGIN)} /etc/network/interfaces; then",
        f"  for b in {bonds}; do ifdown --force \"$b\" >/dev/null 2>&1 || true; done",
        f"  sed -i '/^{IFUPDOWN_BEGIN}$/,/^{IFUPDOWN_END}$/d' /etc/network/interfaces",
        _RESTART_NM,
        "fi",
        # Every profile but the management NIC's (by UUID: the names are nmcli's, any spelling),
        # in one nmcli call: each call costs seconds under TCG. NM 1.52 also lists an in-memory
        # 'lo' profile of type loopback: not ours to delete.
        "old=$(nmcli -g UUID,TYPE connection show | while IFS=: read -r u t; do",
        f"  [ \"$u\" = {MGMT_UUID} ] || [ \"$t\" = loopback ] || printf 'uuid %s ' \"$u\"; done)",
        "[ -z \"$old\" ] || nmcli connection delete $old >/dev/null",
        # NM removes its bond devices itself, asynchronously: a leftover (or ifupdown's) goes here.
        f"for b in {bonds}; do [ ! -e \"/sys/class/net/$b\" ] || ip link delete \"$b\" 2>/dev/null || true; done",
    ]


def _add(args: list[str]) -> str:
    """``nmcli connection add ARGS``, leaving the new profile's UUID in $u (from nmcli's own reply)."""
    return ("u=$(nmcli connection add " + shlex.join(args)
            + " | sed -n 's/.*(\\([0-9a-f-]*\\)) successfully added.*/\\1/p')\n"
            + "[ -n \"$u\" ] || { echo 'nmcli connection add did not report a UUID' >&2; exit 1; }")


def _nm_bond_lines(bond: str, options: str, address: str, gateway: str, ports: tuple[str, ...],
                   name: str, timeout_s: int) -> list[str]:
    """Add the bond and its ports as an operator would; NetworkManager activates them itself
    (autoconnect), and only what is not enslaved after a while is brought up explicitly."""
    ipv4 = ["ipv4.method", "manual", "ipv4.addresses", address]
    if gateway:
        ipv4 += ["ipv4.gateway", gateway]
    named = ["con-name", name] if name else []  # as nmtui names it; else nmcli chooses
    lines = [_add(["type", "bond", *named, "ifname", bond, "bond.options", options, *ipv4,
                   "ipv6.method", "disabled"]), "all=$u"]
    for port in ports:
        lines += [_add(["type", "ethernet", "ifname", port, "master", bond]), "all=\"$all $u\""]
    lines.append(_wait_enslaved(bond, ports, 10, fail=False, address=address))
    lines.append(f"if [ $ok != 1 ]; then for u in $all; do nmcli -w {timeout_s} connection up uuid \"$u\" "
                 ">/dev/null 2>&1 || true; done; fi")
    return lines


def _ifupdown_lines(persona: Persona, scenario: EdgeScenario) -> list[str]:
    ports = scenario.port_names(persona)
    options = dict(scenario.options(persona))
    stanza = [IFUPDOWN_BEGIN]
    stanza += [f"iface {p} inet manual" for p in ports]
    stanza += [
        "",
        f"auto {persona.bond}",
        f"iface {persona.bond} inet static",
        f"    address {persona.bond_address}/{persona.bond_prefix}",
        f"    gateway {persona.gateway}",
        f"    bond-slaves {' '.join(ports)}",
        f"    bond-mode {options['mode']}",
        f"    bond-miimon {options['miimon']}",
    ]
    if "primary" in options:
        stanza.append(f"    bond-primary {options['primary']}")
    stanza.append(IFUPDOWN_END)
    return [
        "cat >> /etc/network/interfaces <<'BONDBOT_EOF'\n" + "\n".join(stanza) + "\nBONDBOT_EOF",
        # NM's ifupdown plugin (managed=false) reads the file when NetworkManager starts (not on
        # `nmcli connection reload`): restarted, it leaves the bond and its ports unmanaged, as on
        # a host booted with this file. Brought up before that, NM would take the bond over as
        # "connected (externally)", with an in-memory profile named after it.
        _RESTART_NM,
        f"ifup {persona.bond} >/dev/null",
    ]


def _wait_enslaved(bond: str, ports: tuple[str, ...], timeout_s: int, *, fail: bool = True,
                   address: str = "") -> str:
    """Wait until every port is enslaved and the bond has ``address``; ``$ok`` says if they were."""
    expected = " ".join(ports)
    has_address = (f"ip -4 -o addr show dev {bond} 2>/dev/null | grep -qF ' {address} ' || ok=0; "
                   if address else "")
    text = (
        f"i=0; while [ $i -lt {timeout_s * 5} ]; do ok=1; "
        f"for p in {expected}; do grep -qx \"Slave Interface: $p\" /proc/net/bonding/{bond} "
        f"2>/dev/null || ok=0; done; {has_address}[ $ok = 1 ] && break; i=$((i+1)); sleep 0.2; done"
    )
    if fail:
        text += (f"; if [ $ok != 1 ]; then echo 'ports of {bond} not enslaved in time' >&2; "
                 f"cat /proc/net/bonding/{bond} >&2 || true; exit 1; fi")
    return text


def edge_apply_script(persona: Persona, scenario: EdgeScenario, *, timeout_s: int = 30) -> str:
    """A POSIX shell script, run as root in the guest, that puts ``persona``'s host into ``scenario``."""
    if not persona.resolved:
        raise InvalidArgument(f"the {persona.id} persona's NIC names are not known (image manifest)")
    lines = ["set -eu", *_reset_lines(persona)]
    ports = scenario.port_names(persona)
    if scenario.ifupdown:
        lines += _ifupdown_lines(persona, scenario)
    elif scenario.bond:
        lines += _nm_bond_lines(persona.bond, scenario.options_text(persona),
                                f"{persona.bond_address}/{persona.bond_prefix}", persona.gateway,
                                ports, scenario.profile, timeout_s)
    if scenario.bond:
        lines.append(_wait_enslaved(persona.bond, ports, timeout_s,
                                    address=f"{persona.bond_address}/{persona.bond_prefix}"))
    if scenario.second_bond:
        spare = tuple(n.name for n in persona.spare_nics)
        lines += _nm_bond_lines(persona.second_bond, "mode=active-backup,miimon=100",
                                f"{persona.second_bond_address}/24", "", spare, "", timeout_s)
        lines.append(_wait_enslaved(persona.second_bond, spare, timeout_s,
                                    address=f"{persona.second_bond_address}/24"))
        # Enslaved is not settled: NetworkManager may still be activating a profile (the second
        # bond's ports, a re-activation after the fallback `connection up`), and a triage that reads
        # it then sees a half-made state (CI once found the two-bond host inconclusive under load). Wait
        # (bounded) until no active profile is still activating. (Only here: the incident
        # scenario's script is part of the image recipe.)
        lines.append("i=0; while nmcli -t -f STATE connection show --active 2>/dev/null | grep -qvx activated; "
                     f"do i=$((i+1)); [ $i -lt {timeout_s * 5} ] || break; sleep 0.2; done")
    return "\n".join(lines) + "\n"
