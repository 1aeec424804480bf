"""Endpoint configs for the SageMaker adapter's tests on moto."""

from __future__ import annotations

from core.ports import EndpointConfig, Variant
from tests.support.moto_server import REGION


def endpoint_config(weights: dict[str, float], env: dict[str, str] | None = None) -> EndpointConfig:
    """Endpoint `ep` in moto's region, one sklearn variant of model `m` per name in `weights`
    (its version the name's last character), with that traffic weight."""
    return EndpointConfig(
        name="ep",
        region=REGION,
        variants=[
            Variant(
                name=n,
                model="m",
                version=n[-1],
                library="sklearn",
                artifact=f"s3://b/models/m/{n[-1]}/model.joblib",
                weight=w,
            )
            for n, w in weights.items()
        ],
        env={} if env is None else env,
    )
