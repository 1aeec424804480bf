"""The golden check of a model only its serving container loads: once its variant is
provisioned, before any traffic shifts to it, each golden case is sent to that variant
alone and compared with the expected output, with the deployment's tolerance.

mmm cannot load such a model itself (core.checks validates it by its files), so the
endpoint is the first place its outputs can be judged. The check only reads: it has
nothing to undo, and a failure undoes the provisioning like a failed golden test.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.domain import Command, Deployment, Library, known
from core.layout import variant_name
from core.ports import PortError, VariantCalls
from core.steps.base import Done, Outcome, Steps, regions_of

if TYPE_CHECKING:
    from core.runtime.golden import GoldenReport


class _Variant:
    """One endpoint variant as a golden-check predictor: a request per case, so a slow model
    (an LLM) stays within one invocation's time limit and a refused case names itself."""

    def __init__(
        self, serving: VariantCalls, endpoint: str, region: str, variant: str, library: Library
    ) -> None:
        self.serving = serving
        self.where = (endpoint, region, variant)
        self.library = library

    def predict(self, instances: list[Any]) -> list[Any]:
        endpoint, region, variant = self.where
        return [self.serving.predict(endpoint, region, variant, [i])[0] for i in instances]


class GoldenSteps(Steps):
    def check_golden(self, d: Deployment, cmd: Command) -> Outcome:
        serving = self.ports.serving
        if not isinstance(serving, VariantCalls):
            raise PortError(
                f"{type(serving).__name__} cannot call one variant of an endpoint, so the "
                f"golden data of {d.model} v{d.version} cannot be checked there"
            )
        staged = d.context.golden_staging
        if staged is None:
            return Done({"passed": True, "summary": "no golden data to check"})
        # Here, not at the top: numpy loads with it, and `mmm status` never needs it.
        from core.runtime.golden import check_golden, read_golden

        self.ws.scratch.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="golden-", dir=self.ws.scratch) as tmp:
            cases = read_golden(self.ports.artifacts.get(staged, Path(tmp) / "golden.jsonl"))
        library = Library(known(d.context.library, "library"))
        name = variant_name(d.model, d.version)
        reports: list[tuple[str, GoldenReport]] = []
        regions = regions_of(d, cmd)
        for region in regions:
            predictor = _Variant(serving, d.endpoint, region, name, library)
            reports.append((region, check_golden(predictor, cases, d.spec.tolerance)))
        failed = [(region, report) for region, report in reports if not report.passed]
        region, shown = failed[0] if failed else reports[0]
        where = f"{name} in {region}" if failed else f"{name} in {', '.join(regions)}"
        return Done({"passed": not failed, "summary": f"{where}: {shown.summary()}"})
