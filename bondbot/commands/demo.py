"""``bondbot demo``: the seed's bonding incident, end to end, as the channel would see it.

It puts the lab VM (a real Debian host with a real bond, NetworkManager and a switch port bondbot
can shut) into the seed's state, runs the real Slack bot in Socket Mode against the local Slack
stand-in, and plays the two people of the story: the on-call engineer types
``/bond triage lab-host``; an approver (a different person: the two-person rule) presses "Apply the
fix", then "Failover test: lab", then "Export timeline". Nothing is scripted on the bot's side:
every SSH command, every Slack API call and every incident event is the real one.

What a person sees: the channel in the terminal as it goes (Rich), and at the end an HTML page of
the messages and buttons (``-o FILE``, default ``<data dir>/demo/demo-<incident>.html``). The
incident goes to the normal incident store, so ``bondbot incident show/export`` finds it.

The VM is reused when it runs (``bondbot lab up``) and left running; a VM the demo booted is
stopped at the end unless ``--keep-vm``. Heavy imports (the bot, asyncssh, the lab) happen inside
the command.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from lab.vm import LabVM

__all__ = ["DemoError", "DemoResult", "register", "run_demo", "APPROVER", "CHANNEL", "ONCALL"]

ONCALL, APPROVER = "U0DEMOALICE", "U0DEMOBOB"
USERS = {ONCALL: "alice", APPROVER: "bob"}
CHANNEL, CHANNEL_NAME = "C0DEMOINC", "incident-lab-host"
HOST = "lab-host"
#: Seconds the failover test keeps the port shut (the lab VM runs under TCG: keep it short).
HOLD_SECONDS = 2.0


class DemoError(Exception):
    """The demo cannot run (no QEMU, no image, the VM did not boot); the message says what to do."""


@dataclass
class DemoResult:
    incident_id: str
    html_path: Path
    transcript: str
    fix_ok: bool
    failover_passed: bool
    vm_started_here: bool
    steps: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.fix_ok and self.failover_passed


# ------------------------------------------------------------------------------------ the lab


def _prepare_lab(vm: LabVM | None, say: Any) -> tuple[LabVM, bool]:
    """The running lab VM (or a freshly booted one) in the ``incident`` scenario, and whether the
    demo booted it. The inventory entry ``lab-host`` and its pinned host key are (re)written to
    bondbot's settings paths, as ``bondbot lab up`` does."""
    from bondbot.commands.lab import lab_first_boot
    from bondbot.settings import inventory_path, known_hosts_path, lab_accel, lab_dir, lab_mirror, lab_qemu
    from lab import LabError, LabVM, build_image, find_image
    from lab.errors import ImageMissing
    from lab.hostconfig import pin_known_host, write_inventory_entry
    from lab.vm import INVENTORY_NAME, qemu_binary

    try:
        qemu_binary(lab_qemu())
    except LabError as exc:
        raise DemoError(str(exc)) from None
    vm = vm or LabVM(lab_dir=lab_dir(), qemu=lab_qemu(), accel=lab_accel())
    started = False
    try:
        if not vm.is_running():
            try:
                find_image(lab_dir())
            except ImageMissing:
                say("the lab image is not built yet: building it (a few minutes, once)")
                build_image(base=lab_dir(), progress=say, first_boot=lab_first_boot(), mirror=lab_mirror())
            say("booting the lab VM (reused by later demos if you pass --keep-vm)")
            vm.up(inventory_path=inventory_path(), known_hosts_path=known_hosts_path(), progress=say)
            started = True
        else:
            say(f"reusing the running lab VM ({vm.dir})")
        say("putting lab-host into the seed's state (scenario 'incident': active-backup, miimon=0)")
        state = vm.scenario("incident")
        write_inventory_entry(inventory_path(), INVENTORY_NAME, vm.inventory_entry(state))
        for port in (state.ssh_port, state.bond_ssh_port):
            pin_known_host(known_hosts_path(), "127.0.0.1", port, vm.image.host_key_line())
    except LabError as exc:
        if started:
            vm.down()
        raise DemoError(str(exc)) from None
    return vm, started


# ------------------------------------------------------------------------------ the narrator


class _Narrator:
    """Prints the channel as it changes: new messages, the incident message's steps as they finish,
    and the whole incident message at each milestone."""

    def __init__(self, slack: Any, console: Console) -> None:
        self.slack = slack
        self.console = console
        self.seen: set[str] = set()
        self.step_lines: set[str] = set()
        self.incident_ts: str | None = None

    def user(self, name: str, text: str) -> None:
        self.console.print(f"\n[bold cyan]{name}[/]: {text}", highlight=False)

    def ack(self, delivery: Any) -> None:
        body = delivery.body if isinstance(delivery.body, dict) else {}
        text = body.get("text")
        if text:
            self.console.print(f"  [dim]bondbot (only visible to you, {delivery.seconds * 1000:.0f} ms):[/] {text}",
                               highlight=False)

    def poll(self) -> None:
        from bot.testing.transcript import message_lines

        for msg in self.slack.channel_messages(CHANNEL):
            key = msg.ts
            if key not in self.seen:
                self.seen.add(key)
                if msg.thread_ts is None and self.incident_ts is None and msg.blocks and not msg.ephemeral_to:
                    self.incident_ts = msg.ts
                    self.console.print("[bold]bondbot[/] posted the incident message; triage steps:")
                    continue
                lines = message_lines(self.slack, msg)
                if msg.thread_ts is not None:
                    first = lines[0] if lines else ""
                    self.console.print(f"  [dim]↳ in the thread: {first[:110]}[/]", highlight=False)
                else:
                    who = "bondbot" + (f" (only visible to @{USERS.get(msg.ephemeral_to, msg.ephemeral_to)})"
                                       if msg.ephemeral_to else "")
                    self.console.print(f"[bold]{who}[/]: " + " ".join(lines)[:300], highlight=False)
            if msg.ts == self.incident_ts:
                for block in msg.blocks:
                    text = (block.get("text") or {}).get("text", "") if block.get("type") == "section" else ""
                    if text.startswith("*Triage steps*"):
                        self._print_steps(text.splitlines()[1:])

    def steps_from_log(self, store: Any, incident_id: str) -> None:
        """The triage steps the live message did not show: a triage that finishes within one
        repaint interval (1 s) only ever shows "N/N triage steps ran", so the steps are read from
        the incident log, as the message's own step list is."""
        from datetime import UTC, datetime

        from bot.incident_view import card_from_log
        from bot.views import step_line

        card = card_from_log(store.get(incident_id), store.events(incident_id), now=datetime.now(UTC))
        self._print_steps(step_line(step) for step in card.steps)  # exactly as the message writes them

    def _print_steps(self, lines: Iterable[str]) -> None:
        """Finished steps (✅ ❌ ➖) not printed yet, once each."""
        for line in lines:
            if line[:1] in ("✅", "❌", "➖") and line not in self.step_lines:
                self.step_lines.add(line)
                self.console.print(f"  {line.replace('`', '')}", highlight=False)

    def show_incident(self, title: str, *, from_first_divider: bool = False) -> None:
        """The incident message as it reads now; ``from_first_divider`` leaves out the diagnosis
        (already shown) and keeps what changed: outcomes, offers, buttons."""
        from rich.panel import Panel
        from rich.text import Text

        from bot.testing.transcript import message_lines

        self.poll()
        if self.incident_ts is None:
            return
        msg = self.slack.message(CHANNEL, self.incident_ts)
        lines = message_lines(self.slack, msg)
        if from_first_divider and "-" * 40 in lines:
            lines = lines[:2] + ["  …"] + lines[lines.index("-" * 40):]
        body = "\n".join(lines).replace("```", "")
        self.console.print(Panel(Text(body), title=f"#{CHANNEL_NAME} — {title}", title_align="left",
                                 border_style="green"))


async def _settle(running: Any, narrator: _Narrator, timeout: float) -> None:
    import asyncio

    task = asyncio.ensure_future(running.settle(timeout))
    while not task.done():
        narrator.poll()
        await asyncio.sleep(0.2)
    await task
    narrator.poll()


def _incident_message(slack: Any, ts: str | None) -> Any:
    if ts is None:
        raise DemoError("the bot posted no incident message; see the log above")
    return slack.message(CHANNEL, ts)


def _has_button(msg: Any, action_id: str) -> bool:
    return any(e.get("action_id") == action_id for b in msg.blocks if b.get("type") == "actions"
               for e in b.get("elements", []))


# ------------------------------------------------------------------------------------- the run


async def run_demo(
    *,
    vm: LabVM | None = None,
    output: Path | None = None,
    keep_vm: bool = False,
    console: Console | None = None,
) -> DemoResult:
    """Play the seed's incident through the real bot; see the module docstring."""
    import asyncio

    from rich.console import Console

    from bondbot.settings import (
        ansible_cache_dir,
        ansible_inventory,
        data_dir,
        database_url,
        inventory_path,
        known_hosts_path,
        runbook_search_path,
    )
    from bot.app import BotDeps
    from bot.authz import AuthzPolicy
    from bot.testing.harness import start_bot
    from bot.testing.standin import SlackStandin
    from bot.testing.transcript import render_html, render_text
    from bot.views import ACTION_APPLY_FIX, ACTION_EXPORT, failover_action_id
    from bot.wiring import EngineRemediation, EngineTriage
    from incidents import IncidentStore
    from ssh_exec import SshPool, load_inventory

    console = console or Console()

    def say(text: str) -> None:
        console.print(f"[dim]• {text}[/]", highlight=False)

    console.rule("[bold]bondbot demo: the seed's bonding incident, end to end")
    lab_vm, started_here = await asyncio.to_thread(_prepare_lab, vm, say)
    store = IncidentStore.open(database_url())
    pool = SshPool(load_inventory(inventory_path(), cache_dir=ansible_cache_dir(), ansible_inventory=ansible_inventory()),
                   known_hosts=known_hosts_path())
    slack = SlackStandin(users=USERS, channels={CHANNEL: CHANNEL_NAME})
    running = None
    try:
        policy = AuthzPolicy(
            triage_channels=frozenset({CHANNEL}),
            triage_users=frozenset(USERS),
            approver_users=frozenset({APPROVER}),
        )
        deps = BotDeps(
            store=store, triage=EngineTriage(pool, store, runbooks=runbook_search_path()), policy=policy,
            remediation=EngineRemediation(pool, store, link_control=lab_vm.link, hold_seconds=HOLD_SECONDS),
        )
        await slack.start()
        running = await start_bot(slack, deps, mode="socket")
        say(f"bot connected over Socket Mode to the local Slack stand-in ({slack.base_url}); "
            f"@alice is on call, @bob approves")
        narrator = _Narrator(slack, console)

        narrator.user("alice", f"/bond triage {HOST}")
        narrator.ack(await running.command(f"triage {HOST}", user=ONCALL, channel=CHANNEL))
        await _settle(running, narrator, 240)
        msg = _incident_message(slack, narrator.incident_ts)
        incident_id = msg.text[1:].split("]", 1)[0]  # the fallback text starts with "[INC-XXXX]"
        narrator.steps_from_log(store, incident_id)
        narrator.show_incident("root cause")

        fix_ok = failover_passed = False
        if _has_button(msg, ACTION_APPLY_FIX):
            narrator.user("alice", "clicks [ Apply the fix ] on her own request")
            await running.click(msg, ACTION_APPLY_FIX, user=ONCALL)
            await _settle(running, narrator, 30)
            narrator.user("bob", "clicks [ Apply the fix ] and confirms the dialog (commands and rollback)")
            await running.click(msg, ACTION_APPLY_FIX, user=APPROVER)
            await _settle(running, narrator, 300)
            narrator.show_incident("after the fix", from_first_divider=True)
            fix_ok = store.get(incident_id).status.value == "verified"
        msg = _incident_message(slack, narrator.incident_ts)
        lab_button = failover_action_id("lab")
        if _has_button(msg, lab_button):
            narrator.user("bob", "clicks [ Failover test: lab ] and confirms the maintenance window")
            await running.click(msg, lab_button, user=APPROVER)
            await _settle(running, narrator, 240)
            measured = [e.payload["failover_test"] for e in store.events(incident_id)
                        if e.kind == "verification" and isinstance(e.payload.get("failover_test"), dict)]
            failover_passed = bool(measured and measured[-1].get("passed"))
            narrator.show_incident("after the failover test", from_first_divider=True)
        msg = _incident_message(slack, narrator.incident_ts)
        if _has_button(msg, ACTION_EXPORT):
            narrator.user("bob", "clicks [ Export timeline ]")
            await running.click(msg, ACTION_EXPORT, user=APPROVER)
            await _settle(running, narrator, 60)

        transcript = render_text(slack, CHANNEL)
        html_path = output or data_dir() / "demo" / f"demo-{incident_id}.html"
        html_path.parent.mkdir(parents=True, exist_ok=True)
        html_path.write_text(render_html(slack, CHANNEL, title=f"bondbot demo — {incident_id}"))
    finally:
        if running is not None:
            await running.stop()
        await slack.stop()
        await pool.close()
        store.close()
        if started_here and not keep_vm:
            say("stopping the lab VM the demo started (--keep-vm keeps it)")
            await asyncio.to_thread(lab_vm.down)

    console.rule("[bold]done")
    verdict = "fix verified, failover test passed" if fix_ok and failover_passed else (
        f"fix {'verified' if fix_ok else 'NOT verified'}, failover test {'passed' if failover_passed else 'NOT passed'}")
    console.print(f"Incident [bold]{incident_id}[/]: {verdict}", highlight=False)
    console.print(f"The channel as HTML: {html_path}", highlight=False, soft_wrap=True)
    console.print(f"The timeline: bondbot incident export {incident_id} --format md", highlight=False)
    return DemoResult(incident_id, html_path, transcript, fix_ok, failover_passed, started_here)


def demo(
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write the HTML page of the channel here.")] = None,  # noqa: UP045
    keep_vm: Annotated[bool, typer.Option("--keep-vm", help="Leave the lab VM running if the demo booted it.")] = False,
) -> None:
    """The seed's incident end to end: lab VM, the real bot over Socket Mode, a local Slack, two people."""
    import asyncio
    import logging

    logging.basicConfig(level=logging.ERROR)
    try:
        result = asyncio.run(run_demo(output=output, keep_vm=keep_vm))
    except DemoError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    raise typer.Exit(0 if result.ok else 1)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
