"""A small fake of Slack, for tests and benchmarks: its Web API (the methods the bot calls)
and response URLs on 127.0.0.1, plus signed requests as Slack would send them to the bot.
`GET /_fake/count` tells a client in another process how many calls and answers arrived.

The fake takes real requests from the real client (`WebClient(base_url=fake.api_url)`), keeps
the messages of each channel with their threads and metadata, and records every call, so a
test asserts on what arrived, not on mocks. `fail(method, error)` makes the next calls of a
method fail the way Slack does (`{"ok": false, "error": ...}`, or an HTTP status).

    with FakeSlack(token="xoxb-test") as slack:
        client = WebClient(token="xoxb-test", base_url=slack.api_url)
        ...
        slack.wait_for(lambda: slack.calls_of("chat.postMessage"))
"""

from __future__ import annotations

import hmac
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from hashlib import sha256
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx

from tests.support.http_fake import LocalHttpFake


@dataclass
class Call:
    """One Web API call as it arrived."""

    method: str
    args: dict[str, Any]
    authorization: str | None


@dataclass
class Posted:
    """A message in a channel (a thread reply has `thread_ts`)."""

    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]]
    metadata: dict[str, Any] | None = None
    thread_ts: str | None = None
    updates: int = 0

    def rendered(self) -> str:
        """Every text in the message and its blocks, as one string to search."""
        return self.text + "\n" + json.dumps(self.blocks, ensure_ascii=False)


@dataclass
class _Failure:
    error: str
    status: int
    times: int


@dataclass
class FakeSlack(LocalHttpFake):
    """The fake server; start it with `with FakeSlack() as slack:` or `start()`/`stop()`."""

    token: str | None = None
    calls: list[Call] = field(default_factory=list)
    messages: list[Posted] = field(default_factory=list)
    responses: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._failures: dict[str, list[_Failure]] = {}
        self._clock = time.time()
        self._server: ThreadingHTTPServer | None = None

    # ------------------------------------------------------------ running

    @property
    def base(self) -> str:
        return self.root

    @property
    def api_url(self) -> str:
        """What `SLACK_API_URL` (or WebClient's `base_url`) should be."""
        return f"{self.base}/api/"

    def response_url(self, name: str) -> str:
        """A response URL whose posts are kept under `name` (see `answers`)."""
        return f"{self.base}/respond/{name}"

    # ------------------------------------------------------------ what arrived

    def fail(self, method: str, error: str, status: int = 200, times: int = 1) -> None:
        """The next `times` calls of `method` fail with `error` (and HTTP `status`)."""
        with self._lock:
            self._failures.setdefault(method, []).append(_Failure(error, status, times))

    def calls_of(self, method: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.method == method]

    def answers(self, name: str) -> list[dict[str, Any]]:
        """What was posted to response URL `name`, in order."""
        with self._lock:
            return [body for n, body in self.responses if n == name]

    def top_level(self, channel: str | None = None) -> list[Posted]:
        """Messages that are not thread replies (of `channel`, if given)."""
        with self._lock:
            return [
                m
                for m in self.messages
                if m.thread_ts is None and (channel is None or m.channel == channel)
            ]

    def replies(self, ts: str) -> list[Posted]:
        with self._lock:
            return [m for m in self.messages if m.thread_ts == ts]

    def message_of(self, deployment_id: str) -> Posted | None:
        """The message whose metadata names `deployment_id`."""
        for m in self.top_level():
            payload = (m.metadata or {}).get("event_payload") or {}
            if payload.get("deployment_id") == deployment_id:
                return m
        return None

    def wait_for(
        self, condition: Callable[[], Any], timeout_s: float = 60.0, what: str = "condition"
    ) -> Any:
        """Poll `condition` until it returns something truthy (returned); fails after
        `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while True:
            value = condition()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            time.sleep(0.05)

    # ------------------------------------------------------------ serving

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        url = urlsplit(request.path)
        length = int(request.headers.get("Content-Length") or 0)
        raw = request.rfile.read(length) if length else b""
        args: dict[str, Any] = dict(parse_qsl(url.query))
        if raw:
            if "json" in (request.headers.get("Content-Type") or ""):
                args.update(json.loads(raw))
            else:
                args.update(parse_qsl(raw.decode()))
        if url.path == "/_fake/count":  # for a client in another process (benchmarks)
            with self._lock:
                counts = {"calls": len(self.calls), "responses": len(self.responses)}
            self._send(request, 200, json.dumps(counts).encode(), "application/json")
            return
        if url.path.startswith("/respond/"):
            with self._lock:
                self.responses.append((url.path.removeprefix("/respond/"), args))
            self._send(request, 200, b"ok", "text/plain")
            return
        method = url.path.removeprefix("/api/")
        status, body = self._call(method, args, request.headers.get("Authorization"))
        self._send(request, status, json.dumps(body).encode(), "application/json")

    @staticmethod
    def _send(request: BaseHTTPRequestHandler, status: int, body: bytes, kind: str) -> None:
        request.send_response(status)
        request.send_header("Content-Type", kind)
        request.send_header("Content-Length", str(len(body)))
        if status == 429:
            request.send_header("Retry-After", "1")
        request.end_headers()
        request.wfile.write(body)

    def _call(self, method: str, args: dict[str, Any], auth: str | None) -> tuple[int, Any]:
        with self._lock:
            self.calls.append(Call(method, args, auth))
            if self.token is not None and auth != f"Bearer {self.token}":
                return 200, {"ok": False, "error": "invalid_auth"}
            pending = self._failures.get(method)
            if pending:
                failure = pending[0]
                failure.times -= 1
                if failure.times <= 0:
                    pending.pop(0)
                return failure.status, {"ok": False, "error": failure.error}
            handler = getattr(self, "_" + method.replace(".", "_"), None)
            if handler is None:
                return 200, {"ok": False, "error": "unknown_method"}
            return 200, handler(args)

    def _next_ts(self) -> str:
        self._clock = max(self._clock + 0.000001, time.time())
        return f"{self._clock:.6f}"

    @staticmethod
    def _blocks(args: dict[str, Any]) -> list[dict[str, Any]]:
        blocks = args.get("blocks") or []
        return json.loads(blocks) if isinstance(blocks, str) else list(blocks)

    def _auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "team_id": "T0FAKE", "user_id": "UBOT", "bot_id": "BBOT"}

    def _chat_postMessage(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = args.get("channel")
        if not channel:
            return {"ok": False, "error": "channel_not_found"}
        metadata = args.get("metadata")
        if isinstance(metadata, str):
            metadata = json.loads(metadata)
        posted = Posted(
            channel=str(channel),
            ts=self._next_ts(),
            text=str(args.get("text") or ""),
            blocks=self._blocks(args),
            metadata=metadata,
            thread_ts=args.get("thread_ts"),
        )
        self.messages.append(posted)
        return {"ok": True, "channel": posted.channel, "ts": posted.ts, "message": {}}

    def _chat_update(self, args: dict[str, Any]) -> dict[str, Any]:
        for m in self.messages:
            if m.channel == args.get("channel") and m.ts == args.get("ts"):
                m.text = str(args.get("text") or m.text)
                m.blocks = self._blocks(args) or m.blocks
                m.updates += 1
                return {"ok": True, "channel": m.channel, "ts": m.ts}
        return {"ok": False, "error": "message_not_found"}

    def _conversations_history(self, args: dict[str, Any]) -> dict[str, Any]:
        oldest = float(args.get("oldest") or 0)
        with_metadata = str(args.get("include_all_metadata", "")).lower() in ("1", "true")
        found = [
            m
            for m in reversed(self.messages)
            if m.channel == args.get("channel") and m.thread_ts is None and float(m.ts) > oldest
        ]
        shown = []
        for m in found:
            item: dict[str, Any] = {"type": "message", "ts": m.ts, "text": m.text}
            if with_metadata and m.metadata:
                item["metadata"] = m.metadata
            shown.append(item)
        return {"ok": True, "messages": shown, "has_more": False}


# ---------------------------------------------------------------- requests to the bot


def signed_headers(secret: str, body: bytes, at: float | None = None) -> dict[str, str]:
    """The headers Slack sends with `body`: a v0 signature made with `secret` at `at`."""
    stamp = str(int(time.time() if at is None else at))
    base = b"v0:" + stamp.encode() + b":" + body
    signature = "v0=" + hmac.new(secret.encode(), base, sha256).hexdigest()
    return {
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": signature,
        "Content-Type": "application/x-www-form-urlencoded",
    }


def command_body(
    text: str,
    user_id: str,
    channel_id: str = "C0DEPLOY",
    response_url: str = "",
    trigger_id: str | None = None,
    command: str = "/mmm",
) -> bytes:
    """A slash command as Slack posts it."""
    fields = {
        "token": "verification-token-unused",
        "team_id": "T0FAKE",
        "team_domain": "fake",
        "channel_id": channel_id,
        "channel_name": "deploys",
        "user_id": user_id,
        "user_name": user_id.lower(),
        "command": command,
        "text": text,
        "api_app_id": "A0FAKE",
        "response_url": response_url,
        "trigger_id": trigger_id or f"trigger-{time.monotonic_ns()}",
    }
    return urlencode(fields).encode()


def action_body(
    action_id: str,
    value: str,
    user_id: str,
    channel_id: str = "C0DEPLOY",
    message_ts: str = "1.000000",
    response_url: str = "",
    trigger_id: str | None = None,
) -> bytes:
    """A `block_actions` interaction (a button click) as Slack posts it."""
    payload = {
        "type": "block_actions",
        "team": {"id": "T0FAKE", "domain": "fake"},
        "user": {"id": user_id, "username": user_id.lower(), "team_id": "T0FAKE"},
        "api_app_id": "A0FAKE",
        "token": "verification-token-unused",
        "container": {"type": "message", "message_ts": message_ts, "channel_id": channel_id},
        "trigger_id": trigger_id or f"trigger-{time.monotonic_ns()}",
        "channel": {"id": channel_id, "name": "deploys"},
        "message": {"type": "message", "ts": message_ts, "text": ""},
        "response_url": response_url,
        "actions": [
            {
                "type": "button",
                "action_id": action_id,
                "block_id": "gate",
                "value": value,
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }
    return urlencode({"payload": json.dumps(payload)}).encode()


def post_signed(
    client: httpx.Client,
    url: str,
    secret: str,
    body: bytes,
    at: float | None = None,
    retry: int | None = None,
) -> httpx.Response:
    """POST `body` to the bot at `url`, signed with `secret` (at time `at`); `retry`: the
    `X-Slack-Retry-Num` Slack adds when it delivers a request again."""
    headers = signed_headers(secret, body, at)
    if retry is not None:
        headers["X-Slack-Retry-Num"] = str(retry)
        headers["X-Slack-Retry-Reason"] = "http_timeout"
    return client.post(url, content=body, headers=headers)
