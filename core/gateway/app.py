"""The local serving gateway's HTTP routes (Starlette): parse, call the engine, render."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from core.gateway.engine import Gateway, GatewayOptions, error_answer, request_id_from
from core.gateway.metrics import CONTENT_TYPE
from core.gateway.mirror import MirrorJob
from core.gateway.predictors import describe_error

JSON = "application/json"


async def read_body(request: Request, limit: int) -> bytes | None:
    """The body, or None as soon as it grows over `limit` bytes (the rest is left unread)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(home: Path, options: GatewayOptions | None = None) -> Starlette:
    """The gateway for the workspace at `home`; `app.state.gateway` is its engine."""
    gateway = Gateway(home, options)

    async def invocations(request: Request) -> Response:
        with gateway.serving():
            return await invocation(request)

    async def invocation(request: Request) -> Response:
        request_id = request_id_from(request.headers.get("x-request-id"))
        limit = gateway.options.max_body_bytes
        size = request.headers.get("content-length", "0")
        # A declared size over the limit is refused unread; the stream is counted anyway,
        # since a chunked body declares none (and a declared one may lie).
        try:
            raw = None if size.isdigit() and int(size) > limit else await read_body(request, limit)
        except ClientDisconnect:  # the caller went before its body ended: no one to answer
            gateway.metrics.rejected.labels("bad_request").inc()
            return Response(status_code=400)
        if raw is None:
            gateway.metrics.rejected.labels("too_large").inc()
            answer = error_answer(413, f"body over {limit} bytes", request_id)
        else:
            params = request.path_params
            answer = await gateway.invoke(params["name"], raw, request_id, params.get("region"))
        headers = {"x-request-id": answer.request_id}
        if answer.variant is not None:
            headers["x-mmm-variant"] = answer.variant
        # The shadow's work starts once the answer is sent, so it never delays it.
        background = None if answer.mirror is None else BackgroundTask(mirror, answer.mirror)
        return Response(answer.content, answer.status, headers, JSON, background)

    async def mirror(job: MirrorJob) -> None:
        gateway.mirror(job)

    async def endpoints(request: Request) -> Response:
        await gateway.refresh_or_keep()
        return JSONResponse(gateway.describe())

    async def metrics(request: Request) -> Response:
        return Response(gateway.metrics.text(), media_type=CONTENT_TYPE)

    async def healthz(request: Request) -> Response:
        if gateway.ready:
            await gateway.refresh_or_keep()
        body = {
            "status": "ok" if gateway.ready else "starting",
            "region": gateway.region,
            "revision": gateway.revision,
        }
        return JSONResponse(body, 200 if gateway.ready else 503)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        body = json.dumps({"error": f"{request.method} {request.url.path}: {exc.detail}"})
        return Response(body, exc.status_code, exc.headers, media_type=JSON)

    async def internal_error(request: Request, exc: Exception) -> Response:
        # Starlette logs the traceback; the caller gets one line.
        body = json.dumps({"error": f"internal error: {describe_error(exc)}"})
        return Response(body, 500, media_type=JSON)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await gateway.start()
        try:
            yield
        finally:
            await gateway.close()

    app = Starlette(
        routes=[
            Route("/endpoints/{name}/invocations", invocations, methods=["POST"]),
            Route("/regions/{region}/endpoints/{name}/invocations", invocations, methods=["POST"]),
            Route("/endpoints", endpoints, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
        ],
        exception_handlers={HTTPException: http_error, Exception: internal_error},
        lifespan=lifespan,
    )
    app.state.gateway = gateway
    return app
