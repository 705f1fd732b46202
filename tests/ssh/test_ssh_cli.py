"""``bondbot triage``, ``audit`` and ``hosts`` against the real test sshd."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from bondbot.cli import app
from tests.ssh.fixtures import SshTestHost, seed_replay

BONDBOT = Path(sys.executable).parent / "bondbot"
SEED_UUID = "6d1f9b3e-2a4c-4f7e-9c1a-5b8e0d7f3a21"


def _run(*args: str) -> object:
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def test_triage_whole_command(ssh_host: SshTestHost) -> None:
    ssh_host.server.set_replay(seed_replay())
    proc = subprocess.run([str(BONDBOT), "triage", "test-host"], capture_output=True, text=True, env=os.environ, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "Root cause: NO_LINK_MONITORING" in proc.stdout
    assert "cat /proc/net/bonding/bond0" in proc.stdout and "ethtool eno2" in proc.stdout
    assert "✓ bond0 proc_bonding" in proc.stderr  # live progress goes to stderr
    assert "✓ discover bonds" in proc.stderr


def test_triage_json(ssh_host: SshTestHost) -> None:
    table = seed_replay()
    table[f"nmcli -t con show uuid {SEED_UUID}"] = (10, "", "Error: NetworkManager timed out\n")
    ssh_host.server.set_replay(table)
    result = _run("triage", "test-host", "--json")
    assert result.exit_code == 0  # a root cause was found: conclusive even with a step failed
    data = json.loads(result.stdout)
    assert data["verdict"] == "diagnosed" and data["bonds_found"] == ["bond0"] and data["bond_named"] == "bond0"
    [bond] = data["results"]
    assert bond["diagnosis"]["root_cause"]["code"] == "NO_LINK_MONITORING"
    steps = {s["step"]: s for s in bond["steps"]}
    assert steps["nmcli"]["exit_status"] == 10 and steps["nmcli"]["status"] == "failed"
    assert steps["ethtool eno1"]["command"] == "ethtool eno1" and steps["ethtool eno1"]["duration"] > 0
    assert bond["failed_steps"] == {"nmcli": "exit status 10: Error: NetworkManager timed out"}


def test_triage_errors_exit_codes(ssh_host: SshTestHost) -> None:
    r = _run("triage", "web-99")
    assert r.exit_code == 2 and "not in the inventory" in r.stderr
    r = _run("triage", "test-host", "--bond", "bond0;reboot")
    assert r.exit_code == 2 and "invalid interface name" in r.stderr
    ssh_host.known_hosts_path.write_text("")
    r = _run("triage", "test-host")
    assert r.exit_code == 3 and "bondbot hosts trust test-host" in r.stderr
    assert ssh_host.server.commands() == []


def test_hosts_trust_interactive(ssh_host: SshTestHost) -> None:
    ssh_host.known_hosts_path.write_text("")
    declined = CliRunner().invoke(app, ["hosts", "trust", "test-host"], input="n\n")
    assert declined.exit_code == 1 and ssh_host.server.fingerprint() in declined.stdout
    assert ssh_host.known_hosts_path.read_text() == ""
    accepted = CliRunner().invoke(app, ["hosts", "trust", "test-host"], input="y\n")
    assert accepted.exit_code == 0, accepted.output
    line = ssh_host.known_hosts_path.read_text().strip()
    assert line == ssh_host.server.known_hosts_line()
    again = _run("hosts", "trust", "test-host")
    assert again.exit_code == 0 and "already trusted" in again.stdout


def test_hosts_trust_yes_needs_matching_fingerprint(ssh_host: SshTestHost) -> None:
    ssh_host.known_hosts_path.write_text("")
    r = _run("hosts", "trust", "test-host", "--yes")
    assert r.exit_code == 2 and "--yes needs --fingerprint" in r.stderr
    r = _run("hosts", "trust", "test-host", "--yes", "--fingerprint", "SHA256:" + "A" * 43)
    assert r.exit_code == 3 and "fingerprint mismatch" in r.stderr
    assert ssh_host.known_hosts_path.read_text() == ""
    r = _run("hosts", "trust", "test-host", "--yes", "--fingerprint", ssh_host.server.fingerprint())
    assert r.exit_code == 0
    assert ssh_host.known_hosts_path.read_text().strip() == ssh_host.server.known_hosts_line()


def test_hosts_trust_replaces_changed_key_only_on_confirmation(ssh_host: SshTestHost) -> None:
    import asyncssh

    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().split()[1]
    ssh_host.known_hosts_path.write_text(f"[127.0.0.1]:{ssh_host.server.port} ssh-ed25519 {other}\n")
    r = CliRunner().invoke(app, ["hosts", "trust", "test-host"], input="y\n")
    assert r.exit_code == 0 and "DIFFERENT key" in r.stderr
    assert ssh_host.known_hosts_path.read_text().strip() == ssh_host.server.known_hosts_line()


def test_hosts_list(ssh_host: SshTestHost) -> None:
    r = _run("hosts", "list", "--json")
    data = json.loads(r.stdout)
    assert [(h["name"], h["trusted"], h["port"]) for h in data["hosts"]] == [("test-host", True, ssh_host.server.port)]


def test_audit_groups_by_root_cause_and_lists_unreachable(ssh_host: SshTestHost) -> None:
    ssh_host.server.set_replay(seed_replay())
    server = ssh_host.server
    server.write_inventory(ssh_host.inventory_path, extra_hosts={
        "twin": server.inventory_entry(),
        "gone": server.inventory_entry(address="no-such-host.invalid"),
        "other-dc": server.inventory_entry(groups=["elsewhere"]),
    })
    r = _run("audit", "test", "--csv", "--concurrency", "2")
    assert r.exit_code == 3, r.output  # a host could not be reached: non-zero (README: exit codes)
    rows = {row["host"]: row for row in csv.DictReader(io.StringIO(r.stdout))}
    assert set(rows) == {"test-host", "twin", "gone"}
    assert rows["test-host"]["root_cause"] == rows["twin"]["root_cause"] == "NO_LINK_MONITORING"
    assert rows["test-host"]["bond"] == "bond0" and rows["test-host"]["status"] == "diagnosed"
    assert rows["gone"]["status"] == "unreachable" and rows["gone"]["error_kind"] == "name-not-resolved"
    r = _run("audit", "--json")
    assert r.exit_code == 3
    data = json.loads(r.stdout)
    assert sorted(data["by_root_cause"]["NO_LINK_MONITORING"]) == ["other-dc", "test-host", "twin"]
    assert [u["host"] for u in data["unreachable"]] == ["gone"]
    assert data["exit_status"] == 3 and list(data["failures"]) == ["unreachable: name-not-resolved"]
    human = _run("audit")
    assert "NO_LINK_MONITORING" in human.stdout and "unreachable: name-not-resolved — 1" in human.stdout
    gone = [ln for ln in human.stdout.splitlines() if "gone" in ln]
    assert len(gone) == 1 and gone[0].count("gone") == 1, gone  # each host named once
    assert _run("audit", "nogroup").exit_code == 2
    # Only the reachable ones, all diagnosed: exit 0.
    assert _run("audit", "elsewhere").exit_code == 0
