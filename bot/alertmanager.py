"""Alertmanager's webhook, read safely: who may send it, what it says, which host and bond it names.

Alertmanager (``webhook_configs``) POSTs one JSON document per alert group and notification
(payload ``version: "4"``)::

    {"version": "4", "groupKey": "{}:{alertname=\\"BondDown\\"}", "truncatedAlerts": 0,
     "status": "firing", "receiver": "bondbot", "groupLabels": {...}, "commonLabels": {...},
     "commonAnnotations": {...}, "externalURL": "http://am:9093",
     "alerts": [{"status": "firing", "labels": {...}, "annotations": {...},
                 "startsAt": "...", "endsAt": "...", "generatorURL": "...", "fingerprint": "..."}]}

It authenticates the ways its ``http_config`` can: ``authorization`` (``Authorization: Bearer
TOKEN``) or ``basic_auth``. Anything else is refused before the body is read. Every field comes
from the network: lengths are bounded, types checked, and a label becomes a host only when it is a
name or an address *listed in the inventory* (never an ssh-config pattern, never an unlisted host:
an alert is not an operator typing a name), and a bond only when it is a valid interface name.

This module only reads and maps; the caller (the bot) records, deduplicates and triages.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from runbooks.validation import InvalidValue, validate_interface_name
from ssh_exec import Inventory

__all__ = [
    "AlertError",
    "Unauthorized",
    "WebhookAuth",
    "Alert",
    "Notification",
    "LabelRules",
    "Mapped",
    "parse_notification",
    "map_alert",
    "group_firing",
    "MAX_BODY",
]

MAX_BODY = 1024 * 1024  # bytes: Alertmanager's max_alerts keeps real payloads far below this
_MAX_ALERTS = 1000
_MAX_LABEL = 1024  # characters per label name or value
_FINGERPRINT = re.compile(r"^[0-9a-f]{1,32}$")


class AlertError(ValueError):
    """The payload is not an Alertmanager v4 notification (400, nothing recorded)."""


class Unauthorized(Exception):
    """The request does not carry a configured credential (401, nothing read)."""


@dataclass(frozen=True)
class WebhookAuth:
    """Accepted credentials: bearer tokens and/or (user, password) pairs. Empty accepts nobody."""

    tokens: tuple[str, ...] = ()
    basic: tuple[tuple[str, str], ...] = ()

    def check(self, authorization: str | None) -> str:
        """Raise :class:`Unauthorized` unless the ``Authorization`` header matches; return who it is
        (``bearer`` or ``basic:USER``). Comparisons take constant time and try every credential."""
        if not self.tokens and not self.basic:
            raise Unauthorized("no credential is configured for the Alertmanager webhook")
        if not authorization:
            raise Unauthorized("no Authorization header")
        scheme, _, value = authorization.strip().partition(" ")
        value = value.strip()
        if scheme.lower() == "bearer" and value:
            ok = False
            for token in self.tokens:
                ok |= hmac.compare_digest(value.encode(), token.encode())
            if ok:
                return "bearer"
        elif scheme.lower() == "basic" and value:
            try:
                user, sep, password = base64.b64decode(value, validate=True).decode("utf-8").partition(":")
            except (binascii.Error, UnicodeDecodeError):
                raise Unauthorized("malformed basic credentials") from None
            if sep:
                found = None
                for u, p in self.basic:
                    match = hmac.compare_digest(user.encode(), u.encode()) & hmac.compare_digest(
                        password.encode(), p.encode())
                    if match:
                        found = u
                if found is not None:
                    return f"basic:{found}"
        raise Unauthorized("the credential does not match")


@dataclass(frozen=True)
class Alert:
    status: str  # firing | resolved
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    starts_at: str
    ends_at: str
    fingerprint: str
    generator_url: str = ""


@dataclass(frozen=True)
class Notification:
    receiver: str
    status: str
    group_key: str
    group_labels: Mapping[str, str]
    alerts: tuple[Alert, ...]
    truncated: int = 0
    external_url: str = ""


def _labels(value: object, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise AlertError(f"{where} is not an object")
    out: dict[str, str] = {}
    for k, v in value.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise AlertError(f"{where}: labels must be strings")
        if len(k) > _MAX_LABEL or len(v) > _MAX_LABEL:
            raise AlertError(f"{where}: label {k[:40]!r} is longer than {_MAX_LABEL} characters")
        out[k] = v
    return out


def _text(doc: Mapping[str, object], key: str, where: str, *, required: bool = False, limit: int = 4096) -> str:
    value = doc.get(key)
    if value is None:
        if required:
            raise AlertError(f"{where}: {key} is missing")
        return ""
    if not isinstance(value, str):
        raise AlertError(f"{where}: {key} is not a string")
    if len(value) > limit:
        raise AlertError(f"{where}: {key} is longer than {limit} characters")
    return value


def parse_notification(body: bytes) -> Notification:
    """Parse and check one webhook body; :class:`AlertError` names what is wrong."""
    if len(body) > MAX_BODY:
        raise AlertError(f"the body is larger than {MAX_BODY} bytes")
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise AlertError(f"the body is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise AlertError("the body is not a JSON object")
    if doc.get("version") != "4":
        raise AlertError(f"unsupported webhook payload version {str(doc.get('version'))[:20]!r} (expected \"4\")")
    status = _text(doc, "status", "notification", required=True)
    if status not in {"firing", "resolved"}:
        raise AlertError(f"notification: unknown status {status[:20]!r}")
    raw_alerts = doc.get("alerts")
    if not isinstance(raw_alerts, list) or not raw_alerts:
        raise AlertError("notification: alerts is not a non-empty list")
    if len(raw_alerts) > _MAX_ALERTS:
        raise AlertError(f"notification: more than {_MAX_ALERTS} alerts")
    alerts: list[Alert] = []
    for i, raw in enumerate(raw_alerts):
        where = f"alerts[{i}]"
        if not isinstance(raw, dict):
            raise AlertError(f"{where} is not an object")
        a_status = _text(raw, "status", where, required=True)
        if a_status not in {"firing", "resolved"}:
            raise AlertError(f"{where}: unknown status {a_status[:20]!r}")
        fingerprint = _text(raw, "fingerprint", where, required=True, limit=64)
        if not _FINGERPRINT.match(fingerprint):
            raise AlertError(f"{where}: fingerprint {fingerprint[:40]!r} is not Alertmanager's hex fingerprint")
        alerts.append(Alert(
            status=a_status,
            labels=_labels(raw.get("labels"), f"{where}.labels"),
            annotations=_labels(raw.get("annotations"), f"{where}.annotations"),
            starts_at=_text(raw, "startsAt", where, limit=64),
            ends_at=_text(raw, "endsAt", where, limit=64),
            fingerprint=fingerprint,
            generator_url=_text(raw, "generatorURL", where),
        ))
    truncated = doc.get("truncatedAlerts", 0)
    if not isinstance(truncated, int) or isinstance(truncated, bool) or truncated < 0:
        raise AlertError("notification: truncatedAlerts is not a count")
    return Notification(
        receiver=_text(doc, "receiver", "notification", limit=256),
        status=status,
        group_key=_text(doc, "groupKey", "notification", required=True),
        group_labels=_labels(doc.get("groupLabels"), "groupLabels"),
        alerts=tuple(alerts),
        truncated=truncated,
        external_url=_text(doc, "externalURL", "notification"),
    )


@dataclass(frozen=True)
class LabelRules:
    """Which labels name the host and the bond, first match wins (configurable)."""

    host_labels: tuple[str, ...] = ("instance",)
    bond_labels: tuple[str, ...] = ("master", "device")
    strip_port: bool = True


@dataclass(frozen=True)
class Mapped:
    """An alert mapped onto the inventory: ``host`` is None when it names no inventory host
    (``reason`` says why; it is reported, never triaged); ``bond`` None means "discover"."""

    alert: Alert
    host: str | None
    bond: str | None
    reason: str = ""
    label_values: dict[str, str] = field(default_factory=dict)


_PORT = re.compile(r"^(?P<host>\[[0-9A-Fa-f:.]+\]|[^:]+):(?P<port>[0-9]{1,5})$")


def _without_port(value: str) -> str:
    m = _PORT.match(value)
    if not m:
        return value
    host = m.group("host")
    return host[1:-1] if host.startswith("[") else host


def _inventory_host(value: str, inventory: Inventory) -> str | None:
    if value in inventory.hosts:
        return value
    matches = sorted(name for name, h in inventory.hosts.items() if h.address == value)
    return matches[0] if len(matches) == 1 else None


def map_alert(alert: Alert, inventory: Inventory, rules: LabelRules = LabelRules()) -> Mapped:
    """Map one alert onto an inventory host and (optionally) a bond by ``rules``."""
    seen: dict[str, str] = {}
    host: str | None = None
    for label in rules.host_labels:
        raw = alert.labels.get(label)
        if raw is None:
            continue
        seen[label] = raw
        value = _without_port(raw) if rules.strip_port else raw
        host = _inventory_host(value, inventory)
        if host is None and value != raw:
            host = _inventory_host(raw, inventory)
        if host is not None:
            break
    if host is None:
        if not seen:
            why = f"the alert has none of the labels {', '.join(rules.host_labels)}"
        else:
            shown = ", ".join(f"{k}={v[:80]!r}" for k, v in seen.items())
            why = f"{shown} names no inventory host (by name or address)"
        return Mapped(alert, None, None, why, seen)
    bond: str | None = None
    for label in rules.bond_labels:
        raw = alert.labels.get(label)
        if raw is None:
            continue
        seen[label] = raw
        try:
            bond = validate_interface_name(raw)
        except InvalidValue:
            return Mapped(alert, None, None, f"{label}={raw[:80]!r} is not an interface name", seen)
        break
    return Mapped(alert, host, bond, "", seen)


def group_firing(mapped: Sequence[Mapped]) -> list[Mapped]:
    """The firing alerts, one per (host, bond) (Alertmanager may send several for one bond)."""
    out: dict[tuple[str | None, str | None], Mapped] = {}
    for m in mapped:
        if m.alert.status == "firing":
            out.setdefault((m.host, m.bond), m)
    return list(out.values())
