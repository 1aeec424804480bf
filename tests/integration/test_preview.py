"""The preview of an abort says what the abort then does."""

from __future__ import annotations

from pathlib import Path

from core.domain import DeploymentState
from core.preview import preview_abort
from tests.integration.conftest import Files, MakeService, register_two


def test_the_preview_of_an_abort_matches_what_the_abort_then_does(
    make_service: MakeService, model_files: Files, tmp_path: Path
) -> None:
    svc = make_service()
    register_two(svc, model_files)
    assert svc.run(svc.deploy("churn", "1", "churn-scorer")).state is DeploymentState.SUCCEEDED
    spec = tmp_path / "bg.yaml"
    spec.write_text(
        "endpoint: churn-scorer\n"
        "strategy: {kind: blue-green, steps: [10, 50, 100], bake_s: 0}\n"
        "gates: [between_steps]\n"
    )
    d = svc.run(svc.deploy("churn", "2", file=spec))
    assert d.waiting_at == "between_steps"
    live = svc.ports.serving.get_endpoint

    preview = preview_abort(d, live)
    assert preview.possible and preview.in_flight is None
    (endpoint,) = preview.endpoints
    assert endpoint.now == {"churn-v1": 90.0, "churn-v2": 10.0}
    assert endpoint.after == {"churn-v1": 100.0}
    assert preview.undo[0] == "shift:10: put churn-scorer back as it was"
    assert any(line.startswith("merge_change: revert change") for line in preview.undo)
    assert live("churn-scorer", "local") is not None  # nothing changed by looking

    svc.abort(d.id, "changed my mind")
    done = svc.run(svc.get(d.id))
    assert done.state is DeploymentState.ABORTED
    after = live("churn-scorer", "local")
    assert after is not None and {v.name: v.weight for v in after.variants} == endpoint.after
    assert len([e for e in done.events if e.type == "undo_step"]) == len(preview.undo)

    ended = preview_abort(done, live)
    assert not ended.possible and ended.reason == "it has ended (aborted)"
