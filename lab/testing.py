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

Without the image the fixture fails in CI (``CI`` set) and skips elsewhere, with the reason.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from lab import LabError, LabVM, find_image
from lab.vm import INVENTORY_NAME, CommandResult, qemu_binary

__all__ = ["LabSession", "lab_vm", "lab_host", "lab_env"]

_shared: dict[str, Any] = {"session": None, "users": 0}


@dataclass
class LabSession:
    """The booted lab VM and where its inventory entry and pinned host key were written."""

    vm: LabVM
    inventory_path: Path
    known_hosts_path: Path
    host_name: str = INVENTORY_NAME

    def ssh(self, command: str, **kwargs: Any) -> CommandResult:
        """Run a command as root in the guest (see :meth:`LabVM.ssh`)."""
        return self.vm.ssh(command, **kwargs)

    def link(self, name: str, up: bool) -> None:
        """Shut (False) or re-enable (True) the switch port of eno1, eno2 or mgmt0."""
        self.vm.link(name, up)

    def scenario(self, name: str) -> None:
        """Put the host into a named scenario (links up first); updates the inventory file."""
        self.vm.scenario(name)

    def reboot(self) -> float:
        """Reboot the guest and wait for SSH; returns the seconds it took."""
        return self.vm.reboot()

    @property
    def entry(self) -> dict[str, Any]:
        """The ``lab-host`` inventory entry as currently written (port follows ``ssh-via-bond``)."""
        return self.vm.inventory_entry()


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"lab VM unavailable in CI: {reason}", pytrace=False)
    pytest.skip(f"lab VM unavailable: {reason}")


def _acquire(tmp_path_factory: pytest.TempPathFactory) -> LabSession:
    if _shared["session"] is None:
        try:
            qemu_binary()
            image = find_image()
        except LabError as exc:
            _unavailable(str(exc))
        base = tmp_path_factory.mktemp("lab")
        vm = LabVM(base / "vm", image=image)
        session = LabSession(vm, base / "inventory.yaml", base / "known_hosts")
        try:
            vm.up(inventory_path=session.inventory_path, known_hosts_path=session.known_hosts_path)
        except BaseException:
            vm.down()
            raise
        _shared["session"] = session
    _shared["users"] += 1
    return _shared["session"]


def _release() -> None:
    _shared["users"] -= 1
    if _shared["users"] == 0 and _shared["session"] is not None:
        _shared["session"].vm.down()
        _shared["session"] = None


@pytest.fixture(scope="session")
def lab_vm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabSession]:
    session = _acquire(tmp_path_factory)
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
