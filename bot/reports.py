"""Read-only answers: ``/bond status``, ``/bond export`` (and its button), ``/bond audit``."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from bot import views
from bot.domain import StepProgress, UnknownTarget
from bot.incident_view import card_from_log

if TYPE_CHECKING:
    from bot.app import BondBot

__all__ = ["audit", "ephemeral_kwargs", "export", "status"]


def ephemeral_kwargs(rendered: views.Rendered) -> dict[str, Any]:
    """``respond()`` arguments for an answer only the caller sees."""
    return {"text": rendered.text, "blocks": rendered.blocks, "response_type": "ephemeral", "replace_original": False}


async def status(bot: BondBot, incident_id: str, *, user: str, channel: str, respond: Any) -> None:
    from incidents.errors import UnknownIncident

    try:
        incident = await bot._store("get", incident_id)
    except UnknownIncident as exc:
        await respond(**ephemeral_kwargs(views.error_message(str(exc))))
        return
    why = bot.allowed_here(incident, channel, user, "see the status")
    if why is not None:
        await bot._store("append", incident.id, actor=user, kind="refusal",
                         payload={"action": "status", "user": user, "code": "wrong_channel", "reason": why,
                                  "channel": channel, "plan_hash": "", "stale": False})
        await respond(**ephemeral_kwargs(views.refusal_message("see the status", why)))
        return
    events = await bot._store("events", incident.id)
    card = card_from_log(incident, events, now=bot.deps.clock())
    await respond(**ephemeral_kwargs(views.status_message(card, len(events), incident.head_hash)))


async def export(bot: BondBot, incident_id: str, fmt: str, *, user: str, channel: str,
                 thread_ts: str | None = None) -> None:
    from incidents.errors import IncidentError, UnknownIncident
    from incidents.export import export_incident

    try:
        incident = await bot._store("get", incident_id)
    except UnknownIncident as exc:
        await bot._ephemeral(channel, user, views.error_message(str(exc)))
        return
    # The log holds raw host outputs: it is uploaded only where the incident lives.
    why = bot.allowed_here(incident, channel, user, "export")
    if why is not None:
        await bot.refuse_here(incident, "export", user=user, channel=channel, reason=why)
        return
    try:
        names = await bot.names.names(bot.client, await _people(bot, incident_id))
        done = await asyncio.to_thread(export_incident, bot.deps.store, incident_id, fmt, names=names)
    except IncidentError as exc:
        await bot._ephemeral(channel, user, views.error_message(str(exc)))
        return
    await bot.client.files_upload_v2(
        channel=channel,
        thread_ts=thread_ts,
        content=done.text,
        filename=done.filename,
        title=f"Timeline of {done.incident_id} ({fmt})",
        initial_comment=f"Timeline of {done.incident_id}, exported by <@{user}> (sha256 {done.sha256[:12]}…)",
    )
    await bot._store("record_export", done, actor=user, destination=f"slack:{channel}")
    await bot.refresh_message(done.incident_id)


async def _people(bot: BondBot, incident_id: str) -> set[str]:
    """Every user id the log names: the requester, each event's actor, each approver."""
    incident = await bot._store("get", incident_id)
    events = await bot._store("events", incident.id)
    return {incident.requester, *(e.actor for e in events)}


async def audit(bot: BondBot, group: str | None, *, user: str, channel: str, respond: Any) -> None:
    try:
        targets = bot.deps.triage.group_hosts(group)
    except UnknownTarget as exc:
        await respond(**ephemeral_kwargs(views.error_message(str(exc))))
        return

    async def nothing(_: StepProgress) -> None:
        return None

    async def one_bond(host: str, bond: str) -> views.AuditRow:
        report = await bot.deps.triage.run(host, bond, incident_id="", actor=user, on_step=nothing)
        if report.error:
            return views.AuditRow(host, bond, f"not checked: {report.error}", kind="error")
        diagnosis = report.diagnosis
        if diagnosis is None:
            return views.AuditRow(host, bond, "inconclusive: no diagnosis", kind="inconclusive")
        if diagnosis.root_cause is not None:
            return views.AuditRow(host, bond, diagnosis.root_cause.summary, diagnosis.root_cause.code)
        return views.AuditRow(host, bond, diagnosis.headline(), kind=diagnosis.verdict)

    async def one(host: str, named: str | None) -> list[views.AuditRow]:
        listing = await bot.deps.triage.bonds(host)
        if listing.unreachable:
            return [views.AuditRow(host, named or "", f"unreachable: {listing.error}", kind="unreachable")]
        if named is not None:
            if listing.bonds is not None and named not in listing.bonds:
                from runbooks.engine import bonds_text

                return [views.AuditRow(host, named, f"no such bond ({bonds_text(listing.bonds)})",
                                       kind="inconclusive")]
            return [await one_bond(host, named)]
        if listing.bonds is None:
            return [views.AuditRow(host, "", f"inconclusive: {listing.error}", kind="inconclusive")]
        if not listing.bonds:
            return [views.AuditRow(host, "", f"no bond on this host ({listing.why_none})", kind="no-bond")]
        return list(await asyncio.gather(*(one_bond(host, b) for b in listing.bonds)))

    # Bounded like the CLI's audit: at most ``audit_connections`` hosts (SSH connections) at once.
    gate = asyncio.Semaphore(bot.deps.limits.audit_connections)
    in_flight = 0

    async def bounded(host: str, named: str | None) -> list[views.AuditRow]:
        nonlocal in_flight
        async with gate:
            in_flight += 1
            bot.audit_peak = max(bot.audit_peak, in_flight)
            try:
                return await one(host, named)
            finally:
                in_flight -= 1

    rows = [row for rows_of_host in await asyncio.gather(*(bounded(h, b) for h, b in targets))
            for row in rows_of_host]
    rendered = views.audit_message(group, rows)
    await bot.client.chat_postMessage(channel=channel, text=rendered.text, blocks=rendered.blocks)
