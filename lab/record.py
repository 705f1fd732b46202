"""Recording the triage's real outputs from the lab VM as the project's test fixtures.

For every scenario (and for ``incident`` and ``healthy`` once more after eno1's switch port is
shut) the triage commands run over SSH exactly as the runbook sends them, and what they print is
saved byte for byte in ``tests/fixtures/lab/<name>/`` (format: ``tests/fixtures/README.md``).
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab.network import BOND, BOND_NICS
from lab.scenarios import SCENARIOS, get_scenario
from lab.vm import CommandResult, LabVM

__all__ = ["triage_commands", "Recording", "RECORDINGS", "record_all", "record_one", "dump_yaml"]

Progress = Callable[[str], None]


def triage_commands(bond: str = BOND, slaves: tuple[str, ...] = ("eno1", "eno2")) -> list[str]:
    """The seed runbook's triage steps, as the command strings sent over SSH."""
    q = shlex.join
    commands = [q(["cat", f"/proc/net/bonding/{bond}"]), q(["ip", "-d", "-j", "link", "show", bond])]
    commands += [q(["ip", "link", "show", s]) for s in slaves]
    commands += [q(["ethtool", s]) for s in slaves]
    commands.append(q(["nmcli", "-t", "con", "show", bond]))
    return commands


@dataclass(frozen=True)
class Recording:
    """One fixture directory: a scenario, optionally with some switch ports shut."""

    name: str
    scenario: str
    links_down: tuple[str, ...] = ()

    @property
    def description(self) -> str:
        text = get_scenario(self.scenario).summary
        if self.links_down:
            text += f"; switch port of {', '.join(self.links_down)} shut (QMP set_link off)"
        return text


RECORDINGS: tuple[Recording, ...] = tuple(Recording(name, name) for name in SCENARIOS) + (
    Recording("incident-eno1-down", "incident", ("eno1",)),
    Recording("healthy-eno1-down", "healthy", ("eno1",)),
)


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


def record_one(vm: LabVM, recording: Recording, out_dir: Path, *, settle_s: float = 3.0,
               progress: Progress = lambda _msg: None) -> list[CommandResult]:
    """Put the VM into ``recording``'s state and save the triage outputs under ``out_dir/<name>``."""
    scenario = get_scenario(recording.scenario)
    progress(f"recording {recording.name}")
    vm.scenario(scenario.name)
    # Let the monitors settle: LACP negotiation, ARP probes, carrier after the links came back.
    time.sleep(settle_s)
    for name in recording.links_down:
        vm.link(name, False)
    if recording.links_down:
        time.sleep(settle_s)
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


def record_all(vm: LabVM, out_dir: Path, *, names: list[str] | None = None,
               progress: Progress = lambda _msg: None) -> list[str]:
    """Record every recording (or those in ``names``); leaves the VM in the ``incident`` state."""
    chosen = [r for r in RECORDINGS if names is None or r.name in names]
    unknown = set(names or ()) - {r.name for r in RECORDINGS}
    if unknown:
        from lab.errors import InvalidArgument

        raise InvalidArgument(
            f"unknown recording {sorted(unknown)}: choose from {', '.join(r.name for r in RECORDINGS)}"
        )
    for recording in chosen:
        record_one(vm, recording, out_dir, progress=progress)
    vm.scenario("incident")
    return [r.name for r in chosen]
