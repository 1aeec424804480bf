"""`mmm up` with Slack, as a process of its own for the tests that kill it: the bot over HTTP,
a worker and the Slack notifier over one workspace (the ports of tests.support.worker_process,
kept in files so a restarted process sees what the killed one did).

    python -m tests.bot.control_plane HOME BOT_PORT

Slack is whatever SLACK_API_URL points at; SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET as for
`mmm up`. Prints `ready URL` once the bot takes requests; SIGTERM stops it cleanly.
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from core.bootstrap import load_workspace
from core.service import Service
from core.store.sqlite import SqliteStore
from mmm_bot import SlackConfig, SlackNotifier, start_bot
from tests.support.worker_process import fake_ports


def main(home: Path, port: int) -> None:
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    config = SlackConfig.from_env()
    assert config is not None, "SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET must be set"
    svc = Service(load_workspace(home), SqliteStore(home / "state.db"), fake_ports(home), "up")
    svc.ports.notifier = SlackNotifier.for_service(svc, config)
    bot = start_bot(svc, config, port)
    worker = svc.worker()
    thread = threading.Thread(target=worker.run_forever, args=(stop,), daemon=True)
    thread.start()
    with svc.notifications().running(poll_s=0.05):
        print(f"ready {bot.url}", flush=True)
        stop.wait()
        thread.join(30)
    bot.stop()


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]))
