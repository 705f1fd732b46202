"""Offers: plan each remediation action for an incident and offer it through ``runbooks.approvals``.

The bot shows, hashes, approves and runs one object, a ``runbooks.plan.Plan``: the button value,
the proposal, the approval and the run all carry ``plan.digest`` and no other hash.
:func:`as_plan` takes what the remediation returns (``runbooks.approvals.plan_of``: a ``Plan``,
an object holding one, or, until every remediation plans one, an older plan object whose commands
and own hash are made steps and parameters of a Plan, so that its digest covers them).

Proposals written together form a batch; a later batch offering an action replaces the earlier,
undecided offers of that action (e.g. the failover test, offered again once the fix made it
possible). The failover test gets one offer per method.

The host is read once for a batch: a remediation with ``read_state(host, bond)`` reads the bond's
state (and what the failover test needs) once, and that reading plans the fix and every failover
method (``state=``), so the offers come from one snapshot and cost one round of host commands. A
click plans again without it (``plan_for`` with no state): the host is read afresh right before
anything runs, and the digests are compared.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import TYPE_CHECKING, Any

from bot.details import post_offer_details
from runbooks.approvals import approved_hash_for, plan_of
from runbooks.plan import Plan

if TYPE_CHECKING:
    from bot.app import BondBot

__all__ = ["ACTIONS", "BOT_ACTOR", "approved_hash_for", "as_plan", "plan_for", "propose"]

log = logging.getLogger(__name__)

#: The actor the bot writes its own events as (proposals, notes, results).
BOT_ACTOR = "bondbot"

#: The actions the bot offers after a diagnosis with a root cause, in the message's order.
ACTIONS: tuple[str, ...] = ("fix", "failover_test")


def as_plan(kind: str, planned: Any, method: str = "") -> Plan:
    """The ``Plan`` behind what a remediation's ``plan_*`` returned (``runbooks.approvals.plan_of``)."""
    return plan_of(planned, action=kind, method=method)


def _shown_extra(planned: Any, plan: Plan, method: str, bond: str) -> dict[str, str]:
    """What the message needs besides the plan: the method's key, and how the remediation says the
    method in words when the plan's parameters do not (``method_text``)."""
    extra = {"method_key": method, "host": plan.host, "bond": bond}
    said = getattr(planned, "method", None)
    if isinstance(said, str) and said and not plan.param("method_text"):
        extra["method"] = said
    return extra


async def plan_for(bot: BondBot, kind: str, host: str, bond: str, method: str, *, incident: Any = None,
                   state: Any = None) -> Any:
    """Ask the remediation for the plan of ``kind`` on the host as it is now (None: nothing to do).
    Any other action is one the incident's runbook declares as data: the triage service plans it.
    ``state``: the remediation's ``read_state`` made for this batch (None: the host is read now)."""
    if kind not in ACTIONS:
        assert incident is not None
        return bot.deps.triage.plan_action(incident.runbook, kind, host, incident.subject)
    remediation = bot.deps.remediation
    assert remediation is not None
    given = {"state": state} if state is not None else {}
    if kind == "fix":
        return await remediation.plan_fix(host, bond, **given)
    return await remediation.plan_failover_test(host, bond, method, **given)


async def _read_once(bot: BondBot, host: str, bond: str, actions: tuple[str, ...]) -> tuple[Any, Exception | None]:
    """The batch's one reading of the host (None when the remediation reads per plan), or why it
    failed: then every remediation action of the batch fails with that reason, without reading again."""
    read_state = getattr(bot.deps.remediation, "read_state", None)
    if read_state is None or not any(kind in ACTIONS for kind in actions):
        return None, None
    try:
        return await read_state(host, bond), None
    except Exception as exc:
        return None, exc


async def propose(bot: BondBot, incident_id: str, host: str, bond: str, actions: tuple[str, ...] = ACTIONS) -> None:
    """Plan each action and offer it for approval (one ``proposal`` event per plan)."""
    remediation = bot.deps.remediation
    incident = await bot._store("get", incident_id)
    batch = uuid.uuid4().hex[:12]
    state, read_error = await _read_once(bot, host, bond, actions)
    for kind in actions:
        if kind == "failover_test":
            assert remediation is not None
        methods = remediation.failover_methods() if kind == "failover_test" and remediation is not None else ("",)
        errors: list[tuple[str, str]] = []
        offered = 0
        for method in methods:
            try:
                if read_error is not None and kind in ACTIONS:
                    raise read_error
                planned = await plan_for(bot, kind, host, bond, method, incident=incident,
                                         state=state if kind in ACTIONS else None)
            except Exception as exc:
                log.warning("planning %s %s for %s failed: %s", kind, method, incident_id, exc)
                errors.append((method, str(exc)[:500]))
                continue
            if planned is None:
                continue
            offered += 1
            plan = as_plan(kind, planned, method)
            await asyncio.to_thread(
                bot.approvals.offer, incident_id, plan, actor=BOT_ACTOR, requester=incident.requester,
                action=kind, batch=batch, extra=_shown_extra(planned, plan, method, bond),
            )
        if errors:
            # The same reason for every method (no link monitoring yet) is said once.
            if offered:
                unique = [f"method {m}: {e}" if m else e for m, e in errors]
            else:
                unique = list(dict.fromkeys(e for _m, e in errors))
            await bot._store(
                "append", incident_id, actor=BOT_ACTOR, kind="note",
                payload={"plan_error": {"action": kind, "error": "; ".join(unique)[:1000], "batch": batch,
                                        "offered": offered}},
            )
    # The channel message shows one line per offer; its steps, commands and rollback go to the thread.
    await post_offer_details(bot, incident_id)
