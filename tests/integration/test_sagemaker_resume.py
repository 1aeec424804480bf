"""A SageMaker change asked for by a worker that was then killed: the next worker's adapter
(a new one, with nothing remembered) finds it under way and waits for it, instead of taking
it for someone else's change (which would hold the step back and say so in its history).
Found by the crash matrix on the real adapters (tests/e2e/test_crash_real_backends.py)."""

from __future__ import annotations

from typing import Any

import pytest

from core.adapters.aws import SageMakerServing
from core.ports import EndpointConfig, TransientError
from tests.support.endpoint_configs import endpoint_config
from tests.support.moto_sagemaker import LIFECYCLE
from tests.support.moto_server import IMAGES, REGION, ROLE_ARN, Aws, aws  # noqa: F401


def _settle(serving: SageMakerServing, config: EndpointConfig) -> None:
    while serving.settled("ep", REGION, config) is not None:
        pass


def _updates(aws: Aws) -> list[str]:  # noqa: F811
    """How the endpoint's variants read now: current and desired weight of each."""
    sm: Any = aws.client("sagemaker")
    variants = sm.describe_endpoint(EndpointName="ep")["ProductionVariants"]
    return [f"{v['VariantName']} {v['CurrentWeight']:g}->{v['DesiredWeight']:g}" for v in variants]


def test_a_weights_update_in_flight_is_recognised_by_the_next_worker(aws: Aws) -> None:  # noqa: F811
    LIFECYCLE.looks = 8  # long enough to look at it several times while it is under way
    killed = SageMakerServing(aws.clients, ROLE_ARN, IMAGES)
    both = endpoint_config({"m-v1": 100, "m-v2": 0})
    killed.apply(both)
    _settle(killed, both)
    shifted = endpoint_config({"m-v1": 50, "m-v2": 50})
    killed.apply(shifted)  # UpdateEndpointWeightsAndCapacities; then the worker dies

    resumed = SageMakerServing(aws.clients, ROLE_ARN, IMAGES)
    assert _updates(aws) == ["m-v1 100->50", "m-v2 0->50"]  # Updating: asked, not yet made
    resumed.apply(shifted)  # the step again: its own change, under way
    with pytest.raises(TransientError, match="another change is under way"):
        resumed.apply(endpoint_config({"m-v1": 25, "m-v2": 75}))  # someone else's would be refused
    _settle(resumed, shifted)
    assert resumed.get_endpoint("ep", REGION) == shifted
    assert _updates(aws) == ["m-v1 50->50", "m-v2 50->50"]
