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

import signal
import threading
from contextlib import ExitStack
from types import FrameType
from typing import Any

import click

from core.gateway.process import GatewayProcess
from core.worker import Progress
from mmm_cli.health import HealthServer


def run_control_plane(
    svc: Any, port: int, progress: Progress, slack: Any = None, bot_port: int = 3000
) -> None:
    """Run until SIGINT or SIGTERM; `slack`: the bot's configuration (mmm_bot.SlackConfig),
    None when Slack is not configured."""
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)

    # The gateway serves local models; where SageMaker serves them, only health and metrics.
    local = svc.ws.settings.backends.serving == "local"
    server = GatewayProcess(svc.ws.home, port).start() if local else HealthServer(port).start()
    worker = svc.worker(on_change=progress)
    thread = threading.Thread(
        target=worker.run_forever, args=(stop,), name="mmm-worker", daemon=True
    )
    thread.start()
    notifying = ExitStack()  # left once the worker has stopped: the last changes go out too
    notifying.enter_context(svc.notifications().running())
    click.echo(
        f"mmm up: {'gateway' if local else 'health and metrics'} on {server.url}, "
        f"worker {worker.name}, workspace {svc.ws.home}",
        err=True,
    )
    bot = None
    if slack is not None:
        from mmm_bot import start_bot

        bot = start_bot(svc, slack, bot_port)
        click.echo(f"Slack bot: on {bot.url}", err=True)
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
        if bot is not None:
            bot.stop()
        notifying.close()
        server.stop()
        click.echo("mmm up: stopped", err=True)
