"""CLI details users expect: --version, -h, shell completion; hosts list/show with warnings and
origins; diagnose without a bond name; nothing host-derived reaches the terminal unescaped."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bondbot import __version__
from bondbot.cli import app
from tests.ssh.fixtures import load_inventory
from tests.ssh.oracles import ansible_inventory_path

BONDBOT = Path(sys.executable).parent / "bondbot"
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
INVENTORIES = FIXTURES / "inventories"


def _bondbot(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BONDBOT), *args], capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, **(env or {})))


def test_version_and_short_help() -> None:
    for flag in ("--version", "-V"):
        r = _bondbot(flag)
        assert r.returncode == 0 and r.stdout == f"bondbot {__version__}\n"
    assert _bondbot("-h").stdout == _bondbot("--help").stdout
    assert "Usage: bondbot hosts" in _bondbot("hosts", "-h").stdout
    assert "Usage: bondbot triage" in _bondbot("triage", "-h").stdout  # one module registered, -h still works


def test_shell_completion() -> None:
    r = _bondbot(env={"_BONDBOT_COMPLETE": "complete_bash", "COMP_WORDS": "bondbot hos", "COMP_CWORD": "1"})
    assert r.stdout.split() == ["hosts"]
    r = _bondbot(env={"_BONDBOT_COMPLETE": "complete_bash", "COMP_WORDS": "bondbot hosts ", "COMP_CWORD": "2"})
    assert r.stdout.split() == ["list", "show", "trust"]
    assert "_bondbot_completion" in _bondbot("--show-completion", env={"SHELL": "/bin/bash"}).stdout


def test_hosts_list_shows_warnings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BONDBOT_KNOWN_HOSTS", str(tmp_path / "kh"))
    inv = INVENTORIES / "connection-kinds" / "hosts.yml"
    r = CliRunner().invoke(app, ["hosts", "list", "--inventory", str(inv)])
    assert r.exit_code == 0, r.output
    assert "lnx01" in r.stdout and "win01" not in r.stdout
    assert f"{inv}:7: win01: ansible_connection=winrm: bondbot connects over SSH only; host skipped" in r.stderr
    data = json.loads(CliRunner().invoke(app, ["hosts", "list", "--inventory", str(inv), "--json"]).stdout)
    assert {w["host"]: w["setting"] for w in data["warnings"]}["lnx02"] == "ansible_become_method"


def test_hosts_show_prints_values_and_origins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BONDBOT_KNOWN_HOSTS", str(tmp_path / "kh"))
    d = INVENTORIES / "dir-vars"
    r = CliRunner().invoke(app, ["hosts", "show", "web-2", "--inventory", str(d)])
    assert r.exit_code == 0, r.output
    lines = {ln.split()[0]: ln for ln in r.stdout.splitlines()[1:]}
    assert "2202" in lines["port"] and f"{d}/group_vars/web/ssh.yaml:1 (group web, ansible_port)" in lines["port"]
    assert "web2-admin" in lines["user"] and f"{d}/host_vars/web-2/connection.yml:1 (ansible_user)" in lines["user"]
    assert "bond1" in lines["bond"] and f"{d}/host_vars/web-2/bondbot.yaml:2 (bondbot_bond)" in lines["bond"]
    db1 = CliRunner().invoke(app, ["hosts", "show", "db2", "--inventory", str(d)]).stdout
    assert f"{d}/group_vars/prod.yaml:1 (group prod, ansible_user)" in db1
    assert f"{d}/hosts.ini:3 (ansible_host)" in lines["address"]
    assert r.stdout.startswith(f"web-2  (defined at {d}/hosts.ini:3)")
    data = json.loads(CliRunner().invoke(app, ["hosts", "show", "db2", "--inventory", str(d), "--json"]).stdout)
    assert data["host"]["port"] == 2022 and data["origins"]["port"] == f"{d}/host_vars/db2:2 (ansible_port)"
    missing = CliRunner().invoke(app, ["hosts", "show", "nope", "--inventory", str(d)])
    assert missing.exit_code == 2 and "not in the inventory" in missing.stderr


def test_hosts_show_jump_chain(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BONDBOT_KNOWN_HOSTS", str(tmp_path / "kh"))
    config = tmp_path / "config"
    config.write_text("Host j1\n  HostName 192.0.2.7\n  User ops\nHost t\n  HostName 10.0.0.9\n"
                      "  ProxyJump j1,admin@10.0.0.1:2200  # two hops\n")
    r = CliRunner().invoke(app, ["hosts", "show", "t", "--inventory", str(config)])
    assert r.exit_code == 0, r.output
    jump = next(ln for ln in r.stdout.splitlines() if ln.split()[0] == "jump")
    assert "ops@192.0.2.7:22 -> admin@10.0.0.1:2200" in jump and f"{config}:6" in jump


def test_terminal_escapes_in_inventories_are_not_passed_through(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BONDBOT_KNOWN_HOSTS", str(tmp_path / "kh"))
    inv = tmp_path / "hosts.ini"
    inv.write_text("[web]\nok1 ansible_host=10.0.0.1\n"
                   "evil\x1b]2;pwned\x07 ansible_host=10.0.0.2\n"
                   "ok2 ansible_host=\x1b[31m10.0.0.3 ansible_user=x\n")
    for args in (["hosts", "list"], ["hosts", "list", "--json"], ["hosts", "show", "ok1"]):
        r = CliRunner().invoke(app, [*args, "--inventory", str(inv)])
        assert r.exit_code == 0, r.output
        assert "\x1b" not in r.output and "\x07" not in r.output
    r = CliRunner().invoke(app, ["hosts", "list", "--inventory", str(inv)])
    assert "\\x1b]2;pwned\\x07" in r.stderr and "ok2" in r.stderr  # named, escaped, skipped


def test_one_bad_line_in_an_included_file_skips_only_that_entry(tmp_path: Path) -> None:
    p = tmp_path / "inventory.yaml"
    bad = INVENTORIES / "bad-line" / "hosts.ini"
    p.write_text(f"hosts:\n  mine: {{address: 192.0.2.50}}\ninclude:\n  - {{path: {bad}}}\n")
    inv = load_inventory(p)
    assert list(inv.hosts) == ["mine", "good1", "good2"]
    (w,) = inv.warnings
    assert w.where == f"{bad}:3" and "expected key=value" in w.message and "this-is-not-key-value" in w.message


def test_diagnose_with_only_proc_never_invents_a_bond_name(tmp_path: Path) -> None:
    src = FIXTURES / "written" / "seed-active-backup-miimon0" / "proc_net_bonding_bond0.txt"
    saved = tmp_path / "output.txt"
    saved.write_bytes(src.read_bytes())
    r = _bondbot("diagnose", "--proc", str(saved))
    assert r.returncode == 0, r.stderr
    assert "unknown" not in r.stdout
    fix = next(ln for ln in r.stdout.splitlines() if "echo 100 >" in ln)
    assert "/sys/class/net/<BOND>/bonding" in fix  # a placeholder the user must fill, never a guessed name
    assert "cat /proc/net/bonding/<BOND>" in r.stdout and "--bond NAME" in r.stderr
    named = _bondbot("diagnose", "--proc", str(saved), "--bond", "bond7")
    assert "/sys/class/net/bond7/bonding" in named.stdout and "<BOND>" not in named.stdout
    assert "bond0" in _bondbot("diagnose", "--proc", str(src)).stdout.splitlines()[0]  # proc_net_bonding_bond0.txt


@pytest.mark.skipif(ansible_inventory_path() is None, reason="ansible-core not installed")
def test_ansible_inventory_output_is_cached_on_the_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ansible-inventory (~1 s to start) runs once; again only when a file it reads changes."""
    import shutil

    count = tmp_path / "runs"
    wrapper = tmp_path / "ansible-inventory"
    wrapper.write_text(f"#!/bin/sh\necho run >> {count}\nexec {ansible_inventory_path()} \"$@\"\n")
    wrapper.chmod(0o755)
    inv = tmp_path / "inv"
    shutil.copytree(INVENTORIES / "dir-vars", inv)
    cache = tmp_path / "data" / "cache"
    monkeypatch.setenv("BONDBOT_ANSIBLE_INVENTORY", str(wrapper))

    def runs() -> int:
        return len(count.read_text().split()) if count.exists() else 0

    assert load_inventory(inv, cache_dir=cache).get("db2").port == 2022 and runs() == 1
    assert load_inventory(inv, cache_dir=cache).get("db2").port == 2022 and runs() == 1  # from the cache
    assert load_inventory(inv).get("db2").port == 2022 and runs() == 2  # no cache directory: no cache
    (inv / "host_vars" / "db2").write_text("ansible_host: 10.20.1.2\nansible_port: 2023\n")
    assert load_inventory(inv, cache_dir=cache).get("db2").port == 2023 and runs() == 3  # a changed file: run again
    assert load_inventory(inv, cache_dir=cache, use_ansible_inventory=False).get("db2").port == 2023 and runs() == 3
    monkeypatch.setenv("BONDBOT_ANSIBLE_INVENTORY", "never")
    assert load_inventory(inv, cache_dir=cache).get("db2").port == 2023 and runs() == 3


def test_triage_of_a_skipped_host_is_bad_input_and_says_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BONDBOT_KNOWN_HOSTS", str(tmp_path / "kh"))
    inv = INVENTORIES / "connection-kinds" / "hosts.yml"
    for args in (["triage", "win01"], ["triage", "win01", "--record"]):
        r = _bondbot(*args, "--inventory", str(inv), env={"BONDBOT_DATA_DIR": str(tmp_path / "data")})
        assert r.returncode == 2, r.stderr
        assert "win01: skipped when reading the inventory: ansible_connection=winrm" in r.stderr
        assert "Traceback" not in r.stderr


def test_ansible_inventory_can_be_turned_off_per_inventory_and_per_include(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    count = tmp_path / "runs"
    wrapper = tmp_path / "ansible-inventory"
    wrapper.write_text(f"#!/bin/sh\necho run >> {count}\nexit 1\n")  # would fail loudly if it ran
    wrapper.chmod(0o755)
    monkeypatch.setenv("BONDBOT_ANSIBLE_INVENTORY", str(wrapper))
    monkeypatch.setenv("BONDBOT_DATA_DIR", str(tmp_path / "data"))
    ini = INVENTORIES / "ini-basic" / "hosts.ini"
    p = tmp_path / "inventory.yaml"
    p.write_text(f"include: [{{path: {ini}}}]\nsettings: {{ansible_inventory: never}}\n")
    assert load_inventory(p).get("web02").port == 2222 and not count.exists()
    p.write_text(f"include: [{{path: {ini}, ansible_inventory: false}}]\n")
    assert load_inventory(p).get("web02").port == 2222 and not count.exists()
    r = CliRunner().invoke(app, ["hosts", "list", "--inventory", str(ini), "--no-ansible-inventory", "--json"])
    assert r.exit_code == 0 and not count.exists()
    # and when it is asked for but fails, the built-in parser reads the file, with a warning saying so
    inv = load_inventory(ini)
    assert count.exists() and inv.get("web02").port == 2222
    assert any("read with bondbot's built-in parser instead" in w.message for w in inv.warnings)
