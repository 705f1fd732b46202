"""Every supervisor gives ``bondbot serve`` longer to stop than its SIGTERM grace period.

serve drains running work for ``--grace-period`` seconds (default ``DEFAULT_GRACE_S``), then
records what it cut and closes its connections; a supervisor that kills it before then loses
exactly what the grace period is for. 15 s of margin for the recording and the close.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
MARGIN_S = 15


def _grace_s() -> float:
    from bondbot.commands import serve

    # Until the graceful stop landed, serve had no grace period: the documented default is 25 s.
    return float(getattr(serve, "DEFAULT_GRACE_S", 25.0))


def test_systemd_compose_and_kubernetes_wait_long_enough() -> None:
    need = _grace_s() + MARGIN_S
    unit = re.search(r"^TimeoutStopSec=(\d+)$", (DEPLOY / "bondbot.service").read_text(), re.M)
    assert unit and int(unit.group(1)) >= need
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    for name, service in compose["services"].items():
        if name.startswith("bondbot"):
            assert int(service["stop_grace_period"].rstrip("s")) >= need, name
    deployment = yaml.safe_load((DEPLOY / "k8s" / "deployment.yaml").read_text())
    assert deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] >= need
