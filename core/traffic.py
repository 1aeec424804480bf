"""Pure changes to an endpoint's configuration: add a variant, shift weight, shadow, drain.

Weights are percents of live traffic and always add up to 100 on an endpoint
that serves; the functions keep them so.
"""

from __future__ import annotations

from core.ports import EndpointConfig, ShadowConfig, Variant


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


def holding(configs: list[EndpointConfig], names: set[str]) -> list[EndpointConfig]:
    """The endpoints where any of the variants `names` is, serving or shadowing."""
    return [
        c
        for c in configs
        if names & ({v.name for v in c.variants} | ({c.shadow.variant.name} if c.shadow else set()))
    ]


def still_live(configs: list[EndpointConfig], names: set[str], shown: str) -> str | None:
    """Why `shown` (a model, or one version) may not be retired: the endpoints where its
    variants `names` still take live traffic; None when they take none."""
    live = [(c, w) for c in configs if (w := live_weight(c, names)) > 0]
    if not live:
        return None
    where = ", ".join(f"{c.name} ({c.region}) at {w:g}%" for c, w in live)
    return (
        f"{shown} still takes live traffic on {where}; "
        "deploy another version there first, or retire with --force"
    )


def revert(
    live: EndpointConfig | None, before: EndpointConfig | None, after: EndpointConfig | None
) -> EndpointConfig | None:
    """Undo the change `before` -> `after` on top of `live`, the configuration now.

    Only what that change touched goes back (variants it added, removed or re-weighted, and
    the shadow if it changed it); whatever else changed since stays as `live` has it. Weights
    are then scaled to add up to 100 again. None: nothing is left to serve.
    """
    base = live or before
    if base is None:
        return None
    was = {v.name: v for v in before.variants} if before else {}
    became = {v.name: v for v in after.variants} if after else {}
    variants = {v.name: v for v in base.variants}
    for name in was.keys() | became.keys():
        if was.get(name) == became.get(name):
            continue
        if name in was:
            variants[name] = was[name]
        else:
            variants.pop(name, None)
    shadow = base.shadow
    before_shadow = before.shadow if before else None
    if before_shadow != (after.shadow if after else None):
        shadow = before_shadow
    if not variants:
        return None
    kept = list(variants.values())
    total = sum(v.weight for v in kept)
    if total > 0 and abs(total - 100.0) > 1e-9:
        kept = _rescale(kept, 100.0)
    return base.model_copy(update={"variants": kept, "shadow": shadow})
