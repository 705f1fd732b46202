"""Who may ask the bot to do what: triage (by channel and user) and approve changes (users, groups).

The policy is data (a YAML file or environment variables) so that the people who own production
decide it, not the bot's code. Defaults are safe: anyone in any channel may *triage* (read-only),
nobody may *approve* until approvers are configured, and the two-person rule is on, so the person
who asked for a change can never be the one who approves it.

YAML (``BONDBOT_SLACK_AUTHZ`` names the file)::

    triage:
      channels: [C0INCIDENTS]     # absent or empty: any channel
      users: []                   # absent or empty: anyone (in an allowed channel)
    approve:
      users: [U0ALICE]
      usergroups: [S0NETOPS]      # Slack user groups, resolved with usergroups.users.list
    two_person_rule: true
    approval_ttl_minutes: 15

Environment variables override single keys: ``BONDBOT_TRIAGE_CHANNELS``, ``BONDBOT_TRIAGE_USERS``,
``BONDBOT_APPROVERS``, ``BONDBOT_APPROVER_GROUPS`` (comma-separated ids),
``BONDBOT_TWO_PERSON_RULE`` (true/false), ``BONDBOT_APPROVAL_TTL_MINUTES``.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "AuthzConfigError",
    "AuthzPolicy",
    "Decision",
    "load_policy",
]

_SLACK_ID = re.compile(r"^[A-Z][A-Z0-9]{2,20}$")

MembersOf = Callable[[str], Awaitable[frozenset[str]]]


class AuthzConfigError(ValueError):
    """The authorization configuration is malformed; nothing is started with it."""


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str

    def __bool__(self) -> bool:
        return self.allowed


@dataclass(frozen=True)
class AuthzPolicy:
    triage_channels: frozenset[str] = frozenset()
    triage_users: frozenset[str] = frozenset()
    approver_users: frozenset[str] = frozenset()
    approver_groups: frozenset[str] = frozenset()
    two_person_rule: bool = True
    approval_ttl_seconds: int = 15 * 60

    def may_triage(self, user: str, channel: str) -> Decision:
        if self.triage_channels and channel not in self.triage_channels:
            return Decision(False, f"triage is not enabled in <#{channel}>")
        if self.triage_users and user not in self.triage_users:
            return Decision(False, f"<@{user}> is not allowed to run triage")
        return Decision(True, "triage allowed")

    async def may_approve(self, user: str, requester: str, members_of: MembersOf) -> Decision:
        """Whether ``user`` may approve a change that ``requester`` asked for.

        ``members_of`` resolves a Slack user group to its members; it is only called when the user
        is not listed by id, so a listed approver never depends on the Slack API answering.
        """
        if self.two_person_rule and user == requester:
            return Decision(
                False,
                "two-person rule: you requested this change, so someone else must approve it",
            )
        return await self.approver(user, members_of)

    async def approver(self, user: str, members_of: MembersOf) -> Decision:
        """Whether ``user`` is an approver at all. The two-person rule is the approvals service's
        (``runbooks.approvals``): it knows who requested each offer."""
        if user in self.approver_users:
            return Decision(True, "listed approver")
        for group in sorted(self.approver_groups):
            if user in await members_of(group):
                return Decision(True, f"member of <!subteam^{group}>")
        if not self.approver_users and not self.approver_groups:
            return Decision(False, "no approvers are configured for this bot")
        return Decision(False, f"<@{user}> is not an approver")


def _ids(value: Any, key: str) -> frozenset[str]:
    if value is None:
        return frozenset()
    if isinstance(value, str):
        items = [v.strip() for v in value.split(",") if v.strip()]
    elif isinstance(value, list):
        items = [str(v).strip() for v in value]
    else:
        raise AuthzConfigError(f"{key}: expected a list of Slack ids, got {type(value).__name__}")
    for item in items:
        if not _SLACK_ID.match(item):
            raise AuthzConfigError(f"{key}: {item!r} is not a Slack id (like U0123ABCD or C0123ABCD)")
    return frozenset(items)


def _bool(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise AuthzConfigError(f"{key}: expected true or false, got {value!r}")


def _minutes(value: Any, key: str) -> int:
    try:
        minutes = float(value)
    except (TypeError, ValueError):
        raise AuthzConfigError(f"{key}: expected a number of minutes, got {value!r}") from None
    if not 0 < minutes <= 24 * 60:
        raise AuthzConfigError(f"{key}: must be between 0 and 1440 minutes, got {value!r}")
    return int(minutes * 60)


def load_policy(
    path: str | Path | None = None, env: Mapping[str, str] | None = None
) -> AuthzPolicy:
    """Read the policy from ``path`` (or ``BONDBOT_SLACK_AUTHZ``), then apply ``env``'s overrides.
    ``env`` is the caller's (``serve`` passes the process environment); None: no overrides."""
    env = {} if env is None else env
    data: dict[str, Any] = {}
    source = path or env.get("BONDBOT_SLACK_AUTHZ")
    if source:
        import yaml

        try:
            loaded = yaml.safe_load(Path(source).read_text())
        except OSError as exc:
            raise AuthzConfigError(f"cannot read authorization file {source}: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            raise AuthzConfigError(f"authorization file {source} is not valid YAML: {exc}") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise AuthzConfigError(f"authorization file {source}: expected a mapping at the top")
        unknown = set(loaded) - {"triage", "approve", "two_person_rule", "approval_ttl_minutes"}
        if unknown:
            raise AuthzConfigError(f"authorization file {source}: unknown keys {sorted(unknown)}")
        data = loaded
    triage = data.get("triage") or {}
    approve = data.get("approve") or {}
    if not isinstance(triage, dict) or not isinstance(approve, dict):
        raise AuthzConfigError("'triage' and 'approve' must be mappings")
    raw = {
        "triage.channels": env.get("BONDBOT_TRIAGE_CHANNELS", triage.get("channels")),
        "triage.users": env.get("BONDBOT_TRIAGE_USERS", triage.get("users")),
        "approve.users": env.get("BONDBOT_APPROVERS", approve.get("users")),
        "approve.usergroups": env.get("BONDBOT_APPROVER_GROUPS", approve.get("usergroups")),
    }
    two_person = env.get("BONDBOT_TWO_PERSON_RULE", data.get("two_person_rule", True))
    ttl = env.get("BONDBOT_APPROVAL_TTL_MINUTES", data.get("approval_ttl_minutes", 15))
    return AuthzPolicy(
        triage_channels=_ids(raw["triage.channels"], "triage.channels"),
        triage_users=_ids(raw["triage.users"], "triage.users"),
        approver_users=_ids(raw["approve.users"], "approve.users"),
        approver_groups=_ids(raw["approve.usergroups"], "approve.usergroups"),
        two_person_rule=_bool(two_person, "two_person_rule"),
        approval_ttl_seconds=_minutes(ttl, "approval_ttl_minutes"),
    )
