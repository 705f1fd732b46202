"""People's names for exports: Slack's users.info for the user ids an incident's log holds.

The incident log records who did what by Slack user id (stable, unambiguous); a postmortem wants
names. The export layer sits below the bot and asks no one, so the bot looks the names up here and
passes the mapping down. Names are cached per process (a person's name rarely changes during an
incident); an id Slack does not answer for (``user_not_found``, no ``users:read`` scope, an error)
is left out, and the export shows the id.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Any

__all__ = ["NameCache", "USER_ID"]

log = logging.getLogger(__name__)

#: A Slack user id (``U…``, or ``W…`` on Enterprise Grid); anything else (``bot``, ``cli``, a
#: system user such as ``bondbot`` or ``root``) is not looked up.
USER_ID = re.compile(r"^[UW][A-Z0-9]{2,20}$")


def _display(user: dict[str, Any]) -> str | None:
    """The name Slack shows: the profile's display name, else the real name, else the handle."""
    raw = user.get("profile")
    profile: dict[str, Any] = raw if isinstance(raw, dict) else {}
    for value in (profile.get("display_name"), profile.get("real_name"), user.get("real_name"), user.get("name")):
        if isinstance(value, str) and value.strip():
            return " ".join(value.split())[:80]
    return None


class NameCache:
    """user id -> name, from users.info, looked up once per id per process."""

    def __init__(self) -> None:
        self._names: dict[str, str | None] = {}

    async def names(self, client: Any, ids: Iterable[str]) -> dict[str, str]:
        """Names for the Slack user ids among ``ids`` (ids with no name are left out)."""
        wanted = {i for i in ids if USER_ID.match(i)}
        for uid in sorted(wanted - set(self._names)):
            try:
                answer = await client.users_info(user=uid)
                user = answer.get("user") if answer.get("ok") else None
                self._names[uid] = _display(user) if isinstance(user, dict) else None
            except Exception as exc:  # a missing name never stops an export; asked again next time
                log.info("users.info %s: %s (the export shows the id)", uid, exc)
        return {uid: name for uid, name in self._names.items() if name and uid in wanted}
