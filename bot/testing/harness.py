"""Run the real bot against the Slack stand-in, in-process: for tests, the benchmark and the demo.

::

    async with SlackStandin(users={"U0ALICE": "alice"}) as slack:
        bot = await start_bot(slack, deps, mode="http")      # or mode="socket"
        await bot.command("triage web-01", user="U0ALICE", channel="C0INCIDENT")
        await bot.settle()                                    # background work done
        msg = slack.channel_messages("C0INCIDENT")[0]
        await bot.click(msg, "bond_apply_fix", user="U0BOB")
        await bot.stop()

Several ``start_bot`` on one stand-in (and one shared store) are several bot replicas.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from bot.app import BondBot, BotDeps, build_app
from bot.server import HttpServer, make_web_client, start_http, start_socket_mode
from bot.testing.standin import Delivery, SlackStandin, StandinMessage

__all__ = ["RunningBot", "start_bot"]


@dataclass
class RunningBot:
    slack: SlackStandin
    app: Any
    bot: BondBot
    mode: Literal["http", "socket"]
    http: HttpServer | None = None
    socket: Any = None
    side: Any = None  # Socket Mode's own listener for the Alertmanager webhook and /healthz
    alerts_url: str = ""

    @property
    def url(self) -> str:
        if self.http is None:
            raise RuntimeError("this bot runs in Socket Mode; it has no request URL")
        return self.http.url

    async def command(self, text: str, *, user: str, channel: str, **kw: Any) -> Delivery:
        """Type ``/bond <text>`` as ``user`` in ``channel``; returns the app's acknowledgement."""
        if self.mode == "http":
            fields = self.slack.slash_command_payload(text, user=user, channel=channel)
            from urllib.parse import urlencode

            return await self.slack.post_signed(urlencode(fields), url=self.url, **kw)
        return await self.slack.command_over_socket(text, user=user, channel=channel, **kw)

    async def click(
        self, message: StandinMessage, action_id: str, *, user: str, payload: dict[str, Any] | None = None, **kw: Any
    ) -> Delivery:
        """Press a button of ``message`` (as the channel shows it now) as ``user``."""
        body = payload or self.slack.block_action_payload(
            user=user, channel=message.channel, message_ts=message.ts, action_id=action_id
        )
        if self.mode == "http":
            import json
            from urllib.parse import urlencode

            return await self.slack.post_signed(urlencode({"payload": json.dumps(body)}), url=self.url, **kw)
        return await self.slack.click_over_socket(body, **kw)

    async def settle(self, timeout: float = 60.0) -> None:
        """Wait until the bot's background work (triage, actions, exports) is finished."""
        await self.bot.drain(timeout)

    async def stop(self) -> None:
        await self.bot.drain()
        await self.bot.supervisor.stop()
        self.bot.cancel_timers()
        if self.http is not None:
            await self.http.stop()
        if self.socket is not None:
            await self.socket.close_async()
        if self.side is not None:
            await self.side.stop()
        session = getattr(self.app.client, "session", None)
        if session is not None:
            await session.close()


async def start_bot(
    slack: SlackStandin,
    deps: BotDeps,
    *,
    mode: Literal["http", "socket"] = "http",
    ping_interval: float = 10,
    alerts: Any = None,
) -> RunningBot:
    """Start one bot replica wired to ``slack``; in HTTP mode it becomes the stand-in's request URL
    unless one is already set (the first replica gets Slack's requests by default).

    ``alerts`` (a ``bot.alert_flow.AlertReceiver`` factory: ``bot -> receiver``) adds the
    Alertmanager webhook: on the HTTP server, or in Socket Mode on a listener of its own
    (``RunningBot.alerts_url`` is its URL either way)."""
    client = make_web_client(slack.bot_token, slack.api_url)
    app, bot = build_app(
        deps,
        client=client,
        signing_secret=slack.signing_secret if mode == "http" else None,
        socket_mode=mode == "socket",
    )
    running = RunningBot(slack, app, bot, mode)
    await bot.supervisor.start()  # heartbeat and recovery scan, as in ``bondbot serve``
    receiver = alerts(bot) if alerts is not None else None
    routes = (receiver.add_routes,) if receiver is not None else ()
    if receiver is not None and mode == "socket":
        from bot.health import HealthCheck, start_health_server

        running.side = await start_health_server(HealthCheck(deps.store, mode="http"), port=0, routes=routes)
        running.alerts_url = f"http://127.0.0.1:{running.side.port}{receiver.settings.path}"
    if mode == "http":
        running.http = await start_http(app, routes=routes)
        if receiver is not None:
            running.alerts_url = f"http://127.0.0.1:{running.http.port}{receiver.settings.path}"
        if slack.request_url is None:
            slack.request_url = running.http.url
    else:
        running.socket = await start_socket_mode(app, slack.app_token, ping_interval=ping_interval)
        await slack.wait_for_socket()
    return running
