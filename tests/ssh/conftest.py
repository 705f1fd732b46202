import pytest

from tests.ssh.fixtures import ssh_host, sshd_server  # noqa: F401


@pytest.fixture(autouse=True)
def _builtin_ansible_parser(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unit tests read Ansible inventories with the built-in parser unless they ask for
    ansible-inventory (the corpus tests do): results must not depend on what is on PATH."""
    monkeypatch.setenv("BONDBOT_ANSIBLE_INVENTORY", "never")
