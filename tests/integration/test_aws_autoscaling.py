"""Autoscaling of SageMaker variants (core.adapters.aws.autoscaling) over HTTP to a moto
server: what Application Auto Scaling holds after each reconcile, read with boto3 itself."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from core.adapters.aws import AwsClients, SageMakerServing, VariantScaling
from core.adapters.aws.autoscaling import DIMENSION, METRIC, POLICY, _call, resource_id
from core.ports import EndpointConfig, ShadowConfig, TransientError, Variant
from core.spec import Autoscaling
from tests.support.moto_server import IMAGES, REGION, ROLE_ARN, Aws, aws  # noqa: F401

SCALING = Autoscaling(min=1, max=4, target_invocations_per_instance=50)
WRITES = {"RegisterScalableTarget", "PutScalingPolicy", "DeleteScalingPolicy",
          "DeregisterScalableTarget"}  # fmt: skip


def variant(name: str, weight: float) -> Variant:
    return Variant(name=name, model="m", version=name.rsplit("v", 1)[1], library="sklearn",
                   artifact=f"s3://b/{name}", weight=weight)  # fmt: skip


def config(
    *variants: Variant,
    scaling: Autoscaling | None = SCALING,
    shadow: Variant | None = None,
    name: str = "ep",
) -> EndpointConfig:
    return EndpointConfig(
        name=name,
        region=REGION,
        variants=list(variants),
        shadow=ShadowConfig(variant=shadow) if shadow else None,
        autoscaling=scaling,
    )


def targets(aws: Aws, namespace: str = "sagemaker") -> dict[str, tuple[int, int]]:  # noqa: F811
    """Every scalable target of `namespace` on the server: resource ID -> (min, max)."""
    client: Any = aws.client("application-autoscaling")
    found = client.describe_scalable_targets(ServiceNamespace=namespace)["ScalableTargets"]
    return {t["ResourceId"]: (t["MinCapacity"], t["MaxCapacity"]) for t in found}


def policies(aws: Aws, namespace: str = "sagemaker") -> dict[str, dict[str, Any]]:  # noqa: F811
    """Every scaling policy of `namespace` on the server: 'resource ID policy name' -> policy."""
    client: Any = aws.client("application-autoscaling")
    found = client.describe_scaling_policies(ServiceNamespace=namespace)["ScalingPolicies"]
    return {f"{p['ResourceId']} {p['PolicyName']}": p for p in found}


@pytest.fixture
def calls(aws: Aws) -> Iterator[list[str]]:  # noqa: F811
    """The Application Auto Scaling operations the adapter sends, in order, as sent."""
    sent: list[str] = []

    def record(model: Any, **_: Any) -> None:
        sent.append(model.name)

    events = aws.client("application-autoscaling").meta.events  # type: ignore[attr-defined]
    events.register("before-call", record)
    yield sent
    events.unregister("before-call", record)


def test_each_production_variant_scales(aws: Aws) -> None:  # noqa: F811
    scaling = VariantScaling(aws.clients)
    scaling.reconcile("ep", REGION, config(variant("m-v1", 70), variant("m-v2", 30)))
    assert targets(aws) == {"endpoint/ep/variant/m-v1": (1, 4), "endpoint/ep/variant/m-v2": (1, 4)}
    policy = policies(aws)[f"endpoint/ep/variant/m-v1 {POLICY}"]
    assert policy["PolicyType"] == "TargetTrackingScaling"
    assert policy["ScalableDimension"] == DIMENSION
    assert policy["TargetTrackingScalingPolicyConfiguration"] == {
        "TargetValue": 50.0,
        "PredefinedMetricSpecification": {"PredefinedMetricType": METRIC},
    }
    assert sorted(policies(aws)) == [f"endpoint/ep/variant/m-v{i} {POLICY}" for i in (1, 2)]
    listed = scaling.targets(REGION, "ep")
    assert [(t.variant, t.min, t.max, t.target, t.mine) for t in listed] == [
        ("m-v1", 1, 4, 50.0, True),
        ("m-v2", 1, 4, 50.0, True),
    ]


def test_a_shadow_never_scales(aws: Aws) -> None:  # noqa: F811
    """Shadowed as core.traffic shadows a candidate: listed among the variants at weight 0,
    and the shadow; then promoted, and it scales."""
    scaling = VariantScaling(aws.clients)
    candidate = variant("m-v2", 0)
    scaling.reconcile("ep", REGION, config(variant("m-v1", 100), candidate, shadow=candidate))
    assert list(targets(aws)) == ["endpoint/ep/variant/m-v1"]
    scaling.reconcile("ep", REGION, config(variant("m-v2", 100)))
    assert list(targets(aws)) == ["endpoint/ep/variant/m-v2"]


def test_scaling_moves_with_the_variants(aws: Aws) -> None:  # noqa: F811
    scaling = VariantScaling(aws.clients)
    scaling.reconcile("ep", REGION, config(variant("m-v1", 100)))
    # the next version comes in: it scales too
    scaling.reconcile("ep", REGION, config(variant("m-v1", 90), variant("m-v2", 10)))
    assert set(targets(aws)) == {resource_id("ep", "m-v1"), resource_id("ep", "m-v2")}
    # the old one goes, with its policy; new bounds and target reach the one that stays
    wider = Autoscaling(min=2, max=8, target_invocations_per_instance=80)
    scaling.reconcile("ep", REGION, config(variant("m-v2", 100), scaling=wider))
    assert targets(aws) == {"endpoint/ep/variant/m-v2": (2, 8)}
    assert list(policies(aws)) == [f"endpoint/ep/variant/m-v2 {POLICY}"]
    assert scaling.targets(REGION, "ep")[0].target == 80.0
    # autoscaling dropped from the config: the variant keeps its instances, unscaled
    scaling.reconcile("ep", REGION, config(variant("m-v2", 100), scaling=None))
    assert targets(aws) == {} and policies(aws) == {}


def test_none_removes_only_what_mmm_made_for_the_endpoint(aws: Aws) -> None:  # noqa: F811
    others: Any = AwsClients(REGION, aws.url).client("application-autoscaling")

    def register(namespace: str, rid: str, dimension: str, policy: str | None) -> None:
        others.register_scalable_target(ServiceNamespace=namespace, ResourceId=rid,
                                        ScalableDimension=dimension, MinCapacity=1, MaxCapacity=3)  # fmt: skip
        if policy:
            others.put_scaling_policy(
                PolicyName=policy, ServiceNamespace=namespace, ResourceId=rid,
                ScalableDimension=dimension, PolicyType="TargetTrackingScaling",
                TargetTrackingScalingPolicyConfiguration={
                    "TargetValue": 70.0,
                    "PredefinedMetricSpecification": {
                        "PredefinedMetricType": "DynamoDBReadCapacityUtilization"
                        if namespace == "dynamodb" else METRIC
                    },
                },
            )  # fmt: skip

    scaling = VariantScaling(aws.clients)
    scaling.reconcile("ep", REGION, config(variant("m-v1", 100)))
    scaling.reconcile("ep-b", REGION, config(variant("m-v1", 100), name="ep-b"))
    register("sagemaker", resource_id("their-ep", "a"), DIMENSION, "their-policy")
    register("sagemaker", resource_id("ep", "theirs"), DIMENSION, "their-policy")
    register("dynamodb", "table/orders", "dynamodb:table:ReadCapacityUnits", "their-policy")
    scaling.reconcile("ep", REGION, None)
    assert set(targets(aws)) == {
        "endpoint/ep-b/variant/m-v1",  # another endpoint whose name starts the same
        "endpoint/their-ep/variant/a",
        "endpoint/ep/variant/theirs",  # someone else's policy is on it
    }
    assert targets(aws, "dynamodb") == {"table/orders": (1, 3)}
    assert sorted(policies(aws)) == [
        f"endpoint/ep-b/variant/m-v1 {POLICY}",
        "endpoint/ep/variant/theirs their-policy",
        "endpoint/their-ep/variant/a their-policy",
    ]
    assert list(policies(aws, "dynamodb")) == ["table/orders their-policy"]
    every = scaling.targets(REGION)
    assert [(t.endpoint, t.variant, t.mine) for t in every] == [
        ("ep", "theirs", False),
        ("ep-b", "m-v1", True),
        ("their-ep", "a", False),
    ]


def test_twice_is_once(aws: Aws, calls: list[str]) -> None:  # noqa: F811
    scaling = VariantScaling(aws.clients)
    wanted = config(variant("m-v1", 50), variant("m-v2", 50))
    scaling.reconcile("ep", REGION, wanted)
    after_once = (targets(aws), policies(aws))
    assert [c for c in calls if c in WRITES] == ["RegisterScalableTarget", "PutScalingPolicy"] * 2
    calls.clear()
    scaling.reconcile("ep", REGION, wanted)
    assert (targets(aws), policies(aws)) == after_once
    assert not [c for c in calls if c in WRITES]  # it only looked
    scaling.reconcile("ep", REGION, None)
    calls.clear()
    scaling.reconcile("ep", REGION, None)
    assert targets(aws) == {} and not [c for c in calls if c in WRITES]


def test_what_a_crash_left_half_done_is_finished(aws: Aws) -> None:  # noqa: F811
    """A target registered without its policy yet, or whose policy was deleted before it was
    deregistered, is finished by the next call, whichever way the config went."""
    others: Any = AwsClients(REGION, aws.url).client("application-autoscaling")
    for name in ("m-v1", "m-v2"):
        others.register_scalable_target(ServiceNamespace="sagemaker",
                                        ResourceId=resource_id("ep", name),
                                        ScalableDimension=DIMENSION, MinCapacity=1, MaxCapacity=4)  # fmt: skip
    VariantScaling(aws.clients).reconcile("ep", REGION, config(variant("m-v2", 100)))
    assert set(targets(aws)) == {resource_id("ep", "m-v2")}
    assert list(policies(aws)) == [f"endpoint/ep/variant/m-v2 {POLICY}"]


def test_already_gone_is_what_was_wanted(aws: Aws) -> None:  # noqa: F811
    """Someone removes the policy and the target between the adapter's look and its
    deletes (another worker, the endpoint's deletion): the deletes still succeed."""
    scaling = VariantScaling(aws.clients)
    scaling.reconcile("ep", REGION, config(variant("m-v1", 100)))
    others: Any = AwsClients(REGION, aws.url).client("application-autoscaling")
    ids = {"ServiceNamespace": "sagemaker", "ResourceId": resource_id("ep", "m-v1"),
           "ScalableDimension": DIMENSION}  # fmt: skip

    raced: list[str] = []

    def race(**_: Any) -> None:
        others.delete_scaling_policy(PolicyName=POLICY, **ids)
        others.deregister_scalable_target(**ids)
        raced.append("both gone")

    events = aws.client("application-autoscaling").meta.events  # type: ignore[attr-defined]
    events.register_first("before-call.*.DeleteScalingPolicy", race)
    try:
        scaling.reconcile("ep", REGION, None)
    finally:
        events.unregister("before-call.*.DeleteScalingPolicy", race)
    assert raced == ["both gone"]
    assert targets(aws) == {} and policies(aws) == {}


def test_release_only_deregisters(aws: Aws) -> None:  # noqa: F811
    """Before an update that removes a variant (SageMaker refuses to remove a scaled one):
    the leaving variant is deregistered, and the coming one not registered yet."""
    scaling = VariantScaling(aws.clients)
    scaling.reconcile("ep", REGION, config(variant("m-v1", 100)))
    scaling.release("ep", REGION, config(variant("m-v2", 100)))
    assert targets(aws) == {} and policies(aws) == {}
    scaling.reconcile("ep", REGION, config(variant("m-v2", 100)))
    assert set(targets(aws)) == {resource_id("ep", "m-v2")}


def test_refusals(aws: Aws) -> None:  # noqa: F811
    scaling = VariantScaling(aws.clients)
    with pytest.raises(ValueError, match="config of ep"):
        scaling.reconcile("other", REGION, config(variant("m-v1", 100)))
    assert targets(aws) == {}
    busy = ClientError({"Error": {"Code": "ConcurrentUpdateException", "Message": "busy"}},
                       "PutScalingPolicy")  # fmt: skip
    with pytest.raises(TransientError, match="under way"), _call("PutScalingPolicy", "x"):
        raise busy


def test_a_new_variant_set_keeps_the_counts_autoscaling_reached(aws: Aws) -> None:  # noqa: F811
    serving = SageMakerServing(aws.clients, ROLE_ARN, IMAGES)

    def on_s3(v: Variant) -> Variant:
        artifact = f"s3://mmm-production-{REGION}/models/m/{v.version}/model.joblib"
        return v.model_copy(update={"artifact": artifact})

    def settle(config: EndpointConfig) -> dict[str, tuple[int, float]]:
        serving.apply(config)
        while serving.settled(config.name, config.region, config) is not None:
            pass
        sm: Any = aws.client("sagemaker")
        found = sm.describe_endpoint(EndpointName=config.name)["ProductionVariants"]
        return {v["VariantName"]: (v["CurrentInstanceCount"], v["CurrentWeight"]) for v in found}

    first = config(on_s3(variant("m-v1", 100)))
    assert settle(first) == {"m-v1": (1, 100.0)}
    sm: Any = aws.client("sagemaker")
    # autoscaling took m-v1 to 3 instances
    sm.update_endpoint_weights_and_capacities(
        EndpointName="ep",
        DesiredWeightsAndCapacities=[{"VariantName": "m-v1", "DesiredInstanceCount": 3}],
    )
    while serving.settled("ep", REGION, first) is not None:
        pass
    both = config(on_s3(variant("m-v1", 100)), on_s3(variant("m-v2", 0)))
    # m-v1 keeps its 3 (UpdateEndpoint would start it at the config's 1); the weights are
    # the new config's, and the new variant starts at the config's count
    assert settle(both) == {"m-v1": (3, 100.0), "m-v2": (1, 0.0)}
    unscaled = config(on_s3(variant("m-v1", 100)), scaling=None)
    assert settle(unscaled)["m-v1"] == (1, 100.0)  # without autoscaling the config's count
