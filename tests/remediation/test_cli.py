"""``bondbot fix`` / ``bondbot failover-test``: bad input is refused before anything connects."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from bondbot.cli import app

runner = CliRunner()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["fix", "web-01", "--miimon", "100", "--arp-target", "10.0.0.1"], "exclusive"),
        (["fix", "web-01", "--miimon", "5"], "invalid miimon 5"),
        (["fix", "web-01", "--arp-interval", "100"], "needs --arp-target"),
        (["fix", "web-01", "--arp-target", "10.0.0.1;reboot"], "invalid ARP/ping target"),
    ],
)
def test_fix_bad_input_is_a_clear_error_and_exit_2(args: list[str], message: str, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("BONDBOT_INVENTORY", str(tmp_path / "absent.yaml"))
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_fix_unknown_host_is_refused_before_connecting(tmp_path, monkeypatch) -> None:
    inv = tmp_path / "inventory.yaml"
    inv.write_text("hosts:\n  web-01: {address: 127.0.0.1, port: 1}\n")
    result = runner.invoke(app, ["fix", "db-07", "--inventory", str(inv), "--yes"])
    assert result.exit_code == 2 and "db-07" in result.output


def test_failover_test_needs_a_known_method() -> None:
    result = runner.invoke(app, ["failover-test", "web-01", "--method", "cable-pull"])
    assert result.exit_code == 2 and "cable-pull" in result.output


def test_commands_are_registered_with_help() -> None:
    for command in ("fix", "failover-test"):
        result = runner.invoke(app, [command, "--help"])
        assert result.exit_code == 0 and "--yes" in result.output
