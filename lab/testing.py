"""Pytest fixtures for the lab VM: booted once per test run, shared by every test marked ``lab``.

Use them from any conftest with ``from lab.testing import lab_vm, lab_host, lab_env  # noqa: F401``.
However many conftest files import them, one VM boots per process (shared and reference-counted)
and it is stopped when the last session fixture is torn down.

- ``lab_vm`` (session): a :class:`LabSession` around a VM of its own (not the developer's
  ``bondbot lab up`` VM), with an inventory and known_hosts file of its own in a temp directory.
- ``lab_host`` (function): the same session, first reset to the ``incident`` scenario with all
  links up, so every test starts from the seed's state whatever the previous test did.
- ``lab_env`` (function): ``lab_host`` plus ``BONDBOT_INVENTORY`` / ``BONDBOT_KNOWN_HOSTS``
  pointing at the session's files, for code that reads bondbot's settings.
- ``lab_vm2`` / ``lab_host2`` / ``lab_env2``: the same for the second persona, ``trixie`` (inventory
  name ``edge-07``, written without ``bond:``). Booted only when a test asks for it, once per run.
  ``session.persona`` is the truth (bond, the guest's NIC names, gateway) for oracles in tests.

Without the image the fixture fails in CI (``CI`` set) and skips elsewhere, with the reason.
The images are looked up in the ``lab_directory`` fixture, which the test suite's conftest provides
(``bondbot.settings.lab_dir()``): the lab does not read bondbot's settings itself.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from lab import LabError, LabVM, find_image
from lab.fakeqemu import write_wrapper
from lab.network import SEED, TRIXIE, Persona
from lab.recipe import recipe_for
from lab.vm import INVENTORY_NAME, CommandResult, qemu_binary

__all__ = ["LabSession", "lab_vm", "lab_host", "lab_env", "lab_vm2", "lab_host2", "lab_env2"]

# One shared, reference-counted session per persona.
_shared: dict[str, dict[str, Any]] = {}


@dataclass
class LabSession:
    """The booted lab VM and where its inventory entry and pinned host key were written."""

    vm: LabVM
    inventory_path: Path
    known_hosts_path: Path
    host_name: str = INVENTORY_NAME
    # What ``up`` said while booting (the fallback from KVM to TCG, when it happened).
    boot_messages: list[str] = field(default_factory=list)

    @property
    def persona(self) -> Persona:
        """The truth about this host (bond, NIC names as the guest calls them, gateway), for test
        ORACLES only: the code under test must discover all of it by itself."""
        return self.vm.persona

    def ssh(self, command: str, **kwargs: Any) -> CommandResult:
        """Run a command as root in the guest (see :meth:`LabVM.ssh`)."""
        return self.vm.ssh(command, **kwargs)

    def link(self, name: str, up: bool) -> None:
        """Shut (False) or re-enable (True) the switch port of a NIC, by the guest's name for it."""
        self.vm.link(name, up)

    def scenario(self, name: str) -> None:
        """Put the host into a named scenario (links up first); updates the inventory file.

        A guest that no longer answers at all (its QEMU gone, or SSH refused on the management
        port: a kernel that panicked between two tests) is booted again first, with a warning, so
        that one dead guest fails the test that met it, not every later test of the session."""
        try:
            self.vm.scenario(name)
            return
        except LabError as exc:
            if self._answers():
                raise
            reason = str(exc).splitlines()[0][:300]
        warnings.warn(f"the lab VM ({self.vm.persona.id}) stopped answering ({reason}); booting it again",
                      stacklevel=2)
        self.boot_messages.append(f"booted again: {reason}")
        self.vm.down()
        self.vm.up(inventory_path=self.inventory_path, known_hosts_path=self.known_hosts_path,
                   progress=self.boot_messages.append)
        self.vm.scenario(name)

    def _answers(self) -> bool:
        if not self.vm.is_running():
            return False
        try:
            return self.vm.ssh("true", timeout=30, port=self.vm.state().ssh_port).exit_status == 0
        except LabError:
            return False

    def reboot(self, *, crash: bool = False) -> float:
        """Reboot the guest and wait for SSH; returns the seconds it took (``crash``: see
        ``LabVM.reboot``; what it did is in ``boot_messages``)."""
        return self.vm.reboot(crash=crash, progress=self.boot_messages.append)

    @property
    def entry(self) -> dict[str, Any]:
        """The host's inventory entry as currently written (port follows ``ssh-via-bond``)."""
        return self.vm.inventory_entry()


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"lab VM unavailable in CI: {reason}", pytrace=False)
    pytest.skip(f"lab VM unavailable: {reason}")


def _boot(persona: Persona, tmp_path_factory: pytest.TempPathFactory, lab_directory: Path) -> LabSession:
    # The suite is this layer's entry point: it reads the settings ``bondbot`` reads for the lab
    # (BONDBOT_QEMU, BONDBOT_LAB_ACCEL) and hands them to the VM, as the CLI does.
    qemu = os.environ.get("BONDBOT_QEMU") or None
    accel = os.environ.get("BONDBOT_LAB_ACCEL") or "auto"
    try:
        qemu_binary(qemu)
        image = find_image(lab_directory, recipe=recipe_for(persona))
    except LabError as exc:
        _unavailable(str(exc))
    base = tmp_path_factory.mktemp(f"lab-{persona.id}")
    kwargs: dict[str, Any] = {}
    if persona.id != SEED.id and qemu is None:
        # The second persona's boot is also the real test of the KVM fallback: QEMU behind a
        # wrapper that aborts under -accel kvm as this project's CI machine does, with a
        # "/dev/kvm" that opens and a verdict file of its own (the developer's stays untouched).
        # The seed's boot stays plain "auto", so a machine with working KVM still uses it there.
        kvm_device = base / "kvm"
        kvm_device.write_text("")
        wrapper = write_wrapper(base / "qemu-kvm-aborts", kvm="abort", tcg="exec", real=qemu_binary())
        kwargs = {"kvm_device": str(kvm_device), "kvm_verdict": base / "kvm-verdict.json"}
        qemu, accel = str(wrapper), "auto"
    vm = LabVM(base / "vm", image=image, persona=persona, qemu=qemu, accel=accel, **kwargs)
    session = LabSession(vm, base / "inventory.yaml", base / "known_hosts", host_name=vm.inventory_name)
    try:
        vm.up(inventory_path=session.inventory_path, known_hosts_path=session.known_hosts_path,
              progress=session.boot_messages.append)
    except BaseException:
        vm.down()
        raise
    return session


def _acquire(tmp_path_factory: pytest.TempPathFactory, lab_directory: Path, persona: Persona = SEED) -> LabSession:
    shared = _shared.setdefault(persona.id, {"session": None, "users": 0})
    if shared["session"] is None:
        shared["session"] = _boot(persona, tmp_path_factory, lab_directory)
    shared["users"] += 1
    return shared["session"]


def _release(persona: Persona = SEED) -> None:
    shared = _shared[persona.id]
    shared["users"] -= 1
    if shared["users"] == 0 and shared["session"] is not None:
        shared["session"].vm.down()
        shared["session"] = None


@pytest.fixture(scope="session")
def lab_vm(tmp_path_factory: pytest.TempPathFactory, lab_directory: Path) -> Iterator[LabSession]:
    session = _acquire(tmp_path_factory, lab_directory)
    try:
        yield session
    finally:
        _release()


@pytest.fixture
def lab_host(lab_vm: LabSession) -> LabSession:
    lab_vm.scenario("incident")
    return lab_vm


@pytest.fixture
def lab_env(lab_host: LabSession, monkeypatch: pytest.MonkeyPatch) -> LabSession:
    monkeypatch.setenv("BONDBOT_INVENTORY", str(lab_host.inventory_path))
    monkeypatch.setenv("BONDBOT_KNOWN_HOSTS", str(lab_host.known_hosts_path))
    return lab_host


@pytest.fixture(scope="session")
def lab_vm2(tmp_path_factory: pytest.TempPathFactory, lab_directory: Path) -> Iterator[LabSession]:
    """The ``trixie`` persona (edge-07, uplink0, udev-named NICs, no python3), booted once."""
    session = _acquire(tmp_path_factory, lab_directory, TRIXIE)
    try:
        yield session
    finally:
        _release(TRIXIE)


@pytest.fixture
def lab_host2(lab_vm2: LabSession) -> LabSession:
    lab_vm2.scenario("incident")
    return lab_vm2


@pytest.fixture
def lab_env2(lab_host2: LabSession, monkeypatch: pytest.MonkeyPatch) -> LabSession:
    monkeypatch.setenv("BONDBOT_INVENTORY", str(lab_host2.inventory_path))
    monkeypatch.setenv("BONDBOT_KNOWN_HOSTS", str(lab_host2.known_hosts_path))
    return lab_host2
