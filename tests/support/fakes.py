"""Recording fakes of the ports, for tests that need to see or break what mmm asks for.

They keep their state in a JSON file when given one, so a worker in another
process (the crash tests) and the test itself see the same endpoints and alarms; a
change to the file is made under a lock on it (`flock`), so several worker processes
may share one.
Failures are injected per method: `fail_next(method, error, times)`.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from core.layout import alarm_name
from core.ports import (
    AlarmRef,
    AlarmState,
    CapturedPair,
    Change,
    CheckResult,
    EndpointConfig,
    PortError,
    VariantFigures,
)
from core.spec import Alarms


class _Recorder:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self.calls: list[tuple[str, Any]] = []
        self._failures: dict[str, list[PortError]] = {}
        self._threads = threading.RLock()

    @contextmanager
    def _changing(self) -> Iterator[None]:
        """Held while the state is read, changed and written: by one thread of one process."""
        with self._threads:
            if self.path is None:
                yield
                return
            with self.path.with_suffix(".lock").open("a") as held:
                fcntl.flock(held, fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(held, fcntl.LOCK_UN)

    def fail_next(self, method: str, error: PortError, times: int = 1) -> None:
        self._failures.setdefault(method, []).extend([error] * times)

    def _enter(self, method: str, arg: Any) -> None:
        self.calls.append((method, arg))
        pending = self._failures.get(method)
        if pending:
            raise pending.pop(0)

    def _load(self) -> dict[str, Any]:
        if self.path is None or not self.path.exists():
            return getattr(self, "_mem", {})
        return dict(json.loads(self.path.read_text()))

    def _save(self, data: dict[str, Any]) -> None:
        if self.path is None:
            self._mem = data
            return
        tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data))
        tmp.replace(self.path)


class RecordingServing(_Recorder):
    """Endpoints as plain data; captured pairs are whatever the test puts in `pairs`, and a
    variant called alone answers with what `models[variant]` gives for each input."""

    def __init__(self, path: Path | None = None) -> None:
        super().__init__(path)
        self.pairs: dict[str, list[CapturedPair]] = {}
        self.models: dict[str, Callable[[Any], Any]] = {}

    def _key(self, name: str, region: str) -> str:
        return f"{name}@{region}"

    def get_endpoint(self, name: str, region: str) -> EndpointConfig | None:
        raw = self._load().get(self._key(name, region))
        return EndpointConfig.model_validate(raw) if raw else None

    def endpoints(self) -> list[EndpointConfig]:
        return [EndpointConfig.model_validate(v) for v in self._load().values()]

    def apply(self, config: EndpointConfig) -> EndpointConfig | None:
        with self._changing():
            self._enter("apply", config)
            data = self._load()
            key = self._key(config.name, config.region)
            previous = data.get(key)
            data[key] = config.model_dump(mode="json")
            self._save(data)
        return EndpointConfig.model_validate(previous) if previous else None

    def delete(self, name: str, region: str) -> bool:
        with self._changing():
            self._enter("delete", (name, region))
            data = self._load()
            gone = data.pop(self._key(name, region), None)
            self._save(data)
        return gone is not None

    def settled(self, name: str, region: str, config: EndpointConfig | None) -> str | None:
        return None

    def captured(self, name: str, region: str, shadow_variant: str) -> Iterator[CapturedPair]:
        yield from self.pairs.get(shadow_variant, [])

    def replay(self, name: str, region: str, requests: list[tuple[str, Any]]) -> int:
        self._enter("replay", (name, len(requests)))
        return len(requests)

    def predict(self, name: str, region: str, variant: str, inputs: list[Any]) -> list[Any]:
        self._enter("predict", (name, region, variant, len(inputs)))
        config = self.get_endpoint(name, region)
        if config is None or all(v.name != variant for v in config.variants):
            raise PortError(f"endpoint {name} ({region}) has no variant {variant}")
        if variant not in self.models:
            raise PortError(f"no model answers for variant {variant}: set models[{variant!r}]")
        return [self.models[variant](i) for i in inputs]


class RecordingMonitor(_Recorder):
    """Alarms as names with thresholds; `fire(name, value)` makes one fire."""

    def __init__(self, path: Path | None = None) -> None:
        super().__init__(path)
        self.traffic: dict[tuple[str, str, str], tuple[int, int, float | None]] = {}

    def ensure_alarms(self, endpoint: str, region: str, variant: str, alarms: Alarms) -> list[str]:
        with self._changing():
            self._enter("ensure_alarms", (endpoint, variant))
            names = [alarm_name(endpoint, variant, m) for m in ("error_rate", "p99_latency_ms")]
            data = self._load()
            for name in names:
                alarm = data.setdefault(name, {"firing": False, "value": 0.0, "regions": []})
                alarm["regions"] = sorted({*alarm.get("regions", []), region})
            self._save(data)
            return names

    def delete_alarms(self, names: list[str], region: str) -> None:
        with self._changing():
            self._enter("delete_alarms", names)
            data = self._load()
            for name in names:
                left = [r for r in data.get(name, {}).get("regions", []) if r != region]
                if left:
                    data[name]["regions"] = left
                else:
                    data.pop(name, None)
            self._save(data)

    def fire(self, name: str, value: float) -> None:
        with self._changing():
            data = self._load()
            data[name] = {**data.get(name, {}), "firing": True, "value": value}
            self._save(data)

    def evaluate(
        self, names: list[str], region: str, since: float | None = None
    ) -> list[AlarmState]:
        data = self._load()
        return [
            AlarmState(
                name=n,
                metric="error_rate" if n.endswith("error-rate") else "p99_latency_ms",
                value=data[n]["value"],
                threshold=0.05,
                firing=data[n]["firing"],
            )
            for n in names
            if n in data
        ]

    def alarms(self, prefix: str = "") -> list[AlarmRef]:
        return sorted(
            AlarmRef(region, name)
            for name, alarm in self._load().items()
            if name.startswith(prefix)
            for region in alarm.get("regions", ["local"])
        )

    def figures(
        self, endpoint: str, region: str, variant: str, role: str, window_s: float = 60.0
    ) -> VariantFigures:
        """Traffic the test put in `traffic[(endpoint, variant, role)]`: (requests, errors, p99)."""
        requests, errors, p99 = self.traffic.get((endpoint, variant, role), (0, 0, None))
        return VariantFigures.counted(
            endpoint, region, variant, role, window_s, requests, errors, p99
        )


class RecordingCodeHost(_Recorder):
    """A repository as a dict of files on main; changes merge by copying their files."""

    def __init__(self, path: Path | None = None, checks_pass: bool = True) -> None:
        super().__init__(path)
        self.checks_pass = checks_pass

    def open_change(
        self, change_id: str, files: dict[str, str], deletions: list[str], title: str, author: str
    ) -> Change:
        with self._changing():
            self._enter("open_change", change_id)
            data = self._load()
            data.setdefault("changes", {})[change_id] = {"files": files, "deletions": deletions}
            self._save(data)
            return Change(id=change_id, url=f"fake://{change_id}", head=f"head-{change_id}")

    def checks(self, change: Change) -> CheckResult | None:
        self._enter("checks", change.id)
        return CheckResult(
            passed=self.checks_pass, summary="ok" if self.checks_pass else "1 failed"
        )

    def merge(self, change: Change) -> Change:
        with self._changing():
            self._enter("merge", change.id)
            data = self._load()
            main = data.setdefault("main", {})
            spec = data["changes"][change.id]
            main.update(spec["files"])
            for path in spec["deletions"]:
                main.pop(path, None)
            self._save(data)
            return change.model_copy(update={"merged_sha": f"merge-{change.id}"})

    def revert(self, change: Change, author: str) -> str | None:
        with self._changing():
            self._enter("revert", change.id)
            data = self._load()
            spec = data.get("changes", {}).get(change.id)
            if spec and change.merged_sha:
                for path in spec["files"]:
                    data.get("main", {}).pop(path, None)
                self._save(data)
                return f"revert-{change.id}"
            return None

    def files(self, prefix: str = "") -> list[str]:
        return sorted(p for p in self._load().get("main", {}) if p.startswith(prefix))

    def read(self, path: str) -> str | None:
        value = self._load().get("main", {}).get(path)
        return str(value) if value is not None else None
