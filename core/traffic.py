"""Pure changes to an endpoint's configuration: add a variant, shift weight, shadow, drain.

Weights are percents of live traffic and always add up to 100 on an endpoint
that serves; the functions keep them so.
"""

from __future__ import annotations

from core.ports import EndpointConfig, ShadowConfig, Variant


def variant_name(model: str, version: int) -> str:
    return f"{model}-v{version}"


def _rescale(variants: list[Variant], total: float) -> list[Variant]:
    """Scale `variants` so their weights add up to `total`, keeping their proportions."""
    current = sum(v.weight for v in variants)
    if not variants:
        return []
    if current <= 0:
        share = total / len(variants)
        return [v.model_copy(update={"weight": share}) for v in variants]
    return [v.model_copy(update={"weight": v.weight * total / current}) for v in variants]


def serves(config: EndpointConfig | None) -> bool:
    return config is not None and any(v.weight > 0 for v in config.variants)


def add_variant(
    config: EndpointConfig | None, candidate: Variant, template: EndpointConfig
) -> EndpointConfig:
    """`config` with `candidate` added at weight 0, or a new endpoint serving only it."""
    if config is None or not config.variants:
        return template.model_copy(
            update={"variants": [candidate.model_copy(update={"weight": 100.0})]}
        )
    others = [v for v in config.variants if v.name != candidate.name]
    return config.model_copy(
        update={"variants": [*others, candidate.model_copy(update={"weight": 0.0})]}
    )


def shift(config: EndpointConfig, candidate: str, percent: float) -> EndpointConfig:
    """Give `candidate` `percent` of traffic; the others share the rest as before."""
    others = [v for v in config.variants if v.name != candidate]
    mine = [v for v in config.variants if v.name == candidate]
    if not mine:
        raise ValueError(f"{config.name} has no variant {candidate}")
    if not others:
        percent = 100.0
    variants = [
        *_rescale(others, 100.0 - percent),
        mine[0].model_copy(update={"weight": float(percent)}),
    ]
    return config.model_copy(update={"variants": variants})


def with_shadow(config: EndpointConfig, candidate: str, sample_percent: float) -> EndpointConfig:
    variant = next(v for v in config.variants if v.name == candidate)
    shadow = ShadowConfig(
        variant=variant.model_copy(update={"weight": 0.0}), sample_percent=sample_percent
    )
    return config.model_copy(update={"shadow": shadow})


def without_shadow(config: EndpointConfig) -> EndpointConfig:
    return config.model_copy(update={"shadow": None})


def drain_to(config: EndpointConfig, candidate: str) -> EndpointConfig:
    """Only `candidate` remains, with all traffic."""
    mine = next(v for v in config.variants if v.name == candidate)
    return config.model_copy(
        update={"variants": [mine.model_copy(update={"weight": 100.0})], "shadow": None}
    )


def remove_versions(config: EndpointConfig, names: set[str]) -> EndpointConfig | None:
    """`config` without the named variants (and shadow); None when nothing is left to serve."""
    shadow = config.shadow if config.shadow and config.shadow.variant.name not in names else None
    remaining = [v for v in config.variants if v.name not in names]
    if not remaining:
        return None
    return config.model_copy(update={"variants": _rescale(remaining, 100.0), "shadow": shadow})


def live_weight(config: EndpointConfig, names: set[str]) -> float:
    return sum(v.weight for v in config.variants if v.name in names)
