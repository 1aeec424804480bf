"""The S3, CloudWatch and SageMaker adapters on their own, over HTTP to a moto server."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from core.adapters.aws import CloudWatchMonitor, S3ArtifactStore, SageMakerServing
from core.adapters.aws.errors import translate
from core.adapters.aws.s3 import in_region
from core.adapters.local.artifacts import sha256_tree, tree_files
from core.ports import (
    AlarmRef,
    EndpointConfig,
    InvalidInput,
    NotFound,
    PortError,
    TransientError,
)
from core.spec import Alarms
from tests.support.container_models import huggingface_folder
from tests.support.endpoint_configs import endpoint_config
from tests.support.moto_server import IMAGES, REGION, ROLE_ARN, Aws, aws  # noqa: F401


def test_s3_files_and_uncompressed_prefixes(aws: Aws, tmp_path: Path) -> None:  # noqa: F811
    store = S3ArtifactStore(aws.clients, "t1", REGION, tmp_path / "cache")
    src = tmp_path / "model.joblib"
    src.write_bytes(b"weights")
    uri = store.put("staging", "models/m/1/model.joblib", src)
    assert uri == "s3://t1-staging-us-east-1/models/m/1/model.joblib"
    assert store.put("staging", "models/m/1/model.joblib", src) == uri  # same bytes: no-op
    assert store.locate(uri) == ("staging", "models/m/1/model.joblib")
    assert store.locate("s3://other-bucket/k") is None
    prod = store.copy(uri, "production", "models/m/1/model.joblib")
    assert store.exists(prod) and store.local_path(prod).read_bytes() == b"weights"
    assert store.code_uri(prod) == prod

    big = tmp_path / "llm"
    (big / "shards").mkdir(parents=True)
    (big / "config.json").write_text("{}")
    (big / "shards" / "0.bin").write_bytes(b"0" * 10)
    prefix = store.put("staging", "models/m/2/weights", big)
    assert prefix.endswith("/weights/")
    copied = store.copy(prefix, "production", "models/m/2/weights")
    assert store.list("production", "models/m/2/") == [
        f"{copied}config.json",
        f"{copied}shards/0.bin",
    ]
    assert store.delete(copied) and not store.exists(copied)
    assert store.delete(copied) is False  # already gone
    with pytest.raises(NotFound):
        store.copy("s3://t1-staging-us-east-1/nothing", "production", "x")


def test_s3_keeps_a_model_folder_whole_as_the_embedded_store_does(
    aws: Aws,  # noqa: F811
    tmp_path: Path,
) -> None:
    store = S3ArtifactStore(aws.clients, "t3", REGION, tmp_path / "cache")
    model = huggingface_folder(tmp_path / "llm", sharded=True)
    (model / "extra").mkdir()
    (model / "extra" / "notes.md").write_text("kept at its relative path\n")
    staged = store.put("staging", "models/llm/1/model", model)
    assert staged == "s3://t3-staging-us-east-1/models/llm/1/model/"
    assert store.put("staging", "models/llm/1/model/", model) == staged  # same key, with `/`
    assert store.exists(staged) and not store.exists(staged.rstrip("/"))
    # got back whole, into a folder (by its name) or at a path, and as a cached copy
    into = tmp_path / "into"
    into.mkdir()
    got = store.get(staged, into)
    assert got == into / "model" and sha256_tree(got) == sha256_tree(model)
    at = store.get(staged, tmp_path / "at" / "llm")
    assert tree_files(at) == tree_files(model)
    assert not [p for p in (tmp_path / "at").iterdir() if p.name.endswith(".partial")]
    cached = store.local_path(staged)
    assert cached.is_dir() and sha256_tree(cached) == sha256_tree(model)
    assert store.local_path(staged) == cached  # unchanged: the same copy
    # a changed folder replaces the stored one whole: no stale file stays under the prefix
    (model / "extra" / "notes.md").unlink()
    (model / "config.json").write_text('{"model_type": "llama"}')
    store.put("staging", "models/llm/1/model", model)
    assert store.list("staging", "models/llm/1/") == [f"{staged}{f}" for f in tree_files(model)]
    fresh = store.local_path(staged)
    assert fresh != cached and sha256_tree(fresh) == sha256_tree(model)
    assert sha256_tree(store.get(staged, into)) == sha256_tree(model)  # the old copy replaced
    # copied whole, over an older copy too
    store.put("production", "models/llm/1/model", huggingface_folder(tmp_path / "older"))
    copied = store.copy(staged, "production", "models/llm/1/model/")
    assert copied == "s3://t3-production-us-east-1/models/llm/1/model/"
    assert store.list("production") == [f"{copied}{f}" for f in tree_files(model)]
    assert store.delete(copied) and store.list("production") == []
    with pytest.raises(NotFound, match="no such artifact"):
        store.get(copied, into)
    with pytest.raises(NotFound, match="no such artifact"):
        store.local_path(copied)


def test_s3_refuses_a_folder_it_could_not_give_back(
    aws: Aws,  # noqa: F811
    tmp_path: Path,
) -> None:
    store = S3ArtifactStore(aws.clients, "t4", REGION, tmp_path / "cache")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InvalidInput, match=r"empty: an empty folder"):
        store.put("staging", "models/m/1/model", empty)
    looped = huggingface_folder(tmp_path / "llm")
    (looped / "again").symlink_to(looped)
    with pytest.raises(InvalidInput, match="a link to a folder"):
        store.put("staging", "models/m/1/model", looped)
    assert store.list("staging") == []
    # a key no folder can hold a file at is refused, never written outside the folder
    s3: Any = aws.client("s3")
    s3.create_bucket(Bucket="t4-staging-us-east-1")
    s3.put_object(Bucket="t4-staging-us-east-1", Key="models/m/2/model/../../x", Body=b"x")
    with pytest.raises(InvalidInput, match="not a path inside a folder"):
        store.get("s3://t4-staging-us-east-1/models/m/2/model/", tmp_path / "out")
    assert not (tmp_path / "x").exists() and not (tmp_path / "out").exists()


def test_s3_production_buckets_per_region(aws: Aws, tmp_path: Path) -> None:  # noqa: F811
    store = S3ArtifactStore(aws.clients, "t2", REGION, tmp_path / "cache")
    src = tmp_path / "model.joblib"
    src.write_bytes(b"weights")
    staged = store.put("staging", "models/m/1/model.joblib", src)
    assert store.bucket_in("production", REGION) == "production"
    eu = store.bucket_in("production", "eu-west-1")
    assert eu == "production/eu-west-1"
    home_copy = store.copy(staged, "production", "models/m/1/model.joblib")
    eu_copy = store.copy(staged, eu, "models/m/1/model.joblib")
    assert eu_copy == "s3://t2-production-eu-west-1/models/m/1/model.joblib"
    assert store.locate(eu_copy) == (eu, "models/m/1/model.joblib")
    assert store.uri(eu, "models/m/1/model.joblib") == eu_copy  # read back as it was named
    s3: Any = aws.client("s3", "eu-west-1")
    assert s3.get_bucket_location(Bucket="t2-production-eu-west-1")["LocationConstraint"] == (
        "eu-west-1"
    )
    # a bare purpose lists every region's bucket of it, the home region's first
    assert store.list("production", "models/m/") == [home_copy, eu_copy]
    assert store.list(eu, "models/m/") == [eu_copy]
    assert in_region(home_copy, "production", REGION, "eu-west-1") == eu_copy
    assert in_region(eu_copy, "production", "eu-west-1", REGION) == home_copy
    assert in_region(staged, "production", REGION, "eu-west-1") == staged
    with pytest.raises(InvalidInput):
        store.uri("production/nowhere", "k")
    with pytest.raises(InvalidInput, match="not an AWS region"):
        aws.clients.client("sagemaker", "local")


def test_cloudwatch_alarms_state_and_dashboard(aws: Aws) -> None:  # noqa: F811
    monitor = CloudWatchMonitor(aws.clients)
    names = monitor.ensure_alarms("ep", REGION, "m-v1", Alarms())
    assert names == ["mmm/ep/m-v1/error-rate", "mmm/ep/m-v1/p99-latency"]
    assert monitor.ensure_alarms("ep", REGION, "m-v1", Alarms()) == names  # idempotent
    cw: Any = aws.client("cloudwatch")
    assert [d["DashboardName"] for d in cw.list_dashboards()["DashboardEntries"]] == ["mmm-ep"]
    assert not any(s.firing for s in monitor.evaluate(names, REGION, since=0))
    cw.set_alarm_state(AlarmName=names[0], StateValue="ALARM", StateReason="5xx")
    assert [s.firing for s in monitor.evaluate(names, REGION, since=0)] == [True, False]
    assert monitor.alarms("mmm/ep/") == [AlarmRef(REGION, n) for n in names]
    monitor.delete_alarms(names, REGION)
    assert monitor.alarms("mmm/") == []
    assert cw.list_dashboards()["DashboardEntries"] == []
    with pytest.raises(NotFound):
        monitor.evaluate(names, REGION)


def test_a_breach_over_before_the_next_look_still_fires(aws: Aws) -> None:  # noqa: F811
    """An alarm that went to ALARM and back to OK inside the window is read from its
    history; one that breached before the window began is not."""
    monitor = CloudWatchMonitor(aws.clients)
    names = monitor.ensure_alarms("ep", REGION, "m-v1", Alarms())
    cw: Any = aws.client("cloudwatch")
    before = time.time() - 1
    breach = json.dumps({"recentDatapoints": [0.25]})
    cw.set_alarm_state(
        AlarmName=names[0], StateValue="ALARM", StateReason="5xx", StateReasonData=breach
    )
    cw.set_alarm_state(AlarmName=names[0], StateValue="OK", StateReason="recovered")
    states = monitor.evaluate(names, REGION, since=before)
    assert [s.firing for s in states] == [True, False]
    assert states[0].value == 0.25
    assert not any(s.firing for s in monitor.evaluate(names, REGION))  # now only: OK
    later = time.time() + 5
    assert not any(s.firing for s in monitor.evaluate(names, REGION, since=later))
    history = cw.describe_alarm_history(AlarmName=names[0], HistoryItemType="StateUpdate")
    assert [i["HistorySummary"] for i in history["AlarmHistoryItems"]] == [
        "Alarm updated from ALARM to OK",
        "Alarm updated from OK to ALARM",
    ]


def _config(weights: dict[str, float]) -> EndpointConfig:
    return endpoint_config(weights, env={"LOG_LEVEL": "info"})


def test_sagemaker_statuses_are_looked_at_never_waited_for(aws: Aws) -> None:  # noqa: F811
    serving = SageMakerServing(aws.clients, ROLE_ARN, IMAGES)
    one = _config({"m-v1": 100})
    assert serving.apply(one) is None
    assert serving.settled("ep", REGION, one) == "Creating"
    serving.apply(one)  # asked again while Creating (a look after a crash): a no-op
    while serving.settled("ep", REGION, one) is not None:
        pass
    assert serving.get_endpoint("ep", REGION) == one
    two = _config({"m-v1": 100, "m-v2": 0})
    serving.apply(two)
    assert serving.settled("ep", REGION, two) == "Updating"
    with pytest.raises(TransientError, match="Updating"):
        serving.apply(_config({"m-v3": 100}))  # another change under way
    while serving.settled("ep", REGION, two) is not None:
        pass
    shifted = _config({"m-v1": 50, "m-v2": 50})
    serving.apply(shifted)  # weights only: UpdateEndpointWeightsAndCapacities
    while serving.settled("ep", REGION, shifted) is not None:
        pass
    assert serving.endpoints() == [shifted]
    sm: Any = aws.client("sagemaker")
    described = sm.describe_endpoint(EndpointName="ep")
    assert {v["DesiredInstanceCount"] for v in described["ProductionVariants"]} == {1}
    assert serving.delete("ep", REGION) is True
    assert serving.delete("ep", REGION) is False  # already gone
    assert sm.list_models()["Models"] == [] and sm.list_endpoint_configs()["EndpointConfigs"] == []


def test_a_config_another_process_swept_is_made_again(aws: Aws) -> None:  # noqa: F811
    # two workers' adapters: each remembers the configs it has seen; one's sweep must not
    # leave the other believing a deleted config still exists
    first, second = (SageMakerServing(aws.clients, ROLE_ARN, IMAGES) for _ in range(2))
    one, two = _config({"m-v1": 100}), _config({"m-v1": 0, "m-v2": 100})
    for serving, config in ((first, one), (second, two), (first, one)):
        serving.apply(config)
        while serving.settled("ep", REGION, config) is not None:
            pass
        assert serving.get_endpoint("ep", REGION) == config
    sm: Any = aws.client("sagemaker")
    assert len(sm.list_endpoint_configs()["EndpointConfigs"]) == 1  # the others swept
    assert first.delete("ep", REGION) is True


def test_sagemaker_refuses_clearly(aws: Aws) -> None:  # noqa: F811
    with pytest.raises(InvalidInput, match=r"aws\.images has no container image for library"):
        SageMakerServing(aws.clients, ROLE_ARN, {}).apply(_config({"m-v1": 100}))
    with pytest.raises(InvalidInput, match=r"aws\.role_arn"):
        SageMakerServing(aws.clients, None, IMAGES).apply(_config({"m-v1": 100}))


def test_aws_errors_become_port_errors() -> None:
    from botocore.exceptions import ClientError

    def err(code: str, status: int) -> ClientError:
        body = {
            "Error": {"Code": code, "Message": "m"},
            "ResponseMetadata": {"HTTPStatusCode": status},
        }
        return ClientError(body, "Op")  # type: ignore[arg-type]

    assert isinstance(
        translate(err("ThrottlingException", 400), "CreateModel", "x"), TransientError
    )
    assert isinstance(translate(err("InternalFailure", 500), "CreateModel", "x"), TransientError)
    final = translate(err("ValidationException", 400), "CreateEndpoint", "endpoint ep (us-east-1)")
    assert not isinstance(final, TransientError) and isinstance(final, PortError)
    assert "CreateEndpoint endpoint ep (us-east-1)" in str(final)
    denied = translate(err("AccessDeniedException", 400), "PutMetricAlarm", "alarm a")
    assert "permission refused" in str(denied) and "PutMetricAlarm alarm a" in str(denied)
