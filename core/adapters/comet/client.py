"""comet_ml's `API`, built on first use, and its errors as the ports' errors.

comet_ml is imported only here and only when a call needs it (the import takes a third
of a second and, left alone, may switch on remote error tracking): its error tracking and
auto-logging are turned off before the import, and its chatty logger is kept to errors so
that nothing it prints mixes with mmm's output. Its own retries stay as configured
(`COMET_HTTP_SESSION_RETRY_TOTAL`); the worker retries a `TransientError` with backoff.
The API key is passed to comet_ml and never kept in a message or a record.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from core.ports import NotFound, PortError, TransientError

T = TypeVar("T")

# Statuses Comet answers when it is busy, throttling or down: worth asking again.
_PASSING = frozenset({408, 425, 429, 500, 502, 503, 504})


def _quiet_environment() -> None:
    os.environ.setdefault("COMET_ERROR_TRACKING_ENABLE", "false")
    os.environ.setdefault("COMET_DISABLE_AUTO_LOGGING", "1")


class CometClient:
    """One lazily built comet_ml `API` (without its response cache: other processes write
    to the registry too) and the translation of its failures."""

    def __init__(self, api_key: str) -> None:
        self._api_key = api_key
        self._api: Any = None
        self._lock = threading.Lock()

    def api(self) -> Any:
        with self._lock:
            if self._api is None:
                _quiet_environment()
                logging.getLogger("comet_ml").setLevel(logging.ERROR)
                from comet_ml import API

                # Importing comet_ml sets its logger up again: keep it to errors after that.
                logging.getLogger("comet_ml").setLevel(logging.ERROR)
                with translated("connecting to Comet"):
                    self._api = API(api_key=self._api_key, cache=False)  # type: ignore[no-untyped-call]
            return self._api

    def call(self, what: str, fn: Callable[[Any], T]) -> T:
        """`fn(api)`, its failures raised as PortError types; `what` names it in messages."""
        api = self.api()
        with translated(what):
            return fn(api)


def new_experiment(api: Any, workspace: str, project: str, name: str) -> Any:
    """A new experiment in `project` of `workspace`, made through the REST API
    (comet_ml's `APIExperiment`: no streaming, no console capture, no threads)."""
    from comet_ml import APIExperiment

    return APIExperiment(  # type: ignore[no-untyped-call]
        api=api, workspace=workspace, project_name=project, experiment_name=name
    )


def log_model_file(api: Any, experiment_key: str, model: str, path: Path, file_name: str) -> None:
    """Upload `path` as file `file_name` of model `model` logged to the experiment: the
    request `Experiment.log_model` makes (an asset of type `model-element` grouped by the
    model's name), sent through comet_ml's REST client, since `APIExperiment` has no
    `log_model`."""
    params = {
        "experimentKey": experiment_key,
        "fileName": file_name,
        "extension": path.suffix,
        "type": "model-element",
        "groupingName": model,
    }
    with path.open("rb") as data:
        api._client.post_from_endpoint(
            "write/experiment/upload-asset", {}, params=params, files={"file": (file_name, data)}
        )


def _http_status(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    return status if isinstance(status, int) else None


def _reason(exc: BaseException) -> str:
    msg = getattr(exc, "safe_msg", None)
    if msg:
        return str(msg)
    return type(exc).__name__


@contextmanager
def translated(what: str) -> Iterator[None]:
    """Raise comet_ml's and requests' failures inside as NotFound, TransientError or
    PortError, with one line that says what was being done."""
    import requests

    try:
        yield
    except PortError:
        raise
    except (requests.ConnectionError, requests.Timeout) as exc:
        raise TransientError(f"Comet did not answer while {what} ({type(exc).__name__})") from None
    except Exception as exc:
        status = _http_status(exc)
        if status is None:
            if type(exc).__module__.startswith("comet_ml"):
                raise PortError(f"Comet: {what}: {_reason(exc)}") from None
            raise
        if status == 404:
            raise NotFound(f"Comet: {what}: not found ({_reason(exc)})") from None
        if status in _PASSING:
            raise TransientError(
                f"Comet answered HTTP {status} while {what}; waiting on Comet"
            ) from None
        if status in (401, 403):
            raise PortError(
                f"Comet refused the request while {what} (HTTP {status}): check COMET_API_KEY "
                "and the workspace's permissions"
            ) from None
        raise PortError(f"Comet: {what}: HTTP {status}: {_reason(exc)}") from None
