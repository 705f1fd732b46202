"""Serving the Bolt app: over HTTP (aiohttp, signed requests) or over Socket Mode (app token).

Both are thin transports around the same ``AsyncApp``: Bolt verifies signatures (HTTP) and routes;
the listeners ack and hand the work to ``BondBot``. ``SLACK_API_URL`` moves the Web API (and with
it ``apps.connections.open``, hence Socket Mode) to another base URL, e.g. the local stand-in.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
    from slack_bolt.app.async_app import AsyncApp

    from bot.health import HealthCheck

__all__ = ["EVENTS_PATH", "HttpServer", "make_web_client", "start_http", "start_socket_mode"]

EVENTS_PATH = "/slack/events"
log = logging.getLogger(__name__)


#: How many times one Web API call is retried after HTTP 429 (each after Slack's Retry-After).
RATE_LIMIT_RETRIES = 3


def make_web_client(token: str, api_url: str | None = None) -> Any:
    """An ``AsyncWebClient`` for ``token``, talking to ``api_url`` (``SLACK_API_URL``) if given.

    slack_sdk's ``AsyncRateLimitErrorRetryHandler`` is installed: a call Slack answers with 429
    waits the Retry-After it names and is sent again (up to ``RATE_LIMIT_RETRIES`` times) instead
    of failing the work it belongs to."""
    from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
    from slack_sdk.web.async_client import AsyncWebClient

    kwargs: dict[str, Any] = {"token": token}
    if api_url:
        kwargs["base_url"] = api_url if api_url.endswith("/") else api_url + "/"
    client = AsyncWebClient(**kwargs)
    client.retry_handlers.append(AsyncRateLimitErrorRetryHandler(max_retry_count=RATE_LIMIT_RETRIES))
    return client


def web_application(app: AsyncApp, path: str = EVENTS_PATH, health: HealthCheck | None = None,
                    routes: Sequence[Callable[[web.Application], None]] = ()) -> web.Application:
    """An aiohttp application that hands every POST on ``path`` to Bolt (which checks signatures).

    With ``health``, ``/healthz`` and ``/livez`` report real checks (``bot.health``); without, a
    bare ``/healthz`` says only that the server answers. ``routes`` add more (the Alertmanager
    webhook, ``bot.alert_flow``), each checking its own credentials."""
    from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request

    async def handle(request: web.Request) -> web.Response:
        problem = await _malformed_signed(app, request)
        if problem is not None:  # signed by Slack's secret but not a payload Slack sends: nothing runs
            log.warning("malformed signed request refused (400): %s", problem)
            return web.Response(status=400, text=f"malformed payload: {problem}")
        try:
            bolt_request = await to_bolt_request(request)
        except (ValueError, AttributeError, TypeError, KeyError):  # unparsable and not signed right: a forgery
            return web.Response(status=401, text="invalid request")
        bolt_response = await app.async_dispatch(bolt_request)
        return await to_aiohttp_response(bolt_response)

    async def answers(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    web_app = web.Application()
    web_app.router.add_post(path, handle)
    if health is not None:
        from bot.health import add_health_routes

        add_health_routes(web_app, health)
    else:
        web_app.router.add_get("/healthz", answers)
    for add in routes:
        add(web_app)
    return web_app


async def _malformed_signed(app: Any, request: web.Request) -> str | None:
    """Why a correctly signed request is not a Slack payload (None: it is, or it is not signed
    right, which Bolt answers 401). Bolt would answer such a body with 500 or fail in a listener."""
    import json
    from urllib.parse import parse_qsl

    from slack_sdk.signature import SignatureVerifier

    from bot.listeners import malformed

    raw = await request.text()
    secret = getattr(app, "_signing_secret", None)
    if not secret or not SignatureVerifier(secret).is_valid_request(raw, dict(request.headers)):
        return None
    if request.content_type == "application/json":
        try:
            body: Any = json.loads(raw)
        except ValueError:
            return "the JSON body does not parse"
        return malformed(body)
    fields = dict(parse_qsl(raw, keep_blank_values=True))
    if "payload" in fields:
        try:
            payload = json.loads(fields["payload"])
        except ValueError:
            return "the payload is not JSON"
        return malformed(payload)
    return malformed(fields)


@dataclass
class HttpServer:
    runner: web.AppRunner
    url: str
    port: int

    async def stop(self) -> None:
        await self.runner.cleanup()


async def start_http(
    app: AsyncApp, *, host: str = "127.0.0.1", port: int = 0, health: HealthCheck | None = None,
    routes: Sequence[Callable[[web.Application], None]] = (),
) -> HttpServer:
    """Serve ``app`` on ``host:port`` (0: any free port); ``url`` is the request URL to give Slack."""
    runner = web.AppRunner(web_application(app, health=health, routes=routes), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
    return HttpServer(runner, f"http://{shown}:{bound}{EVENTS_PATH}", bound)


async def start_socket_mode(
    app: AsyncApp, app_token: str, *, ping_interval: float = 10
) -> AsyncSocketModeHandler:
    """Connect ``app`` over Socket Mode; the handler reconnects by itself when the link drops."""
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

    if not app_token.startswith("xapp-"):
        raise ValueError("SLACK_APP_TOKEN must be an app-level token (it starts with 'xapp-')")
    handler = AsyncSocketModeHandler(app, app_token, ping_interval=ping_interval)
    await handler.connect_async()
    return handler
