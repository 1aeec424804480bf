"""`mmm demo`: the whole life of a model on a fresh local workspace, in under a minute.

Train two scikit-learn models on a data set that ships with scikit-learn,
register both with golden data, deploy v1 all-at-once, send it traffic
through the gateway, deploy v2 as a shadow on replayed traffic, show the
analysis, approve as a second person, promote, show where the model is used,
retire v1, and say where everything is.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

import click

from mmm_cli import render

MODEL = "diabetes"
ENDPOINT = "diabetes-scorer"
ENGINEER = "alice"
REVIEWER = "bob"


def _say(title: str) -> None:
    click.echo("")
    click.echo(click.style(f"==> {title}", bold=True))


def _train(folder: Path) -> tuple[Path, Path, Path, Path, Path]:
    """v1 and a retrained v2 (slightly different regularisation), their golden data, replay inputs."""
    import joblib
    import numpy as np
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import Ridge

    data = load_diabetes()
    x, y = data.data, data.target
    files = []
    for version, alpha in ((1, 1.0), (2, 1.02)):
        model = Ridge(alpha=alpha).fit(x, y)
        artifact = folder / f"{MODEL}-v{version}.joblib"
        joblib.dump(model, artifact)
        golden = folder / f"{MODEL}-v{version}.golden.jsonl"
        rows = x[:: len(x) // 25][:25]
        lines = [
            json.dumps({"input": list(map(float, r)), "output": float(p)})
            for r, p in zip(rows, model.predict(rows), strict=True)
        ]
        golden.write_text("\n".join(lines) + "\n")
        files += [artifact, golden]
    rng = np.random.default_rng(7)
    replay = folder / "replay.jsonl"
    picks = x[rng.integers(0, len(x), 800)] + rng.normal(0, 0.002, (800, x.shape[1]))
    replay.write_text("\n".join(json.dumps(list(map(float, r))) for r in picks) + "\n")
    return files[0], files[1], files[2], files[3], replay


def _service(home: Path, actor: str) -> Any:
    from core.bootstrap import build_service

    return build_service(home, actor)


def _run(svc: Any, d: Any, since: int | None = None) -> Any:
    printer = render.ProgressPrinter()
    printer.seen[d.id] = len(d.events) if since is None else since  # older events are not news
    printer(d)
    d = svc.run(d, on_change=printer)
    click.echo(
        f"  -> {d.id} {render.state(d)}" + (f" at gate {d.waiting_at}" if d.waiting_at else "")
    )
    if d.state.value in ("failed", "rolled_back"):
        raise click.ClickException(f"{d.id} {d.state.value}: {d.error}")
    return d


def run_demo(keep_running: bool = False) -> None:
    from core.bootstrap import init_workspace
    from core.gateway.client import invoke
    from core.gateway.process import GatewayProcess

    started = time.monotonic()
    home = Path(tempfile.mkdtemp(prefix="mmm-demo-")) / "workspace"
    _say(f"1. a fresh workspace at {home}")
    init_workspace(home)
    alice = _service(home, ENGINEER)
    bob = _service(home, REVIEWER)

    _say("2. train two models on scikit-learn's diabetes data (no download)")
    art1, gold1, art2, gold2, replay = _train(home.parent)
    click.echo(
        f"  {art1.name}, {art2.name}, golden data for both, {replay.name} for the shadow test"
    )

    _say("3. register v1 and v2 in the local registry")
    for art, gold in ((art1, gold1), (art2, gold2)):
        mv = alice.register(MODEL, art, "sklearn", gold, "demo-team")
        click.echo(f"  {MODEL} v{mv.version} ({mv.library.value}, sha256 {mv.sha256[:12]})")

    _say(f"4. deploy v1 to {ENDPOINT}, all at once")
    _run(alice, alice.deploy(MODEL, "1", ENDPOINT))

    server = GatewayProcess(home, 0).start()  # a child process: model code gets no credentials
    try:
        _say(f"5. send traffic through the gateway at {server.url}")
        import numpy as np

        rows = [json.loads(line) for line in replay.read_text().splitlines()[:200]]
        for i in range(0, len(rows), 10):
            answer = invoke(server.url, ENDPOINT, {"instances": rows[i : i + 10]})
        click.echo(
            f"  200 predictions; last answer from {answer['variant']}: {np.round(answer['predictions'][:3], 1).tolist()} ..."
        )

        _say("6. deploy v2 as a shadow of v1, on replayed traffic")
        spec = home.parent / "shadow.yaml"
        spec.write_text(
            f"endpoint: {ENDPOINT}\n"
            "strategy:\n  kind: shadow\n  min_samples: 500\n"
            f"  traffic: {{replay: {replay}}}\n  auto_approve: false\n  then: all-at-once\n"
            # both variants share this laptop's CPUs here; on separate hosts keep the default
            "analysis: {latency_slack_ms: 250}\n"
        )
        d = _run(alice, alice.deploy(MODEL, "2", file=spec))
        _say("7. the shadow analysis")
        _show_analysis(d.analysis or {})

        _say(f"8. {ENGINEER} may not approve her own deployment; {REVIEWER} approves")
        from core.service import PermissionDenied

        try:
            alice.approve(d.id)
        except PermissionDenied as exc:
            click.echo(f"  refused: {exc}")
        d = bob.approve(d.id)
        d = _run(bob, d, since=max(i for i, e in enumerate(d.events) if e.type == "approved"))
        for _ in range(50):  # the gateway picks up a new configuration within a poll
            answer = invoke(server.url, ENDPOINT, {"instances": rows[:2]})
            if answer["variant"] == f"{MODEL}-v2":
                break
            time.sleep(0.1)
        click.echo(f"  {ENDPOINT} now answers from {answer['variant']}")

        _say(f"9. where {MODEL} is used")
        click.echo(render.usage_table(alice.usage(MODEL)))

        _say("10. retire v1 (it serves nowhere now)")
        _run(alice, alice.retire(MODEL, "1"))
        click.echo(render.models_table(alice.models()))

        _say(f"done in {time.monotonic() - started:.0f} s. Where everything is:")
        for label, path in [
            ("workspace", home),
            ("settings", home / "mmm.yaml"),
            ("state (SQLite)", home / "state.db"),
            ("buckets", home / "buckets"),
            ("application repository (git)", home / "repo"),
            ("shadow captures", home / "buckets" / "captures"),
            ("analysis charts", home / "buckets" / "reports"),
        ]:
            click.echo(f"  {label:<30} {path}")
        click.echo(
            f"\n  look around:  MMM_HOME={home} mmm status    (and mmm models, mmm usage {MODEL})"
        )
        if keep_running:
            click.echo(f"  gateway still up at {server.url}; Ctrl-C stops it")
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass
    finally:
        server.stop()


def _show_analysis(analysis: dict[str, Any]) -> None:
    text = analysis.get("text") or f"{analysis.get('verdict')}: {analysis.get('summary', '')}"
    click.echo("\n".join(f"  {line}" for line in str(text).splitlines()))
    for uri in analysis.get("report", []):
        click.echo(f"  chart: {uri}")
