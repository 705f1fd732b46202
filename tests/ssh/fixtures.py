"""pytest fixtures around ``tests/sshd.py``, shared by tests/ssh/ and tests/runbook_engine/.

Import them into a conftest: ``from tests.ssh.fixtures import sshd_server, ssh_host  # noqa: F401``.
One sshd serves the whole session; ``ssh_host`` resets it for each test (replay table, mode, log)
and points bondbot's settings (inventory, known_hosts, data dirs) at the test's tmp_path.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bondbot import settings
from ssh_exec import Inventory
from ssh_exec import load_inventory as _load_inventory
from tests.sshd import SshServer, sshd_available, start_sshd

__all__ = ["sshd_server", "ssh_host", "SshTestHost", "seed_replay", "WRITTEN_FIXTURES", "load_inventory"]


def load_inventory(path: Path | str, **kwargs: Any) -> Inventory:
    """``ssh_exec.load_inventory`` given the CLI's ``ansible-inventory`` setting, as ``bondbot`` passes
    it (``BONDBOT_ANSIBLE_INVENTORY``: conftest makes it ``never``; tests that want it set it)."""
    kwargs.setdefault("ansible_inventory", settings.ansible_inventory())
    return _load_inventory(path, **kwargs)

WRITTEN_FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "written"

# How the diagnosis engineer named the files in tests/fixtures/written/<scenario>/ -> the command.
_FILE_TO_COMMAND = {
    "proc_net_bonding_{bond}.txt": "cat /proc/net/bonding/{bond}",
    "ip_-d_-j_link_show_{bond}.json": "ip -d -j link show {bond}",
    "nmcli_-t_con_show_{bond}.txt": "nmcli -t con show {bond}",
}


def seed_replay(scenario: str = "seed-active-backup-miimon0", bond: str = "bond0") -> dict[str, tuple[int, str, str]]:
    """A replay table from the written fixtures of ``scenario`` (files named after the command)."""
    folder = WRITTEN_FIXTURES / scenario
    if not folder.is_dir():
        pytest.skip(f"written fixtures {folder} not present")
    table: dict[str, tuple[int, str, str]] = {}
    for pattern, command in _FILE_TO_COMMAND.items():
        f = folder / pattern.format(bond=bond)
        if f.exists():
            table[command.format(bond=bond)] = (0, f.read_text(), "")
    for f in folder.glob("ip_link_show_*.txt"):
        table[f"ip link show {f.stem.removeprefix('ip_link_show_')}"] = (0, f.read_text(), "")
    for f in folder.glob("ethtool_*.txt"):
        table[f"ethtool {f.stem.removeprefix('ethtool_')}"] = (0, f.read_text(), "")
    from tests.triage_replay import with_discovery  # the host-level reads, derived from the same files

    return with_discovery(table, (bond,))


@dataclass
class SshTestHost:
    server: SshServer
    tmp: Path
    inventory_path: Path
    known_hosts_path: Path
    name: str = "test-host"

    def inventory(self) -> Inventory:
        return load_inventory(self.inventory_path)

    def rewrite_inventory(self, **overrides: object) -> Inventory:
        self.server.write_inventory(self.inventory_path, name=self.name, **overrides)  # type: ignore[arg-type]
        return self.inventory()


@pytest.fixture(scope="session")
def sshd_server() -> Iterator[SshServer]:
    reason = sshd_available()
    if reason:
        pytest.skip(reason)
    server = start_sshd()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def ssh_host(sshd_server: SshServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SshTestHost:
    sshd_server.set_replay({})
    sshd_server.clear_log()
    monkeypatch.setenv("BONDBOT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("BONDBOT_CONFIG_DIR", str(tmp_path / "config"))
    known_hosts = sshd_server.write_known_hosts(tmp_path / "known_hosts")
    inventory = sshd_server.write_inventory(tmp_path / "inventory.yaml")
    monkeypatch.setenv("BONDBOT_KNOWN_HOSTS", str(known_hosts))
    monkeypatch.setenv("BONDBOT_INVENTORY", str(inventory))
    return SshTestHost(sshd_server, tmp_path, inventory, known_hosts)
