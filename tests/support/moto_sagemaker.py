"""What moto 5.2 lacks on SageMaker, added to its in-process backend (the threaded server
serves the additions too). Installed once by tests.support.moto_server.

moto makes endpoints InService at once, has no UpdateEndpoint (its server answers 500),
reads a variant weight of 0 back as missing, and wipes a variant's instance count on a
weights update without one. Here:

- CreateEndpoint leaves the endpoint `Creating` for `looks` DescribeEndpoint calls, then
  `InService`.
- UpdateEndpoint (added) and UpdateEndpointWeightsAndCapacities leave it `Updating` for
  `looks` calls, with `PendingDeploymentSummary.EndpointConfigName` naming the new config
  while a config changes, and the variants' `DesiredWeight` and `DesiredInstanceCount`
  showing what a weights update asked for (their `Current*` values do not move yet); then
  the change takes effect. `LastModifiedTime` moves with
  every change, as on AWS.
- `fail_next_update(reason, after=0)` makes the next UpdateEndpoint (or the one after
  `after` more) roll back silently, as SageMaker
  sometimes does: `Updating`, then `RollingBack`, then `InService` on the OLD config with
  `FailureReason` = reason (which may be empty).
- An endpoint config takes SageMaker's newer GPU instance types (ml.g5, ml.g6, ml.g6e),
  which moto 5.2's list predates.
- A weight of 0 reads back as 0, and a weights update keeps the instance count.
- UpdateEndpoint with `RetainAllVariantProperties` keeps, for each variant the new config
  shares with the running endpoint, its instance count and weight, less those named in
  `ExcludeRetainedVariantProperties` (`DataCaptureConfig` is always the new config's here).
- CreateEndpointConfig keeps `ShadowProductionVariants` (moto drops them), so
  DescribeEndpointConfig returns them with `DataCaptureConfig`; as SageMaker, a config with
  a shadow must hold exactly one production and one shadow variant, names unique, and its
  models must exist (ValidationException otherwise).
- The runtime's InvokeEndpoint, for an endpoint the SageMaker backend holds, answers from
  `LIFECYCLE.responders` (variant name -> `Callable[[bytes], bytes]`: request body in,
  answer body out, `application/json`): a production variant is chosen by its current
  weight, its answer returned with `InvokedProductionVariant`; a config's shadow is asked
  too, its answer captured and never returned. `TargetVariant` picks the production variant
  whatever its weight (one the endpoint lacks is a ValidationError). A responder that
  raises answers SageMaker's `ModelError` (424) with its message, as a container's error
  reaches the caller; a variant without a responder, or no variant with weight, answers a
  ValidationError naming it. For an
  endpoint the backend does not hold, moto's canned answers stay (`/moto-api/static/
  sagemaker/endpoint-results`).
- With `DataCaptureConfig.EnableCapture`, each invocation writes, per variant that answered
  (production's and the shadow's), one record in SageMaker's format to
  `<DestinationS3Uri>/<endpoint>/<variant>/yyyy/mm/dd/hh/<uuid>.jsonl` (UTC hour), through
  moto's S3 backend: `captureData.endpointInput`/`endpointOutput` as `CaptureOptions` ask,
  each `{observedContentType, mode, data, encoding}` with encoding `JSON` or `CSV` for the
  content types `CaptureContentTypeHeader` lists, else `BASE64`; `eventMetadata` with
  `eventId`, the caller's `inferenceId` (when it gave one) and `inferenceTime`;
  `eventVersion` "0". A missing destination bucket answers a ValidationError (SageMaker
  would drop the capture silently; a test should hear of it). Every request is mirrored and
  captured: `InitialSamplingPercentage` and the shadow's weight are kept, not applied.

Not added: `Deleting` (an endpoint is gone at once), ShadowProductionVariants in
DescribeEndpoint, alarm evaluation (CloudWatch alarms are put in ALARM with
`set_alarm_state`).
"""

from __future__ import annotations

import base64
import json
import random
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import unquote

from moto.core.exceptions import JsonRESTError
from moto.core.responses import ActionResult
from moto.core.utils import utcnow
from moto.sagemaker import models as sm_models
from moto.sagemaker import responses as sm_responses
from moto.sagemaker.exceptions import ValidationError
from moto.sagemakerruntime import responses as runtime_responses
from moto.utilities.utils import get_partition

Responder = Callable[[bytes], bytes]


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
    failures: list[str | None] = field(default_factory=list)  # None: this one goes through
    responders: dict[str, Responder] = field(default_factory=dict)  # by variant name
    rng: random.Random = field(default_factory=random.Random)  # picks a production variant
    lock: threading.RLock = field(default_factory=threading.RLock)

    def reset(self) -> None:
        with self.lock:
            self.looks = 2
            self.changes.clear()
            self.failures.clear()
            self.responders.clear()

    def fail_next_update(self, reason: str = "", after: int = 0) -> None:
        """The next UpdateEndpoint (or the one after `after` more) rolls back silently
        (InService on the old config)."""
        with self.lock:
            self.failures += [None] * after + [reason]


LIFECYCLE = SageMakerLifecycle()
_NEWER_GPUS = re.compile(r"^ml\.(g5|g6|g6e)\.(x|2x|4x|8x|12x|16x|24x|48x)large$")
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


def _retain(
    new: list[dict[str, Any]], running: list[dict[str, Any]], retained: frozenset[str]
) -> list[dict[str, Any]]:
    """`new` variants with the `retained` properties of the running ones of the same name
    (UpdateEndpoint's RetainAllVariantProperties, less ExcludeRetainedVariantProperties)."""
    now = {v["VariantName"]: v for v in running}
    for variant in new:
        old = now.get(variant["VariantName"])
        if old is None:
            continue
        if "DesiredInstanceCount" in retained and "CurrentInstanceCount" in old:
            variant["CurrentInstanceCount"] = variant["DesiredInstanceCount"] = old[
                "CurrentInstanceCount"
            ]
        if "DesiredWeight" in retained and "CurrentWeight" in old:
            variant["CurrentWeight"] = variant["DesiredWeight"] = old["CurrentWeight"]
    return new


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


def _check_shadow(production: list[dict[str, Any]], shadow: list[dict[str, Any]]) -> None:
    """SageMaker's rule for a config with a shadow variant."""
    if not shadow:
        return
    names = [v.get("VariantName") for v in [*production, *shadow]]
    if len(production) != 1 or len(shadow) != 1 or len(set(names)) != len(names):
        raise ValidationError(
            message="An endpoint config with ShadowProductionVariants must have exactly one "
            f"production and one shadow variant with unique names (got {names})"
        )


# ---------------------------------------------------------------- runtime


def _refuse(message: str) -> JsonRESTError:
    return JsonRESTError("ValidationError", f"moto_sagemaker: {message}")


def _pick(endpoint: Any) -> str:
    """A production variant, drawn by current weight as SageMaker routes."""
    variants = [v for v in endpoint.production_variants if float(v.get("CurrentWeight") or 0)]
    if not variants:
        raise _refuse(f"endpoint {endpoint.endpoint_name} has no variant with weight")
    weights = [float(v["CurrentWeight"]) for v in variants]
    return str(LIFECYCLE.rng.choices(variants, weights)[0]["VariantName"])


class _ModelError(JsonRESTError):
    """What SageMaker answers when the container answered an error."""

    code = 424


def _answer(variant: str, body: bytes) -> bytes:
    responder = LIFECYCLE.responders.get(variant)
    if responder is None:
        raise _refuse(
            f"no responder for variant {variant!r}: set LIFECYCLE.responders[{variant!r}]"
        )
    try:
        return responder(body)
    except Exception as exc:
        message = f'Received client error (400) from primary with message "{exc}"'
        raise _ModelError("ModelError", message) from exc


def _captured(mode: str, kind: str, body: bytes, header: dict[str, Any]) -> dict[str, Any]:
    """One side of a capture record, encoded as SageMaker encodes it."""
    base = kind.split(";")[0].strip()
    if base in (header.get("JsonContentTypes") or []):
        data, encoding = body.decode(), "JSON"
    elif base in (header.get("CsvContentTypes") or []):
        data, encoding = body.decode(), "CSV"
    else:
        data, encoding = base64.b64encode(body).decode(), "BASE64"
    return {"observedContentType": kind, "mode": mode, "data": data, "encoding": encoding}


@dataclass(frozen=True)
class _Invocation:
    account: str
    region: str
    endpoint: str
    inference_id: str | None
    request_type: str
    request: bytes
    target: str | None = None  # TargetVariant


def _capture(call: _Invocation, config: dict[str, Any], variant: str, answer: bytes) -> None:
    """Write the variant's record of the call where SageMaker would."""
    from moto.s3.exceptions import MissingBucket
    from moto.s3.models import s3_backends

    modes = {o.get("CaptureMode") for o in config.get("CaptureOptions") or []}
    header = config.get("CaptureContentTypeHeader") or {}
    data: dict[str, Any] = {}
    if "Input" in modes:
        data["endpointInput"] = _captured("INPUT", call.request_type, call.request, header)
    if "Output" in modes:
        data["endpointOutput"] = _captured("OUTPUT", "application/json", answer, header)
    now = utcnow()
    meta = {"eventId": str(uuid.uuid4()), "inferenceTime": now.strftime("%Y-%m-%dT%H:%M:%SZ")}
    if call.inference_id:
        meta["inferenceId"] = call.inference_id
    line = json.dumps({"captureData": data, "eventMetadata": meta, "eventVersion": "0"})
    bucket, _, prefix = str(config["DestinationS3Uri"]).removeprefix("s3://").partition("/")
    parts = [prefix.strip("/"), call.endpoint, variant, now.strftime("%Y/%m/%d/%H")]
    key = "/".join([p for p in parts if p] + [f"{uuid.uuid4()}.jsonl"])
    s3 = s3_backends[call.account][get_partition(call.region)]
    try:
        s3.put_object(bucket, key, (line + "\n").encode())
    except MissingBucket:
        raise _refuse(f"the data capture bucket {bucket!r} does not exist") from None


def _invoke(call: _Invocation, endpoint: Any, config: Any) -> tuple[str, bytes]:
    """The production variant that answered and its answer; the shadow answers too."""
    with LIFECYCLE.lock:
        variant = call.target or _pick(endpoint)
        if all(v["VariantName"] != variant for v in endpoint.production_variants):
            raise _refuse(f"endpoint {endpoint.endpoint_name} has no variant {variant!r}")
        shadows = [v["VariantName"] for v in getattr(config, "shadow_production_variants", [])]
        capture = config.data_capture_config or {}
    answer = _answer(variant, call.request)
    answers = [(variant, answer), *((s, _answer(s, call.request)) for s in shadows)]
    if capture.get("EnableCapture"):
        for name, body in answers:
            _capture(call, capture, name, body)
    return variant, answer


def install() -> None:
    """Patch moto's SageMaker backend and responses (once per process)."""
    global _installed
    if _installed:
        return
    _installed = True
    backend_cls = sm_models.SageMakerModelBackend
    known_types = sm_models.FakeEndpointConfig.validate_instance_type

    def validate_instance_type(self: Any, instance_type: str) -> None:
        if not _NEWER_GPUS.match(instance_type):
            known_types(self, instance_type)

    sm_models.FakeEndpointConfig.validate_instance_type = validate_instance_type  # type: ignore[method-assign]
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
            raise ValidationError(message=f"Could not find endpoint '{arn}'.")
        if endpoint.endpoint_status != "InService":
            raise ValidationError(message=f"Cannot update in-progress endpoint '{endpoint.arn}'.")
        return endpoint

    def update_endpoint(
        self: Any, endpoint_name: str, endpoint_config_name: str, retained: frozenset[str]
    ) -> str:
        with LIFECYCLE.lock:
            endpoint = _busy(self, endpoint_name)
            config = self.describe_endpoint_config(endpoint_config_name)
            fail = LIFECYCLE.failures.pop(0) if LIFECYCLE.failures else None
            LIFECYCLE.changes[_key(self, endpoint_name)] = _Change(
                "update",
                LIFECYCLE.looks,
                old_config=endpoint.endpoint_config_name,
                new_config=endpoint_config_name,
                new_variants=_retain(_variants(config), endpoint.production_variants, retained),
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
                    raise ValidationError(
                        message=f'The variant name(s) "{wanted.get("VariantName")}" is/are '
                        f"not present within endpoint configuration "
                        f'"{endpoint.endpoint_config_name}".'
                    )
            # As on AWS, what was asked shows at once as the variants' Desired* values; the
            # Current* ones follow when the change takes effect.
            for wanted in desired_weights_and_capacities:
                for variant in endpoint.production_variants:
                    if variant["VariantName"] == wanted["VariantName"]:
                        if "DesiredWeight" in wanted:
                            variant["DesiredWeight"] = float(wanted["DesiredWeight"])
                        if "DesiredInstanceCount" in wanted:
                            variant["DesiredInstanceCount"] = wanted["DesiredInstanceCount"]
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
        retained: frozenset[str] = frozenset()
        if self._get_param("RetainAllVariantProperties"):
            excluded = self._get_param("ExcludeRetainedVariantProperties") or []
            names = {e["VariantPropertyType"] for e in excluded}
            retained = frozenset({"DesiredInstanceCount", "DesiredWeight"} - names)
        arn = self.sagemaker_backend.update_endpoint(
            endpoint_name=self._get_param("EndpointName"),
            endpoint_config_name=self._get_param("EndpointConfigName"),
            retained=retained,
        )
        return ActionResult({"EndpointArn": arn})

    sm_responses.SageMakerResponse.update_endpoint = update_endpoint_response  # type: ignore[attr-defined]

    original_create_config = sm_responses.SageMakerResponse.create_endpoint_config

    def create_endpoint_config_response(self: Any) -> Any:
        shadow = self._get_param("ShadowProductionVariants") or []
        _check_shadow(self._get_param("ProductionVariants") or [], shadow)
        self.sagemaker_backend.validate_production_variants(shadow)  # its models exist
        result = original_create_config(self)
        if shadow:  # an attribute of the config: moto's describe shows each of them
            config = self.sagemaker_backend.endpoint_configs[self._get_param("EndpointConfigName")]
            config.shadow_production_variants = shadow
        return result

    sm_responses.SageMakerResponse.create_endpoint_config = create_endpoint_config_response  # type: ignore[method-assign]

    runtime_cls = runtime_responses.SageMakerRuntimeResponse
    original_invoke = runtime_cls.invoke_endpoint

    def invoke_endpoint_response(self: Any) -> Any:
        # from the path (/endpoints/<name>/invocations), as moto's own async call reads it:
        # its _get_params() takes the body for parameters
        name = unquote(self.path.split("/")[2])
        backend = sm_models.sagemaker_backends[self.current_account][self.region]
        endpoint = backend.endpoints.get(name)
        if endpoint is None:
            return original_invoke(self)  # moto's canned answers, as before
        body = self.raw_body if isinstance(self.raw_body, bytes) else str(self.raw_body).encode()
        call = _Invocation(
            account=self.current_account,
            region=self.region,
            endpoint=name,
            inference_id=self.headers.get("X-Amzn-SageMaker-Inference-Id"),
            request_type=self.headers.get("Content-Type") or "application/octet-stream",
            request=body,
            target=self.headers.get("X-Amzn-SageMaker-Target-Variant"),
        )
        config = backend.endpoint_configs[endpoint.endpoint_config_name]
        variant, answer = _invoke(call, endpoint, config)
        headers = {
            "Content-Type": "application/json",
            "x-Amzn-Invoked-Production-Variant": variant,
        }
        return 200, headers, answer

    runtime_cls.invoke_endpoint = invoke_endpoint_response  # type: ignore[method-assign]
