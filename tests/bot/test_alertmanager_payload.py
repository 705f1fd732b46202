"""bot.alertmanager against what the real Alertmanager sends (the oracle for the payload and for
its http_config authentication), and on hostile or malformed input."""

from __future__ import annotations

import base64
import json
import queue
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from bot.alertmanager import (
    AlertError,
    LabelRules,
    Unauthorized,
    WebhookAuth,
    group_firing,
    map_alert,
    parse_notification,
)
from ssh_exec import Host, Inventory
from tests.alertmanager import RealAlertmanager


class _Capture:
    """A loopback HTTP endpoint that keeps every request Alertmanager makes."""

    def __init__(self) -> None:
        self.requests: queue.Queue[tuple[dict[str, str], bytes]] = queue.Queue()
        capture = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                capture.requests.put(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alertmanager"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def next(self, timeout: float = 20) -> tuple[dict[str, str], bytes]:
        return self.requests.get(timeout=timeout)


@pytest.fixture
def capture() -> Iterator[_Capture]:
    c = _Capture()
    yield c
    c.server.shutdown()


ALERT = {"labels": {"alertname": "BondSlaveNoCarrier", "instance": "10.0.0.5:9100", "master": "bond1",
                    "device": "ens4", "severity": "critical"},
         "annotations": {"summary": "Slave ens4 of bond bond1 has no carrier"}}


def test_real_alertmanager_bearer_payload_parses_and_maps(tmp_path: Path, capture: _Capture) -> None:
    token = "s3cret-token"
    (tmp_path / "token").write_text(token)
    http_config = {"authorization": {"type": "Bearer", "credentials_file": str(tmp_path / "token")}}
    with RealAlertmanager(tmp_path, capture.url, http_config) as am:
        am.post([ALERT])
        headers, body = capture.next()
        auth = WebhookAuth(tokens=(token,))
        assert auth.check(headers.get("authorization")) == "bearer"
        with pytest.raises(Unauthorized):
            WebhookAuth(tokens=("other",)).check(headers.get("authorization"))
        n = parse_notification(body)
        assert n.status == "firing" and n.receiver == "bondbot" and len(n.alerts) == 1
        [alert] = n.alerts
        assert alert.labels["master"] == "bond1" and len(alert.fingerprint) == 16
        inv = Inventory(hosts={"web-01": Host("web-01", "10.0.0.5", user="ops")})
        mapped = map_alert(alert, inv)
        assert (mapped.host, mapped.bond, mapped.reason) == ("web-01", "bond1", "")
        # Resolved: the same fingerprint, status resolved.
        am.post([{**ALERT, "resolved": True}])
        for _ in range(10):
            _h, body2 = capture.next()
            n2 = parse_notification(body2)
            if n2.status == "resolved":
                break
        assert n2.alerts[0].fingerprint == alert.fingerprint and n2.alerts[0].status == "resolved"
        assert group_firing([map_alert(a, inv) for a in n2.alerts]) == []


def test_real_alertmanager_basic_auth(tmp_path: Path, capture: _Capture) -> None:
    http_config = {"basic_auth": {"username": "am", "password": "pa:ss word"}}
    with RealAlertmanager(tmp_path, capture.url, http_config) as am:
        am.post([ALERT])
        headers, _body = capture.next()
    assert WebhookAuth(basic=(("am", "pa:ss word"),)).check(headers["authorization"]) == "basic:am"
    for wrong in (WebhookAuth(basic=(("am", "pa:ss"),)), WebhookAuth(basic=(("x", "pa:ss word"),)),
                  WebhookAuth(tokens=("pa:ss word",))):
        with pytest.raises(Unauthorized):
            wrong.check(headers["authorization"])


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer wrong", "Token s3cret", "Basic !!!",
                                    "Basic " + base64.b64encode(b"nocolon").decode(), "s3cret"])
def test_anything_but_a_configured_credential_is_refused(header: str | None) -> None:
    with pytest.raises(Unauthorized):
        WebhookAuth(tokens=("s3cret",), basic=(("am", "pw"),)).check(header)
    with pytest.raises(Unauthorized, match="no credential is configured"):
        WebhookAuth().check("Bearer s3cret")


def _doc(**over: object) -> bytes:
    doc: dict[str, object] = {"version": "4", "status": "firing", "receiver": "bondbot", "groupKey": "{}:{}",
                              "alerts": [{"status": "firing", "labels": {"instance": "web-01"},
                                          "fingerprint": "0123456789abcdef"}]}
    doc.update(over)
    return json.dumps(doc).encode()


@pytest.mark.parametrize("body, message", [
    (b"not json", "not JSON"),
    (b"[]", "not a JSON object"),
    (_doc(version="3"), "unsupported webhook payload version"),
    (_doc(status="weird"), "unknown status"),
    (_doc(alerts=[]), "non-empty list"),
    (_doc(alerts=[{"status": "firing", "labels": {}, "fingerprint": "zz; rm -rf /"}]), "fingerprint"),
    (_doc(alerts=[{"status": "firing", "labels": {"a": 1}, "fingerprint": "ab"}]), "labels must be strings"),
    (_doc(alerts=[{"status": "firing", "labels": {"a": "x" * 2000}, "fingerprint": "ab"}]), "longer than"),
    (_doc(truncatedAlerts=-1), "truncatedAlerts"),
    (b"{" + b" " * (1024 * 1024 + 1) + b"}", "larger than"),
])
def test_malformed_payloads_are_refused_with_a_reason(body: bytes, message: str) -> None:
    with pytest.raises(AlertError, match=message):
        parse_notification(body)


def test_mapping_never_guesses_a_host_or_a_bond() -> None:
    inv = Inventory(hosts={"web-01": Host("web-01", "10.0.0.5", user="ops"),
                           "db-1": Host("db-1", "10.0.0.9", user="ops"), "db-2": Host("db-2", "10.0.0.9", user="ops")})
    [alert] = parse_notification(_doc(alerts=[{"status": "firing", "fingerprint": "01",
                                               "labels": {"instance": "web-01:9100"}}])).alerts
    assert map_alert(alert, inv).host == "web-01" and map_alert(alert, inv).bond is None  # bond: discovered

    def one(labels: dict[str, str], rules: LabelRules = LabelRules()) -> tuple[str | None, str | None, str]:
        [a] = parse_notification(_doc(alerts=[{"status": "firing", "fingerprint": "01", "labels": labels}])).alerts
        m = map_alert(a, inv, rules)
        return m.host, m.bond, m.reason

    assert one({"instance": "10.0.0.5:9100", "device": "uplink0"}) == ("web-01", "uplink0", "")
    assert one({"instance": "[::1]:9100"})[0] is None
    host, _b, why = one({"instance": "web-99:9100"})
    assert host is None and "names no inventory host" in why
    host, _b, why = one({"instance": "10.0.0.9:9100"})  # two hosts share the address: ambiguous
    assert host is None
    host, _b, why = one({"job": "node"})
    assert host is None and "none of the labels instance" in why
    host, _b, why = one({"instance": "web-01", "master": "bond0; reboot"})
    assert host is None and "is not an interface name" in why
    assert one({"host": "db-1"}, LabelRules(host_labels=("host",), bond_labels=("bond",))) == ("db-1", None, "")
