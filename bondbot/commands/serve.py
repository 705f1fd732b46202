"""``bondbot serve``: run the Slack bot (Socket Mode by default, or HTTP with ``--http``).

Configuration comes from the environment so that secrets never sit in a command line:
``SLACK_BOT_TOKEN`` (always), ``SLACK_APP_TOKEN`` (Socket Mode), ``SLACK_SIGNING_SECRET`` (HTTP),
``SLACK_API_URL`` (another Web API base URL, e.g. a local stand-in), ``BONDBOT_SLACK_AUTHZ``
(the authorization YAML, see ``bot.authz``). slack-bolt and friends are imported only when the
command runs, so other commands do not pay for them.

Stopping: SIGTERM (``systemctl stop``, ``docker stop``, a Kubernetes rollout) and SIGINT (Ctrl-C)
stop it gracefully: new commands and clicks are answered "bondbot is restarting, try again"
(Slack does not retry slash commands or clicks, so an unanswered one would just fail), ``/healthz``
turns 503 so load balancers stop routing here, running triages and changes get ``--grace-period``
seconds (``BONDBOT_SHUTDOWN_GRACE``, default 25) to finish, and whatever is still running then is
cancelled and recorded as interrupted (``bot.recovery``) before the connections close and the
process exits 0. A second signal cuts the grace period short. Work of a replica that died without
this (``kill -9``) is found by the others through its lease (``--lease-seconds``).

Alertmanager's webhook (``bot.alert_flow``): with ``--alerts-channel`` (``BONDBOT_ALERTS_CHANNEL``)
a firing alert starts the triage in that channel. It is served at ``/alertmanager`` on the HTTP
server (``--http``) or, in Socket Mode, on the health listener (``--health-port``, default 8081,
which then also serves ``/healthz``). Its credentials, like the Slack secrets, come from the
environment or systemd credentials: ``BONDBOT_ALERTS_TOKEN`` (Alertmanager's ``authorization``,
bearer) and/or ``BONDBOT_ALERTS_BASIC`` (``user:password``, its ``basic_auth``); without one it
does not start. ``BONDBOT_ALERTS_HOST_LABELS`` / ``BONDBOT_ALERTS_BOND_LABELS`` (comma lists)
change which labels name the host (default ``instance``) and the bond (``master,device``).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import typer

__all__ = ["DEFAULT_GRACE_S", "register", "serve", "serve_bot"]

#: Default grace period on SIGTERM (the same as ``bot.recovery.DEFAULT_GRACE_S``; a test checks).
DEFAULT_GRACE_S = 25.0


def _require(name: str, why: str) -> str:
    from bondbot.settings import secret

    value = (secret(name) or "").strip()
    if not value:
        typer.echo(f"error: {name} is not set ({why})", err=True)
        raise typer.Exit(2)
    return value


def serve(
    http: bool = typer.Option(False, "--http", help="Serve HTTP (needs SLACK_SIGNING_SECRET) instead of Socket Mode."),
    port: int = typer.Option(3000, "--port", min=1, max=65535, help="HTTP port (with --http)."),
    host: str = typer.Option("0.0.0.0", "--host", help="HTTP listen address (with --http)."),
    authz: Path | None = typer.Option(None, "--authz", help="Authorization YAML (default: $BONDBOT_SLACK_AUTHZ)."),
    health_port: int | None = typer.Option(
        None, "--health-port", envvar="BONDBOT_HEALTH_PORT", min=1, max=65535,
        help="Also serve /healthz and /livez on this port (Socket Mode's only health endpoint; in HTTP mode they are on --port too).",
    ),
    health_host: str = typer.Option("127.0.0.1", "--health-host", envvar="BONDBOT_HEALTH_HOST", help="Health listener address."),
    grace_period: float = typer.Option(
        DEFAULT_GRACE_S, "--grace-period", envvar="BONDBOT_SHUTDOWN_GRACE", min=0, max=3600,
        help="On SIGTERM/SIGINT, seconds running work gets to finish before it is recorded as interrupted. "
             "Give the service manager at least this + 15 s before it kills the process.",
    ),
    lease_seconds: float = typer.Option(
        30.0, "--lease-seconds", envvar="BONDBOT_LEASE_SECONDS", min=0.5, max=3600,
        help="A replica silent this long is presumed dead; another records its running work as interrupted.",
    ),
    alerts_channel: str | None = typer.Option(
        None, "--alerts-channel", envvar="BONDBOT_ALERTS_CHANNEL",
        help="Serve Alertmanager's webhook at /alertmanager; firing alerts are triaged in this channel (id). "
             "Needs BONDBOT_ALERTS_TOKEN and/or BONDBOT_ALERTS_BASIC.",
    ),
    schedule_interval: float = typer.Option(
        30.0, "--schedule-interval", envvar="BONDBOT_SCHEDULE_INTERVAL", min=0, max=3600,
        help="Seconds between looks for due scheduled audits and drills (0: this replica runs none).",
    ),
) -> None:
    """Run the /bond Slack bot until interrupted."""
    token = _require("SLACK_BOT_TOKEN", "the bot token, xoxb-...")
    if http:
        secret = _require("SLACK_SIGNING_SECRET", "HTTP mode verifies every request's signature")
        app_token = None
    else:
        app_token = _require("SLACK_APP_TOKEN", "Socket Mode needs an app-level token, xapp-...; or use --http")
        secret = None
        if not app_token.startswith("xapp-"):
            typer.echo("error: SLACK_APP_TOKEN must be an app-level token starting with 'xapp-'", err=True)
            raise typer.Exit(2)

    from bot.authz import AuthzConfigError, load_policy
    from bot.limits import LimitsConfigError, SlackLimits

    try:
        policy = load_policy(authz, os.environ)
        limits = SlackLimits.from_env(os.environ)
    except (AuthzConfigError, LimitsConfigError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None

    alerts = alert_settings(alerts_channel)
    if alerts is not None and not http and health_port is None:
        from bot.health import DEFAULT_HEALTH_PORT

        health_port = DEFAULT_HEALTH_PORT  # Socket Mode: the webhook needs a listener of its own

    import asyncio

    asyncio.run(_run(token, app_token, secret, policy, http=http, host=host, port=port,
                     health_host=health_host, health_port=health_port, grace_s=grace_period,
                     lease_s=lease_seconds, alerts=alerts, schedule_interval_s=schedule_interval, limits=limits))


def alert_settings(channel: str | None) -> Any:
    """The webhook's ``bot.alert_flow.AlertSettings`` (None without a channel); exits 2 when a
    channel is set but no credential, or a credential is malformed."""
    if not channel:
        return None
    from bondbot.settings import secret
    from bot.alert_flow import AlertSettings
    from bot.alertmanager import LabelRules, WebhookAuth

    if not channel.strip().isalnum():
        typer.echo(f"error: --alerts-channel must be a Slack channel id (C0123...), got {channel!r}", err=True)
        raise typer.Exit(2)
    tokens = tuple(t.strip() for t in (secret("BONDBOT_ALERTS_TOKEN") or "").split(",") if t.strip())
    basic: list[tuple[str, str]] = []
    for pair in (secret("BONDBOT_ALERTS_BASIC") or "").split(","):
        if not pair.strip():
            continue
        user, sep, password = pair.strip().partition(":")
        if not sep or not user or not password:
            typer.echo("error: BONDBOT_ALERTS_BASIC is user:password (comma-separated for several)", err=True)
            raise typer.Exit(2)
        basic.append((user, password))
    if not tokens and not basic:
        typer.echo("error: the Alertmanager webhook needs BONDBOT_ALERTS_TOKEN or BONDBOT_ALERTS_BASIC "
                   "(env or systemd credential); an unauthenticated webhook would let anyone start triages",
                   err=True)
        raise typer.Exit(2)
    rules = LabelRules()
    host_labels = tuple(x.strip() for x in os.environ.get("BONDBOT_ALERTS_HOST_LABELS", "").split(",") if x.strip())
    bond_labels = tuple(x.strip() for x in os.environ.get("BONDBOT_ALERTS_BOND_LABELS", "").split(",") if x.strip())
    rules = LabelRules(host_labels=host_labels or rules.host_labels, bond_labels=bond_labels or rules.bond_labels)
    return AlertSettings(auth=WebhookAuth(tokens=tokens, basic=tuple(basic)), channel=channel.strip(), rules=rules)


async def _run(
    token: str, app_token: str | None, secret: str | None, policy: object, *, http: bool, host: str, port: int,
    health_host: str = "127.0.0.1", health_port: int | None = None, grace_s: float = DEFAULT_GRACE_S,
    lease_s: float = 30.0, alerts: Any = None, schedule_interval_s: float = 30.0, limits: Any = None,
) -> None:
    import logging

    from bondbot import settings
    from bondbot.commands._remote import open_inventory, open_pool
    from bot.app import BotDeps
    from bot.limits import SlackLimits
    from bot.recovery import LeaseSettings
    from bot.wiring import EngineRemediation, EngineTriage
    from incidents import IncidentStore

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    store = IncidentStore.open(settings.database_url())
    inventory = open_inventory(None)
    pool = open_pool(inventory)
    deps = BotDeps(
        store=store, triage=EngineTriage(pool, store, runbooks=settings.runbook_search_path()), policy=policy,  # type: ignore[arg-type]
        remediation=EngineRemediation(pool, store), leases=LeaseSettings(ttl_s=lease_s),
        limits=limits if limits is not None else SlackLimits(), team_id=os.environ.get("BONDBOT_SLACK_TEAM_ID") or None,
    )
    try:
        await serve_bot(deps, token, app_token, secret, http=http, host=host, port=port,
                        health_host=health_host, health_port=health_port, grace_s=grace_s,
                        alerts=alerts, inventory=inventory, schedule_interval_s=schedule_interval_s)
    finally:
        await pool.close()
        store.close()


async def serve_bot(
    deps: Any, token: str, app_token: str | None, secret: str | None, *, http: bool, host: str, port: int,
    health_host: str = "127.0.0.1", health_port: int | None = None, grace_s: float = DEFAULT_GRACE_S,
    alerts: Any = None, inventory: Any = None, schedule_interval_s: float = 30.0,
) -> None:
    """Serve ``deps`` (a ``bot.app.BotDeps``) until SIGTERM or SIGINT, then shut down gracefully.

    ``alerts`` (``bot.alert_flow.AlertSettings``, with the ``inventory`` its labels map onto) adds
    Alertmanager's webhook: on the HTTP server, or in Socket Mode on the health listener. Every
    ``schedule_interval_s`` (0: never) the replica runs the scheduled audits and drills that are due
    and that it wins in the store (``bot.schedule_flow``)."""
    import asyncio

    from bot.app import build_app
    from bot.health import HealthCheck, socket_mode_connected, start_health_server
    from bot.server import make_web_client, start_http, start_socket_mode

    store = deps.store
    client = make_web_client(token, os.environ.get("SLACK_API_URL") or None)
    app, bot = build_app(deps, client=client, signing_secret=secret, socket_mode=not http)
    routes: tuple[Any, ...] = ()
    if alerts is not None:
        from bot.alert_flow import AlertReceiver

        routes = (AlertReceiver(bot, alerts, inventory).add_routes,)
    loop = asyncio.get_running_loop()
    stop, hurry = asyncio.Event(), asyncio.Event()
    received: list[str] = []

    def on_signal(signum: int) -> None:
        received.append(signal.Signals(signum).name)
        if stop.is_set():
            hurry.set()  # a second signal: do not wait for the rest of the grace period
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    scheduler: Any = None
    health_server = None
    server = handler = None
    draining = lambda: bot.supervisor.draining  # noqa: E731
    try:
        if http:
            health = HealthCheck(store, mode="http", draining=draining)
            server = await start_http(app, host=host, port=port, health=health, routes=routes)
            typer.echo(f"bondbot: serving Slack requests on {server.url} (HTTP, signed)")
            if routes:
                typer.echo(f"bondbot: Alertmanager webhook on http://{host}:{server.port}{alerts.path}")
        else:
            handler = await start_socket_mode(app, app_token or "")
            health = HealthCheck(store, mode="socket", slack_connected=socket_mode_connected(handler),
                                 draining=draining)
            typer.echo("bondbot: connected to Slack over Socket Mode")
        if health_port is not None and not (http and health_port == port):
            side = routes if not http else ()
            health_server = await start_health_server(health, host=health_host, port=health_port, routes=side)
            typer.echo(f"bondbot: health on http://{health_host}:{health_server.port}/healthz")
            if side:
                typer.echo(f"bondbot: Alertmanager webhook on http://{health_host}:{health_server.port}{alerts.path}")
        await bot.supervisor.start()
        typer.echo(f"bondbot: replica {bot.supervisor.replica_id}; on SIGTERM running work gets {grace_s:g} s")
        if schedule_interval_s > 0:
            from bot.schedule_flow import ScheduleRunner

            scheduler = ScheduleRunner(bot, interval_s=schedule_interval_s)
            await scheduler.start()
        await stop.wait()
        typer.echo(f"bondbot: {received[0]} received: taking no new work, finishing running work "
                   f"(grace period {grace_s:g} s)")
        shutdown = asyncio.ensure_future(bot.supervisor.shutdown(grace_s, hurry=hurry))
        report = await shutdown
        cut = f", recorded interrupted: {', '.join(report.interrupted)}" if report.interrupted else ""
        typer.echo(f"bondbot: stopped after {report.seconds:g} s: {report.finished} task(s) finished{cut}")
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        if scheduler is not None:
            await scheduler.stop()
        await bot.supervisor.stop()
        if health_server is not None:
            await health_server.stop()
        bot.cancel_timers()
        if server is not None:
            await server.stop()
        if handler is not None:
            await handler.close_async()
        session = getattr(client, "session", None)
        if session is not None:
            await session.close()


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
