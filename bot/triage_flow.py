"""``/bond triage``: one incident per bond, its message, the steps as they finish, the offers.

Exactly once: a redelivered slash command (Slack retry, Socket Mode redelivery) carries the same
``trigger_id``, and ``IncidentStore.claim`` on it lets one delivery, in one replica, do the work.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from bot import views
from bot.commands import BondCommand
from bot.domain import RawOutput, StepProgress, TriageReport, UnknownTarget
from bot.proposals import BOT_ACTOR, propose
from runbooks.recording import record_diagnosis

if TYPE_CHECKING:
    from bot.app import BondBot

__all__ = ["triage"]

log = logging.getLogger(__name__)


async def triage(bot: BondBot, command: BondCommand, *, user: str, channel: str, trigger_id: str) -> None:
    assert command.host is not None
    if not await bot._store("claim", f"slack:command:{trigger_id}", actor=BOT_ACTOR):
        log.info("command %s already handled (redelivery); skipped", trigger_id)
        return
    try:
        host, named = bot.deps.triage.resolve(command.host, command.bond)
    except UnknownTarget as exc:
        await bot._ephemeral(channel, user, views.error_message(str(exc)))
        return
    # The host's bonds first: one incident per bond (each has its own root cause, fix, approvals
    # and rollback), a named bond the host lacks is refused with the list, nothing is guessed.
    listing = await bot.deps.triage.bonds(host)
    if listing.unreachable:
        await bot._ephemeral(channel, user, views.error_message(f"Cannot triage {host}: {listing.error}"))
        return
    if named is None:
        if listing.bonds is None:
            await bot._ephemeral(channel, user, views.error_message(
                f"Inconclusive: {listing.error}. Name the bond: /bond triage {host} BOND"))
            return
        if not listing.bonds:
            await bot._ephemeral(channel, user, views.text_message(
                f"➖ No bond on {host}: {listing.why_none}. Nothing to triage."))
            return
        targets = list(listing.bonds)
    elif listing.bonds is not None and named not in listing.bonds:
        from runbooks.engine import bonds_text

        problem = f"{host} has no bond {named}: {bonds_text(listing.bonds, listing.why_none)}"
        await bot._ephemeral(channel, user, views.bond_choice_message(host, problem, listing.bonds))
        return
    else:
        targets = [named]
    await asyncio.gather(*(_triage_bond(bot, host, b, user=user, channel=channel) for b in targets))


async def _triage_bond(bot: BondBot, host: str, bond: str, *, user: str, channel: str) -> None:
    """One bond's incident: its message, the steps as they finish, the diagnosis, the offers."""
    incident = await bot._store("create_incident", host=host, bond=bond, requester=user, channel=channel)
    await bot.supervisor.begin("triage", incident.id, host=host, bond=bond)
    steps = [StepProgress(name, "pending") for name in bot.deps.triage.step_names(host, bond)]
    bot.refresh.running_steps[incident.id] = steps
    try:
        rendered = await bot.render_incident(incident.id)
        posted = await bot.client.chat_postMessage(channel=channel, text=rendered.text, blocks=rendered.blocks)
        ts = posted["ts"]
        await bot._store(
            "append", incident.id, actor=BOT_ACTOR, kind="note",
            payload={"slack_message": {"channel": channel, "ts": ts}},
        )

        async def on_step(progress: StepProgress) -> None:
            for i, step in enumerate(steps):
                if step.name == progress.name:
                    steps[i] = progress
                    break
            else:
                steps.append(progress)
            await bot.refresh_message(incident.id)

        report = await bot.deps.triage.run(host, bond, incident_id=incident.id, actor=user, on_step=on_step)
        await _record_report(bot, incident.id, report)
    finally:
        bot.refresh.running_steps.pop(incident.id, None)
    await bot.refresh_message(incident.id)
    await _post_outputs(bot, channel, ts, report.outputs)
    await bot.refresh.repaint_at_expiry(incident.id)


async def _record_report(bot: BondBot, incident_id: str, report: TriageReport) -> None:
    await bot._store(
        "append", incident_id, actor=BOT_ACTOR, kind="note",
        payload={"triage_steps": [{"name": s.name, "status": s.status, "detail": s.detail} for s in report.steps]},
    )
    # The diagnosis, root cause and status are recorded as ``bondbot triage --record`` does.
    root_cause_found = await asyncio.to_thread(
        record_diagnosis, bot.deps.store, incident_id, report.diagnosis, actor=BOT_ACTOR, error=report.error
    )
    if root_cause_found and bot.deps.remediation is not None:
        incident = await bot._store("get", incident_id)
        await propose(bot, incident_id, incident.host, incident.bond)


async def _post_outputs(bot: BondBot, channel: str, thread_ts: str, outputs: tuple[RawOutput, ...]) -> None:
    """Raw outputs go in the thread: short ones as text, long ones as a file."""
    for output in outputs:
        if len(output.text) <= views.INLINE_OUTPUT_LIMIT:
            rendered = views.output_message(output.command, output.text, output.exit_status)
            await bot.client.chat_postMessage(
                channel=channel, thread_ts=thread_ts, text=rendered.text, blocks=rendered.blocks
            )
        else:
            await bot.client.files_upload_v2(
                channel=channel,
                thread_ts=thread_ts,
                content=output.text,
                filename=_output_filename(output.command),
                title=f"$ {output.command}"[:250],
                initial_comment=f"`$ {output.command}` ({len(output.text)} characters)",
            )


def _output_filename(command: str) -> str:
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in command)
    return (safe.strip("_") or "output")[:80] + ".txt"
