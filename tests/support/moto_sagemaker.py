"""What moto 5.2 lacks on SageMaker, added to its in-process backend (the threaded server
serves the additions too). Installed once by tests.support.moto_server.

moto makes endpoints InService at once, has no UpdateEndpoint (its server answers 500),
reads a variant weight of 0 back as missing, and wipes a variant's instance count on a
weights update without one. Here:

- CreateEndpoint leaves the endpoint `Creating` for `looks` DescribeEndpoint calls, then
  `InService`.
- UpdateEndpoint (added) and UpdateEndpointWeightsAndCapacities leave it `Updating` for
  `looks` calls, with `PendingDeploymentSummary.EndpointConfigName` naming the new config
  while a config changes; then the change takes effect. `LastModifiedTime` moves with
  every change, as on AWS.
- `fail_next_update(reason)` makes the next UpdateEndpoint roll back silently, as SageMaker
  sometimes does: `Updating`, then `RollingBack`, then `InService` on the OLD config with
  `FailureReason` = reason (which may be empty).
- A weight of 0 reads back as 0, and a weights update keeps the instance count.

Not added: shadow variants (still dropped), `Deleting` (an endpoint is gone at once),
alarm evaluation (CloudWatch alarms are put in ALARM with `set_alarm_state`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from moto.core.utils import utcnow
from moto.sagemaker import models as sm_models
from moto.sagemaker import responses as sm_responses


@dataclass
class _Change:
    kind: str  # "create" | "update" | "weights"
    looks_left: int
    old_config: str | None = None
    new_config: str | None = None
    new_variants: list[dict[str, Any]] | None = None
    weights: list[dict[str, Any]] | None = None
    fail: str | None = None  # roll back with this reason
    rolling_back: bool = False


@dataclass
class SageMakerLifecycle:
    """The switches of the extension; one per process (moto's state is global too)."""

    looks: int = 2  # DescribeEndpoint calls that see a transitional status
    changes: dict[tuple[str, str, str], _Change] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    lock: threading.RLock = field(default_factory=threading.RLock)

    def reset(self) -> None:
        with self.lock:
            self.looks = 2
            self.changes.clear()
            self.failures.clear()

    def fail_next_update(self, reason: str = "") -> None:
        """The next UpdateEndpoint rolls back silently (InService on the old config)."""
        with self.lock:
            self.failures.append(reason)


LIFECYCLE = SageMakerLifecycle()
_installed = False


def _key(backend: Any, name: str) -> tuple[str, str, str]:
    return (backend.account_id, backend.region_name, name)


def _variants(config: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for raw in config["ProductionVariants"]:
        variant: dict[str, Any] = {"VariantName": raw["VariantName"]}
        count = raw.get("InitialInstanceCount")
        if count is not None:
            variant["CurrentInstanceCount"] = variant["DesiredInstanceCount"] = count
        weight = raw.get("InitialVariantWeight")
        if weight is not None:  # 0 included (moto drops it)
            variant["CurrentWeight"] = variant["DesiredWeight"] = float(weight)
        out.append(variant)
    return out


def _advance(backend: Any, name: str) -> None:
    """One look at a changing endpoint: count down, then make the change (or roll back)."""
    endpoint = backend.endpoints.get(name)
    change = LIFECYCLE.changes.get(_key(backend, name))
    if endpoint is None or change is None:
        return
    if change.looks_left > 0:
        change.looks_left -= 1
        return
    if change.fail is not None and not change.rolling_back:
        change.rolling_back = True
        endpoint.endpoint_status = "RollingBack"
        endpoint.last_modified_time = utcnow()
        return
    if change.fail is not None:
        endpoint.failure_reason = change.fail or None
    elif change.kind == "update":
        endpoint.endpoint_config_name = change.new_config
        endpoint.production_variants = change.new_variants
        endpoint.failure_reason = None
    elif change.kind == "weights":
        for wanted in change.weights or []:
            for variant in endpoint.production_variants:
                if variant["VariantName"] == wanted["VariantName"]:
                    if "DesiredWeight" in wanted:
                        variant["CurrentWeight"] = variant["DesiredWeight"] = float(
                            wanted["DesiredWeight"]
                        )
                    if "DesiredInstanceCount" in wanted:
                        variant["CurrentInstanceCount"] = variant["DesiredInstanceCount"] = wanted[
                            "DesiredInstanceCount"
                        ]
    endpoint.endpoint_status = "InService"
    endpoint.last_modified_time = utcnow() + timedelta(microseconds=1)
    del LIFECYCLE.changes[_key(backend, name)]


def install() -> None:
    """Patch moto's SageMaker backend and responses (once per process)."""
    global _installed
    if _installed:
        return
    _installed = True
    backend_cls = sm_models.SageMakerModelBackend
    original_create = backend_cls.create_endpoint
    original_describe = backend_cls.describe_endpoint
    original_delete = backend_cls.delete_endpoint

    def create_endpoint(self: Any, endpoint_name: str, endpoint_config_name: str, tags: Any) -> Any:
        with LIFECYCLE.lock:
            endpoint = original_create(self, endpoint_name, endpoint_config_name, tags)
            config = self.describe_endpoint_config(endpoint_config_name)
            endpoint.production_variants = _variants(config)
            endpoint.endpoint_status = "Creating"
            LIFECYCLE.changes[_key(self, endpoint_name)] = _Change("create", LIFECYCLE.looks)
            return endpoint

    def describe_endpoint(self: Any, endpoint_name: str) -> dict[str, Any]:
        with LIFECYCLE.lock:
            _advance(self, endpoint_name)
            response: dict[str, Any] = original_describe(self, endpoint_name)
            change = LIFECYCLE.changes.get(_key(self, endpoint_name))
            if change is not None and change.kind == "update" and not change.rolling_back:
                response["PendingDeploymentSummary"] = {
                    "EndpointConfigName": change.new_config,
                    "StartTime": utcnow(),
                }
            return response

    def delete_endpoint(self: Any, endpoint_name: str) -> None:
        with LIFECYCLE.lock:
            original_delete(self, endpoint_name)
            LIFECYCLE.changes.pop(_key(self, endpoint_name), None)

    def _busy(self: Any, endpoint_name: str) -> Any:
        endpoint = self.endpoints.get(endpoint_name)
        if endpoint is None:
            arn = sm_models.FakeEndpoint.arn_formatter(
                endpoint_name, self.account_id, self.region_name
            )
            raise sm_models.ValidationError(message=f"Could not find endpoint '{arn}'.")
        if endpoint.endpoint_status != "InService":
            raise sm_models.ValidationError(
                message=f"Cannot update in-progress endpoint '{endpoint.arn}'."
            )
        return endpoint

    def update_endpoint(self: Any, endpoint_name: str, endpoint_config_name: str) -> str:
        with LIFECYCLE.lock:
            endpoint = _busy(self, endpoint_name)
            config = self.describe_endpoint_config(endpoint_config_name)
            fail = LIFECYCLE.failures.pop(0) if LIFECYCLE.failures else None
            LIFECYCLE.changes[_key(self, endpoint_name)] = _Change(
                "update",
                LIFECYCLE.looks,
                old_config=endpoint.endpoint_config_name,
                new_config=endpoint_config_name,
                new_variants=_variants(config),
                fail=fail,
            )
            endpoint.endpoint_status = "Updating"
            endpoint.last_modified_time = utcnow()
            return str(endpoint.arn)

    def update_weights(
        self: Any, endpoint_name: str, desired_weights_and_capacities: list[dict[str, Any]]
    ) -> str:
        with LIFECYCLE.lock:
            endpoint = _busy(self, endpoint_name)
            names = {v["VariantName"] for v in endpoint.production_variants}
            for wanted in desired_weights_and_capacities:
                if wanted.get("VariantName") not in names:
                    raise sm_models.ValidationError(
                        message=f'The variant name(s) "{wanted.get("VariantName")}" is/are '
                        f"not present within endpoint configuration "
                        f'"{endpoint.endpoint_config_name}".'
                    )
            LIFECYCLE.changes[_key(self, endpoint_name)] = _Change(
                "weights", LIFECYCLE.looks, weights=list(desired_weights_and_capacities)
            )
            endpoint.endpoint_status = "Updating"
            endpoint.last_modified_time = utcnow()
            return str(endpoint.arn)

    backend_cls.create_endpoint = create_endpoint  # type: ignore[method-assign]
    backend_cls.describe_endpoint = describe_endpoint  # type: ignore[method-assign]
    backend_cls.delete_endpoint = delete_endpoint  # type: ignore[method-assign]
    backend_cls.update_endpoint = update_endpoint  # type: ignore[attr-defined]
    backend_cls.update_endpoint_weights_and_capacities = update_weights  # type: ignore[method-assign]

    def update_endpoint_response(self: Any) -> Any:
        arn = self.sagemaker_backend.update_endpoint(
            endpoint_name=self._get_param("EndpointName"),
            endpoint_config_name=self._get_param("EndpointConfigName"),
        )
        return sm_responses.ActionResult({"EndpointArn": arn})

    sm_responses.SageMakerResponse.update_endpoint = update_endpoint_response  # type: ignore[attr-defined]
