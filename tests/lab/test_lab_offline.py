"""The lab's parts that need no VM: clear errors, the recipe hash, keyfiles, inventory, fixtures.

These run in the fast suite (not marked ``lab``).
"""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from lab.errors import ImageMissing, InvalidArgument, LabNotRunning, QemuMissing
from lab.hostconfig import pin_known_host, write_inventory_entry
from lab.image import debian_mirror, find_image
from lab.recipe import RECIPE, recipe_hash
from lab.record import RECORDINGS, dump_yaml, triage_commands
from lab.scenarios import SCENARIOS, apply_script, get_scenario, keyfiles
from lab.vm import LabVM, qemu_binary

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "lab"
def run_cli(*args: str, env: dict[str, str] | None = None) -> SimpleNamespace:
    """Run ``bondbot lab ARGS`` in-process (the real Typer app, without a process start)."""
    from typer.testing import CliRunner

    from bondbot.cli import app

    result = CliRunner().invoke(app, ["lab", *args], env=env)
    return SimpleNamespace(returncode=result.exit_code, stdout=result.stdout, stderr=result.stderr)


def test_missing_qemu_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(QemuMissing, match="install the Debian package qemu-system-x86"):
        qemu_binary()
    with pytest.raises(QemuMissing):
        LabVM(tmp_path / "vm").up()
    assert not (tmp_path / "vm").exists()  # nothing was started or created


def test_missing_image_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ImageMissing, match="run `bondbot lab build`"):
        find_image(tmp_path)


def test_cli_up_without_image_says_how_to_build(tmp_path: Path) -> None:
    proc = run_cli("up", env={"BONDBOT_LAB_DIR": str(tmp_path), "BONDBOT_CONFIG_DIR": str(tmp_path / "cfg")})
    assert proc.returncode == 1
    assert "the lab image is not built" in proc.stderr and "bondbot lab build" in proc.stderr
    assert not (tmp_path / "cfg").exists()  # no inventory written


def test_cli_rejects_bad_input_with_exit_2(tmp_path: Path) -> None:
    env = {"BONDBOT_LAB_DIR": str(tmp_path)}
    bad_if = run_cli("link", "eth0;reboot", "down", env=env)
    assert bad_if.returncode == 2 and "unknown lab interface 'eth0;reboot'" in bad_if.stderr
    bad_state = run_cli("link", "eno1", "sideways", env=env)
    assert bad_state.returncode == 2 and "invalid link state 'sideways'" in bad_state.stderr
    bad_scenario = run_cli("scenario", "chaos", env=env)
    assert bad_scenario.returncode == 2 and "unknown lab scenario 'chaos'" in bad_scenario.stderr


def test_cli_commands_on_a_stopped_vm(tmp_path: Path) -> None:
    env = {"BONDBOT_LAB_DIR": str(tmp_path)}
    assert run_cli("down", env=env).returncode == 0
    status = run_cli("status", env=env)
    assert status.returncode == 3 and "not running" in status.stdout
    link = run_cli("link", "eno1", "down", env=env)
    assert link.returncode == 1 and "not running" in link.stderr and "bondbot lab up" in link.stderr
    with pytest.raises(LabNotRunning):
        LabVM(tmp_path / "vm").state()


def test_recipe_hash_is_stable_and_follows_the_recipe() -> None:
    assert recipe_hash() == recipe_hash(RECIPE)
    changed = dataclasses.replace(RECIPE, packages=(*RECIPE.packages, "tcpdump"))
    assert recipe_hash(changed) != recipe_hash()


def test_ports_use_the_keys_nm_142_understands() -> None:
    for scenario in SCENARIOS.values():
        files = keyfiles(scenario)
        assert set(files) == {"bond0.nmconnection", *(f"bond0-{p}.nmconnection" for p in scenario.ports)}
        for name, text in files.items():
            if name != "bond0.nmconnection":
                assert "master=bond0\n" in text and "slave-type=bond\n" in text
                assert "controller=" not in text and "port-type=" not in text
    incident = keyfiles(get_scenario("incident"))["bond0.nmconnection"]
    assert "[bond]\nmode=active-backup\nmiimon=0\nprimary=eno1\n" in incident


def test_apply_script_is_valid_shell() -> None:
    for scenario in SCENARIOS.values():
        proc = subprocess.run(["sh", "-n"], input=apply_script(scenario), capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr


def test_unknown_scenario_lists_the_known_ones() -> None:
    with pytest.raises(InvalidArgument, match="choose one of incident, healthy, arp"):
        get_scenario("incdent")


def test_inventory_entry_is_merged_not_clobbered(tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text("hosts:\n  web-01:\n    address: 10.0.0.5\nsettings:\n  allow_unlisted_hosts: false\n")
    entry = {"address": "127.0.0.1", "port": 2222, "user": "root", "key": "/k", "sudo": False,
             "bond": "bond0", "groups": ["lab"]}
    write_inventory_entry(inventory, "lab-host", entry)
    write_inventory_entry(inventory, "lab-host", {**entry, "port": 2223})
    data = yaml.safe_load(inventory.read_text())
    assert data["hosts"]["web-01"] == {"address": "10.0.0.5"}
    assert data["hosts"]["lab-host"]["port"] == 2223
    assert data["settings"] == {"allow_unlisted_hosts": False}
    assert "groups: [lab]" in inventory.read_text()


def test_inventory_that_is_not_a_mapping_is_refused_untouched(tmp_path: Path) -> None:
    from lab.errors import LabError

    inventory = tmp_path / "inventory.yaml"
    inventory.write_text("- just\n- a list\n")
    with pytest.raises(LabError, match="not a bondbot inventory"):
        write_inventory_entry(inventory, "lab-host", {"port": 1})
    assert inventory.read_text() == "- just\n- a list\n"


def test_pinning_replaces_only_the_same_host_and_port(tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    known.write_text("web-01 ssh-ed25519 AAAAweb\n[127.0.0.1]:2222 ssh-ed25519 AAAAold\n"
                     "[127.0.0.1]:2223 ssh-ed25519 AAAAother\n")
    pin_known_host(known, "127.0.0.1", 2222, "ssh-ed25519 AAAAnew")
    assert known.read_text().splitlines() == [
        "web-01 ssh-ed25519 AAAAweb",
        "[127.0.0.1]:2223 ssh-ed25519 AAAAother",
        "[127.0.0.1]:2222 ssh-ed25519 AAAAnew",
    ]


def test_mirror_comes_from_the_settings_first(monkeypatch: pytest.MonkeyPatch) -> None:
    from bondbot.settings import lab_mirror

    monkeypatch.setenv("BONDBOT_LAB_MIRROR", "http://mirror.example/debian")
    assert debian_mirror(lab_mirror()) == "http://mirror.example/debian"
    assert debian_mirror() != "http://mirror.example/debian"  # the lab itself reads no environment
    monkeypatch.delenv("BONDBOT_LAB_MIRROR")
    assert lab_mirror() is None and debian_mirror(lab_mirror()).startswith("http")


def test_triage_command_strings() -> None:
    assert triage_commands() == [
        "cat /proc/net/bonding/bond0",
        "ip -d -j link show bond0",
        "ip link show eno1",
        "ip link show eno2",
        "ethtool eno1",
        "ethtool eno2",
        "nmcli -t con show bond0",
    ]


def test_dump_yaml_round_trips_tabs_and_trailing_spaces() -> None:
    data = [{"command": "x", "stdout": "a\tb\n  c \n\nlast", "stderr": ""}]
    assert yaml.safe_load(dump_yaml(data)) == data


@pytest.mark.parametrize("recording", [r.name for r in RECORDINGS])
def test_recorded_fixtures_are_complete(recording: str) -> None:
    folder = FIXTURES / recording
    assert folder.is_dir(), f"missing fixture {folder}: run `bondbot lab record`"
    meta = yaml.safe_load((folder / "meta.yaml").read_text())
    assert meta["bond"] == "bond0" and meta["kernel_release"] and meta["network_manager_version"]
    commands = yaml.safe_load((folder / "commands.yaml").read_text())
    assert [c["command"] for c in commands] == triage_commands()
    assert all(c["exit_status"] == 0 for c in commands), [c for c in commands if c["exit_status"]]
    assert commands[0]["stdout"].startswith("Ethernet Channel Bonding Driver: v")


# --- the second persona (trixie), without a VM ---------------------------------------------------

def _trixie_named():
    from lab.network import TRIXIE

    return TRIXIE.named({n.qemu_id: f"enp0s{n.pci_slot}" for n in TRIXIE.nics})


def test_personas_share_no_name() -> None:
    from lab.network import SEED, TRIXIE

    assert TRIXIE.host_name == "edge-07" and TRIXIE.bond == "uplink0" and not TRIXIE.inventory_bond
    assert {SEED.host_name, SEED.bond} & {TRIXIE.host_name, TRIXIE.bond} == set()
    assert not {n.mac for n in SEED.nics} & {n.mac for n in TRIXIE.nics}
    assert all(n.name == "" and n.pci_slot for n in TRIXIE.nics)  # named by the guest's udev
    assert len({n.pci_slot for n in TRIXIE.nics}) == len(TRIXIE.nics)
    assert TRIXIE.mgmt not in TRIXIE.bond_nics
    assert (TRIXIE.bond_net, TRIXIE.gateway, TRIXIE.bond_address) == ("10.77.0.0/24", "10.77.0.1", "10.77.0.20")


def test_trixie_recipe_is_minimal_and_separate() -> None:
    from lab.recipe import TRIXIE_RECIPE, recipe_for

    assert TRIXIE_RECIPE.suite == "trixie" and recipe_for("trixie") is TRIXIE_RECIPE
    assert recipe_for("bookworm") is RECIPE and recipe_hash(TRIXIE_RECIPE) != recipe_hash(RECIPE)
    assert not any(p.startswith(("python", "perl")) for p in TRIXIE_RECIPE.packages)
    assert {"ifupdown", "ifenslave", "network-manager"} <= set(TRIXIE_RECIPE.packages)
    paths = [f.path for f in TRIXIE_RECIPE.files]
    assert not any(p.endswith(".link") for p in paths)  # udev names the NICs
    assert "edge-07\n" in {f.content for f in TRIXIE_RECIPE.files if f.path == "/etc/hostname"}


def test_trixie_scripts_are_valid_shell_and_assume_no_names() -> None:
    from lab.edge_scenarios import EDGE_SCENARIOS, edge_apply_script
    from lab.network import TRIXIE

    persona = _trixie_named()
    for scenario in EDGE_SCENARIOS.values():
        script = edge_apply_script(persona, scenario)
        proc = subprocess.run(["sh", "-n"], input=script, capture_output=True, text=True)
        assert proc.returncode == 0, (scenario.name, proc.stderr)
        assert "ens4" not in script and "eno1" not in script  # only the names it was given
    assert "primary=enp0s4" in edge_apply_script(persona, EDGE_SCENARIOS["incident"])
    with pytest.raises(InvalidArgument, match="NIC names are not known"):
        edge_apply_script(TRIXIE, EDGE_SCENARIOS["incident"])


def test_trixie_profiles_are_made_by_nmcli_not_written() -> None:
    from lab.edge_scenarios import EDGE_SCENARIOS, edge_apply_script

    incident = edge_apply_script(_trixie_named(), EDGE_SCENARIOS["incident"])
    assert "nmcli connection add type bond ifname uplink0 " in incident and "con-name" not in incident
    assert "nmcli connection add type ethernet ifname enp0s4 master uplink0 " in incident
    script = edge_apply_script(_trixie_named(), EDGE_SCENARIOS["spaced-profile"])
    assert "nmcli connection add type bond con-name 'Bond connection 1' ifname uplink0 " in script
    assert ".nmconnection" not in script
    ifupdown = edge_apply_script(_trixie_named(), EDGE_SCENARIOS["ifupdown"])
    assert "    bond-miimon 0\n" in ifupdown and "    bond-primary enp0s4\n" in ifupdown
    assert "nmcli connection add" not in ifupdown


def test_trixie_inventory_entry_has_no_bond(tmp_path: Path) -> None:
    from lab.image import Image
    from lab.vm import VMState

    vm = LabVM(tmp_path / "vm", image=Image(tmp_path), persona="trixie")
    state = VMState(pid=1, ssh_port=2222, bond_ssh_port=2223, accel="tcg", image=str(tmp_path),
                    started_at=0.0, persona="trixie")
    entry = vm.inventory_entry(state)
    assert "bond" not in entry and entry["port"] == 2222 and vm.inventory_name == "edge-07"
    seed = LabVM(tmp_path / "seed", image=Image(tmp_path)).inventory_entry(state)
    assert seed["bond"] == "bond0"


def test_cli_persona_errors(tmp_path: Path) -> None:
    env = {"BONDBOT_LAB_DIR": str(tmp_path)}
    bad = run_cli("up", "--persona", "sid", env=env)
    assert bad.returncode == 2 and "unknown lab persona 'sid'" in bad.stderr and "trixie" in bad.stderr
    wrong = run_cli("scenario", "ifupdown", env=env)  # a trixie scenario, asked of the seed
    assert wrong.returncode == 2 and "unknown lab scenario 'ifupdown'" in wrong.stderr
    stopped = run_cli("scenario", "ifupdown", "--persona", "trixie", env=env)
    assert stopped.returncode == 1 and "not running" in stopped.stderr
    status = run_cli("status", "--persona", "trixie", env=env)
    assert status.returncode == 3 and "not running" in status.stdout
    missing = run_cli("up", "--persona", "trixie", env=env)
    assert missing.returncode == 1 and "the trixie lab image is not built" in missing.stderr


def test_trixie_recordings_are_named_by_persona() -> None:
    from lab.edge_scenarios import EDGE_SCENARIOS
    from lab.record import recordings_for

    assert [r.name for r in recordings_for("trixie")] == [f"trixie-{s}" for s in EDGE_SCENARIOS]
    assert recordings_for("bookworm") == RECORDINGS


def test_a_session_whose_guest_died_boots_it_again_before_the_next_scenario(tmp_path: Path) -> None:
    """lab/testing.py's own fallback, without a boot: the VM's QEMU is gone (a real dead pid), so
    the next test's scenario boots the guest again, with a warning, instead of erroring; a guest
    that answers but whose scenario fails is that test's error, not booted again."""
    import subprocess
    from typing import Any

    from lab.errors import GuestCommandError
    from lab.network import SEED
    from lab.testing import LabSession
    from lab.vm import _pid_alive

    dead = subprocess.Popen(["true"])
    dead.wait()
    # A live process that _pid_alive takes for the lab's QEMU (its argv[0] says so).
    qemu_like = subprocess.Popen(["bash", "-c", 'exec -a "qemu-system-x86_64 -name bondbot-lab" sleep 60'])

    class Guest:
        def __init__(self, alive: bool) -> None:
            self.calls: list[str] = []
            self.alive = alive
            self.persona = SEED

        def scenario(self, name: str) -> None:
            self.calls.append(f"scenario {name}")
            if len([c for c in self.calls if c.startswith("scenario")]) == 1:
                raise GuestCommandError("'sh -s' failed in the lab VM (exit 255): Connection timed out")

        def state(self) -> Any:
            return type("S", (), {"pid": qemu_like.pid if self.alive else dead.pid, "ssh_port": 1})()

        def is_running(self) -> bool:  # LabVM's own check, on this guest's (real) process
            return _pid_alive(self.state().pid)

        def ssh(self, command: str, **kwargs: Any) -> Any:
            return type("R", (), {"exit_status": 0})()

        def down(self) -> bool:
            self.calls.append("down")
            return True

        def up(self, **kwargs: Any) -> None:
            self.calls.append("up")

    guest = Guest(alive=False)
    session = LabSession(guest, tmp_path / "inventory.yaml", tmp_path / "known_hosts")  # type: ignore[arg-type]
    with pytest.warns(UserWarning, match="stopped answering"):
        session.scenario("incident")
    assert guest.calls == ["scenario incident", "down", "up", "scenario incident"]
    assert session.boot_messages[0].startswith("booted again: 'sh -s' failed")

    alive = Guest(alive=True)
    try:
        with pytest.raises(GuestCommandError):
            LabSession(alive, tmp_path / "i.yaml", tmp_path / "kh").scenario("incident")  # type: ignore[arg-type]
    finally:
        qemu_like.kill()
        qemu_like.wait()
    assert alive.calls == ["scenario incident"]
