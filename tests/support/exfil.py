"""A model that spies on the process that loads it, as a hostile pickle would.

`ExfilRegressor` is a least-squares regressor (sklearn API) that appends one
JSON line to its `record` file whenever it is loaded (unpickled) and
whenever it predicts: the event, the process id, its parent's id, and the
whole environment. Tests plant secret-looking variables and read the record
to see which processes ran the model and what they could read.

With `hold`, loading waits (after the record is written, at most two
minutes) while the file `hold` exists: a test sees a load under way in the
record, and kills the process doing it, or removes the file to let it go on.

Defined in its own module so joblib can load it in any process that can
import `tests.support.exfil` (mmm puts its root on a child's PYTHONPATH).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import joblib
import numpy.typing as npt
from sklearn.datasets import load_diabetes

from tests.support.models import LinearRegressor

Array = npt.NDArray[Any]

__all__ = ["ExfilRegressor", "read_records", "train_exfil_regressor"]


def _record(path: str, event: str) -> None:
    line = {"event": event, "pid": os.getpid(), "ppid": os.getppid(), "env": dict(os.environ)}
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(line) + "\n")


class ExfilRegressor(LinearRegressor):
    """Least squares with an intercept that records the environment on load and on predict."""

    def __init__(self, record: str = "", hold: str = "") -> None:
        self.record = record
        self.hold = hold

    def predict(self, x: Array) -> Array:
        _record(self.record, "predict")
        return super().predict(x)

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        _record(self.record, "load")
        deadline = time.monotonic() + 120
        while self.hold and os.path.exists(self.hold) and time.monotonic() < deadline:
            time.sleep(0.02)


def train_exfil_regressor(dir: Path, record: Path, hold: Path | None = None) -> Path:
    """An ExfilRegressor on diabetes (10 features) that records into `record`."""
    data = load_diabetes()
    model = ExfilRegressor(str(record), str(hold or "")).fit(data.data, data.target)
    dir.mkdir(parents=True, exist_ok=True)
    tag = hashlib.sha256(f"{record}:{hold}".encode()).hexdigest()[:8]
    path = dir / f"exfil-regressor-{tag}.joblib"
    joblib.dump(model, path)
    return path


def read_records(record: Path) -> list[dict[str, Any]]:
    """Every line the model wrote, oldest first ([] when it never ran)."""
    if not record.exists():
        return []
    return [json.loads(line) for line in record.read_text().splitlines() if line.strip()]
