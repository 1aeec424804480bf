"""Names are checked once at the door; layout builds and parses exactly; undo of a traffic change."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.adapters.local.artifacts import LocalArtifactStore
from core.domain import Library
from core.layout import (
    alarm_name,
    artifact_key,
    artifact_name,
    artifact_root,
    descriptor_path,
    parse_alarm_name,
    parse_artifact_key,
    parse_descriptor_path,
    variant_name,
)
from core.names import (
    SAGEMAKER_NAME,
    InvalidName,
    check_actor,
    check_endpoint,
    check_model,
    check_region,
    resource_name,
)
from core.ports import AlarmRef, EndpointConfig, ShadowConfig, Variant
from core.traffic import add_variant, drain_to, revert, shift, with_shadow
from core.usage import alarm_sites, artifact_sites, whole_artifacts
from core.versions import check_version, shown, sort_key


@pytest.mark.parametrize(
    "name",
    [
        *("café", "名字", "a" * 49, "a" * 10_000, "", "-a", "a.b", "a/b"),
        *("a--b", "a_-b", "a-", "a_"),  # separators are single, between words
        "a_" * 16 + "a",  # 33 characters, 49 once each '_' is spelled '--'
    ],
)
def test_model_names_that_would_fail_later_are_refused(name: str) -> None:
    with pytest.raises(InvalidName, match="model"):
        check_model(name)


@pytest.mark.parametrize("name", ["churn", "churn_model", "Churn-2", "a" * 48])
def test_model_names_that_pass(name: str) -> None:
    assert check_model(name) == name


def _joined(words: list[tuple[str, str]]) -> str:
    return "".join(w + sep for w, sep in words)[:-1]


_WORD = st.from_regex(r"[A-Za-z0-9]{1,5}", fullmatch=True)
_MODELS = st.lists(st.tuples(_WORD, st.sampled_from(["-", "_"])), min_size=1, max_size=6)
# Versions as registries name them: the local registry's numbers, semantic versions.
_VERSIONS = st.one_of(
    st.integers(min_value=1, max_value=10**6).map(str),
    st.lists(st.tuples(_WORD, st.sampled_from([".", "-", "+"])), min_size=1, max_size=3).map(
        _joined
    ),
)


@settings(max_examples=60, deadline=None)
@given(_MODELS, _VERSIONS)
def test_resource_names_are_valid_everywhere_and_never_shared(
    words: list[tuple[str, str]], version: str
) -> None:
    model = _joined(words)
    check_model(model)
    check_version(version)
    variant = variant_name(model, version)
    assert SAGEMAKER_NAME.match(variant) and len(variant) <= 63
    assert parse_alarm_name(alarm_name("e", variant, "p99_latency_ms")) is not None
    twin = model.translate(str.maketrans("-_", "_-"))  # the same words, separators swapped
    if twin != model:
        assert resource_name(twin) != resource_name(model)
        assert variant_name(twin, version) != variant
    # one-to-one: the name comes back from its resource name
    assert resource_name(model).replace("--", "_") == model


@settings(max_examples=200, deadline=None)
@given(_MODELS, _VERSIONS, _MODELS, _VERSIONS)
def test_no_two_model_versions_share_a_variant(
    m1: list[tuple[str, str]], v1: str, m2: list[tuple[str, str]], v2: str
) -> None:
    if (_joined(m1), v1) != (_joined(m2), v2):
        assert variant_name(_joined(m1), v1) != variant_name(_joined(m2), v2)


def test_versions_as_registries_name_them() -> None:
    # `a-v1` v2 and `a` v1.v2 would both be "a-v1-v2" if '.' were spelled '-'
    assert variant_name("a-v1", "2") != variant_name("a", "1.v2")
    assert variant_name("churn_model", "1.1.0") == "churn--model-v1--1--0"
    ordered = ["1.0.0-rc.1", "1.0.0", "1.1.0", "1.10.0", "2", "10"]
    assert sorted(reversed(ordered), key=sort_key) == ordered
    assert [shown(x) for x in ("3", "1.1.0", "007")] == [3, "1.1.0", "007"]
    for bad in ("", "1..0", "1.0.", "v 1", "1/2", "../1", "é", "1" * 33):
        with pytest.raises(InvalidName, match="version"):
            check_version(bad)


def test_endpoint_region_and_actor_rules() -> None:
    assert check_endpoint("churn-scorer") == "churn-scorer"
    for bad in ("", "Churn", "a--b", "a-", "a" * 64, "../x"):
        with pytest.raises(InvalidName):
            check_endpoint(bad)
    assert check_region("us-east-1") == "us-east-1"
    for bad in ("../../x", "US", "a b", ""):
        with pytest.raises(InvalidName):
            check_region(bad)
    assert check_actor("José García") == "José García"
    for bad in ("bob\nmallory", "bob\x1b[2J", "", " bob", "x" * 129):
        with pytest.raises(InvalidName, match="user name"):
            check_actor(bad)


def test_layout_parses_exactly_what_it_builds() -> None:
    name = alarm_name("e", "a-b-v1", "error_rate")
    parsed = parse_alarm_name(name)
    assert parsed is not None and (parsed.endpoint, parsed.variant, parsed.metric) == (
        "e",
        "a-b-v1",
        "error_rate",
    )
    assert parse_alarm_name("mmm-e-b-v1-error-rate") is None
    assert parse_artifact_key(artifact_key("a-b", "3", "model.joblib")) == ("a-b", "3")
    assert parse_artifact_key(artifact_key("a-b", "1.1.0", "m.onnx")) == ("a-b", "1.1.0")
    assert parse_artifact_key("models/a/x..y/model.joblib") is None
    assert parse_descriptor_path(descriptor_path("e", "a-b")) == ("e", "a-b")


def test_a_model_folder_is_one_artifact_of_its_version() -> None:
    folder = artifact_key("llm", "1.1.0", "model/")
    assert folder == "models/llm/1.1.0/model/"
    assert parse_artifact_key(folder) == ("llm", "1.1.0")
    assert parse_artifact_key(f"{folder}shards/0.safetensors") == ("llm", "1.1.0")
    assert parse_artifact_key("models/llm/1.1.0/") is None  # the version's prefix: no artifact
    assert parse_artifact_key("models/llm/1.1.0//x") is None
    assert artifact_root(f"{folder}shards/0.safetensors") == folder
    assert artifact_root(folder) == folder
    assert artifact_root("models/llm/1/golden.jsonl") == "models/llm/1/golden.jsonl"
    assert artifact_root("models/llm/1/") is None
    assert artifact_root("trash/models/llm/1/model/x") is None
    assert artifact_name("s3://b/models/llm/1/model/") == "model/"
    assert artifact_name("local://staging/models/llm/1/model.pt") == "model.pt"


def test_usage_counts_a_model_folder_as_one_site() -> None:
    store = LocalArtifactStore(Path("buckets"))
    listed = [
        "local://production/models/llm/1/golden.jsonl",
        "local://production/models/llm/1/model/config.json",
        "local://production/models/llm/1/model/shards/0.safetensors",
        "local://production/models/llm/2/model.pt",
        "local://production/models/llm-b/1/model/config.json",
        "local://production/models/llm/1/",  # a folder marker an S3 console leaves
    ]
    assert whole_artifacts(store, listed) == [
        "local://production/models/llm/1/golden.jsonl",
        "local://production/models/llm/1/model/",
        "local://production/models/llm/2/model.pt",
        "local://production/models/llm-b/1/model/",
        "local://production/models/llm/1/",
    ]
    sites = artifact_sites(store, listed, "llm", {"1"})
    assert [(s.location, s.version) for s in sites] == [
        ("local://production/models/llm/1/golden.jsonl", "1"),
        ("local://production/models/llm/1/model/", "1"),
    ]


def test_usage_never_matches_a_model_whose_name_ends_with_another() -> None:
    names = [alarm_name("e", variant_name(m, "1"), "error_rate") for m in ("a-b", "b", "b-v1")]
    refs = [AlarmRef("local", n) for n in names]
    assert [s.location for s in alarm_sites(refs, "b", {"1"})] == [names[1]]
    uris = ["local://production/models/a-b/1/model.joblib", "local://production/models/b/1/m"]
    store = LocalArtifactStore(Path("buckets"))
    assert [s.location for s in artifact_sites(store, uris, "b", None)] == [uris[1]]
    assert store.locate(uris[1]) == ("production", "models/b/1/m")
    assert store.locate("s3://production/models/b/1/m") is None  # not a URI this store made


def v(name: str, weight: float) -> Variant:
    model, _, version = name.rpartition("-v")
    return Variant(
        name=name,
        model=model,
        version=version,
        library=Library.SKLEARN,
        artifact=f"local://production/{name}",
        weight=weight,
    )


def config(*variants: Variant) -> EndpointConfig:
    return EndpointConfig(name="e", region="local", variants=list(variants))


def names(c: EndpointConfig | None) -> dict[str, float]:
    return {} if c is None else {x.name: x.weight for x in c.variants}


def test_revert_undoes_only_what_the_change_touched() -> None:
    start = config(v("m-v1", 100))
    added = add_variant(start, v("m-v2", 0), start)
    shifted = shift(added, "m-v2", 25)
    assert names(revert(shifted, added, shifted)) == {"m-v1": 100, "m-v2": 0}
    assert names(revert(added, start, added)) == {"m-v1": 100}
    # someone added another variant since: it stays
    since = shifted.model_copy(update={"variants": [*shifted.variants, v("x-v1", 0)]})
    assert names(revert(since, added, shifted)) == {"m-v1": 100, "m-v2": 0, "x-v1": 0}
    # drained to the candidate, then undone: the old variant comes back with its weight
    drained = drain_to(shift(added, "m-v2", 100), "m-v2")
    assert names(revert(drained, shift(added, "m-v2", 100), drained)) == {"m-v2": 100, "m-v1": 0}
    # created from nothing: undone to nothing
    assert revert(start, None, start) is None
    # a shadow added and undone; run twice, the same
    shadowed = with_shadow(added, "m-v2", 50)
    once = revert(shadowed, added, shadowed)
    assert once is not None and once.shadow is None
    assert revert(once, added, shadowed) == once
    assert isinstance(shadowed.shadow, ShadowConfig)
