"""The deployment file's `autoscaling` reaches the EndpointConfig the endpoint steps build,
stays through every traffic change, and survives the dump kept in the store."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from core.domain import Deployment, Facts, Library, iso
from core.plan import Action
from core.ports import EndpointConfig
from core.spec import Autoscaling, parse_deployment
from core.steps.base import dump_config, endpoint_entry, load_config
from core.steps.endpoints import EndpointSteps
from core.traffic import drain_to, remove_versions, revert, shift

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SCALING = {"min": 2, "max": 6, "target_invocations_per_instance": 70}


def deployment(version: int, spec: dict[str, Any]) -> Deployment:
    return Deployment(
        id=f"dep-{version}",
        model="churn",
        version=version,
        endpoint="churn",
        regions=["local"],
        spec=parse_deployment({"endpoint": "churn", **spec}),
        requested_by="alice",
        created_at=iso(T0),
        updated_at=iso(T0),
        context=Facts(library=Library.SKLEARN, artifact_production=f"s3://b/churn/{version}"),
    )


def steps() -> EndpointSteps:
    # Deciding the config of a step reads only the deployment and the entry handed in.
    nothing = cast(Any, None)
    return EndpointSteps(ws=nothing, ports=nothing, store=nothing, clock=lambda: T0)


def created(d: Deployment, live: EndpointConfig | None = None) -> EndpointConfig:
    entry = endpoint_entry("churn", "local", live)
    config = steps()._desired(d, Action.CREATE_VARIANT, {}, entry)
    assert config is not None
    return config


def test_a_new_endpoint_scales_as_the_deployment_file_says() -> None:
    config = created(deployment(1, {"autoscaling": SCALING, "instance": {"count": 2}}))
    assert config.autoscaling == Autoscaling(**SCALING)
    assert config.instance_count == 2
    assert created(deployment(1, {})).autoscaling is None


def test_the_scaling_stays_through_every_traffic_change() -> None:
    first = created(deployment(1, {"autoscaling": SCALING}))
    # the next version comes in on the endpoint as it is, like its instance type and count
    both = created(deployment(2, {}), live=first)
    assert [v.name for v in both.variants] == ["churn-v1", "churn-v2"]
    for changed in (
        shift(both, "churn-v2", 50),
        drain_to(both, "churn-v2"),
        remove_versions(both, {"churn-v1"}),
        revert(both, first, both),
    ):
        assert changed is not None and changed.autoscaling == Autoscaling(**SCALING)


def test_the_dump_kept_in_the_store_reads_back_the_same() -> None:
    config = created(deployment(1, {"autoscaling": SCALING}))
    assert load_config(dump_config(config)) == config
    # a config kept before the field existed reads as not scaling
    older = dump_config(created(deployment(1, {})))
    assert older is not None
    del older["autoscaling"]
    loaded = load_config(older)
    assert loaded is not None and loaded.autoscaling is None
