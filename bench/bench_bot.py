"""Slack's 3-second ack under load: the mmm bot against a bare bolt app, side by side in one run.

Three servers, each in its own process under uvicorn, take bursts of 50 concurrent signed
`/mmm status` slash commands from one httpx client:

- bare: a bolt app whose only listener acks, served by bolt's own Starlette adapter (the
  smallest bolt app one can write: the reference of the goal);
- bare-threaded: the same app served the way the bot is (mmm_bot.asgi_app: dispatch in the
  thread pool, listeners run before the response), to tell the serving from the work;
- mmm: the bot (`mmm_bot.start_bot`) over a fresh embedded workspace; it acks, then reads
  the deployments and answers on the response URL (a fake Slack in a third process), as it
  does in production.

Rounds rotate the servers, so drift of the machine hits both alike; after each burst the
client waits for the bot's answers, so a round measures acks with that round's work behind
them. Reported: p50/p99 of the ack (request sent to HTTP 200 received) per server and the
ratios. Goal: the bot's p99 at most 2x the bare app's.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.table import Ratio, at_most

REPO = Path(__file__).resolve().parent.parent
SECRET = "bench-signing-secret"
TOKEN = "xoxb-bench-token"
GOAL = 2.0
CONCURRENT = 50
ROUNDS = 12
WARMUP_ROUNDS = 2


# ---------------------------------------------------------------- the servers (child processes)


def serve_bare(port: int, threaded: bool) -> None:
    """The ack-only app; `threaded`: served the way the bot is (dispatch in the thread pool,
    listeners run before the response) instead of by bolt's own adapter."""
    import uvicorn
    from slack_bolt import Ack, App
    from slack_bolt.adapter.starlette import SlackRequestHandler
    from slack_bolt.authorization import AuthorizeResult
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from mmm_bot import asgi_app

    app = App(
        signing_secret=SECRET,
        authorize=lambda **_: AuthorizeResult(enterprise_id=None, team_id=None, bot_token=TOKEN),
        token_verification_enabled=False,
        process_before_response=threaded,
    )

    @app.command("/mmm")
    def only_ack(ack: Ack) -> None:
        ack()

    if threaded:
        asgi = asgi_app(app)
    else:
        handler = SlackRequestHandler(app)

        async def events(request: Request) -> Response:
            return await handler.handle(request)

        asgi = Starlette(routes=[Route("/slack/events", events, methods=["POST"])])
    print("ready", flush=True)
    uvicorn.run(asgi, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def serve_mmm(port: int, home: Path, api_url: str) -> None:
    import signal
    import threading

    from core.bootstrap import build_service, init_workspace
    from mmm_bot import SlackConfig, start_bot

    init_workspace(home)
    svc = build_service(home, "bench")
    config = SlackConfig(bot_token=TOKEN, signing_secret=SECRET, api_url=api_url)
    running = start_bot(svc, config, port)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print("ready", flush=True)
    stop.wait()
    running.stop()


def serve_fake() -> None:
    import threading

    from tests.support.fake_slack import FakeSlack

    fake = FakeSlack(token=TOKEN).start()
    print(f"ready {fake.base}", flush=True)
    threading.Event().wait()


# ---------------------------------------------------------------- the client


def spawn(*args: str) -> tuple[subprocess.Popen[str], str]:
    env = {**os.environ, "COMET_ERROR_TRACKING_ENABLE": "false", "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.bench_bot", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    if not line.startswith("ready"):
        process.kill()
        raise RuntimeError(f"{args[0]} did not start: {line!r}")
    return process, line.removeprefix("ready").strip()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def burst(client: httpx.AsyncClient, url: str, fake: str, tag: str) -> list[float]:
    """CONCURRENT signed slash commands at once; the ack latency of each, in ms."""
    from tests.support.fake_slack import command_body, signed_headers

    bodies = [
        command_body("status", "UBENCH", response_url=f"{fake}/respond/{tag}-{i}")
        for i in range(CONCURRENT)
    ]

    async def one(body: bytes) -> float:
        headers = signed_headers(SECRET, body)
        started = time.perf_counter()
        answer = await client.post(url, content=body, headers=headers)
        elapsed = (time.perf_counter() - started) * 1000
        if answer.status_code != 200:
            raise RuntimeError(f"{url}: HTTP {answer.status_code}")
        return elapsed

    return list(await asyncio.gather(*(one(b) for b in bodies)))


async def answered(client: httpx.AsyncClient, fake: str, expected: int) -> bool:
    """Wait (bounded) until the bot has answered `expected` commands in all."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        counts = (await client.get(f"{fake}/_fake/count")).json()
        if counts["responses"] >= expected:
            return True
        await asyncio.sleep(0.05)
    return False


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure(urls: dict[str, str], fake: str) -> tuple[dict[str, list[float]], int]:
    """Ack latencies per server, and how many of the bot's answers did not arrive."""
    samples: dict[str, list[float]] = {name: [] for name in urls}
    limits = httpx.Limits(max_connections=CONCURRENT, max_keepalive_connections=CONCURRENT)
    sent = missing = 0
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        for n in range(WARMUP_ROUNDS + ROUNDS):
            order = list(urls.items())
            shift = n % len(order)  # none always goes first
            for name, url in order[shift:] + order[:shift]:
                got = await burst(client, url, fake, f"{name}{n}")
                if name == "mmm":
                    sent += CONCURRENT
                    if not await answered(client, fake, sent):
                        missing += 1
                if n >= WARMUP_ROUNDS:
                    samples[name] += got
    return samples, missing


def main() -> list[Ratio]:
    processes: list[subprocess.Popen[str]] = []
    try:
        fake_process, fake = spawn("fake")
        processes.append(fake_process)
        ports = {name: free_port() for name in ("bare", "bare-threaded", "mmm")}
        for name in ("bare", "bare-threaded"):
            processes.append(spawn(name, str(ports[name]))[0])
        with tempfile.TemporaryDirectory(prefix="bench-bot-") as tmp:
            bot, _ = spawn("mmm", str(ports["mmm"]), str(Path(tmp) / "ws"), f"{fake}/api/")
            processes.append(bot)
            urls = {name: f"http://127.0.0.1:{port}/slack/events" for name, port in ports.items()}
            samples, missing = asyncio.run(measure(urls, fake))
            bot.terminate()
            bot.wait(30)
    finally:
        for p in processes:
            if p.poll() is None:
                p.terminate()
                p.wait(30)
    print(
        f"{CONCURRENT} concurrent signed /mmm commands x {ROUNDS} rounds per server "
        f"(after {WARMUP_ROUNDS} warm-up rounds), client and servers on one machine"
    )
    print(f"{'server':<14} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'mean ms':>8}")
    for name, values in samples.items():
        print(
            f"{name:<14} {percentile(values, 0.5):8.1f} {percentile(values, 0.99):8.1f} "
            f"{max(values):8.1f} {statistics.fmean(values):8.1f}"
        )
    p99 = {name: percentile(values, 0.99) for name, values in samples.items()}
    ratio = p99["mmm"] / p99["bare"]
    verdict = "met" if ratio <= GOAL else "MISSED"
    print(f"p99 ratio mmm/bare: {ratio:.2f} (goal: at most {GOAL:g}x; {verdict})")
    print(
        f"p99 ratio mmm/bare-threaded (the same serving, no work): {p99['mmm'] / p99['bare-threaded']:.2f}"
    )
    if missing:
        print(f"WARNING: {missing} round(s) of the bot's answers did not all arrive")
    return [
        Ratio(
            "Slack ack p99, mmm bot / bare bolt app", p99["mmm"], p99["bare"], "ms", at_most(GOAL)
        )
    ]


if __name__ == "__main__":
    role = sys.argv[1] if len(sys.argv) > 1 else ""
    if role in ("bare", "bare-threaded"):
        serve_bare(int(sys.argv[2]), threaded=role == "bare-threaded")
    elif role == "mmm":
        serve_mmm(int(sys.argv[2]), Path(sys.argv[3]), sys.argv[4])
    elif role == "fake":
        serve_fake()
    else:
        main()
