"""The Serving port on SageMaker: one model per variant, one endpoint config per wanted
state, one endpoint; weights shifted in place with UpdateEndpointWeightsAndCapacities.

`apply` only asks (CreateEndpoint, UpdateEndpoint or a weights update) and returns;
`settled` looks, once per call, whether the endpoint serves what was asked: the worker's
step polls it (NotYet meanwhile), so a change that takes minutes never holds a worker.
After every change the endpoint's config name is checked against the one asked for: an
update SageMaker rolled back silently (InService again, on the old config) is a failure
with its reason, never a success.

A variant's artifact is named, above this adapter, by its URI in the home region's
production bucket; each region's model reads the copy in its own region's production bucket
(`<prefix>-production-<region>`, made at provision), and reads back under the home name
again, so one version is one artifact wherever it serves.

A shadow test is SageMaker's own: the endpoint config holds one production variant and
the shadow (`ShadowProductionVariants`; SageMaker allows no more), and data capture writes
both variants' answers to the region's captures bucket, read back as pairs by
core.adapters.aws.capture. Above this adapter a shadowed config also lists the candidate
among its variants at weight 0 (core.traffic.with_shadow): here that variant is the shadow
alone, and it reads back the same way. `replay` sends inputs through the runtime, each with
its request id as the InferenceId, so that SageMaker mirrors and captures them as it would live traffic.

What is read is cached: endpoint configs and models never change under a name
(content-addressed, core.adapters.aws.naming), so each is described once; an endpoint is
described again only when ListEndpoints shows it modified. A listing of N endpoints costs
one ListEndpoints page per 100 and a DescribeEndpoint per endpoint changed since the last.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from core.adapters.aws import capture, naming
from core.adapters.aws.autoscaling import VariantScaling
from core.adapters.aws.errors import aws_call, error_code, error_message
from core.adapters.aws.runtime import predictions, send
from core.adapters.aws.s3 import ensure_bucket, in_region
from core.adapters.aws.session import AwsClients
from core.ports import (
    CapturedPair,
    EndpointConfig,
    InvalidInput,
    NotFound,
    PortError,
    ShadowConfig,
    TransientError,
    Variant,
)
from core.spec import Autoscaling

BUSY = frozenset({"Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting"})
BROKEN = frozenset({"Failed", "UpdateRollbackFailed", "OutOfService"})
_MMM_ENV = "MMM_"  # variables mmm adds to each container (read back, never shown as `env`)
_TAG = {"Key": "managed-by", "Value": "mmm"}
_WEIGHT_TOLERANCE = 1e-6
_PRODUCTION = "production"  # the purpose of the buckets models serve from


@dataclass(frozen=True)
class _Described:
    """An endpoint as DescribeEndpoint told it, with the config it serves read back."""

    status: str
    config_name: str
    pending_config: str | None
    failure: str
    modified: str
    config: EndpointConfig | None  # None: not made by mmm
    # DesiredWeight per variant: while a weights update runs, the weights it asked for
    desired: dict[str, float] = field(default_factory=dict)


class SageMakerServing:
    """Endpoints on SageMaker. `images`: container image URI per library; `role_arn`: the
    models' execution role; `regions`: listed by `endpoints()` besides the home region
    and every region this process has touched; `bucket_prefix`: of mmm's buckets (shadow
    tests capture to `<prefix>-captures-<region>`)."""

    def __init__(
        self,
        clients: AwsClients,
        role_arn: str | None,
        images: dict[str, str],
        regions: list[str] | None = None,
        listing_ttl_s: float = 1.0,
        bucket_prefix: str = "mmm",
    ) -> None:
        self.clients = clients
        self.bucket_prefix = bucket_prefix
        self.role_arn = role_arn
        self.images = dict(images)
        self._regions = {clients.home_region, *(regions or [])}
        self._listing_ttl_s = listing_ttl_s
        self._configs: dict[tuple[str, str], dict[str, Any]] = {}
        self._models: dict[tuple[str, str], dict[str, Any]] = {}
        self._described: dict[tuple[str, str], tuple[str, _Described]] = {}
        self._listing: tuple[float, list[EndpointConfig]] | None = None
        self._capture_buckets: set[str] = set()
        self._capture_files = capture.CaptureFiles()
        self._lock = threading.RLock()
        self.scaling = VariantScaling(clients)

    def _sm(self, region: str) -> Any:
        self._regions.add(region)
        return self.clients.client("sagemaker", region)

    # ------------------------------------------------------------ reading

    def _describe(self, name: str, region: str) -> dict[str, Any] | None:
        with aws_call("DescribeEndpoint", f"endpoint {name} ({region})"):
            try:
                raw: dict[str, Any] = self._sm(region).describe_endpoint(EndpointName=name)
                return raw
            except Exception as exc:
                if error_code(exc) == "ValidationException" and "find" in error_message(exc):
                    return None
                raise

    def _config_detail(self, region: str, config_name: str) -> dict[str, Any] | None:
        key = (region, config_name)
        if key not in self._configs:
            with aws_call("DescribeEndpointConfig", f"{config_name} ({region})"):
                try:
                    self._configs[key] = self._sm(region).describe_endpoint_config(
                        EndpointConfigName=config_name
                    )
                except Exception as exc:
                    if error_code(exc) == "ValidationException":
                        return None
                    raise
        return self._configs[key]

    def _model_detail(self, region: str, model: str) -> dict[str, Any]:
        key = (region, model)
        if key not in self._models:
            with aws_call("DescribeModel", f"model {model} ({region})"):
                self._models[key] = self._sm(region).describe_model(ModelName=model)
        return self._models[key]

    def _variant(self, region: str, raw: dict[str, Any], weight: float) -> Variant:
        model = self._model_detail(region, raw["ModelName"])
        container = model.get("PrimaryContainer", {})
        env = container.get("Environment", {})
        source = container.get("ModelDataSource", {}).get("S3DataSource", {})
        artifact = container.get("ModelDataUrl") or source.get("S3Uri", "")
        artifact = in_region(artifact, _PRODUCTION, region, self.clients.home_region)
        return Variant(
            name=raw["VariantName"],
            model=env["MMM_MODEL"],
            version=env["MMM_VERSION"],
            library=env["MMM_LIBRARY"],
            artifact=artifact,
            weight=weight,
        )

    def _read_config(
        self, name: str, region: str, config_name: str, live: dict[str, float]
    ) -> EndpointConfig | None:
        """The EndpointConfig served under `config_name`, with the live weights; None when
        mmm did not make it."""
        if not naming.owned_config(config_name, name, region):
            return None
        detail = self._config_detail(region, config_name)
        if detail is None:
            raise PortError(f"endpoint {name} ({region}): its config {config_name} is gone")
        production = detail.get("ProductionVariants", [])
        variants = [
            self._variant(
                region,
                v,
                live.get(v["VariantName"], float(v.get("InitialVariantWeight") or 0.0)),
            )
            for v in production
        ]
        shadow = None
        for raw in detail.get("ShadowProductionVariants", []) or []:
            variant = self._variant(region, raw, 0.0)
            percent = float(raw.get("InitialVariantWeight") or 100.0)
            shadow = ShadowConfig(variant=variant, sample_percent=min(100.0, max(percent, 1e-6)))
            if all(v.name != variant.name for v in variants):
                variants.append(variant)  # as above this adapter: the candidate, at weight 0
        first = production[0] if production else {}
        env = (
            self._model_detail(region, first["ModelName"])
            .get("PrimaryContainer", {})
            .get("Environment", {})
            if first
            else {}
        )
        return EndpointConfig(
            name=name,
            region=region,
            variants=variants,
            shadow=shadow,
            instance_type=first.get("InstanceType", "ml.m5.large"),
            instance_count=int(first.get("InitialInstanceCount") or 1),
            env={k: v for k, v in env.items() if not k.startswith(_MMM_ENV)},
            invocation_timeout_ms=int(env.get("MMM_INVOCATION_TIMEOUT_MS", 2000)),
            autoscaling=(
                Autoscaling.model_validate_json(env["MMM_AUTOSCALING"])
                if "MMM_AUTOSCALING" in env
                else None
            ),
            startup_timeout_s=int(first.get("ContainerStartupHealthCheckTimeoutInSeconds", 600)),
            volume_size_gb=first.get("VolumeSizeInGB"),
        )

    def _read(self, name: str, region: str) -> _Described | None:
        raw = self._describe(name, region)
        if raw is None:
            return None
        live = {
            v["VariantName"]: float(v.get("CurrentWeight") or v.get("DesiredWeight") or 0.0)
            for v in raw.get("ProductionVariants", []) or []
        }
        pending = (raw.get("PendingDeploymentSummary") or {}).get("EndpointConfigName")
        config_name = raw["EndpointConfigName"]
        # While an update runs, the endpoint is read as what it is becoming.
        shown = pending if pending and raw["EndpointStatus"] in BUSY else config_name
        desc = _Described(
            status=raw["EndpointStatus"],
            config_name=config_name,
            pending_config=pending,
            failure=str(raw.get("FailureReason") or ""),
            modified=str(raw.get("LastModifiedTime", "")),
            config=self._read_config(name, region, shown, live if shown == config_name else {}),
            desired={
                v["VariantName"]: float(v["DesiredWeight"])
                for v in raw.get("ProductionVariants", []) or []
                if v.get("DesiredWeight") is not None
            },
        )
        with self._lock:
            self._described[(region, name)] = (desc.modified, desc)
        return desc

    def _mine(self, name: str, region: str) -> _Described | None:
        desc = self._read(name, region)
        if desc is not None and desc.config is None:
            raise PortError(
                f"endpoint {name} ({region}) exists and was not made by mmm "
                f"(config {desc.config_name}); mmm leaves it alone: choose another endpoint name"
            )
        return desc

    def get_endpoint(self, name: str, region: str) -> EndpointConfig | None:
        desc = self._mine(name, region)
        return None if desc is None or desc.status == "Deleting" else desc.config

    def endpoints(self) -> list[EndpointConfig]:
        with self._lock:
            if self._listing and time.monotonic() - self._listing[0] < self._listing_ttl_s:
                return list(self._listing[1])
        found: list[EndpointConfig] = []
        for region in sorted(self._regions):
            with aws_call("ListEndpoints", f"endpoints ({region})"):
                pages = self._sm(region).get_paginator("list_endpoints").paginate()
                summaries = [s for page in pages for s in page.get("Endpoints", [])]
            for summary in summaries:
                name = summary["EndpointName"]
                cached = self._described.get((region, name))
                modified = str(summary.get("LastModifiedTime", ""))
                if (
                    cached
                    and cached[0] == modified
                    and cached[1].status == summary.get("EndpointStatus")
                ):
                    desc: _Described | None = cached[1]
                else:
                    desc = self._read(name, region)
                if desc and desc.config is not None and desc.status != "Deleting":
                    found.append(desc.config)
        with self._lock:
            self._listing = (time.monotonic(), found)
        return list(found)

    def _forget(self, name: str, region: str) -> None:
        with self._lock:
            self._described.pop((region, name), None)
            self._listing = None

    # ------------------------------------------------------------ writing

    def _image(self, library: str) -> str:
        image = self.images.get(library)
        if not image:
            raise InvalidInput(
                f"aws.images has no container image for library {library!r}: "
                f"add `{library}: <image URI>` under aws.images in mmm.yaml"
            )
        return image

    def _model_spec(self, config: EndpointConfig, variant: Variant) -> tuple[str, dict[str, Any]]:
        if not self.role_arn:
            raise InvalidInput("aws.role_arn is needed in mmm.yaml: the models' execution role")
        if not variant.artifact.startswith("s3://"):
            raise InvalidInput(f"{variant.artifact}: SageMaker serves model data from S3 only")
        # the copy in the endpoint's own region
        artifact = in_region(variant.artifact, _PRODUCTION, self.clients.home_region, config.region)
        env = {
            **config.env,
            "MMM_MODEL": variant.model,
            "MMM_VERSION": str(variant.version),
            "MMM_LIBRARY": str(variant.library),
            "MMM_VARIANT": variant.name,
            "MMM_INVOCATION_TIMEOUT_MS": str(config.invocation_timeout_ms),
        }
        if config.autoscaling is not None:  # kept where it reads back, like the timeout
            env["MMM_AUTOSCALING"] = config.autoscaling.model_dump_json()
        container: dict[str, Any] = {"Image": self._image(str(variant.library)), "Environment": env}
        if artifact.endswith("/"):  # a large model: an uncompressed prefix
            container["ModelDataSource"] = {
                "S3DataSource": {
                    "S3Uri": artifact,
                    "S3DataType": "S3Prefix",
                    "CompressionType": "None",
                }
            }
        elif artifact.endswith((".tar.gz", ".tgz")):
            container["ModelDataUrl"] = artifact
        else:  # one uncompressed file
            container["ModelDataSource"] = {
                "S3DataSource": {
                    "S3Uri": artifact,
                    "S3DataType": "S3Object",
                    "CompressionType": "None",
                }
            }
        spec = {"PrimaryContainer": container, "ExecutionRoleArn": self.role_arn}
        name = naming.model_name(variant.name, config.name, config.region, spec)
        return name, spec

    def _wanted(self, config: EndpointConfig) -> tuple[str, dict[str, Any], dict[str, Any]]:
        """(config name, CreateEndpointConfig arguments, models to create by name)."""
        config = _listed(config)
        serving = _serving(config)
        models: dict[str, Any] = {}

        def production(variant: Variant, weight: float) -> dict[str, Any]:
            model, spec = self._model_spec(config, variant)
            models[model] = spec
            raw: dict[str, Any] = {
                "VariantName": variant.name,
                "ModelName": model,
                "InstanceType": config.instance_type,
                "InitialInstanceCount": config.instance_count,
                "InitialVariantWeight": weight,
                "ModelDataDownloadTimeoutInSeconds": config.startup_timeout_s,
                "ContainerStartupHealthCheckTimeoutInSeconds": config.startup_timeout_s,
            }
            if config.volume_size_gb is not None:
                raw["VolumeSizeInGB"] = config.volume_size_gb
            return raw

        args: dict[str, Any] = {"ProductionVariants": [production(v, 0.0) for v in serving]}
        if config.shadow is not None:
            args["ShadowProductionVariants"] = [
                production(config.shadow.variant, config.shadow.sample_percent)
            ]
            args["DataCaptureConfig"] = capture.capture_config(self.bucket_prefix, config.region)
        # the structure is hashed as it is now, before the weights go in: a change of weights
        # alone keeps it, and is made in place (UpdateEndpointWeightsAndCapacities)
        structure = naming.digest({"args": args, "models": sorted(models)})
        weights = {v.name: v.weight for v in config.variants}
        for raw in args["ProductionVariants"]:
            raw["InitialVariantWeight"] = weights[raw["VariantName"]]
        name = naming.config_name(config.name, config.region, structure, weights)
        return name, args, models

    def _create(self, config: EndpointConfig) -> str:
        """Make the models and the endpoint config of `config` (those missing); its name."""
        sm = self._sm(config.region)
        name, args, models = self._wanted(config)
        if "DataCaptureConfig" in args:
            self._captures_bucket(config.region)
        for model, spec in models.items():
            with aws_call("CreateModel", f"model {model} ({config.region})"):
                try:
                    sm.create_model(ModelName=model, Tags=[_TAG], **spec)
                except Exception as exc:
                    if "already exist" not in error_message(exc):
                        raise
        # Asked afresh: another worker's sweep may have deleted a config this one remembers.
        self._configs.pop((config.region, name), None)
        if self._config_detail(config.region, name) is None:
            with aws_call("CreateEndpointConfig", f"{name} ({config.region})"):
                try:
                    sm.create_endpoint_config(EndpointConfigName=name, Tags=[_TAG], **args)
                except Exception as exc:
                    if "already exist" not in error_message(exc):
                        raise
            self._configs.pop((config.region, name), None)
        return name

    def _captures_bucket(self, region: str) -> None:
        bucket = capture.bucket_name(self.bucket_prefix, region)
        if bucket not in self._capture_buckets:
            ensure_bucket(self.clients.client("s3", region), bucket, region)
            self._capture_buckets.add(bucket)

    def apply(self, config: EndpointConfig) -> EndpointConfig | None:
        where = f"endpoint {config.name} ({config.region})"
        wanted, _, _ = self._wanted(config)  # refuses what SageMaker cannot serve, first
        config = _listed(config)
        desc = self._mine(config.name, config.region)
        sm = self._sm(config.region)
        if desc is None:
            name = self._create(config)
            with aws_call("CreateEndpoint", where):
                sm.create_endpoint(EndpointName=config.name, EndpointConfigName=name, Tags=[_TAG])
            self._forget(config.name, config.region)
            return None
        previous = desc.config
        if desc.status in BUSY:
            heading = desc.pending_config or desc.config_name
            if (
                heading == wanted
                or (previous is not None and _same(previous, config))
                or _weights_asked(desc, config, wanted)
            ):
                return previous  # already asked for: a look again after a crash
            raise TransientError(f"{where} is {desc.status}: another change is under way", 30.0)
        if desc.status in BROKEN:
            raise PortError(
                f"{where} is {desc.status} ({desc.failure or 'no reason given'}); "
                "only deleting it helps (abort or retire)"
            )
        same_structure = naming.config_structure(
            desc.config_name, config.name, config.region
        ) == naming.config_structure(wanted, config.name, config.region)
        if same_structure:
            if previous is not None and _same(previous, config):
                return previous
            with aws_call("UpdateEndpointWeightsAndCapacities", where):
                sm.update_endpoint_weights_and_capacities(
                    EndpointName=config.name,
                    DesiredWeightsAndCapacities=[_weight(v, config) for v in _serving(config)],
                )
        else:
            # SageMaker refuses an update that removes a variant autoscaling still holds
            self.scaling.release(config.name, config.region, config)
            name = self._create(config)
            with aws_call("UpdateEndpoint", where):
                sm.update_endpoint(
                    EndpointName=config.name, EndpointConfigName=name, **_kept(config)
                )
        self._forget(config.name, config.region)
        return previous

    def settled(self, name: str, region: str, config: EndpointConfig | None) -> str | None:
        where = f"endpoint {name} ({region})"
        desc = self._mine(name, region)
        self._forget(name, region)
        if config is None:
            if desc is None:
                return None
            if desc.status == "Deleting":
                return "Deleting"
            raise PortError(f"{where} still exists: it was to be deleted")
        if desc is None:
            raise PortError(f"{where} is gone: it was to serve {naming_of(config)}")
        if desc.status in BUSY:
            return desc.status
        config = _listed(config)
        if desc.status in BROKEN:
            raise PortError(f"{where} is {desc.status}: {desc.failure or 'no reason given'}")
        wanted, _, _ = self._wanted(config)
        structure = naming.config_structure(wanted, name, region)
        live = naming.config_structure(desc.config_name, name, region)
        if live != structure or desc.config is None or not _same(desc.config, config):
            # what the failed change made (its config, the candidate's model) serves nothing:
            # nothing would remove it later, as no step made a change to undo
            self._sweep(name, region, keep=desc.config_name)
            raise PortError(
                f"{where} rolled back: it serves config {desc.config_name}, not {wanted} as "
                f"asked ({_weights(desc.config)} instead of {_weights(config)}); reason: "
                f"{desc.failure or 'none given by SageMaker'}"
            )
        self.scaling.reconcile(name, region, config)
        self._sweep(name, region, keep=desc.config_name)
        return None

    def _owned_configs(self, name: str, region: str) -> list[str]:
        key = naming.endpoint_key(name, region)
        with aws_call("ListEndpointConfigs", f"endpoint configs of {name} ({region})"):
            pages = (
                self._sm(region)
                .get_paginator("list_endpoint_configs")
                .paginate(NameContains=f"-{key}-")
            )
            names = [c["EndpointConfigName"] for p in pages for c in p.get("EndpointConfigs", [])]
        return [n for n in names if naming.owned_config(n, name, region)]

    def _owned_models(self, name: str, region: str) -> list[str]:
        key = naming.endpoint_key(name, region)
        with aws_call("ListModels", f"models of {name} ({region})"):
            pages = self._sm(region).get_paginator("list_models").paginate(NameContains=f"-{key}-")
            names = [m["ModelName"] for p in pages for m in p.get("Models", [])]
        return [n for n in names if naming.owned_model(n, name, region)]

    def _sweep(self, name: str, region: str, keep: str | None) -> None:
        """Delete the configs and models mmm made for the endpoint, but `keep` and its models.
        Already gone is fine: two workers may sweep at once."""
        sm = self._sm(region)
        kept_models: set[str] = set()
        if keep is not None:
            detail = self._config_detail(region, keep) or {}
            for v in [
                *detail.get("ProductionVariants", []),
                *(detail.get("ShadowProductionVariants") or []),
            ]:
                kept_models.add(v["ModelName"])
        for config_name in self._owned_configs(name, region):
            if config_name != keep:
                with aws_call("DeleteEndpointConfig", f"{config_name} ({region})"):
                    _gone_ok(lambda n=config_name: sm.delete_endpoint_config(EndpointConfigName=n))
                self._configs.pop((region, config_name), None)
        for model in self._owned_models(name, region):
            if model not in kept_models:
                with aws_call("DeleteModel", f"model {model} ({region})"):
                    _gone_ok(lambda m=model: sm.delete_model(ModelName=m))
                self._models.pop((region, model), None)

    def delete(self, name: str, region: str) -> bool:
        desc = self._mine(name, region)
        existed = desc is not None and desc.status != "Deleting"
        self.scaling.reconcile(name, region, None)
        if existed:
            with aws_call("DeleteEndpoint", f"endpoint {name} ({region})"):
                _gone_ok(lambda: self._sm(region).delete_endpoint(EndpointName=name))
        # SageMaker lets configs and models go while the endpoint deletes.
        self._sweep(name, region, keep=None)
        self._forget(name, region)
        return existed

    # ------------------------------------------------------------ shadow

    def captured(self, name: str, region: str, shadow_variant: str) -> Iterator[CapturedPair]:
        config = self.get_endpoint(name, region)
        if config is None:
            return iter(())
        production = [v.name for v in config.variants if v.name != shadow_variant]
        s3 = self.clients.client("s3", region)
        bucket = capture.bucket_name(self.bucket_prefix, region)
        files = self._capture_files
        return capture.read_pairs(s3, bucket, name, production, shadow_variant, files)

    def replay(self, name: str, region: str, requests: list[tuple[str, Any]]) -> int:
        """Each input as a request of its own, its id as the inference id: SageMaker
        mirrors it to the shadow and captures both answers under that id."""
        where = f"endpoint {name} ({region})"
        config = self.get_endpoint(name, region)
        if config is None:
            raise NotFound(f"{where}: not found")
        if config.shadow is None:
            raise InvalidInput(f"{where}: has no shadow variant to replay against")
        for request_id, instance in requests:
            send(self.clients, name, {"instances": [instance]}, region, request_id)
        return len(requests)

    # ------------------------------------------------------------ one variant

    def predict(self, name: str, region: str, variant: str, inputs: list[Any]) -> list[Any]:
        """`inputs` as one request to `variant` alone (`TargetVariant`: its weight may be 0)."""
        raw, _ = send(self.clients, name, {"instances": inputs}, region, target_variant=variant)
        found = predictions(f"endpoint {name} ({region}) variant {variant}", raw)
        if not isinstance(found, list) or len(found) != len(inputs):
            got = f"{len(found)} predictions" if isinstance(found, list) else "no list"
            raise PortError(
                f"endpoint {name} ({region}) variant {variant}: {got} for {len(inputs)} "
                'inputs; the container must answer {"predictions": [...]}, one per instance'
            )
        return found


def _weight(variant: Variant, config: EndpointConfig) -> dict[str, Any]:
    """A variant's entry in a weights update. The config's instance count goes with it,
    unless autoscaling sets the count: then SageMaker keeps the count it has now."""
    entry: dict[str, Any] = {"VariantName": variant.name, "DesiredWeight": variant.weight}
    if config.autoscaling is None:
        entry["DesiredInstanceCount"] = config.instance_count
    return entry


def _weights_asked(desc: _Described, config: EndpointConfig, wanted: str) -> bool:
    """The update under way is a weights update to `config`'s weights (the one a step asked
    for before its worker was killed): the same structure, no new config pending, and the
    weights it asks for (DescribeEndpoint's DesiredWeight) those of `config`."""
    if desc.pending_config is not None or not desc.desired:
        return False
    live = naming.config_structure(desc.config_name, config.name, config.region)
    if live is None or live != naming.config_structure(wanted, config.name, config.region):
        return False
    weights = {v.name: v.weight for v in _serving(config)}
    return weights.keys() == desc.desired.keys() and all(
        abs(desc.desired[k] - w) <= _WEIGHT_TOLERANCE for k, w in weights.items()
    )


def _listed(config: EndpointConfig) -> EndpointConfig:
    """`config` with its shadow also among its variants, at weight 0, as core.traffic
    shadows a candidate (and as a shadowed config reads back): one config, one form."""
    if config.shadow is None:
        return config
    variant = config.shadow.variant.model_copy(update={"weight": 0.0})  # it serves no caller
    shadow = config.shadow.model_copy(update={"variant": variant})
    listed = any(v.name == variant.name for v in config.variants)
    variants = config.variants if listed else [*config.variants, variant]
    return config.model_copy(update={"variants": variants, "shadow": shadow})


def _serving(config: EndpointConfig) -> list[Variant]:
    """The production variants SageMaker is to hold: with a shadow, exactly one besides it
    (SageMaker's rule); InvalidInput naming the endpoint for anything else."""
    shadow = config.shadow
    if shadow is None:
        return list(config.variants)
    where = f"endpoint {config.name} ({config.region})"
    name = shadow.variant.name
    serving = [v for v in config.variants if v.name != name]
    if any(v.name == name and v.weight > 0 for v in config.variants):
        raise InvalidInput(
            f"{where}: variant {name} cannot both take live traffic and shadow on SageMaker"
        )
    if len(serving) != 1:
        listed = ", ".join(v.name for v in serving) or "none"
        raise InvalidInput(
            f"{where}: a shadow test on SageMaker needs exactly one production variant "
            f"besides the shadow {name} (found: {listed})"
        )
    return serving


def _kept(config: EndpointConfig) -> dict[str, Any]:
    """What an UpdateEndpoint keeps of the endpoint as it runs: where autoscaling sets the
    counts, each variant that stays keeps the count it reached (a new one starts at the
    config's); weights and data capture are always the new config's."""
    if config.autoscaling is None:
        return {"RetainAllVariantProperties": False}
    excluded = [{"VariantPropertyType": t} for t in ("DesiredWeight", "DataCaptureConfig")]
    return {"RetainAllVariantProperties": True, "ExcludeRetainedVariantProperties": excluded}


def _same(a: EndpointConfig, b: EndpointConfig) -> bool:
    """The same served state (weights within rounding)."""
    if a.model_copy(update={"variants": []}) != b.model_copy(update={"variants": []}):
        return False
    wa = {v.name: v for v in a.variants}
    wb = {v.name: v for v in b.variants}
    if wa.keys() != wb.keys():
        return False
    return all(
        wa[k].model_copy(update={"weight": 0.0}) == wb[k].model_copy(update={"weight": 0.0})
        and abs(wa[k].weight - wb[k].weight) <= _WEIGHT_TOLERANCE
        for k in wa
    )


def _weights(config: EndpointConfig | None) -> str:
    if config is None:
        return "nothing mmm made"
    return ", ".join(f"{v.name} {v.weight:g}%" for v in config.variants)


def naming_of(config: EndpointConfig) -> str:
    return _weights(config)


def _gone_ok(call: Any) -> None:
    """Run a delete; a thing already gone is what was wanted."""
    try:
        call()
    except Exception as exc:
        message = error_message(exc).lower()
        if error_code(exc) in {"ValidationException", "ResourceNotFound"} and (
            "could not find" in message or "does not exist" in message or "not found" in message
        ):
            return
        raise
