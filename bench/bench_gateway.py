"""Gateway overhead and the cost of a shadow mirror, measured side by side in one run.

A real Ridge model (scikit-learn's diabetes data) serves from a gateway in its
own process; one httpx client sends sequential one-instance requests to

- the same model called in-process (no HTTP): the floor;
- endpoint `plain`: the model alone;
- endpoint `mirrored`: the same model with a 100 % shadow mirror (another Ridge).

Rounds alternate the three in blocks, so drift of the machine hits all alike.
Reported: p50/p99 per path, gateway overhead (plain minus in-process) and the
mirror's cost on the primary path (mirrored over plain). Goals: p50 overhead
under 1 ms; the mirror adding under 5 % to primary p50.
"""

from __future__ import annotations

import os
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

from core.adapters.local.serving import LocalServing
from core.domain import Library
from core.ports import EndpointConfig, ShadowConfig, Variant
from core.runtime import load_model_cached

ROUNDS = 60
BLOCK = 50
WARMUP = 300
REPO = Path(__file__).resolve().parent.parent


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


def start_gateway(home: Path) -> tuple[subprocess.Popen[str], str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "core.gateway", "--home", str(home), "--port", "0", "--seed", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env, cwd=REPO)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "listening on " not in line:
        proc.kill()
        raise SystemExit(f"the gateway did not start: {line!r}")
    return proc, line.rsplit(" ", 1)[-1].strip()


def timed(call: Callable[[], Any], n: int) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        call()
        out.append((time.perf_counter() - start) * 1000)
    return out


def pct(samples: list[float], q: float) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[round(q * 100) - 1]


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="mmm-bench-") as tmp:
        home = Path(tmp)
        models = home / "buckets" / "production" / "ridge"
        v1, v2 = train(models, 1), train(models, 2)
        serving = LocalServing(home)
        serving.apply(EndpointConfig(name="plain", region="local", variants=[variant("v1", v1)]))
        serving.apply(
            EndpointConfig(
                name="mirrored", region="local", variants=[variant("v1", v1)],
                shadow=ShadowConfig(variant=variant("v2", v2, 0), sample_percent=100),
            )
        )  # fmt: skip
        serving.close()
        instance = [float(x) for x in load_diabetes().data[7]]
        model = load_model_cached(v1, Library.SKLEARN)
        proc, url = start_gateway(home)
        try:
            with httpx.Client(base_url=url, timeout=10) as client:
                body = {"instances": [instance]}

                def call(endpoint: str) -> Callable[[], Any]:
                    def send() -> Any:
                        response = client.post(f"/endpoints/{endpoint}/invocations", json=body)
                        response.raise_for_status()

                    return send

                paths: dict[str, Callable[[], Any]] = {
                    "in-process": lambda: model.predict([instance]),
                    "plain": call("plain"),
                    "mirrored": call("mirrored"),
                }
                for fn in paths.values():
                    timed(fn, WARMUP)
                samples: dict[str, list[float]] = {name: [] for name in paths}
                for _ in range(ROUNDS):
                    for name, fn in paths.items():
                        samples[name] += timed(fn, BLOCK)
                time.sleep(0.5)  # the last shadow batch
                mirrored = client.get("/metrics").text
        finally:
            proc.terminate()
            proc.wait(30)
        report(samples, mirrored)


def report(samples: dict[str, list[float]], metrics: str) -> None:
    p50 = {k: pct(v, 0.5) for k, v in samples.items()}
    p99 = {k: pct(v, 0.99) for k, v in samples.items()}
    n = len(samples["plain"])
    print(f"gateway benchmark: {n} sequential requests per path, {ROUNDS} alternating rounds")
    mean = {k: statistics.fmean(v) for k, v in samples.items()}
    print(f"{'path':<12}{'p50 ms':>10}{'p99 ms':>10}{'mean ms':>10}")
    for name in samples:
        print(f"{name:<12}{p50[name]:>10.3f}{p99[name]:>10.3f}{mean[name]:>10.3f}")
    overhead50 = p50["plain"] - p50["in-process"]
    overhead99 = p99["plain"] - p99["in-process"]
    ratio50 = p50["mirrored"] / p50["plain"]
    ratio99 = p99["mirrored"] / p99["plain"]
    print(f"gateway overhead p50 {overhead50:.3f} ms (goal < 1 ms), p99 {overhead99:.3f} ms")
    print(
        f"100% mirror on primary: p50 x{ratio50:.3f} ({(ratio50 - 1) * 100:+.1f} %, goal < +5 %), "
        f"p99 x{ratio99:.3f}, mean x{mean['mirrored'] / mean['plain']:.3f}"
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


if __name__ == "__main__":
    main()
