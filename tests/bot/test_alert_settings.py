"""``bondbot serve``'s webhook settings: credentials from the environment or systemd credentials,
like the Slack secrets; a channel without a credential does not start."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import typer

from bondbot.commands.serve import alert_settings
from bot.alertmanager import Unauthorized


def test_no_channel_no_webhook() -> None:
    assert alert_settings(None) is None


def test_a_channel_without_a_credential_refuses_to_start(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("BONDBOT_ALERTS_TOKEN", "BONDBOT_ALERTS_BASIC", "CREDENTIALS_DIRECTORY"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(typer.Exit) as exc:
        alert_settings("C0ALERTS")
    assert exc.value.exit_code == 2
    monkeypatch.setenv("BONDBOT_ALERTS_BASIC", "no-colon")
    with pytest.raises(typer.Exit):
        alert_settings("C0ALERTS")
    with pytest.raises(typer.Exit):
        alert_settings("#alerts")


def test_credentials_from_env_and_systemd_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("BONDBOT_ALERTS_TOKEN", raising=False)
    monkeypatch.setenv("BONDBOT_ALERTS_BASIC", "am:pw1")
    (tmp_path / "BONDBOT_ALERTS_TOKEN").write_text("tok-from-file\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    monkeypatch.setenv("BONDBOT_ALERTS_BOND_LABELS", "master")
    settings = alert_settings("C0ALERTS")
    assert settings.channel == "C0ALERTS" and settings.path == "/alertmanager"
    assert settings.rules.bond_labels == ("master",) and settings.rules.host_labels == ("instance",)
    assert settings.auth.check("Bearer tok-from-file") == "bearer"
    assert settings.auth.check("Basic " + base64.b64encode(b"am:pw1").decode()) == "basic:am"
    with pytest.raises(Unauthorized):
        settings.auth.check("Bearer tok-from-env")
