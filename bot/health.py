"""The health endpoint: is this replica connected to Slack, and can it reach its incident log?

Why it exists: a supervisor (systemd's watchdog aside, a container ``HEALTHCHECK``, Kubernetes'
probes) can only restart or route around a bot that says it is broken. "Healthy" is read, never
assumed: each request asks the Socket Mode client whether its WebSocket is open and its pings are
answered, and reads one row from the incident store (a bot that cannot write its log must not
take work: nothing may happen off the record).

Routes, on the HTTP server in ``--http`` mode and on a small listener of their own with
``--health-port`` (Socket Mode has no server otherwise):

* ``GET /healthz`` — 200 and ``{"status": "ok", "checks": {...}}`` when every check passes, else 503
  with the failing check's reason. Use it for readiness and for ``HEALTHCHECK``.
* ``GET /livez`` — 200 while the event loop answers. Use it for liveness: a database outage makes
  every replica unready, and restarting them all would not bring the database back.

In HTTP mode Slack holds no connection to us: the "slack" check says the signed-request endpoint
is being served (true whenever this answers). ``python -m bot.health [URL]`` is the probe a
container runs: exit 0 healthy, 1 not (it needs nothing but the standard library).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "DEFAULT_HEALTH_PORT",
    "HealthCheck",
    "HealthReport",
    "HealthServer",
    "add_health_routes",
    "probe",
    "socket_mode_connected",
    "start_health_server",
]

#: The port the container image and the manifests use for the health listener.
DEFAULT_HEALTH_PORT = 8081


@dataclass(frozen=True)
class HealthReport:
    """The checks' results; ``ok`` only when every check passed."""

    checks: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(c.get("ok") for c in self.checks.values())

    def to_json(self) -> dict[str, Any]:
        return {"status": "ok" if self.ok else "unhealthy", "checks": self.checks}


def socket_mode_connected(handler: Any) -> Callable[[], Awaitable[bool]]:
    """A Slack check for an ``AsyncSocketModeHandler``: its client's own view of the WebSocket."""

    async def connected() -> bool:
        return bool(await handler.client.is_connected())

    return connected


class HealthCheck:
    """Runs the checks; at most one store check at a time, reused for ``cache_s`` seconds.

    The cache keeps a probe storm (several probes per replica, plus humans with curl) from
    becoming a load on the database; the timeout keeps a hung database from hanging the probe.
    """

    def __init__(
        self,
        store: Any,
        *,
        mode: str,
        slack_connected: Callable[[], Awaitable[bool]] | None = None,
        store_timeout_s: float = 3.0,
        cache_s: float = 1.0,
        draining: Callable[[], bool] | None = None,
    ) -> None:
        """``mode`` is ``"socket"`` (``slack_connected`` required) or ``"http"``. ``draining`` says
        the bot is shutting down (``bot.recovery``): then it is not ready for new work."""
        if mode not in ("socket", "http"):
            raise ValueError(f"mode must be 'socket' or 'http', got {mode!r}")
        if mode == "socket" and slack_connected is None:
            raise ValueError("Socket Mode health needs slack_connected")
        self._store = store
        self._mode = mode
        self._slack_connected = slack_connected
        self._store_timeout_s = store_timeout_s
        self._cache_s = cache_s
        self._store_result: tuple[float, dict[str, Any]] | None = None
        self._store_lock = asyncio.Lock()
        self._draining = draining

    async def _slack(self) -> dict[str, Any]:
        if self._mode == "http":
            return {"ok": True, "detail": "HTTP mode: serving signed requests"}
        assert self._slack_connected is not None
        try:
            up = await asyncio.wait_for(self._slack_connected(), timeout=2.0)
        except Exception as exc:  # the check itself failed: that is not "connected"
            return {"ok": False, "detail": f"Socket Mode state unknown: {type(exc).__name__}"}
        return {"ok": up, "detail": "Socket Mode connected" if up else "Socket Mode not connected"}

    def _read_store(self) -> None:
        self._store.list_incidents(limit=1)

    async def _store_check(self) -> dict[str, Any]:
        async with self._store_lock:
            now = time.monotonic()
            if self._store_result is not None and now - self._store_result[0] < self._cache_s:
                return self._store_result[1]
            try:
                await asyncio.wait_for(asyncio.to_thread(self._read_store), timeout=self._store_timeout_s)
                result: dict[str, Any] = {"ok": True, "detail": "incident store readable"}
            except TimeoutError:
                result = {"ok": False, "detail": f"incident store did not answer within {self._store_timeout_s:g} s"}
            except Exception as exc:
                # StoreUnavailable's message names the database (password hidden) and the reason.
                result = {"ok": False, "detail": str(exc).splitlines()[0][:300] or type(exc).__name__}
            self._store_result = (time.monotonic(), result)
            return result

    async def check(self) -> HealthReport:
        """Both checks, concurrently."""
        slack, store = await asyncio.gather(self._slack(), self._store_check())
        checks = {"slack": slack, "store": store}
        if self._draining is not None and self._draining():
            checks["accepting_work"] = {"ok": False, "detail": "shutting down: finishing running work, taking none"}
        return HealthReport(checks)


def add_health_routes(web_app: Any, health: HealthCheck) -> None:
    """Add ``/healthz`` and ``/livez`` to an aiohttp application."""
    from aiohttp import web

    async def healthz(_: web.Request) -> web.Response:
        report = await health.check()
        return web.json_response(report.to_json(), status=200 if report.ok else 503)

    async def livez(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    web_app.router.add_get("/healthz", healthz)
    web_app.router.add_get("/livez", livez)


@dataclass
class HealthServer:
    """The health listener; ``port`` is the bound one (useful with port 0)."""

    runner: Any
    port: int

    async def stop(self) -> None:
        await self.runner.cleanup()


async def start_health_server(health: HealthCheck, *, host: str = "127.0.0.1", port: int = DEFAULT_HEALTH_PORT,
                              routes: Sequence[Callable[[Any], None]] = ()) -> HealthServer:
    """Serve the health routes on ``host:port`` (Socket Mode, or a separate port in HTTP mode), and
    ``routes`` (Socket Mode's Alertmanager webhook, ``bot.alert_flow``)."""
    from aiohttp import web

    web_app = web.Application()
    add_health_routes(web_app, health)
    for add in routes:
        add(web_app)
    runner = web.AppRunner(web_app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError:
        await runner.cleanup()
        raise
    bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return HealthServer(runner, bound)


def probe(url: str, *, timeout_s: float = 5.0) -> int:
    """GET ``url``; 0 when it answers 200 with status ok, else 1 (the reason goes to stderr)."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 (our own URL)
            body = json.loads(response.read() or b"{}")
            if response.status == 200 and body.get("status") == "ok":
                return 0
            print(f"unhealthy: {body}", file=sys.stderr)
    except urllib.error.HTTPError as exc:
        print(f"unhealthy ({exc.code}): {exc.read(2000).decode('utf-8', 'replace')}", file=sys.stderr)
    except (OSError, ValueError) as exc:
        print(f"health endpoint {url} not answering: {exc}", file=sys.stderr)
    return 1


def _default_url() -> str:
    port = os.environ.get("BONDBOT_HEALTH_PORT") or str(DEFAULT_HEALTH_PORT)
    return os.environ.get("BONDBOT_HEALTH_URL") or f"http://127.0.0.1:{port}/healthz"


if __name__ == "__main__":
    sys.exit(probe(sys.argv[1] if len(sys.argv) > 1 else _default_url()))
