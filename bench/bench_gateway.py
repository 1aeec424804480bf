"""Gateway overhead and the cost of a shadow mirror, measured side by side in one run.

A real Ridge model (scikit-learn's diabetes data) serves from two servers, each under
uvicorn in its own process:

- the gateway (`python -m core.gateway`), endpoints `plain` (the model alone) and
  `mirrored` (the same model with a 100 % shadow mirror to another Ridge);
- bare: the smallest Starlette app serving the same model file, loaded the same way
  (`core.runtime.load_model_cached`), with the same JSON in and out; `bare` calls the model
  on the event loop, `bare, threaded` in Starlette's thread pool (as the gateway does, so
  a timeout can leave a slow model behind): context for the gap.

One httpx client sends sequential one-instance requests, keeping its connection alive,
and again with `Connection: close` (a new TCP connection per request, as a client
without a pool makes). The same model called in-process (no HTTP) is the floor.

Rounds rotate the paths in blocks, so drift of the machine hits all alike. Each block
starts with LEAD_IN requests that are not counted: the gateway batches shadow work over a
20 ms window, so the first requests of a block would see none of it and the last batch
would run after the block; counted requests meet the mirror as steady traffic does.

Reported: p50/p99 per path (all rounds pooled), and as ratios: the gateway's p50 over the
bare app's (goal: at most 1.3x) and the mirror's cost on the caller's p50, mirrored over
plain, on both kinds of connection (goal: under 5 %). A ratio is the median of the
rounds' own p50 ratios: the machine drifts between rounds (a few percent on the pooled p50s
from one run to the next), and a round's two blocks, a few seconds apart, see the same
machine. `twin`, an endpoint identical to `plain`, is the control: twin over plain measures
what this estimate reads where there is no difference, printed with the interval of each
mirror ratio over rounds (bootstrap, 95 %).
"""

from __future__ import annotations

import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import joblib
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Ridge

from bench.table import Ratio, at_most, under
from core.adapters.local.serving import LocalServing
from core.domain import Library
from core.ports import EndpointConfig, ShadowConfig, Variant
from core.runtime import load_model_cached

ROUNDS = 30
BLOCK = 100
LEAD_IN = 40  # uncounted requests opening each block: longer than the shadow batch window
WARMUP = 300
GATEWAY_GOAL = 1.3
MIRROR_GOAL = 1.05
REPO = Path(__file__).resolve().parent.parent
CLOSE = {"connection": "close"}


def train(folder: Path, seed: int) -> Path:
    data = load_diabetes()
    model = Ridge(alpha=0.1 + seed).fit(data.data, data.target)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"ridge-{seed}.joblib"
    joblib.dump(model, path)
    return path


def variant(name: str, path: Path, weight: float = 100) -> Variant:
    return Variant(
        name=name, model="ridge", version=int(name[-1]), library=Library.SKLEARN,
        artifact=path.as_uri(), weight=weight,
    )  # fmt: skip


# ---------------------------------------------------------------- the servers


def serve_bare(port: int, artifact: Path) -> None:
    """The baseline: one Starlette route over the same model, under uvicorn as it comes."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    model = load_model_cached(artifact, Library.SKLEARN)

    async def invocations(request: Request) -> JSONResponse:
        body = await request.json()
        return JSONResponse({"predictions": model.predict(body["instances"]), "variant": "v1"})

    async def threaded(request: Request) -> JSONResponse:
        body = await request.json()
        predictions = await run_in_threadpool(model.predict, body["instances"])
        return JSONResponse({"predictions": predictions, "variant": "v1"})

    app = Starlette(
        routes=[
            Route("/invocations", invocations, methods=["POST"]),
            Route("/threaded/invocations", threaded, methods=["POST"]),
        ]
    )
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


def start_gateway(home: Path) -> tuple[subprocess.Popen[str], str]:
    cmd = [sys.executable, "-m", "core.gateway", "--home", str(home), "--port", "0", "--seed", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=_env(), cwd=REPO)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "listening on " not in line:
        proc.kill()
        raise SystemExit(f"the gateway did not start: {line!r}")
    return proc, line.rsplit(" ", 1)[-1].strip()


def start_bare(artifact: Path) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    cmd = [sys.executable, "-m", "bench.bench_gateway", "bare", str(port), str(artifact)]
    proc = subprocess.Popen(cmd, env=_env(), cwd=REPO, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(url, timeout=1)  # any answer (404) means it listens
            return proc, url
        except httpx.TransportError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise SystemExit("the bare Starlette app did not start") from None
            time.sleep(0.1)


# ---------------------------------------------------------------- timing


def timed(call: Callable[[], Any], n: int) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        call()
        out.append((time.perf_counter() - start) * 1000)
    return out


def pct(samples: list[float], q: float) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[round(q * 100) - 1]


def main() -> list[Ratio]:
    with tempfile.TemporaryDirectory(prefix="mmm-bench-") as tmp:
        home = Path(tmp)
        models = home / "buckets" / "production" / "ridge"
        v1, v2 = train(models, 1), train(models, 2)
        serving = LocalServing(home)
        for name in ("plain", "twin"):
            serving.apply(EndpointConfig(name=name, region="local", variants=[variant("v1", v1)]))
        serving.apply(
            EndpointConfig(
                name="mirrored", region="local", variants=[variant("v1", v1)],
                shadow=ShadowConfig(variant=variant("v2", v2, 0), sample_percent=100),
            )
        )  # fmt: skip
        serving.close()
        instance = [float(x) for x in load_diabetes().data[7]]
        model = load_model_cached(v1, Library.SKLEARN)
        body = {"instances": [instance]}
        proc, url = start_gateway(home)
        bare, bare_url = start_bare(v1)
        try:
            with httpx.Client(timeout=10) as client:

                def call(where: str, headers: dict[str, str] | None = None) -> Callable[[], Any]:
                    def send() -> Any:
                        response = client.post(where, json=body, headers=headers)
                        response.raise_for_status()

                    return send

                gateway = f"{url}/endpoints"
                paths: dict[str, Callable[[], Any]] = {
                    "in-process": lambda: model.predict([instance]),
                    "bare": call(f"{bare_url}/invocations"),
                    "bare, threaded": call(f"{bare_url}/threaded/invocations"),
                    "plain": call(f"{gateway}/plain/invocations"),
                    "twin": call(f"{gateway}/twin/invocations"),
                    "mirrored": call(f"{gateway}/mirrored/invocations"),
                    "bare, new conn": call(f"{bare_url}/invocations", CLOSE),
                    "plain, new conn": call(f"{gateway}/plain/invocations", CLOSE),
                    "twin, new conn": call(f"{gateway}/twin/invocations", CLOSE),
                    "mirrored, new conn": call(f"{gateway}/mirrored/invocations", CLOSE),
                }
                for fn in paths.values():
                    timed(fn, WARMUP)
                blocks: dict[str, list[list[float]]] = {name: [] for name in paths}
                order = list(paths)
                for n in range(ROUNDS):
                    shift = n % len(order)  # no path always follows the same one
                    for name in order[shift:] + order[:shift]:
                        timed(paths[name], LEAD_IN)
                        blocks[name].append(timed(paths[name], BLOCK))
                time.sleep(0.5)  # the last shadow batch
                mirrored = client.get(f"{url}/metrics").text
        finally:
            for p in (proc, bare):
                p.terminate()
                p.wait(30)
    return report(blocks, mirrored)


def per_round(blocks: dict[str, list[list[float]]], path: str, baseline: str) -> list[float]:
    """Each round's p50 of `path` over its p50 of `baseline`."""
    return [
        statistics.median(a) / statistics.median(b)
        for a, b in zip(blocks[path], blocks[baseline], strict=True)
    ]


def interval(ratios: list[float], draws: int = 2000) -> tuple[float, float]:
    """A 95 % bootstrap interval of the median of `ratios` (resampling rounds)."""
    rng = random.Random(0)
    medians = sorted(statistics.median(rng.choices(ratios, k=len(ratios))) for _ in range(draws))
    return medians[int(draws * 0.025)], medians[int(draws * 0.975) - 1]


def report(blocks: dict[str, list[list[float]]], metrics: str) -> list[Ratio]:
    samples = {name: [x for block in rounds for x in block] for name, rounds in blocks.items()}
    paired = {
        (path, base): statistics.median(per_round(blocks, path, base))
        for suffix in ("", ", new conn")
        for path, base in (("plain", "bare"), ("mirrored", "plain"), ("twin", "plain"))
        for path, base in [(path + suffix, base + suffix)]
    }
    p50 = {k: pct(v, 0.5) for k, v in samples.items()}
    p99 = {k: pct(v, 0.99) for k, v in samples.items()}
    mean = {k: statistics.fmean(v) for k, v in samples.items()}
    n = len(samples["plain"])
    print(
        f"gateway benchmark: {n} sequential requests per path, {ROUNDS} rotating rounds of "
        f"{BLOCK} (after {LEAD_IN} uncounted); 'new conn': Connection: close, a new TCP "
        "connection per request; ratios: the median of the rounds' p50 ratios (pooled: the "
        "ratio of the p50s of all rounds together)"
    )
    print(f"{'path':<20}{'p50 ms':>10}{'p99 ms':>10}{'mean ms':>10}")
    for name in samples:
        print(f"{name:<20}{p50[name]:>10.3f}{p99[name]:>10.3f}{mean[name]:>10.3f}")
    print(
        f"gateway over in-process call (the floor): p50 {p50['plain'] - p50['in-process']:+.3f} ms, "
        f"p99 {p99['plain'] - p99['in-process']:+.3f} ms"
    )
    for suffix in ("", ", new conn"):
        p, b = "plain" + suffix, "bare" + suffix
        print(
            f"gateway / bare Starlette{suffix}: p50 x{paired[p, b]:.3f} (pooled "
            f"x{p50[p] / p50[b]:.3f}, {p50[p] - p50[b]:+.3f} ms), p99 x{p99[p] / p99[b]:.3f}"
        )
    print(
        f"bare, model in the thread pool / on the event loop: p50 "
        f"x{p50['bare, threaded'] / p50['bare']:.3f}; gateway / bare, threaded: p50 "
        f"x{p50['plain'] / p50['bare, threaded']:.3f}"
    )
    for suffix in ("", ", new conn"):
        m, p, t = "mirrored" + suffix, "plain" + suffix, "twin" + suffix
        low, high = interval(per_round(blocks, m, p))
        print(
            f"100% mirror on primary{suffix or ', keep-alive'}: p50 {percent(paired[m, p])} "
            f"(95 % interval {percent(low)} to {percent(high)}; goal < +5 %; pooled "
            f"{percent(p50[m] / p50[p])}), p99 x{p99[m] / p99[p]:.3f}, "
            f"mean x{mean[m] / mean[p]:.3f}; control, twin / plain: p50 {percent(paired[t, p])}"
        )
    counts = {
        name: sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
                  if line.startswith(f"mmm_{name}_total{{"))
        for name in ("shadow_mirrored", "shadow_dropped", "capture_pairs")
    }  # fmt: skip
    print(
        f"shadow: {counts['shadow_mirrored']:.0f} requests mirrored, "
        f"{counts['shadow_dropped']:.0f} dropped, {counts['capture_pairs']:.0f} pairs captured"
    )
    return [
        Ratio("gateway p50 / bare Starlette p50, keep-alive", p50["plain"], p50["bare"], "ms",
              at_most(GATEWAY_GOAL), paired["plain", "bare"]),
        Ratio("gateway p50 / bare Starlette p50, new connections", p50["plain, new conn"],
              p50["bare, new conn"], "ms", paired=paired["plain, new conn", "bare, new conn"]),
        Ratio("100% shadow mirror p50 / no mirror, keep-alive", p50["mirrored"], p50["plain"],
              "ms", under(MIRROR_GOAL), paired["mirrored", "plain"]),
        Ratio("100% shadow mirror p50 / no mirror, new connections",
              p50["mirrored, new conn"], p50["plain, new conn"], "ms", under(MIRROR_GOAL),
              paired["mirrored, new conn", "plain, new conn"]),
    ]  # fmt: skip


def percent(ratio: float) -> str:
    return f"{(ratio - 1) * 100:+.1f} %"


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "bare":
        serve_bare(int(sys.argv[2]), Path(sys.argv[3]))
    else:
        main()
