"""Slack request signing (v0), for whoever plays Slack: the stand-in, the demo, the tests.

The bot itself never signs; it verifies, through Bolt's request verification, which uses the same
algorithm from ``slack_sdk.signature``. Signing here with that same class would let a bug in it go
unnoticed, so the signature is computed directly from Slack's documented recipe:
``v0=HMAC_SHA256(secret, "v0:" + timestamp + ":" + body)``.
"""

from __future__ import annotations

import hashlib
import hmac
import time

__all__ = ["sign", "signed_headers"]


def sign(secret: str, body: str, timestamp: int) -> str:
    base = f"v0:{timestamp}:{body}".encode()
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def signed_headers(secret: str, body: str, *, timestamp: int | None = None) -> dict[str, str]:
    """The two headers Slack adds to every request it sends to an app's request URL."""
    ts = int(time.time()) if timestamp is None else timestamp
    return {
        "X-Slack-Request-Timestamp": str(ts),
        "X-Slack-Signature": sign(secret, body, ts),
    }
