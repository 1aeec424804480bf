"""Run the gateway under uvicorn on 127.0.0.1: in a background thread, or in the foreground
until SIGINT/SIGTERM. Shutdown drains the shadow work and the captures first."""

from __future__ import annotations

import argparse
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType, TracebackType

import uvicorn
from starlette.types import ASGIApp

from core.gateway.app import create_app
from core.gateway.engine import GatewayOptions
from core.ports import PortError

HOST = "127.0.0.1"


class GatewayServer:
    """uvicorn on a socket bound at construction, so the port (0: any free one) is known early."""

    def __init__(self, app: ASGIApp, port: int = 0, host: str = HOST) -> None:
        # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets that say so, and
        # without it every response waits out the peer's delayed ACK (~40 ms).
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._sock.bind((host, port))
        except OSError as exc:
            self._sock.close()
            raise PortError(f"{host}:{port}: cannot listen ({exc.strerror})") from None
        self.host = host
        self.port: int = self._sock.getsockname()[1]
        config = uvicorn.Config(
            app,
            lifespan="on",
            log_config=None,  # leave the host process's logging alone
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=5,
        )
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout_s: float = 60.0) -> GatewayServer:
        """Serve from a background thread; returns once the gateway answers requests."""
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, name="mmm-gateway"
        )
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive():
                self._sock.close()
                raise PortError(f"gateway on {self.url} failed to start (see the log above)")
            if time.monotonic() > deadline:
                self.stop()
                raise PortError(f"gateway on {self.url} did not start within {timeout_s:g} s")
            time.sleep(0.01)
        return self

    def stop(self, timeout_s: float = 60.0) -> None:
        """Stop accepting, finish in-flight requests, drain shadow work and captures."""
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
        self._sock.close()

    def run(self, on_ready: Callable[[GatewayServer], None] | None = None) -> None:
        """Serve until SIGINT or SIGTERM, then stop cleanly and return (call it from the main
        thread: it installs the signal handlers). `on_ready` runs once requests are answered."""
        stop = threading.Event()

        def on_signal(signum: int, frame: FrameType | None) -> None:
            stop.set()

        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            self.start()
            if on_ready is not None:
                on_ready(self)
            while not stop.wait(0.5) and self._thread is not None and self._thread.is_alive():
                pass
        finally:
            self.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def __enter__(self) -> GatewayServer:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def serve(home: Path, port: int = 8080, options: GatewayOptions | None = None) -> None:
    """The gateway of the workspace at `home`, in the foreground (until SIGINT/SIGTERM)."""
    server = GatewayServer(create_app(home, options), port)
    server.run(lambda s: print(f"gateway listening on {s.url}", flush=True))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m core.gateway", description=__doc__)
    parser.add_argument("--home", type=Path, required=True, help="the workspace")
    parser.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    parser.add_argument("--region", default="local")
    parser.add_argument("--seed", type=int, default=None, help="fix routing draws")
    args = parser.parse_args(argv)
    try:
        serve(args.home, args.port, GatewayOptions(region=args.region, seed=args.seed))
    except PortError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
