"""Models that attack the process that loads them, as a hostile pickle would.

`HostileRegressor` is a Ridge regression (sklearn API, 10 features: diabetes)
that, whenever it is loaded (unpickled), first appends one JSON line to its
`record` file: the process id, its parent's id, and the marks a "patch"
model leaves in its process (`marks()`), so a test sees whether an earlier
model's changes reached this process. Then it does its `action`:

- "none": nothing more;
- "print": prints a fake answer on stdout and on stderr, then carries on;
- "exit": `os._exit(3)`, after saying so on stderr;
- "sigkill": SIGKILLs its own process;
- "kill-parent": SIGKILLs the process that forked it (mmm's zygote);
- "hang": sleeps (at most two minutes);
- "patch": changes its process for whatever runs there next: sklearn's
  `Ridge.predict` answers no predictions, and a module global and an
  environment variable are set. It predicts through `Ridge.predict`, so its own
  check fails ("the model gave 0 predictions for N instances").

Defined in its own module so joblib can load it in any process that can
import `tests.support.hostile` (mmm puts its root on a child's PYTHONPATH).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import numpy.typing as npt
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Ridge

Array = npt.NDArray[Any]

__all__ = ["ACTIONS", "MARK", "HostileRegressor", "marks", "read_loads", "train_hostile_regressor"]

ACTIONS = ("none", "print", "exit", "sigkill", "kill-parent", "hang", "patch")
# The name of the module global and of the environment variable a "patch" model sets.
MARK = "HOSTILE_MARK"


def marks() -> dict[str, Any]:
    """What a "patch" model changes, as this process sees it (all falsy when untouched)."""
    import sklearn

    return {
        "env": os.environ.get(MARK),
        "module": getattr(sklearn, MARK, None),
        "ridge": getattr(Ridge.predict, MARK, False),
    }


def _patch() -> None:
    import sklearn

    def no_predictions(self: Ridge, x: Array) -> Array:
        return np.empty(0)

    setattr(no_predictions, MARK, True)
    Ridge.predict = no_predictions
    setattr(sklearn, MARK, "patched")
    os.environ[MARK] = "patched"


class HostileRegressor(RegressorMixin, BaseEstimator):  # type: ignore[misc]
    """Ridge regression that does its `action` when it is loaded."""

    ridge_: Ridge
    n_features_in_: int

    def __init__(self, action: str = "none", record: str = "") -> None:
        self.action = action
        self.record = record

    def fit(self, x: Array, y: Array) -> HostileRegressor:
        self.ridge_ = Ridge(alpha=0.1).fit(x, y)
        self.n_features_in_ = int(np.asarray(x).shape[1])
        return self

    def predict(self, x: Array) -> Array:
        result: Array = self.ridge_.predict(x)
        return result

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        line = {"event": "load", "pid": os.getpid(), "ppid": os.getppid(), "marks": marks()}
        with open(self.record, "a", encoding="utf-8") as f:
            f.write(json.dumps(line) + "\n")
        if self.action == "print":
            fake = json.dumps({"ok": True, "result": 999})
            print(fake, flush=True)
            print(fake, file=sys.stderr, flush=True)
        elif self.action == "exit":
            print("hostile: exiting with 3", file=sys.stderr, flush=True)
            os._exit(3)
        elif self.action == "sigkill":
            os.kill(os.getpid(), signal.SIGKILL)
        elif self.action == "kill-parent":
            os.kill(os.getppid(), signal.SIGKILL)
            time.sleep(120)  # until the kernel kills this process too
        elif self.action == "hang":
            time.sleep(120)
        elif self.action == "patch":
            _patch()


def train_hostile_regressor(dir: Path, action: str, record: Path) -> Path:
    """A HostileRegressor on diabetes (10 features) that records its loads into `record`."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r} (known: {', '.join(ACTIONS)})")
    data = load_diabetes()
    model = HostileRegressor(action, str(record)).fit(data.data, data.target)
    dir.mkdir(parents=True, exist_ok=True)
    tag = hashlib.sha256(str(record).encode()).hexdigest()[:8]
    path = dir / f"hostile-{action}-{tag}.joblib"
    joblib.dump(model, path)
    return path


def read_loads(record: Path) -> list[dict[str, Any]]:
    """Every load recorded, oldest first ([] when the model never loaded)."""
    if not record.exists():
        return []
    return [json.loads(line) for line in record.read_text().splitlines() if line.strip()]
