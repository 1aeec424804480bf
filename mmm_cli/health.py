"""`/healthz` and `/metrics` of `mmm up` where no local gateway runs (SageMaker serves).

It stands where `core.gateway.process.GatewayProcess` stands otherwise (same start, url,
alive, returncode, stop), so the control plane treats both alike; it runs no model code,
so it lives in the control plane's own process.
"""

from __future__ import annotations

import threading
import time

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


async def _healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok", "serving": "sagemaker"})


async def _metrics(request: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


class HealthServer:
    """Health and metrics on 127.0.0.1:`port` (0: any free port), in a thread."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        app = Starlette(routes=[Route("/healthz", _healthz), Route("/metrics", _metrics)])
        config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="mmm-health", daemon=True)

    def start(self, timeout_s: float = 30.0) -> HealthServer:
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the health server did not start (is the port taken?)")
            time.sleep(0.02)
        return self

    @property
    def url(self) -> str:
        host, port = self._server.servers[0].sockets[0].getsockname()[:2]
        return f"http://{host}:{port}"

    def alive(self) -> bool:
        return self._thread.is_alive()

    def returncode(self) -> int | None:
        return None if self.alive() else 1

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
