"""Inventory sources: bondbot YAML, Ansible INI and YAML, ~/.ssh/config; and what they refuse."""

from __future__ import annotations

from pathlib import Path

import pytest

from ssh_exec import HostNotAllowed, HostSkipped, InventoryError
from ssh_exec.inventory import parse_bondbot_yaml
from ssh_exec.sources import parse_ansible_ini, parse_ansible_yaml, parse_ssh_config
from tests.ssh.fixtures import load_inventory

LAB = """\
hosts:
  lab-host:
    address: 127.0.0.1
    port: 2222
    user: root
    key: /path/to/id_ed25519
    sudo: false
    bond: bond0
    groups: [lab]
  web-01:
    address: 10.0.0.5
    user: ops
    sudo: true
    groups: [web]
    jump: lab-host
settings:
  allow_unlisted_hosts: false
"""


def test_bondbot_yaml() -> None:
    inv = parse_bondbot_yaml(LAB)
    lab = inv.get("lab-host")
    assert (lab.address, lab.port, lab.user, str(lab.key), lab.sudo, lab.bond, lab.groups) == (
        "127.0.0.1", 2222, "root", "/path/to/id_ed25519", False, "bond0", ("lab",))
    assert lab.known_hosts_pattern == "[127.0.0.1]:2222" and lab.privileged
    web = inv.get("web-01")
    assert web.jump == "lab-host" and web.port == 22 and web.privileged and web.known_hosts_pattern == "10.0.0.5"
    assert [h.name for h in inv.select(["web"])] == ["web-01"]
    assert [h.name for h in inv.select()] == ["lab-host", "web-01"]
    with pytest.raises(InventoryError, match="unknown group"):
        inv.select(["nope"])
    with pytest.raises(HostNotAllowed, match="not in the inventory"):
        inv.get("db-01")


@pytest.mark.parametrize(
    "text, message",
    [
        ("hosts:\n  h: {port: 70000}\n", "invalid port 70000"),
        ("hosts:\n  h: {address: 'a b'}\n", "invalid address"),
        ("hosts:\n  h: {user: '-oProxyCommand=x'}\n", "invalid user name"),
        ("hosts:\n  '-h': {}\n", "invalid host name"),
        ("hosts:\n  h: {pasword: x}\n", "unknown key"),
        ("hosts:\n  h: {sudo: maybe}\n", "invalid sudo"),
    ],
)
def test_bondbot_yaml_skips_bad_entries_with_a_warning(text: str, message: str) -> None:
    inv = parse_bondbot_yaml(text + "  ok: {address: 192.0.2.9}\n", where="inv.yaml")
    assert list(inv.hosts) == ["ok"]  # the rest loads
    (w,) = inv.warnings
    assert w.where == "inv.yaml:2" and message in w.message and "host skipped" in w.message
    name = "-h" if "'-h'" in text else "h"
    assert w.host == name
    if name == "h":
        with pytest.raises(HostSkipped, match=f"skipped when reading the inventory: .*{message}"):
            inv.get("h")


@pytest.mark.parametrize("text, message", [("hostz: {}\n", "unknown top-level key"), ("hosts: [\n", "not valid YAML")])
def test_bondbot_yaml_refuses_a_file_it_cannot_read(text: str, message: str) -> None:
    with pytest.raises(InventoryError, match=message):
        parse_bondbot_yaml(text)


def test_jump_must_exist_and_not_loop(tmp_path: Path) -> None:
    p = tmp_path / "inv.yaml"
    p.write_text("hosts:\n  a: {jump: b}\n  b: {jump: a}\n  c: {}\n")
    inv = load_inventory(p)
    assert list(inv.hosts) == ["c"]
    assert any("loop: a -> b -> a" in w.message for w in inv.warnings)
    p.write_text("hosts:\n  a: {jump: ghost}\n")
    inv = load_inventory(p)
    assert inv.hosts == {} and "'ghost' is not in the inventory" in inv.warnings[0].message
    assert inv.warnings[0].where == f"{p}:2"


def test_ansible_ini(tmp_path: Path) -> None:
    p = tmp_path / "hosts.ini"
    p.write_text(
        "# production\n"
        "bastion ansible_host=192.0.2.1\n"
        "[web]\n"
        "web[01:03].example.com ansible_user=deploy\n"
        "[db]\n"
        "db-01 ansible_host=192.0.2.10 ansible_port=2200 ansible_become=true bondbot_bond=bond1\n"
        "[web:vars]\n"
        "ansible_ssh_private_key_file=~/.ssh/web_key\n"
        "bondbot_jump=bastion\n"
        "[dc1:children]\n"
        "web\n"
        "db\n"
        "[all:vars]\n"
        "ansible_user=ops\n"
    )
    inv = load_inventory(p)
    assert list(inv.hosts) == ["bastion", "web01.example.com", "web02.example.com", "web03.example.com", "db-01"]
    w = inv.get("web02.example.com")
    assert (w.user, w.key, w.jump, w.groups) == ("deploy", Path("~/.ssh/web_key").expanduser(), "bastion", ("dc1", "web"))
    d = inv.get("db-01")
    assert (d.address, d.port, d.user, d.sudo, d.bond) == ("192.0.2.10", 2200, "ops", True, "bond1")
    assert {h.name for h in inv.select(["dc1"])} == {"web01.example.com", "web02.example.com", "web03.example.com", "db-01"}
    assert not inv.allow_unlisted_hosts


def test_ansible_yaml(tmp_path: Path) -> None:
    p = tmp_path / "hosts.yml"
    p.write_text(
        "all:\n"
        "  vars: {ansible_user: ops}\n"
        "  children:\n"
        "    storage:\n"
        "      hosts:\n"
        "        nas-01: {ansible_host: 192.0.2.20, bondbot_bond: bond2}\n"
        "      vars: {ansible_become: yes}\n"
    )
    inv = load_inventory(p)
    h = inv.get("nas-01")
    assert (h.address, h.user, h.sudo, h.bond, h.groups) == ("192.0.2.20", "ops", True, "bond2", ("storage",))


def test_ansible_yaml_hosts_key_is_not_mistaken_for_bondbot_format(tmp_path: Path) -> None:
    p = tmp_path / "inv.yaml"
    p.write_text("all:\n  hosts:\n    n1: {ansible_host: 192.0.2.30}\n")
    assert load_inventory(p).get("n1").address == "192.0.2.30"
    assert parse_ansible_yaml("all:\n  hosts:\n    n1:\n").get("n1").address == "n1"


def test_ssh_config(tmp_path: Path) -> None:
    p = tmp_path / "config"
    p.write_text(
        "Host bastion\n"
        "    HostName 192.0.2.1\n"
        "    User jump\n"
        "Host web-* !web-test\n"
        "    User deploy\n"
        "Host web-01 web-02\n"
        "    HostName %h.example.com\n"
        "    Port=2022\n"
        "    ProxyJump bastion\n"
        "Host *\n"
        "    IdentityFile ~/.ssh/id_ed25519\n"
        "    User root\n"
    )
    inv = load_inventory(p)
    assert list(inv.hosts) == ["bastion", "web-01", "web-02"]
    w = inv.get("web-01")
    assert (w.address, w.port, w.user, w.jump, w.key) == (
        "web-01.example.com", 2022, "deploy", "bastion", Path("~/.ssh/id_ed25519").expanduser())
    assert inv.get("bastion").user == "jump"
    chain = parse_ssh_config("Host a\n  ProxyJump x,ops@y:2200\n")
    a = chain.get("a")
    assert a.proxy_jump == "x,ops@y:2200" and a.jump == "ops@y:2200 via x"
    y = chain.jump_host(a.jump)
    assert (y.address, y.port, y.user, y.jump) == ("y", 2200, "ops", "x")
    assert chain.jump_host("x").address == "x"


def test_bondbot_yaml_includes_other_sources(tmp_path: Path) -> None:
    (tmp_path / "hosts.ini").write_text("[web]\nweb-01 ansible_host=192.0.2.5\nlab-host\n")
    p = tmp_path / "inventory.yaml"
    p.write_text(LAB + "include:\n  - {path: hosts.ini}\n")
    inv = load_inventory(p)
    assert inv.get("lab-host").port == 2222  # own entry wins over the included one
    assert inv.get("web-01").address == "10.0.0.5"
    assert "web" in {g for h in inv.hosts.values() for g in h.groups}


def test_missing_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InventoryError, match="does not exist"):
        load_inventory(tmp_path / "nope.yaml")
    monkeypatch.setenv("BONDBOT_INVENTORY", str(tmp_path / "default.yaml"))
    from bondbot.commands._remote import open_inventory

    inv = open_inventory(None)  # the CLI's default location: a missing file is an empty inventory
    with pytest.raises(HostNotAllowed, match="default.yaml"):
        inv.get("web-01")
    assert parse_ansible_ini("").hosts == {}
