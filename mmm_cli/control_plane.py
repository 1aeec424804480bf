"""`mmm up`: the worker, and the serving gateway as its child process, stopped cleanly by a signal.

The gateway runs model code (a pickle is a program), so it is a child
process without credentials (`core.gateway.process.GatewayProcess`); the
worker, and whatever holds credentials, stay in this process.

Shutdown order matters: the worker finishes the command in hand (so weights
are never left half-shifted: each endpoint change is one atomic write, and an
unfinished deployment resumes at the next start), then the gateway stops
taking requests and drains its shadow queue and capture files.
"""

from __future__ import annotations

import os
import signal
import threading
from contextlib import ExitStack
from types import FrameType
from typing import Any

import click

from core.gateway.process import GatewayProcess
from core.worker import Progress


def run_control_plane(svc: Any, port: int, progress: Progress) -> None:
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)

    server = GatewayProcess(svc.ws.home, port).start()
    worker = svc.worker(on_change=progress)
    thread = threading.Thread(
        target=worker.run_forever, args=(stop,), name="mmm-worker", daemon=True
    )
    thread.start()
    notifying = ExitStack()  # left once the worker has stopped: the last changes go out too
    notifying.enter_context(svc.notifications().running())
    click.echo(
        f"mmm up: gateway on {server.url}, worker {worker.name}, workspace {svc.ws.home}", err=True
    )
    if os.environ.get("SLACK_BOT_TOKEN") and os.environ.get("SLACK_SIGNING_SECRET"):
        click.echo("Slack bot: configured, but not in this release; not served", err=True)
    else:
        click.echo("Slack bot: not configured", err=True)
    click.echo("Ctrl-C stops it", err=True)
    try:
        while not stop.wait(0.5):
            if not thread.is_alive():
                raise RuntimeError("the worker stopped unexpectedly; see the log above")
            if not server.alive():
                raise RuntimeError(
                    f"the gateway stopped unexpectedly (exit status {server.returncode()}); "
                    "see the log above"
                )
    finally:
        stop.set()
        thread.join(timeout=120)
        notifying.close()
        server.stop()
        click.echo("mmm up: stopped", err=True)
