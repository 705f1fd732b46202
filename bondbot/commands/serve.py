"""``bondbot serve``: run the Slack bot (Socket Mode by default, or HTTP with ``--http``).

Configuration comes from the environment so that secrets never sit in a command line:
``SLACK_BOT_TOKEN`` (always), ``SLACK_APP_TOKEN`` (Socket Mode), ``SLACK_SIGNING_SECRET`` (HTTP),
``SLACK_API_URL`` (another Web API base URL, e.g. a local stand-in), ``BONDBOT_SLACK_AUTHZ``
(the authorization YAML, see ``bot.authz``). slack-bolt and friends are imported only when the
command runs, so other commands do not pay for them.
"""

from __future__ import annotations

import os
from pathlib import Path

import typer

__all__ = ["register", "serve"]


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

    try:
        policy = load_policy(authz)
    except AuthzConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None

    import asyncio

    asyncio.run(_run(token, app_token, secret, policy, http=http, host=host, port=port,
                     health_host=health_host, health_port=health_port))


async def _run(
    token: str, app_token: str | None, secret: str | None, policy: object, *, http: bool, host: str, port: int,
    health_host: str = "127.0.0.1", health_port: int | None = None,
) -> None:
    import asyncio
    import logging

    from bot.app import BotDeps, build_app
    from bot.health import HealthCheck, socket_mode_connected, start_health_server
    from bot.server import make_web_client, start_http, start_socket_mode
    from bot.wiring import EngineRemediation, EngineTriage
    from incidents import IncidentStore
    from ssh_exec import SshPool, load_inventory

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    store = IncidentStore.open()
    pool = SshPool(load_inventory())
    deps = BotDeps(
        store=store, triage=EngineTriage(pool, store), policy=policy,  # type: ignore[arg-type]
        remediation=EngineRemediation(pool, store),
    )
    client = make_web_client(token, os.environ.get("SLACK_API_URL") or None)
    app, bot = build_app(deps, client=client, signing_secret=secret, socket_mode=not http)
    health_server = None
    try:
        if http:
            health = HealthCheck(store, mode="http")
            server = await start_http(app, host=host, port=port, health=health)
            typer.echo(f"bondbot: serving Slack requests on {server.url} (HTTP, signed)")
        else:
            handler = await start_socket_mode(app, app_token or "")
            health = HealthCheck(store, mode="socket", slack_connected=socket_mode_connected(handler))
            typer.echo("bondbot: connected to Slack over Socket Mode")
        if health_port is not None and not (http and health_port == port):
            health_server = await start_health_server(health, host=health_host, port=health_port)
            typer.echo(f"bondbot: health on http://{health_host}:{health_server.port}/healthz")
        await asyncio.Event().wait()
    finally:
        if health_server is not None:
            await health_server.stop()
        await bot.drain()
        bot.cancel_timers()
        if http:
            await server.stop()
        else:
            await handler.close_async()
        await pool.close()
        store.close()


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
