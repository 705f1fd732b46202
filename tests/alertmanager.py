"""The real Alertmanager on loopback, for tests (Debian package prometheus-alertmanager).

``RealAlertmanager(webhook_url, http_config)`` writes a config whose only receiver is the webhook,
starts ``prometheus-alertmanager`` on a free loopback port (clustering off, its own storage), and
``post(alerts)`` sends alerts through its v2 API, as Prometheus does. Group timings are short
(group_wait 0.5 s, group_interval 1 s) so a test sees firing, repeat and resolved within seconds.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

BINARY = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")


def require_alertmanager() -> str:
    if BINARY is None:
        if os.environ.get("CI"):
            pytest.fail("prometheus-alertmanager is not installed (./run installs it)", pytrace=False)
        pytest.skip("prometheus-alertmanager not installed (Debian: prometheus-alertmanager)")
    return BINARY


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class RealAlertmanager:
    def __init__(self, workdir: Path, webhook_url: str, http_config: dict[str, Any] | None = None,
                 *, group_by: tuple[str, ...] = ("alertname", "instance", "master"),
                 repeat_interval: str = "1h") -> None:
        self.binary = require_alertmanager()
        self.workdir = workdir
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        receiver: dict[str, Any] = {"url": webhook_url, "send_resolved": True}
        if http_config:
            receiver["http_config"] = http_config
        config = {
            "route": {"receiver": "bondbot", "group_by": list(group_by), "group_wait": "500ms",
                      "group_interval": "1s", "repeat_interval": repeat_interval},
            "receivers": [{"name": "bondbot", "webhook_configs": [receiver]}],
        }
        self.config_path = workdir / "alertmanager.yml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = workdir / "alertmanager.log"

    def __enter__(self) -> RealAlertmanager:
        storage = self.workdir / "am-data"
        storage.mkdir(exist_ok=True)
        self.proc = subprocess.Popen(
            [self.binary, f"--config.file={self.config_path}", f"--storage.path={storage}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--cluster.listen-address=",
             "--log.level=debug"],
            stdout=self.log.open("wb"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"alertmanager exited: {self.log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"alertmanager did not become ready: {self.log.read_text()[-2000:]}")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def post(self, alerts: list[dict[str, Any]]) -> None:
        """POST alerts to /api/v2/alerts (``labels`` required; ``resolved=True`` ends one now)."""
        now = datetime.now(UTC)
        body = []
        for a in alerts:
            item: dict[str, Any] = {"labels": a["labels"], "annotations": a.get("annotations", {}),
                                    "generatorURL": "http://prometheus.invalid/graph",
                                    "startsAt": iso(a.get("starts_at", now - timedelta(minutes=1)))}
            item["endsAt"] = iso(now - timedelta(seconds=1) if a.get("resolved") else now + timedelta(hours=1))
            body.append(item)
        req = urllib.request.Request(f"{self.url}/api/v2/alerts", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(req, timeout=5) as r:
            assert r.status == 200, r.status
