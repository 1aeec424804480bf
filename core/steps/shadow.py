"""Steps of a shadow test: collect paired predictions (live or replayed), analyze them,
chart the analysis; and the replay file a replayed test reads."""

from __future__ import annotations

import json
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

from core.domain import Command, Deployment
from core.events import AnalysisDone
from core.json_lines import json_lines
from core.layout import variant_name
from core.ports import InvalidInput, Ports
from core.spec import Replay, Shadow
from core.steps.base import Done, NotYet, Outcome, Steps, since
from core.strict_json import strict_loads


def shadow_variant(d: Deployment) -> str:
    return variant_name(d.model, d.version)


def clear_captures(ports: Ports, d: Deployment) -> None:
    """Delete the pairs captured for this deployment's shadow variant: a shadow test begins
    with none."""
    prefix = f"{d.endpoint}/{shadow_variant(d)}/"
    for uri in ports.artifacts.list("captures", prefix):
        ports.artifacts.delete(uri)


class ShadowSteps(Steps):
    def _pairs(self, d: Deployment) -> list[dict[str, Any]]:
        pairs: list[dict[str, Any]] = []
        for region in d.regions:
            pairs += [
                p.model_dump()
                for p in self.ports.serving.captured(d.endpoint, region, shadow_variant(d))
            ]
        return pairs

    def collect(self, d: Deployment, cmd: Command) -> Outcome:
        strategy = d.spec.strategy
        assert isinstance(strategy, Shadow)
        if isinstance(strategy.traffic, Replay):
            inputs = read_replay(Path(strategy.traffic.replay))
            for region in d.regions:
                # Run again after a crash, it sends only what was not captured yet: production
                # answers each input once (start_shadow emptied the shadow's captures).
                captured = {
                    p.request_id
                    for p in self.ports.serving.captured(d.endpoint, region, shadow_variant(d))
                }
                requests = [
                    (request_id, instance)
                    for request_id, instance in replay_requests(d, inputs)
                    if request_id not in captured
                ]
                if requests:
                    self.ports.serving.replay(d.endpoint, region, requests)
            samples = len(self._pairs(d))
            return Done({"samples": samples, "summary": f"{samples} paired predictions (replayed)"})
        now = self.clock()
        target = d.context.min_samples or strategy.min_samples
        samples = len(self._pairs(d))
        started = self._started(d, cmd, now)
        progress = since(started, strategy.max_wait_s).model_copy(
            update={"samples": samples, "target": target}
        )
        if samples >= target or now >= started + timedelta(seconds=strategy.max_wait_s):
            return Done({"samples": samples, "summary": f"{samples} paired predictions"})
        return NotYet(max(now + timedelta(seconds=0.5), self._look_again()), progress)

    def analyze(self, d: Deployment, cmd: Command) -> Outcome:
        from core.analysis import PairedSample, analyze, render_text

        records = self._pairs(d)
        if not records:
            verdict: dict[str, Any] = {
                "verdict": "inconclusive",
                "samples": 0,
                "summary": "no paired predictions were captured",
                "needed_samples": None,
            }
        else:
            try:
                sample = PairedSample.from_records(records)
            except ValueError as exc:
                raise InvalidInput(f"captured predictions cannot be analysed: {exc}") from None
            # Each new look at an inconclusive shadow spends less alpha (see docs/analysis.md).
            look = 1 + sum(1 for e in d.events if isinstance(e, AnalysisDone))
            result = analyze(sample, d.spec.analysis, look=look)
            verdict = result.to_public()
            verdict["text"] = render_text(sample, result)  # for terminals and chat
            verdict["report"] = self._report(d, sample, result)
        return Done(
            {"analysis": verdict, "summary": f"{verdict['verdict']} on {verdict['samples']} pairs"}
        )

    def _report(self, d: Deployment, sample: Any, result: Any) -> list[str]:
        """Charts of the analysis in the reports bucket; best effort, never fails the step."""
        try:
            from core.analysis import render_charts
        except ImportError:
            return []
        self.ws.scratch.mkdir(parents=True, exist_ok=True)
        uris = []
        with tempfile.TemporaryDirectory(prefix="report-", dir=self.ws.scratch) as tmp:
            try:
                paths = render_charts(sample, result, Path(tmp))
            except Exception:  # charts are a convenience: the verdict stands without them
                return []
            for path in paths:
                uris.append(self.ports.artifacts.put("reports", f"{d.id}/{path.name}", path))
        return uris


def replay_requests(d: Deployment, inputs: list[Any]) -> list[tuple[str, Any]]:
    """Each replayed input with a request id that is the same each time it is replayed."""
    return [(f"replay-{d.id}-{i}", instance) for i, instance in enumerate(inputs)]


def _not_json_value(name: str) -> ValueError:
    return ValueError(f"{name} is not a JSON value")


def read_replay(path: Path) -> list[Any]:
    """Inputs for a replayed shadow test: JSON Lines of feature vectors or {"input": ...}."""
    if not path.is_file():
        raise InvalidInput(f"{path}: replay file not found")
    inputs = []
    for number, line in json_lines(path):
        try:
            item = strict_loads(line, _not_json_value)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"{path}: line {number}: not JSON ({exc.msg})") from None
        except (ValueError, RecursionError) as exc:  # NaN, 4300+ digits, nested too deep
            reason = str(exc).split(";")[0]
            raise InvalidInput(f"{path}: line {number}: not JSON mmm can send ({reason})") from None
        if isinstance(item, dict):
            if "input" not in item:
                raise InvalidInput(
                    f"{path}: line {number}: expected a list or an object with 'input'"
                )
            item = item["input"]
        inputs.append(item)
    if not inputs:
        raise InvalidInput(f"{path}: replay file has no inputs")
    return inputs
