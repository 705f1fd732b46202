"""A local stand-in for Slack: the Web API, response URLs, file uploads and Socket Mode.

Slack cannot be reached from the test machines, and the demo must run offline, so this module
plays Slack's part on loopback: it answers the Web API methods the bot uses the way Slack does
(including Slack's own limits, so a message Slack would reject is rejected here too), records every
call with its body, keeps the channel as a person would see it (messages, edits, thread replies,
ephemerals, files), and delivers commands and button clicks to the app the two ways Slack does:
signed HTTP requests to a request URL, or envelopes over a Socket Mode WebSocket.

It lives in the installed package (not in tests/) because ``bondbot demo`` drives it too.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode

from aiohttp import WSMsgType, web

from bot.signing import signed_headers

__all__ = [
    "ApiCall",
    "Delivery",
    "SlackStandin",
    "StandinMessage",
]

# Slack's documented limits, checked independently of slack_sdk so the stand-in can catch what the
# SDK's model validation would let through.
MAX_BLOCKS = 50
MAX_SECTION_TEXT = 3000
MAX_MESSAGE_TEXT = 40000
MAX_HEADER_TEXT = 150
MAX_BUTTON_TEXT = 75
MAX_BUTTON_VALUE = 2000
MAX_ACTION_ID = 255
MAX_ACTIONS_ELEMENTS = 25
MAX_CONTEXT_ELEMENTS = 10
MAX_CONFIRM_TEXT = 300


@dataclass
class ApiCall:
    """One request the app made: the Web API method (or ``upload``/``response_url``) and its body."""

    method: str
    body: dict[str, Any]
    token: str | None
    at: float


@dataclass
class StandinMessage:
    """A message as the channel shows it now; ``versions`` keeps every earlier rendering."""

    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]]
    thread_ts: str | None = None
    ephemeral_to: str | None = None
    files: list[dict[str, Any]] = field(default_factory=list)
    versions: list[dict[str, Any]] = field(default_factory=list)
    via: str = "chat.postMessage"

    def render_state(self) -> dict[str, Any]:
        return {"text": self.text, "blocks": self.blocks}


@dataclass
class Delivery:
    """What came back when Slack delivered a request to the app: status, body and how long it took."""

    status: int
    body: Any
    seconds: float
    envelope_id: str | None = None


@dataclass
class _Envelope:
    envelope_id: str
    type: str
    payload: dict[str, Any]
    retry_attempt: int
    retry_reason: str
    acked: asyncio.Future[dict[str, Any]]
    sent_at: float = 0.0


class SlackError(Exception):
    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


class SlackStandin:
    """Slack on loopback. Start it, point the app's Web API client at :attr:`api_url`, then drive it.

    Tokens: the bot token authenticates Web API calls, the app token (``xapp-``) opens Socket Mode
    connections; a call with any other token fails with ``invalid_auth`` as it would on Slack.
    """

    def __init__(
        self,
        *,
        signing_secret: str = "standin-signing-secret",
        bot_token: str = "xoxb-standin",
        app_token: str = "xapp-standin",
        team_id: str = "T0STANDIN",
        bot_user_id: str = "U0BONDBOT",
        bot_id: str = "B0BONDBOT",
        app_id: str = "A0BONDBOT",
        users: dict[str, str] | None = None,
        usergroups: dict[str, list[str]] | None = None,
        channels: dict[str, str] | None = None,
    ) -> None:
        self.signing_secret = signing_secret
        self.bot_token = bot_token
        self.app_token = app_token
        self.team_id = team_id
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.app_id = app_id
        self.users: dict[str, str] = dict(users or {})
        self.usergroups: dict[str, list[str]] = {k: list(v) for k, v in (usergroups or {}).items()}
        self.channels: dict[str, str] = dict(channels or {})
        self.request_url: str | None = None
        self.calls: list[ApiCall] = []
        self.messages: list[StandinMessage] = []
        self.uploads: dict[str, dict[str, Any]] = {}
        self.response_urls: dict[str, dict[str, Any]] = {}
        self.socket_connections_opened = 0
        #: Web API methods to answer with HTTP 429 (``Retry-After: retry_after``) this many more times.
        self.rate_limited: dict[str, int] = {}
        self.retry_after = 1
        #: Channels that exist but the bot is not a member of: posting there fails with
        #: ``not_in_channel`` (as Slack answers without ``chat:write.public``).
        self.not_member_of: set[str] = set()
        self._ts_counter = itertools.count(1)
        self._id_counter = itertools.count(1)
        self._base_time = int(time.time())
        self._runner: web.AppRunner | None = None
        self._session: Any = None
        self._port = 0
        self._sockets: list[web.WebSocketResponse] = []
        self._tickets: set[str] = set()
        self._envelopes: dict[str, _Envelope] = {}
        self._socket_ready = asyncio.Event()
        self._changed = asyncio.Condition()

    # ---------------------------------------------------------------- lifecycle

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> SlackStandin:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/api/{method}", self._handle_api)
        app.router.add_get("/api/{method}", self._handle_api)  # slack_sdk GETs a few methods
        app.router.add_post("/upload/{file_id}", self._handle_upload)
        app.router.add_post("/response/{key}", self._handle_response_url)
        app.router.add_get("/socket", self._handle_socket)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        self._port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._host = host
        return self

    async def stop(self) -> None:
        for ws in list(self._sockets):
            await ws.close()
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> SlackStandin:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        return f"http://{self._host}:{self._port}"

    @property
    def api_url(self) -> str:
        """What ``SLACK_API_URL`` should be set to (slack_sdk's ``base_url``, trailing slash included)."""
        return f"{self.base_url}/api/"

    # ---------------------------------------------------------------- inspection

    def calls_to(self, method: str) -> list[ApiCall]:
        return [c for c in self.calls if c.method == method]

    def channel_messages(self, channel: str, *, include_ephemeral: bool = True) -> list[StandinMessage]:
        """Top-level and thread messages of one channel, in the order they were first posted."""
        return [
            m
            for m in self.messages
            if m.channel == channel and (include_ephemeral or m.ephemeral_to is None)
        ]

    def message(self, channel: str, ts: str) -> StandinMessage:
        for m in self.messages:
            if m.channel == channel and m.ts == ts and m.ephemeral_to is None:
                return m
        raise KeyError(f"no message {ts} in {channel}")

    def thread(self, channel: str, thread_ts: str) -> list[StandinMessage]:
        return [m for m in self.messages if m.channel == channel and m.thread_ts == thread_ts]

    def ephemerals(self, user: str | None = None) -> list[StandinMessage]:
        return [m for m in self.messages if m.ephemeral_to and (user is None or m.ephemeral_to == user)]

    async def wait_for(self, predicate: Any, timeout: float = 10.0) -> Any:
        """Wait until ``predicate()`` returns something truthy (re-checked after every recorded
        call, and every 20 ms for conditions outside the stand-in)."""

        async def _wait() -> Any:
            async with self._changed:
                while True:
                    result = predicate()
                    if result:
                        return result
                    try:
                        await asyncio.wait_for(self._changed.wait(), 0.02)
                    except TimeoutError:
                        pass

        return await asyncio.wait_for(_wait(), timeout)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # ---------------------------------------------------------------- Web API

    def _next_ts(self) -> str:
        return f"{self._base_time}.{next(self._ts_counter):06d}"

    def _next_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._id_counter):08X}"

    async def _read_body(self, request: web.Request) -> dict[str, Any]:
        body: dict[str, Any] = dict(parse_qsl(request.query_string))
        ctype = request.content_type
        raw = await request.read()
        if raw:
            if ctype == "application/json":
                body.update(json.loads(raw))
            elif ctype == "application/x-www-form-urlencoded":
                body.update(dict(parse_qsl(raw.decode(), keep_blank_values=True)))
        for key in ("blocks", "files", "attachments"):
            if isinstance(body.get(key), str):
                try:
                    body[key] = json.loads(body[key])
                except json.JSONDecodeError:
                    pass
        return body

    @staticmethod
    def _token(request: web.Request, body: dict[str, Any]) -> str | None:
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            return auth[len("Bearer "):]
        token = body.get("token")
        return str(token) if token else None

    async def _handle_api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        body = await self._read_body(request)
        token = self._token(request, body)
        self.calls.append(ApiCall(method, body, token, time.time()))
        if self.rate_limited.get(method, 0) > 0:  # Slack's rate limit: 429 and when to come back
            self.rate_limited[method] -= 1
            await self._notify()
            return web.json_response({"ok": False, "error": "ratelimited"}, status=429,
                                     headers={"Retry-After": str(self.retry_after)})
        try:
            expected = self.app_token if method == "apps.connections.open" else self.bot_token
            if token != expected:
                raise SlackError("invalid_auth" if token else "not_authed")
            handler = getattr(self, "_api_" + method.replace(".", "_"), None)
            if handler is None:
                raise SlackError("unknown_method")
            result = handler(body)
            payload = {"ok": True, **result}
        except SlackError as exc:
            payload = {"ok": False, "error": exc.error}
        await self._notify()
        return web.json_response(payload)

    def _api_auth_test(self, body: dict[str, Any]) -> dict[str, Any]:
        return {
            "url": "https://standin.slack.test/",
            "team": "Stand-in",
            "user": "bondbot",
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def _api_apps_connections_open(self, body: dict[str, Any]) -> dict[str, Any]:
        ticket = uuid.uuid4().hex
        self._tickets.add(ticket)
        return {"url": f"ws://{self._host}:{self._port}/socket?ticket={ticket}"}

    def _check_message(self, body: dict[str, Any], *, need_content: bool = True) -> None:
        text = body.get("text") or ""
        blocks = body.get("blocks")
        if need_content and not text and not blocks:
            raise SlackError("no_text")
        if len(text) > MAX_MESSAGE_TEXT:
            raise SlackError("msg_too_long")
        if blocks is not None:
            _validate_blocks(blocks)

    def _channel(self, body: dict[str, Any], key: str = "channel") -> str:
        channel = body.get(key)
        if not channel:
            raise SlackError("channel_not_found")
        if self.channels and channel not in self.channels:
            raise SlackError("channel_not_found")
        return str(channel)

    def _api_chat_postMessage(self, body: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(body)
        if channel in self.not_member_of:
            raise SlackError("not_in_channel")
        self._check_message(body)
        thread_ts = body.get("thread_ts") or None
        if thread_ts is not None and not any(
            m.channel == channel and m.ts == thread_ts for m in self.messages
        ):
            raise SlackError("thread_not_found")
        msg = StandinMessage(
            channel=channel,
            ts=self._next_ts(),
            text=body.get("text") or "",
            blocks=list(body.get("blocks") or []),
            thread_ts=thread_ts,
        )
        self.messages.append(msg)
        return {"channel": channel, "ts": msg.ts, "message": self._message_json(msg)}

    def _api_chat_update(self, body: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(body)
        self._check_message(body)
        try:
            msg = self.message(channel, str(body.get("ts")))
        except KeyError:
            raise SlackError("message_not_found") from None
        msg.versions.append(msg.render_state())
        msg.text = body.get("text") or ""
        if "blocks" in body:
            msg.blocks = list(body.get("blocks") or [])
        return {"channel": channel, "ts": msg.ts, "text": msg.text, "message": self._message_json(msg)}

    def _api_chat_postEphemeral(self, body: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(body)
        user = body.get("user")
        if not user:
            raise SlackError("user_not_in_channel")
        self._check_message(body)
        msg = StandinMessage(
            channel=channel,
            ts=self._next_ts(),
            text=body.get("text") or "",
            blocks=list(body.get("blocks") or []),
            thread_ts=body.get("thread_ts") or None,
            ephemeral_to=str(user),
            via="chat.postEphemeral",
        )
        self.messages.append(msg)
        return {"message_ts": msg.ts}

    def _api_users_info(self, body: dict[str, Any]) -> dict[str, Any]:
        """Slack's users.info for the users the stand-in knows (``users``: id -> name)."""
        user = str(body.get("user") or "")
        if user not in self.users:
            raise SlackError("user_not_found")
        name = self.users[user]
        return {"user": {"id": user, "team_id": self.team_id, "name": name, "real_name": name, "deleted": False,
                         "is_bot": False, "profile": {"display_name": name, "real_name": name}}}

    def _api_usergroups_users_list(self, body: dict[str, Any]) -> dict[str, Any]:
        group = body.get("usergroup")
        if group not in self.usergroups:
            raise SlackError("no_such_subteam")
        return {"users": list(self.usergroups[str(group)])}

    def _api_files_getUploadURLExternal(self, body: dict[str, Any]) -> dict[str, Any]:
        filename = body.get("filename")
        try:
            length = int(body.get("length", ""))
        except ValueError:
            raise SlackError("invalid_arguments") from None
        if not filename or length <= 0:
            raise SlackError("invalid_arguments")
        file_id = self._next_id("F")
        self.uploads[file_id] = {"id": file_id, "name": filename, "length": length, "content": None}
        return {"upload_url": f"{self.base_url}/upload/{file_id}", "file_id": file_id}

    def _api_files_completeUploadExternal(self, body: dict[str, Any]) -> dict[str, Any]:
        files = body.get("files")
        if not isinstance(files, list) or not files:
            raise SlackError("invalid_arguments")
        done = []
        for item in files:
            upload = self.uploads.get(item.get("id"))
            if upload is None or upload["content"] is None:
                raise SlackError("file_not_found")
            if len(upload["content"]) != upload["length"]:
                raise SlackError("file_upload_size_mismatch")
            upload["title"] = item.get("title") or upload["name"]
            done.append({k: upload[k] for k in ("id", "name", "title")} | {"size": upload["length"]})
        channel = body.get("channel_id")
        if channel:
            msg = StandinMessage(
                channel=str(channel),
                ts=self._next_ts(),
                text=body.get("initial_comment") or "",
                blocks=[],
                thread_ts=body.get("thread_ts") or None,
                files=done,
                via="files.completeUploadExternal",
            )
            self.messages.append(msg)
        return {"files": done}

    def _message_json(self, msg: StandinMessage) -> dict[str, Any]:
        data: dict[str, Any] = {
            "type": "message",
            "user": self.bot_user_id,
            "bot_id": self.bot_id,
            "ts": msg.ts,
            "text": msg.text,
            "blocks": msg.blocks,
        }
        if msg.thread_ts:
            data["thread_ts"] = msg.thread_ts
        return data

    async def _handle_upload(self, request: web.Request) -> web.Response:
        file_id = request.match_info["file_id"]
        upload = self.uploads.get(file_id)
        data = await request.read()
        self.calls.append(ApiCall("upload", {"file_id": file_id, "size": len(data)}, None, time.time()))
        if upload is None:
            await self._notify()
            return web.Response(status=404, text="unknown upload")
        upload["content"] = data
        await self._notify()
        return web.Response(text=f"OK - {len(data)}")

    # ---------------------------------------------------------------- response_url

    def new_response_url(self, channel: str, user: str, message_ts: str | None = None) -> str:
        """A response URL as Slack puts in a command or action payload (valid for that request)."""
        key = uuid.uuid4().hex
        self.response_urls[key] = {"channel": channel, "user": user, "message_ts": message_ts, "uses": 0}
        return f"{self.base_url}/response/{key}"

    async def _handle_response_url(self, request: web.Request) -> web.Response:
        key = request.match_info["key"]
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = {}
        self.calls.append(ApiCall("response_url", dict(body), None, time.time()))
        target = self.response_urls.get(key)
        try:
            if target is None:
                raise SlackError("expired_url")
            target["uses"] += 1
            if target["uses"] > 5:  # Slack allows five responses per response_url
                raise SlackError("used_url")
            self._apply_response(target, body)
        except SlackError as exc:
            await self._notify()
            return web.json_response({"ok": False, "error": exc.error}, status=404)
        await self._notify()
        return web.json_response({"ok": True})

    def _apply_response(self, target: dict[str, Any], body: dict[str, Any]) -> None:
        channel, user, message_ts = target["channel"], target["user"], target["message_ts"]
        if body.get("delete_original") and message_ts:
            self.messages = [m for m in self.messages if not (m.channel == channel and m.ts == message_ts)]
            return
        self._check_message(body)
        if body.get("replace_original") and message_ts:
            msg = self.message(channel, message_ts)
            msg.versions.append(msg.render_state())
            msg.text = body.get("text") or ""
            msg.blocks = list(body.get("blocks") or [])
            return
        in_channel = body.get("response_type") == "in_channel"
        self.messages.append(
            StandinMessage(
                channel=channel,
                ts=self._next_ts(),
                text=body.get("text") or "",
                blocks=list(body.get("blocks") or []),
                thread_ts=body.get("thread_ts") or None,
                ephemeral_to=None if in_channel else user,
                via="response_url",
            )
        )

    # ---------------------------------------------------------------- payloads Slack sends

    def slash_command_payload(
        self, text: str, *, user: str, channel: str, command: str = "/bond"
    ) -> dict[str, str]:
        """The fields of a slash command request, as Slack sends them (form-encoded over HTTP)."""
        return {
            "token": "deprecated-verification-token",
            "team_id": self.team_id,
            "team_domain": "standin",
            "channel_id": channel,
            "channel_name": self.channels.get(channel, channel),
            "user_id": user,
            "user_name": self.users.get(user, user),
            "command": command,
            "text": text,
            "api_app_id": self.app_id,
            "is_enterprise_install": "false",
            "response_url": self.new_response_url(channel, user),
            "trigger_id": f"{next(self._id_counter)}.{uuid.uuid4().int % 10**12}.{uuid.uuid4().hex}",
        }

    def block_action_payload(
        self, *, user: str, channel: str, message_ts: str, action_id: str, block_id: str | None = None
    ) -> dict[str, Any]:
        """A ``block_actions`` payload for pressing a button on a message the channel shows now.

        The button must exist in the message's current blocks (a button that is gone cannot be
        pressed); its value is copied from there, as Slack does.
        """
        msg = self.message(channel, message_ts)
        button, found_block = _find_button(msg.blocks, action_id, block_id)
        if button is None:
            raise LookupError(f"message {message_ts} has no button {action_id!r} now")
        action = {
            "type": "button",
            "action_id": action_id,
            "block_id": found_block,
            "text": button["text"],
            "value": button.get("value", ""),
            "action_ts": f"{time.time():.6f}",
        }
        if "style" in button:
            action["style"] = button["style"]
        return {
            "type": "block_actions",
            "user": {"id": user, "username": self.users.get(user, user), "team_id": self.team_id},
            "api_app_id": self.app_id,
            "token": "deprecated-verification-token",
            "container": {
                "type": "message",
                "message_ts": message_ts,
                "channel_id": channel,
                "is_ephemeral": False,
            },
            "trigger_id": f"{next(self._id_counter)}.{uuid.uuid4().int % 10**12}.{uuid.uuid4().hex}",
            "team": {"id": self.team_id, "domain": "standin"},
            "is_enterprise_install": False,
            "channel": {"id": channel, "name": self.channels.get(channel, channel)},
            "message": self._message_json(msg),
            "state": {"values": {}},
            "response_url": self.new_response_url(channel, user, message_ts),
            "actions": [action],
        }

    # ---------------------------------------------------------------- delivery over HTTP

    async def _http(self) -> Any:
        import aiohttp

        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    async def post_signed(
        self,
        body: str,
        *,
        content_type: str = "application/x-www-form-urlencoded",
        timestamp: int | None = None,
        secret: str | None = None,
        retry_num: int | None = None,
        url: str | None = None,
    ) -> Delivery:
        """POST ``body`` to the app's request URL, signed as Slack signs it (or as told, for tests
        of forged and stale requests)."""
        target = url or self.request_url
        if not target:
            raise RuntimeError("the stand-in has no request_url: set it to the app's HTTP endpoint")
        headers = signed_headers(secret or self.signing_secret, body, timestamp=timestamp)
        headers["Content-Type"] = content_type
        if retry_num is not None:
            headers["X-Slack-Retry-Num"] = str(retry_num)
            headers["X-Slack-Retry-Reason"] = "http_timeout"
        session = await self._http()
        started = time.perf_counter()
        async with session.post(target, data=body.encode(), headers=headers) as resp:
            raw = await resp.text()
            seconds = time.perf_counter() - started
            try:
                parsed: Any = json.loads(raw) if raw else None
            except json.JSONDecodeError:
                parsed = raw
            return Delivery(resp.status, parsed, seconds)

    async def command_over_http(
        self, text: str, *, user: str, channel: str, retry_num: int | None = None,
        payload: dict[str, str] | None = None,
    ) -> Delivery:
        fields = payload or self.slash_command_payload(text, user=user, channel=channel)
        return await self.post_signed(urlencode(fields), retry_num=retry_num)

    async def click_over_http(self, payload: dict[str, Any], *, retry_num: int | None = None) -> Delivery:
        body = urlencode({"payload": json.dumps(payload)})
        return await self.post_signed(body, retry_num=retry_num)

    # ---------------------------------------------------------------- Socket Mode

    async def _handle_socket(self, request: web.Request) -> web.StreamResponse:
        ticket = request.query.get("ticket", "")
        if ticket not in self._tickets:
            return web.Response(status=401, text="invalid ticket")
        self._tickets.discard(ticket)
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self._sockets.append(ws)
        self.socket_connections_opened += 1
        await ws.send_json(
            {
                "type": "hello",
                "num_connections": len(self._sockets),
                "debug_info": {"host": "standin", "approximate_connection_time": 3600},
                "connection_info": {"app_id": self.app_id},
            }
        )
        self._socket_ready.set()
        # Slack redelivers what was never acknowledged on a connection that went away.
        for env in list(self._envelopes.values()):
            if not env.acked.done() and env.sent_at >= 0:
                env.retry_attempt += 1
                env.retry_reason = "timeout"
                await self._send_envelope(ws, env)
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                try:
                    data = json.loads(msg.data)
                except json.JSONDecodeError:
                    continue
                acked = self._envelopes.get(data.get("envelope_id", ""))
                self.calls.append(ApiCall("socket_ack", data, None, time.time()))
                if acked is not None and not acked.acked.done():
                    acked.acked.set_result(data.get("payload") or {})
                await self._notify()
        finally:
            if ws in self._sockets:
                self._sockets.remove(ws)
            if not self._sockets:
                self._socket_ready.clear()
        return ws

    async def _send_envelope(self, ws: web.WebSocketResponse, env: _Envelope) -> None:
        env.sent_at = time.perf_counter()
        await ws.send_json(
            {
                "envelope_id": env.envelope_id,
                "type": env.type,
                "accepts_response_payload": True,
                "payload": env.payload,
                "retry_attempt": env.retry_attempt,
                "retry_reason": env.retry_reason,
            }
        )

    async def wait_for_socket(self, timeout: float = 10.0) -> None:
        await asyncio.wait_for(self._socket_ready.wait(), timeout)

    async def send_envelope(
        self,
        type_: str,
        payload: dict[str, Any],
        *,
        retry_attempt: int = 0,
        retry_reason: str = "",
        wait_ack: float | None = 3.0,
        drop_after_send: bool = False,
    ) -> Delivery:
        """Deliver an envelope over Socket Mode and (by default) wait for its ack.

        With no connection open it is queued and sent on the next one. ``drop_after_send`` closes
        the connection right after sending, before the app can ack — the case where Slack
        redelivers the same payload on the new connection with ``retry_attempt`` + 1.
        """
        env = _Envelope(
            envelope_id=str(uuid.uuid4()),
            type=type_,
            payload=payload,
            retry_attempt=retry_attempt,
            retry_reason=retry_reason,
            acked=asyncio.get_running_loop().create_future(),
            sent_at=-1.0 if not self._sockets else 0.0,
        )
        self._envelopes[env.envelope_id] = env
        started = time.perf_counter()
        if self._sockets:
            await self._send_envelope(self._sockets[0], env)
            if drop_after_send:
                await self.drop_socket()
        else:
            env.sent_at = 0.0  # queued: sent on the next connection
        if wait_ack is None:
            return Delivery(0, None, 0.0, env.envelope_id)
        body = await asyncio.wait_for(asyncio.shield(env.acked), wait_ack)
        return Delivery(200, body, time.perf_counter() - started, env.envelope_id)

    async def wait_ack(self, envelope_id: str, timeout: float = 10.0) -> dict[str, Any]:
        return await asyncio.wait_for(asyncio.shield(self._envelopes[envelope_id].acked), timeout)

    def envelope_attempts(self, envelope_id: str) -> int:
        return self._envelopes[envelope_id].retry_attempt

    async def command_over_socket(self, text: str, *, user: str, channel: str, **kw: Any) -> Delivery:
        return await self.send_envelope(
            "slash_commands", self.slash_command_payload(text, user=user, channel=channel), **kw
        )

    async def click_over_socket(self, payload: dict[str, Any], **kw: Any) -> Delivery:
        return await self.send_envelope("interactive", payload, **kw)

    async def drop_socket(self) -> None:
        """Close every Socket Mode connection from Slack's side without warning."""
        for ws in list(self._sockets):
            self._sockets.remove(ws)
            await ws.close(code=1011, message=b"standin drop")
        self._socket_ready.clear()

    async def send_disconnect(self, reason: str = "refresh_requested") -> None:
        """Ask the connected app to reconnect, as Slack does before rotating its servers."""
        for ws in list(self._sockets):
            await ws.send_json({"type": "disconnect", "reason": reason, "debug_info": {"host": "standin"}})


def _find_button(
    blocks: list[dict[str, Any]], action_id: str, block_id: str | None
) -> tuple[dict[str, Any] | None, str | None]:
    for block in blocks:
        if block_id is not None and block.get("block_id") != block_id:
            continue
        candidates = list(block.get("elements") or []) if block.get("type") == "actions" else []
        if block.get("type") == "section" and block.get("accessory"):
            candidates.append(block["accessory"])
        for element in candidates:
            if element.get("type") == "button" and element.get("action_id") == action_id:
                return element, block.get("block_id")
    return None, None


def _text_len(obj: dict[str, Any] | None) -> int:
    return len((obj or {}).get("text") or "")


def _validate_blocks(blocks: Any) -> None:
    """Slack's ``invalid_blocks`` checks for the block types the bot uses."""
    if not isinstance(blocks, list) or len(blocks) > MAX_BLOCKS:
        raise SlackError("invalid_blocks")
    seen_block_ids: set[str] = set()
    seen_action_ids: set[str] = set()
    for block in blocks:
        kind = block.get("type")
        bid = block.get("block_id")
        if bid is not None:
            if bid in seen_block_ids or len(bid) > 255:
                raise SlackError("invalid_blocks")
            seen_block_ids.add(bid)
        if kind == "section":
            if "text" not in block and "fields" not in block:
                raise SlackError("invalid_blocks")
            if _text_len(block.get("text")) > MAX_SECTION_TEXT:
                raise SlackError("invalid_blocks")
            if any(_text_len(f) > 2000 for f in block.get("fields") or []):
                raise SlackError("invalid_blocks")
        elif kind == "header":
            if not 0 < _text_len(block.get("text")) <= MAX_HEADER_TEXT:
                raise SlackError("invalid_blocks")
        elif kind == "context":
            elements = block.get("elements") or []
            if not 0 < len(elements) <= MAX_CONTEXT_ELEMENTS:
                raise SlackError("invalid_blocks")
        elif kind == "actions":
            elements = block.get("elements") or []
            if not 0 < len(elements) <= MAX_ACTIONS_ELEMENTS:
                raise SlackError("invalid_blocks")
            for element in elements:
                if element.get("type") == "button":
                    aid = element.get("action_id", "")
                    if aid in seen_action_ids or len(aid) > MAX_ACTION_ID:
                        raise SlackError("invalid_blocks")
                    seen_action_ids.add(aid)
                    if not 0 < _text_len(element.get("text")) <= MAX_BUTTON_TEXT:
                        raise SlackError("invalid_blocks")
                    if len(element.get("value", "")) > MAX_BUTTON_VALUE:
                        raise SlackError("invalid_blocks")
                    confirm = element.get("confirm")
                    if confirm and _text_len(confirm.get("text")) > MAX_CONFIRM_TEXT:
                        raise SlackError("invalid_blocks")
        elif kind in ("divider", "rich_text", "image"):
            pass
        else:
            raise SlackError("invalid_blocks")
