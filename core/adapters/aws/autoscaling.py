"""Autoscaling of SageMaker production variants, through Application Auto Scaling.

SageMaker scales a variant only while it is registered as a scalable target
(`endpoint/<endpoint>/variant/<variant>`, dimension `sagemaker:variant:DesiredInstanceCount`)
with a scaling policy. `VariantScaling.reconcile` makes those match an EndpointConfig: each
production variant of a config with `autoscaling` is registered between its min and max with
one target-tracking policy on invocations per instance, named `mmm-invocations-per-instance`
so mmm knows it made it; the shadow never scales. Targets of the endpoint that the config no
longer scales (a variant gone, autoscaling dropped, the endpoint deleted: config None) are
deregistered, their policy first.

Who calls it: the serving adapter, once the endpoint has settled on a config (Application
Auto Scaling registers only variants of an InService endpoint), and before it deletes an
endpoint. SageMaker refuses an UpdateEndpoint that removes a registered variant, so before
such an update the adapter calls `release` with the config it moves to: it deregisters and
never registers.

Whose targets: only those under `endpoint/<endpoint>/variant/` are looked at. One of them is
mmm's when mmm's policy is the only policy on it, or it has none: a crash between
RegisterScalableTarget and PutScalingPolicy (or DeleteScalingPolicy and
DeregisterScalableTarget) leaves a target without a policy, which scales nothing and which
the next call finishes. A target carrying someone else's policy is never deregistered.
Every call is idempotent: the calls that would change nothing are not made.

Instance counts: a scaled variant runs anywhere between min and max instances, whatever the
config's `instance_count` (the count it starts with). The count a config reads back
(InitialInstanceCount of the endpoint config) stays the config's; the live count
(DescribeEndpoint's CurrentInstanceCount) is Application Auto Scaling's. So a comparison of
configs must never use the live count, and a call that sets a count (the DesiredInstanceCount
of UpdateEndpointWeightsAndCapacities, an UpdateEndpoint without RetainAllVariantProperties)
puts a scaled variant back to the config's count until its policy scales it again.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from core.adapters.aws.errors import aws_call, error_code, error_message
from core.adapters.aws.session import AwsClients
from core.ports import EndpointConfig, TransientError
from core.spec import Autoscaling

NAMESPACE = "sagemaker"
DIMENSION = "sagemaker:variant:DesiredInstanceCount"
POLICY = "mmm-invocations-per-instance"
METRIC = "SageMakerVariantInvocationsPerInstance"
_RESOURCE = re.compile(r"^endpoint/([^/]+)/variant/([^/]+)$")


def resource_id(endpoint: str, variant: str) -> str:
    return f"endpoint/{endpoint}/variant/{variant}"


@dataclass(frozen=True)
class ScaledVariant:
    """A SageMaker variant registered as a scalable target, with the policies on it."""

    endpoint: str
    variant: str
    region: str
    min: int
    max: int
    policies: tuple[str, ...]
    target: float | None  # invocations per instance of mmm's policy; None: mmm's is not on it

    @property
    def mine(self) -> bool:
        """mmm made it: its policy is mmm's, or it has none (what a crash leaves)."""
        return set(self.policies) <= {POLICY}

    def serves(self, scaling: Autoscaling) -> bool:
        """It scales as `scaling` asks already."""
        bounds = (self.min, self.max) == (scaling.min, scaling.max)
        return bounds and self.target == float(scaling.target_invocations_per_instance)


class VariantScaling:
    """Application Auto Scaling of the variants of mmm's endpoints, in each endpoint's region."""

    def __init__(self, clients: AwsClients) -> None:
        self.clients = clients

    def _aas(self, region: str) -> Any:
        return self.clients.client("application-autoscaling", region)

    # ------------------------------------------------------------ reading

    def targets(self, region: str, endpoint: str | None = None) -> list[ScaledVariant]:
        """The variants registered as scalable targets in `region` (of `endpoint` only, when
        named), whoever registered them: `mine` tells mmm's."""
        prefix = f"endpoint/{endpoint}/variant/" if endpoint else "endpoint/"
        where = f"scalable targets of {endpoint or 'endpoints'} ({region})"
        with _call("DescribeScalableTargets", where):
            pages = self._aas(region).get_paginator("describe_scalable_targets")
            raw = [
                t
                for page in pages.paginate(ServiceNamespace=NAMESPACE)
                for t in page.get("ScalableTargets", [])
                if t["ScalableDimension"] == DIMENSION and t["ResourceId"].startswith(prefix)
            ]
        ids = [t["ResourceId"] for t in raw if _RESOURCE.match(t["ResourceId"])]
        # An endpoint has a few variants: one look each. Every endpoint: one listing of all.
        policies = self._policies(region, ids if endpoint else None)
        found = [_scaled(t, region, policies.get(t["ResourceId"], [])) for t in raw]
        return sorted((f for f in found if f is not None), key=lambda f: (f.endpoint, f.variant))

    def _policies(self, region: str, ids: list[str] | None) -> dict[str, list[dict[str, Any]]]:
        """The scaling policies on the variants `ids` (on every variant: None), by resource."""
        # AWS filters by scalable dimension only together with one resource ID
        asks: list[dict[str, str]] = (
            [{"ResourceId": i, "ScalableDimension": DIMENSION} for i in ids]
            if ids is not None
            else [{}]
        )
        found: dict[str, list[dict[str, Any]]] = {}
        for ask in asks:
            for policy in self._policies_asked(region, ask):
                found.setdefault(policy["ResourceId"], []).append(policy)
        return found

    def _policies_asked(self, region: str, ask: dict[str, str]) -> list[dict[str, Any]]:
        where = f"scaling policies of {ask.get('ResourceId', 'endpoints')} ({region})"
        with _call("DescribeScalingPolicies", where):
            pages = (
                self._aas(region)
                .get_paginator("describe_scaling_policies")
                .paginate(ServiceNamespace=NAMESPACE, **ask)
            )
            policies = [p for page in pages for p in page.get("ScalingPolicies", [])]
        # exact: moto matches ResourceId as a substring (.../variant/a finds .../variant/ab)
        rid = ask.get("ResourceId")
        return [
            p
            for p in policies
            if p["ScalableDimension"] == DIMENSION and rid in (None, p["ResourceId"])
        ]

    # ------------------------------------------------------------ writing

    def reconcile(self, endpoint: str, region: str, config: EndpointConfig | None) -> None:
        """Make the endpoint's variants scale as `config` says (None: not at all). The
        endpoint must be InService on `config`, or gone."""
        wanted = _wanted(endpoint, region, config)
        live = self.targets(region, endpoint)
        self._drop(region, _unwanted(live, wanted))
        scaled = {t.variant: t for t in live}
        for variant, scaling in wanted.items():
            now = scaled.get(variant)
            if now is None or not now.serves(scaling):
                self._register(endpoint, variant, region, scaling)

    def release(self, endpoint: str, region: str, config: EndpointConfig | None) -> None:
        """Deregister what `config` does not scale, and register nothing: before an update
        to `config` that removes variants (SageMaker refuses to remove a scaled one)."""
        wanted = _wanted(endpoint, region, config)
        self._drop(region, _unwanted(self.targets(region, endpoint), wanted))

    def _register(self, endpoint: str, variant: str, region: str, scaling: Autoscaling) -> None:
        rid = resource_id(endpoint, variant)
        aas = self._aas(region)
        where = f"{rid} ({region})"
        with _call("RegisterScalableTarget", where):
            # no RoleARN: AWS uses its service-linked role for SageMaker
            aas.register_scalable_target(
                ServiceNamespace=NAMESPACE,
                ResourceId=rid,
                ScalableDimension=DIMENSION,
                MinCapacity=scaling.min,
                MaxCapacity=scaling.max,
            )
        with _call("PutScalingPolicy", where):
            aas.put_scaling_policy(
                PolicyName=POLICY,
                ServiceNamespace=NAMESPACE,
                ResourceId=rid,
                ScalableDimension=DIMENSION,
                PolicyType="TargetTrackingScaling",
                TargetTrackingScalingPolicyConfiguration={
                    "TargetValue": float(scaling.target_invocations_per_instance),
                    "PredefinedMetricSpecification": {"PredefinedMetricType": METRIC},
                },
            )

    def _drop(self, region: str, targets: list[ScaledVariant]) -> None:
        """Deregister `targets`, mmm's policy first (AWS's order); already gone is fine."""
        aas = self._aas(region)
        for t in targets:
            ids = {
                "ServiceNamespace": NAMESPACE,
                "ResourceId": resource_id(t.endpoint, t.variant),
                "ScalableDimension": DIMENSION,
            }
            where = f"{ids['ResourceId']} ({region})"
            if POLICY in t.policies:
                with _call("DeleteScalingPolicy", where):
                    _gone_ok(aas.delete_scaling_policy, PolicyName=POLICY, **ids)
            with _call("DeregisterScalableTarget", where):
                _gone_ok(aas.deregister_scalable_target, **ids)


def _wanted(endpoint: str, region: str, config: EndpointConfig | None) -> dict[str, Autoscaling]:
    """The scaling of each production variant `config` scales, by variant name."""
    if config is not None and (config.name, config.region) != (endpoint, region):
        raise ValueError(f"config of {config.name} ({config.region}) for {endpoint} ({region})")
    if config is None or config.autoscaling is None:
        return {}
    scaling = config.autoscaling
    # A shadowed config also lists its shadow among the variants, at weight 0
    # (core.traffic.with_shadow): on SageMaker that one is the shadow variant, never scaled.
    shadow = config.shadow.variant.name if config.shadow else None
    return {v.name: scaling for v in config.variants if v.name != shadow}


def _unwanted(live: list[ScaledVariant], wanted: dict[str, Autoscaling]) -> list[ScaledVariant]:
    """mmm's targets that `wanted` no longer scales."""
    return [t for t in live if t.variant not in wanted and t.mine]


def _scaled(
    raw: dict[str, Any], region: str, policies: list[dict[str, Any]]
) -> ScaledVariant | None:
    match = _RESOURCE.match(raw["ResourceId"])
    if match is None:
        return None
    mine = [p for p in policies if p["PolicyName"] == POLICY]
    return ScaledVariant(
        endpoint=match.group(1),
        variant=match.group(2),
        region=region,
        min=int(raw["MinCapacity"]),
        max=int(raw["MaxCapacity"]),
        policies=tuple(sorted(p["PolicyName"] for p in policies)),
        target=_target_value(mine[0]) if mine else None,
    )


def _target_value(policy: dict[str, Any]) -> float | None:
    """The invocations per instance a policy tracks; None when it tracks something else."""
    tracking = policy.get("TargetTrackingScalingPolicyConfiguration") or {}
    metric = (tracking.get("PredefinedMetricSpecification") or {}).get("PredefinedMetricType")
    value = tracking.get("TargetValue")
    return float(value) if metric == METRIC and value is not None else None


@contextmanager
def _call(call: str, resource: str) -> Iterator[None]:
    """`aws_call`, and a change racing another on the same target is passing, not final."""
    with aws_call(call, resource):
        try:
            yield
        except Exception as exc:
            if error_code(exc) == "ConcurrentUpdateException":
                raise TransientError(
                    f"{call} {resource}: another change to its scaling is under way", 5.0
                ) from None
            raise


def _gone_ok(call: Callable[..., Any], **args: Any) -> None:
    """Run a delete; a policy or target already gone is what was wanted. AWS says
    ObjectNotFoundException, moto a ValidationException; both say "No ... found"."""
    try:
        call(**args)
    except Exception as exc:
        message = error_message(exc).lower()
        gone = message.startswith("no scal") and "found" in message
        if error_code(exc) == "ObjectNotFoundException" or (
            error_code(exc) == "ValidationException" and gone
        ):
            return
        raise
