"""``/bond triage``: one incident per subject, its message, the steps as they finish, the offers.

Any runbook of the registry (``--runbook NAME``; the default is the service's, bonding): what a
subject is, whether the host's subjects can be listed and how they are called ("bond", "bonds")
come from the runbook (``TriageService.runbook``), never from here.

Exactly once: a redelivered slash command (Slack retry, Socket Mode redelivery) carries the same
``trigger_id``, and ``IncidentStore.claim`` on it lets one delivery, in one replica, do the work.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from slack_sdk.errors import SlackApiError

from bot import views
from bot.commands import BondCommand
from bot.domain import RawOutput, RunbookInfo, StepProgress, TriageReport, UnknownTarget
from bot.proposals import ACTIONS, BOT_ACTOR, propose
from runbooks.recording import record_diagnosis

if TYPE_CHECKING:
    from bot.app import BondBot

__all__ = ["PostFailed", "triage", "triage_subject"]

log = logging.getLogger(__name__)


class PostFailed(RuntimeError):
    """The incident's message could not be posted (the bot is not in the channel, or it is gone):
    the requester was told and the failure is on the incident's record."""


#: Slack's answers that mean the bot cannot post in the channel at all.
_CANNOT_POST = {"not_in_channel", "channel_not_found", "is_archived", "restricted_action"}


async def triage(bot: BondBot, command: BondCommand, *, user: str, channel: str, trigger_id: str,
                 respond: Any = None) -> None:
    assert command.host is not None
    if not await bot._store("claim", f"slack:command:{trigger_id}", actor=BOT_ACTOR):
        log.info("command %s already handled (redelivery); skipped", trigger_id)
        return
    try:
        info = bot.deps.triage.runbook(command.runbook)
        host, named = bot.deps.triage.resolve(command.host, command.subject, runbook=command.runbook)
    except UnknownTarget as exc:
        await bot._ephemeral(channel, user, views.error_message(str(exc)))
        return
    targets: list[str | None]
    if info.param is None:  # a runbook about the host itself: one incident, nothing to list
        targets = [None]
    elif not info.discovers:
        if named is None:
            await bot._ephemeral(channel, user, views.error_message(
                f"Runbook {info.name} cannot list a host's {info.plural}: name the {info.noun}: "
                f"/bond triage {host} {info.noun.upper()} --runbook {info.name}"))
            return
        targets = [named]
    else:
        # The host's subjects first: one incident per subject (each has its own root cause, fix,
        # approvals and rollback), a named one the host lacks is refused with the list, nothing is guessed.
        listing = await bot.deps.triage.subjects(host, runbook=command.runbook)
        if listing.unreachable:
            await bot._ephemeral(channel, user, views.error_message(f"Cannot triage {host}: {listing.error}"))
            return
        if named is None:
            if listing.subjects is None:
                await bot._ephemeral(channel, user, views.error_message(
                    f"Inconclusive: {listing.error}. Name the {info.noun}: /bond triage {host} {info.noun.upper()}"))
                return
            if not listing.subjects:
                await bot._ephemeral(channel, user, views.text_message(
                    f"➖ No {info.noun} on {host}: {listing.why_none}. Nothing to triage."))
                return
            targets = list(listing.subjects)
        elif listing.subjects is not None and named not in listing.subjects:
            from runbooks.engine import subjects_text

            problem = (f"{host} has no {info.noun} {named}: "
                       f"{subjects_text(listing.subjects, listing.why_none, noun=info.noun, plural=info.plural)}")
            await bot._ephemeral(channel, user, views.bond_choice_message(host, problem, listing.subjects,
                                                                          runbook=command.runbook))
            return
        else:
            targets = [named]
    await asyncio.gather(*(triage_subject(bot, host, s, command.runbook, info.param, user=user, channel=channel,
                                          respond=respond)
                           for s in targets))


async def triage_subject(bot: BondBot, host: str, value: str | None, runbook: str | None, param: str | None, *,
                         user: str, channel: str, opened: Callable[[str], Awaitable[None]] | None = None,
                         respond: Any = None) -> None:
    """One subject's incident: its message, the steps as they finish, the diagnosis, the offers.

    ``opened(incident_id)`` runs once the incident exists, before its message is posted (an alert
    binds itself to the incident and records its notification there, so the first message shows it).
    ``respond`` (the slash command's response URL) tells the requester when the message cannot be
    posted: it works where the bot is not a member.
    """
    info = bot.deps.triage.runbook(runbook)
    subject = {param: value} if param is not None and value is not None else {}
    incident = await bot._store("create_incident", host=host, runbook=info.name, subject=subject,
                                requester=user, channel=channel)
    if opened is not None:
        await opened(incident.id)
    await bot.supervisor.begin("triage", incident.id, host=host, runbook=info.name, **subject)
    steps = [StepProgress(name, "pending") for name in bot.deps.triage.step_names(host, value, runbook=runbook)]
    bot.refresh.running_steps[incident.id] = steps
    try:
        rendered = await bot.render_incident(incident.id)
        try:
            posted = await bot.client.chat_postMessage(channel=channel, text=rendered.text, blocks=rendered.blocks)
        except SlackApiError as exc:
            error = str(exc.response.get("error") or exc)
            if error not in _CANNOT_POST:
                raise
            await _cannot_post(bot, incident.id, error, user=user, channel=channel, respond=respond)
            raise PostFailed(f"cannot post the incident message in <#{channel}> ({error}): invite the bot "
                             f"(/invite @bondbot) and run the triage again; its steps were not run on {host}") from None
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

        report = await bot.deps.triage.run(host, value, incident_id=incident.id, actor=user, on_step=on_step,
                                           runbook=runbook)
        await _record_report(bot, incident.id, report, info)
    finally:
        bot.refresh.running_steps.pop(incident.id, None)
    await bot.refresh_message(incident.id, urgent=True)  # the diagnosis and the offers: shown now
    await _post_outputs(bot, channel, ts, report.outputs)
    await bot.refresh.repaint_at_expiry(incident.id)


async def _cannot_post(bot: BondBot, incident_id: str, error: str, *, user: str, channel: str,
                       respond: Any) -> None:
    """Tell the requester (the command's response URL works where the bot is not a member) and
    record the failure in the incident, so that nothing is lost silently."""
    await bot._store("append", incident_id, actor=BOT_ACTOR, kind="note",
                     payload={"slack_post_failed": {"channel": channel, "error": error, "requester": user}})
    text = (f"I cannot post in this channel ({error}), so incident {incident_id} has no message here and "
            f"its triage steps were not run: invite me with `/invite @bondbot`, then run the triage again.")
    rendered = views.error_message(text)
    try:
        if respond is not None:
            await respond(text=rendered.text, blocks=rendered.blocks, response_type="ephemeral",
                          replace_original=False)
        else:
            await bot._ephemeral(channel, user, rendered)
    except Exception as exc:  # not even an ephemeral: the record above and the log still say it
        log.warning("could not tell %s that %s cannot be posted in %s: %s", user, incident_id, channel, exc)


async def _record_report(bot: BondBot, incident_id: str, report: TriageReport, info: RunbookInfo) -> None:
    await bot._store(
        "append", incident_id, actor=BOT_ACTOR, kind="note",
        payload={"triage_steps": [{"name": s.name, "status": s.status, "detail": s.detail} for s in report.steps]},
    )
    # The diagnosis, root cause and status are recorded as ``bondbot triage --record`` does.
    root_cause_found = await asyncio.to_thread(
        record_diagnosis, bot.deps.store, incident_id, report.diagnosis, actor=BOT_ACTOR, error=report.error
    )
    # Offered: the actions the incident's runbook declares that the bot's remediation can plan, and
    # the runbook's data actions (planned and run by the engine).
    offered = tuple(a for a in ACTIONS if a in info.actions) if bot.deps.remediation is not None else ()
    offered += tuple(a for a in info.data_actions if a not in offered)
    if root_cause_found and offered:
        incident = await bot._store("get", incident_id)
        await propose(bot, incident_id, incident.host, incident.bond, actions=offered)


async def _post_outputs(bot: BondBot, channel: str, thread_ts: str, outputs: tuple[RawOutput, ...]) -> None:
    """Raw outputs go in the thread in one post: a section per output when they all fit in one
    message (``views.outputs_message``), else one text file holding them all. A 1,000-slave bond
    reads 2,000 outputs: that is still one upload, not 2,000 posts (Slack's rate limits, the thread)."""
    if not outputs:
        return
    rendered = views.outputs_message([(o.command, o.text, o.exit_status) for o in outputs])
    if rendered is not None:
        await bot.client.chat_postMessage(channel=channel, thread_ts=thread_ts, text=rendered.text,
                                          blocks=rendered.blocks)
        return
    content = "\n\n".join(
        f"$ {o.command}" + (f"  (exit {o.exit_status})" if o.exit_status else "") + "\n" + (o.text or "(no output)")
        for o in outputs
    )
    await bot.client.files_upload_v2(
        channel=channel,
        thread_ts=thread_ts,
        content=content,
        filename=_output_filename(outputs[0].command) if len(outputs) == 1 else "raw-outputs.txt",
        title=f"Raw outputs ({len(outputs)} commands)",
        initial_comment=views.outputs_comment(len(outputs), len(content)),
    )


def _output_filename(command: str) -> str:
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in command)
    return (safe.strip("_") or "output")[:80] + ".txt"
