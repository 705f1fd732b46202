"""The bot's volume limits: how often a message is repainted, how many triages a user or a channel
may start, how many SSH connections an audit opens.

Why: one triage of a 1,000-slave bond once sent 4,007 message updates and 2,003 thread posts, one
user could start 1,000 triages, and an audit opened 301 SSH connections at once. Slack rate-limits
``chat.update`` to about one per second per message and a host's sshd drops connections past its
``MaxStartups``, so the bot holds itself to these limits instead of being throttled.

Settings (``from_env``, given the environment by ``serve``): ``BONDBOT_SLACK_UPDATE_INTERVAL`` (seconds between repaints of one
message, default 1), ``BONDBOT_TRIAGE_PER_USER`` and ``BONDBOT_TRIAGE_PER_CHANNEL`` (``N/SECONDS``:
at most N triages started in any SECONDS, defaults ``5/60`` and ``20/60``; ``0`` switches one off),
``BONDBOT_AUDIT_CONNECTIONS`` (default 50, like the CLI's audit).
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

__all__ = ["LimitsConfigError", "RateLimit", "SlackLimits", "WindowLimiter"]


class LimitsConfigError(ValueError):
    """A limit in the environment is malformed; the bot does not start with it."""


@dataclass(frozen=True)
class RateLimit:
    """At most ``count`` events in any ``window`` seconds (``count`` 0: no limit)."""

    count: int
    window: float

    @classmethod
    def parse(cls, text: str, key: str) -> RateLimit:
        text = text.strip()
        if text in ("0", "off", "none"):
            return cls(0, 1.0)
        try:
            count, window = text.split("/", 1)
            limit = cls(int(count), float(window))
        except ValueError:
            raise LimitsConfigError(f"{key}: expected N/SECONDS (e.g. 5/60) or 0, got {text!r}") from None
        if limit.count < 0 or not limit.window > 0:
            raise LimitsConfigError(f"{key}: N must be >= 0 and SECONDS > 0, got {text!r}")
        return limit


@dataclass(frozen=True)
class SlackLimits:
    #: Seconds between two repaints of one incident message (changes in between are coalesced).
    update_interval: float = 1.0
    triage_per_user: RateLimit = RateLimit(5, 60.0)
    triage_per_channel: RateLimit = RateLimit(20, 60.0)
    #: SSH connections one ``/bond audit`` opens at once.
    audit_connections: int = 50

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> SlackLimits:
        """The limits ``env`` (the caller's: ``serve`` passes the process environment) sets."""
        default = cls()
        try:
            interval = float(env.get("BONDBOT_SLACK_UPDATE_INTERVAL", default.update_interval))
            audit = int(env.get("BONDBOT_AUDIT_CONNECTIONS", default.audit_connections))
        except ValueError as exc:
            raise LimitsConfigError(f"bot limits: {exc}") from None
        if interval < 0 or audit < 1:
            raise LimitsConfigError("BONDBOT_SLACK_UPDATE_INTERVAL must be >= 0, BONDBOT_AUDIT_CONNECTIONS >= 1")
        user = env.get("BONDBOT_TRIAGE_PER_USER")
        channel = env.get("BONDBOT_TRIAGE_PER_CHANNEL")
        return cls(
            update_interval=interval,
            triage_per_user=RateLimit.parse(user, "BONDBOT_TRIAGE_PER_USER") if user else default.triage_per_user,
            triage_per_channel=(RateLimit.parse(channel, "BONDBOT_TRIAGE_PER_CHANNEL") if channel
                                else default.triage_per_channel),
            audit_connections=audit,
        )


@dataclass
class WindowLimiter:
    """A sliding-window counter per key (a user, a channel), in this replica's memory.

    Per replica on purpose: it protects Slack and the hosts from a burst, it decides no approval.
    """

    limit: RateLimit
    clock: Callable[[], float] = time.monotonic
    _seen: dict[str, deque[float]] = field(default_factory=dict)

    def wait(self, key: str) -> int:
        """0 if one more event for ``key`` is allowed now, else the whole seconds to wait (counts nothing)."""
        if self.limit.count <= 0:
            return 0
        now = self.clock()
        seen = self._seen.setdefault(key, deque())
        while seen and seen[0] <= now - self.limit.window:
            seen.popleft()
        if len(seen) >= self.limit.count:
            return max(1, math.ceil(seen[0] + self.limit.window - now))
        return 0

    def hit(self, key: str) -> None:
        """Count one event for ``key`` (after every limit said yes)."""
        if self.limit.count > 0:
            self._seen.setdefault(key, deque()).append(self.clock())
