"""Serving the bot: `POST /slack/events` over HTTP (Starlette under uvicorn, on its own port),
or Socket Mode when an app token is configured.

Bolt's own Starlette adapter runs a sync app's dispatch on the event loop, so one slow
request would hold every other one; here dispatch runs in the thread pool instead, and the
listeners only ack and hand off, so Slack's 3-second ack is met under load.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import signal
import socket
import threading
import time
from collections.abc import Callable, Mapping
from types import FrameType
from typing import Any, Protocol

import uvicorn
from slack_bolt import App
from slack_bolt.adapter.starlette.handler import to_bolt_request, to_starlette_response
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from core.service import Service
from mmm_bot.app import create_app
from mmm_bot.bot import Bot
from mmm_bot.config import SlackConfig

log = logging.getLogger("mmm.bot")

EVENTS_PATH = "/slack/events"
_START_TIMEOUT_S = 30.0
_SIGNATURE_AGE_S = 5 * 60  # Slack's own limit: older requests may be replays


def signed(secret: str, body: bytes, headers: Mapping[str, str], now: float) -> bool:
    """Slack's v0 signature of `body` made with `secret` at most five minutes before `now`;
    any header that is not one (a timestamp that is no number, a signature that is no hex)
    is no signature."""
    stamp = headers.get("x-slack-request-timestamp", "")
    signature = headers.get("x-slack-signature", "")
    if not (stamp.isascii() and stamp.isdigit() and len(stamp) < 20):
        return False
    if abs(now - int(stamp)) > _SIGNATURE_AGE_S:
        return False
    digest = hmac.new(secret.encode(), b"v0:" + stamp.encode() + b":" + body, hashlib.sha256)
    expected = "v0=" + digest.hexdigest()
    return hmac.compare_digest(expected.encode(), signature.encode("latin-1", "replace"))


def _clicks_readable(body: Any) -> bool:
    """Bolt takes a click's `actions[0]["action_id"]` as given: a list of objects, each
    naming its action."""
    if not isinstance(body, dict):
        return False
    if body.get("type") != "block_actions" or "actions" not in body:
        return True
    actions = body["actions"]
    return (
        isinstance(actions, list)
        and bool(actions)
        and all(isinstance(a, dict) and isinstance(a.get("action_id"), str) for a in actions)
    )


def asgi_app(app: App, signing_secret: str | None = None) -> Starlette:
    """The HTTP routes: `POST /slack/events` (bolt: signature, ack, listeners) and
    `GET /healthz`. With `signing_secret`, the signature is checked here first, so nothing
    unsigned reaches bolt (whose own check fails on some headers, a timestamp that is no
    number); a signed body bolt cannot read (not UTF-8, a `payload` that is no JSON object)
    gets 400."""

    async def events(request: Request) -> Response:
        body = await request.body()
        if signing_secret is not None and not signed(
            signing_secret, body, request.headers, time.time()
        ):
            return JSONResponse({"error": "invalid request"}, 401)
        try:
            bolt_request = to_bolt_request(request, body)
            readable = _clicks_readable(bolt_request.body)
        except (ValueError, AttributeError, TypeError, RecursionError):  # not UTF-8, not JSON
            readable = False
        if not readable:
            if signing_secret is None:
                return JSONResponse({"error": "invalid request"}, 401)
            return JSONResponse({"error": "a body Slack does not send"}, 400)
        answer = await run_in_threadpool(app.dispatch, bolt_request)
        return to_starlette_response(answer)

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok")

    return Starlette(
        routes=[
            Route(EVENTS_PATH, events, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
        ]
    )


class RunningBot(Protocol):
    """A bot being served; `stop()` ends it and finishes the work already acked."""

    @property
    def url(self) -> str: ...

    def stop(self, timeout_s: float = 10.0) -> None: ...


class HttpBot:
    """The bot over HTTP on host:port, served by uvicorn in a background thread."""

    def __init__(
        self,
        bot: Bot,
        app: App,
        host: str = "127.0.0.1",
        port: int = 3000,
        signing_secret: str | None = None,
    ) -> None:
        self.bot = bot
        self.host = host
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))  # port 0: any free one (see `port`)
        self.port = int(self._socket.getsockname()[1])
        config = uvicorn.Config(
            asgi_app(app, signing_secret), log_level="warning", access_log=False, lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [self._socket]},
            name="mmm-bot-http",
            daemon=True,
        )

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> HttpBot:
        """Serve in the background; returns once requests are taken."""
        self._thread.start()
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the Slack bot could not start on {self.url}")
            time.sleep(0.02)
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        self._server.should_exit = True
        self._thread.join(timeout_s)
        self._socket.close()
        self.bot.close()


class SocketModeBot:
    """The bot over Socket Mode: it opens a WebSocket to Slack, so no port is served."""

    def __init__(self, bot: Bot, app: App, app_token: str) -> None:
        from slack_bolt.adapter.socket_mode import SocketModeHandler

        self.bot = bot
        self._handler = SocketModeHandler(app, app_token)

    @property
    def url(self) -> str:
        return "socket-mode"

    def start(self) -> SocketModeBot:
        self._handler.connect()  # type: ignore[no-untyped-call]
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        self._handler.close()  # type: ignore[no-untyped-call]
        self.bot.close()


def start_bot(
    svc: Service, config: SlackConfig, port: int = 3000, host: str = "127.0.0.1"
) -> RunningBot:
    """Serve the bot in the background of this process (`mmm up --bot-port`): over HTTP on
    host:port, or over Socket Mode when `config` has an app token. Stop it with `stop()`."""
    bot = Bot(svc, config)
    app = create_app(bot, config)
    try:
        if config.app_token is not None:
            return SocketModeBot(bot, app, config.app_token).start()
        return HttpBot(bot, app, host, port, config.signing_secret).start()
    except BaseException:
        bot.close(wait=False)
        raise


def serve(
    svc: Service,
    config: SlackConfig,
    port: int = 3000,
    host: str = "127.0.0.1",
    on_ready: Callable[[RunningBot], None] | None = None,
) -> None:
    """Serve the bot in the foreground (`mmm bot --port`) until SIGINT or SIGTERM;
    `on_ready` is called once it takes requests (to say where)."""
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    running = start_bot(svc, config, port, host)
    if on_ready is not None:
        on_ready(running)
    try:
        stop.wait()
    finally:
        running.stop()
