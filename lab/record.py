"""Recording the triage's real outputs from the lab VM as the project's test fixtures.

For every scenario (and for ``incident`` and ``healthy`` once more after eno1's switch port is
shut) the triage commands run over SSH exactly as the runbook sends them, and what they print is
saved byte for byte in ``tests/fixtures/lab/<name>/`` (format: ``tests/fixtures/README.md``).

The ``trixie`` persona's scenarios go to ``tests/fixtures/lab/trixie-<scenario>/``. There the bond
is not known in advance: the recording reads ``/sys/class/net/bonding_masters`` and, for every
bond it lists, the bond's ports (sysfs), the seed's triage commands (``nmcli -t con show <bond>``
included: it fails on a host whose profile is named by nmcli, which is real data too), and the
profile found by device: ``nmcli -t -f GENERAL.CONNECTION,GENERAL.CON-UUID device show <bond>``,
then ``nmcli -t con show uuid <UUID>``. Every command is recorded with its exit status, failing
or not.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab.network import BOND, BOND_NICS, TRIXIE, get_persona
from lab.scenarios import SCENARIOS, get_scenario, scenarios_for
from lab.vm import CommandResult, LabVM

__all__ = [
    "triage_commands",
    "discovery_commands",
    "Recording",
    "RECORDINGS",
    "PERSONA_RECORDINGS",
    "recordings_for",
    "record_all",
    "record_one",
    "dump_yaml",
]

Progress = Callable[[str], None]


def triage_commands(bond: str = BOND, slaves: tuple[str, ...] = ("eno1", "eno2")) -> list[str]:
    """The seed runbook's triage steps, as the command strings sent over SSH."""
    q = shlex.join
    commands = [q(["cat", f"/proc/net/bonding/{bond}"]), q(["ip", "-d", "-j", "link", "show", bond])]
    commands += [q(["ip", "link", "show", s]) for s in slaves]
    commands += [q(["ethtool", s]) for s in slaves]
    commands.append(q(["nmcli", "-t", "con", "show", bond]))
    return commands


def discovery_commands(bond: str) -> list[str]:
    """Per bond found in bonding_masters: its ports, and its NetworkManager profile by device."""
    q = shlex.join
    return [
        q(["cat", f"/sys/class/net/{bond}/bonding/slaves"]),
        q(["nmcli", "-t", "-f", "GENERAL.CONNECTION,GENERAL.CON-UUID", "device", "show", bond]),
    ]


BONDING_MASTERS = "cat /sys/class/net/bonding_masters"


@dataclass(frozen=True)
class Recording:
    """One fixture directory: a scenario (of a persona), optionally with some switch ports shut."""

    name: str
    scenario: str
    links_down: tuple[str, ...] = ()
    persona: str = "bookworm"

    @property
    def description(self) -> str:
        text = get_scenario(self.scenario, get_persona(self.persona)).summary
        if self.links_down:
            text += f"; switch port of {', '.join(self.links_down)} shut (QMP set_link off)"
        return text


RECORDINGS: tuple[Recording, ...] = tuple(Recording(name, name) for name in SCENARIOS) + (
    Recording("incident-eno1-down", "incident", ("eno1",)),
    Recording("healthy-eno1-down", "healthy", ("eno1",)),
)
PERSONA_RECORDINGS: dict[str, tuple[Recording, ...]] = {
    TRIXIE.id: tuple(Recording(f"{TRIXIE.id}-{name}", name, persona=TRIXIE.id) for name in scenarios_for(TRIXIE)),
}


def recordings_for(persona: str) -> tuple[Recording, ...]:
    """The recordings of a persona: the seed's :data:`RECORDINGS`, or ``<persona>-<scenario>``."""
    return RECORDINGS if persona == "bookworm" else PERSONA_RECORDINGS[persona]


class _LiteralDumper:
    """PyYAML dumper that writes multi-line strings as ``|`` blocks where it can do so exactly."""

    @staticmethod
    def make() -> Any:
        import yaml

        class Dumper(yaml.SafeDumper):
            pass

        def str_presenter(dumper: Any, data: str) -> Any:
            style = "|" if "\n" in data else None
            return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)

        Dumper.add_representer(str, str_presenter)
        return Dumper


def dump_yaml(data: Any) -> str:
    """YAML text for ``data``; checked to load back to exactly ``data`` (outputs are byte-exact)."""
    import yaml

    text = yaml.dump(data, Dumper=_LiteralDumper.make(), sort_keys=False, allow_unicode=True, width=100000)
    if yaml.safe_load(text) != data:  # PyYAML falls back to quoting when a block can't be exact
        text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100000)
        assert yaml.safe_load(text) == data
    return text


def _enter(vm: LabVM, scenario: str, recording: Recording, settle_s: float, progress: Progress) -> None:
    """Put the VM into the scenario, let the monitors settle (LACP negotiation, ARP probes, carrier
    after the links came back), then cut the recording's links and let the bond notice."""
    progress(f"recording {recording.name}")
    vm.scenario(scenario)
    time.sleep(settle_s)
    for name in recording.links_down:
        vm.link(name, False)
    if recording.links_down:
        time.sleep(settle_s)


def record_one(vm: LabVM, recording: Recording, out_dir: Path, *, settle_s: float = 3.0,
               progress: Progress = lambda _msg: None) -> list[CommandResult]:
    """Put the VM into ``recording``'s state and save the triage outputs under ``out_dir/<name>``."""
    if recording.persona != "bookworm":
        return _record_discovered(vm, recording, out_dir, settle_s=settle_s, progress=progress)
    scenario = get_scenario(recording.scenario)
    _enter(vm, scenario.name, recording, settle_s, progress)
    results = [vm.ssh(command, timeout=60) for command in triage_commands(BOND, tuple(n.name for n in BOND_NICS))]
    for result in results:
        if result.exit_status == 255:
            from lab.errors import GuestCommandError

            raise GuestCommandError(f"SSH to the lab VM failed while recording {recording.name}: {result.stderr}")
    versions = vm.ssh("uname -r; NetworkManager --version", check=True).stdout.split()
    state = vm.state()
    meta = {
        "scenario": recording.name,
        "base_scenario": scenario.name,
        "description": recording.description,
        "bond": BOND,
        "slaves": list(scenario.ports),
        "bond_options": scenario.options_text,
        "links": {n.name: ("down" if n.name in recording.links_down else "up") for n in BOND_NICS},
        "kernel_release": versions[0],
        "network_manager_version": versions[1],
        "qemu_accel": state.accel,
        "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    target = out_dir / recording.name
    target.mkdir(parents=True, exist_ok=True)
    (target / "meta.yaml").write_text(dump_yaml(meta))
    (target / "commands.yaml").write_text(dump_yaml([r.to_json() for r in results]))
    return results


def _run_all(vm: LabVM, commands: list[str], recording: Recording) -> list[CommandResult]:
    results = [vm.ssh(command, timeout=60) for command in commands]
    for result in results:
        if result.exit_status == 255:
            from lab.errors import GuestCommandError

            raise GuestCommandError(f"SSH to the lab VM failed while recording {recording.name}: {result.stderr}")
    return results


def _record_discovered(vm: LabVM, recording: Recording, out_dir: Path, *, settle_s: float,
                       progress: Progress) -> list[CommandResult]:
    """A persona whose bond must be discovered: everything starts from bonding_masters."""
    persona = vm.persona
    scenario = get_scenario(recording.scenario, persona)
    _enter(vm, scenario.name, recording, settle_s, progress)
    results = _run_all(vm, [BONDING_MASTERS], recording)
    bonds = results[0].stdout.split()
    bond_meta = []
    for bond in bonds:
        found = _run_all(vm, discovery_commands(bond), recording)
        slaves = tuple(found[0].stdout.split())
        found += _run_all(vm, triage_commands(bond, slaves), recording)
        uuid = ""
        for line in found[1].stdout.splitlines():
            if line.startswith("GENERAL.CON-UUID:"):
                uuid = line.partition(":")[2].strip()
        profile = ""
        if uuid:
            by_uuid = _run_all(vm, [shlex.join(["nmcli", "-t", "con", "show", "uuid", uuid])], recording)
            found += by_uuid
            for line in by_uuid[0].stdout.splitlines():
                if line.startswith("connection.id:"):
                    profile = line.partition(":")[2]
        results += found
        bond_meta.append({"bond": bond, "slaves": list(slaves), "nm_profile": profile or None,
                          "nm_profile_uuid": uuid or None})
    versions = vm.ssh("uname -r; NetworkManager --version", check=True).stdout.split()
    state = vm.state()
    meta = {
        "scenario": recording.name,
        "persona": persona.id,
        "host": persona.host_name,
        "base_scenario": scenario.name,
        "description": recording.description,
        # The bond the scenario is about (the first one bonding_masters lists), or none.
        "bond": bonds[0] if bonds else None,
        "bonds": bond_meta,
        "links": {n.name: ("down" if n.name in recording.links_down else "up") for n in persona.nics
                  if n.hub != 0},
        "kernel_release": versions[0],
        "network_manager_version": versions[1],
        "qemu_accel": state.accel,
        "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if scenario.bond:
        meta["bond_options"] = scenario.options_text(persona)
    target = out_dir / recording.name
    target.mkdir(parents=True, exist_ok=True)
    (target / "meta.yaml").write_text(dump_yaml(meta))
    (target / "commands.yaml").write_text(dump_yaml([r.to_json() for r in results]))
    return results


def record_all(vm: LabVM, out_dir: Path, *, names: list[str] | None = None,
               progress: Progress = lambda _msg: None) -> list[str]:
    """Record every recording of the VM's persona (or those in ``names``); leaves the VM in the
    ``incident`` state."""
    known = recordings_for(vm.persona.id)
    chosen = [r for r in known if names is None or r.name in names]
    unknown = set(names or ()) - {r.name for r in known}
    if unknown:
        from lab.errors import InvalidArgument

        raise InvalidArgument(
            f"unknown recording {sorted(unknown)}: choose from {', '.join(r.name for r in known)}"
        )
    for recording in chosen:
        record_one(vm, recording, out_dir, progress=progress)
    vm.scenario("incident")
    return [r.name for r in chosen]
