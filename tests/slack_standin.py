"""The local Slack stand-in for tests: re-exported from ``bot.testing.standin`` (the demo uses it too)."""

from bot.signing import sign, signed_headers
from bot.testing.standin import ApiCall, Delivery, SlackStandin, StandinMessage

__all__ = ["ApiCall", "Delivery", "SlackStandin", "StandinMessage", "sign", "signed_headers"]
