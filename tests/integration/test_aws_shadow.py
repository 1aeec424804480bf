"""Shadow tests on SageMaker: the adapter's shadow configs, data capture and replay, then
whole shadow deployments, over HTTP to a moto server extended with shadow variants, a
runtime that answers from per-variant responders and writes SageMaker's capture records
(tests.support.moto_sagemaker)."""

from __future__ import annotations

import base64
import json
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.adapters.aws import CloudWatchMonitor, S3ArtifactStore, SageMakerServing, capture
from core.adapters.aws.runtime import send
from core.adapters.local.registry import LocalRegistry
from core.bootstrap import SilentNotifier, load_workspace
from core.domain import DeploymentState, Library, utcnow
from core.machine import Start
from core.ports import EndpointConfig, InvalidInput, PortError, Ports, Variant
from core.service import Service
from core.steps import Executor
from core.store.sqlite import SqliteStore
from core.traffic import with_shadow
from core.worker import Worker
from tests.support.fakes import RecordingCodeHost
from tests.support.models import (
    replayed_shadow_file,
    sample_instances,
    train_sklearn_regressor,
    write_golden,
)
from tests.support.moto_sagemaker import LIFECYCLE
from tests.support.moto_server import IMAGES, REGION, ROLE_ARN, Aws, aws, inventory  # noqa: F401

CAPTURES = f"mmm-captures-{REGION}"
KEY = re.compile(
    r"^(?P<endpoint>[^/]+)/(?P<variant>[^/]+)/\d{4}/\d{2}/\d{2}/\d{2}/[0-9a-f-]{36}\.jsonl$"
)
# diabetes-like coefficients: production is a linear model of the 10 features
COEF = [-10.0, -240.0, 520.0, 320.0, -790.0, 480.0, 100.0, 180.0, 750.0, 70.0]
ROWS = sample_instances(10, 40)


# ---------------------------------------------------------------- responders


def _predict(row: list[float]) -> float:
    return 152.0 + sum(c * x for c, x in zip(COEF, row, strict=True))


def _responder(change: Any) -> Any:
    """A model behind SageMaker's runtime: `{"instances": rows}` in, `{"predictions"}` out,
    each prediction `change(row, production's)`."""

    def respond(body: bytes) -> bytes:
        rows = json.loads(body)["instances"]
        return json.dumps({"predictions": [change(r, _predict(r)) for r in rows]}).encode()

    return respond


PRODUCTION = _responder(lambda row, y: y)
# the same model retrained: equal within a hair (a deterministic function of the row)
GOOD = _responder(lambda row, y: y + 1e-4 * math.sin(1000 * sum(row)))
# a candidate whose predictions moved by about half of production's spread
BAD = _responder(lambda row, y: y + 40.0)


# ---------------------------------------------------------------- adapter level


def _variant(name: str, weight: float) -> Variant:
    version = name.rsplit("v", 1)[1]
    return Variant(
        name=name,
        model="m",
        version=version,
        library="sklearn",
        artifact=f"s3://mmm-production-{REGION}/models/m/{version}/model.joblib",
        weight=weight,
    )


def _config(weights: dict[str, float]) -> EndpointConfig:
    variants = [_variant(n, w) for n, w in weights.items()]
    return EndpointConfig(name="ep", region=REGION, variants=variants)


def _settle(serving: SageMakerServing, config: EndpointConfig) -> None:
    serving.apply(config)
    while serving.settled(config.name, config.region, config) is not None:
        pass


@pytest.fixture
def shadowed(aws: Aws) -> Iterator[tuple[SageMakerServing, EndpointConfig]]:  # noqa: F811
    """Endpoint `ep`: m-v1 serving, m-v2 shadowing it (as core.traffic shadows a candidate)."""
    serving = SageMakerServing(aws.clients, ROLE_ARN, IMAGES, bucket_prefix="mmm")
    _settle(serving, _config({"m-v1": 100}))
    config = with_shadow(_config({"m-v1": 100, "m-v2": 0}), "m-v2", 100)
    _settle(serving, config)
    LIFECYCLE.responders.update({"m-v1": PRODUCTION, "m-v2": GOOD})
    yield serving, config


def test_a_shadow_config_holds_one_production_variant_one_shadow_and_data_capture(
    aws: Aws,  # noqa: F811
    shadowed: tuple[SageMakerServing, EndpointConfig],
) -> None:
    serving, config = shadowed
    assert serving.get_endpoint("ep", REGION) == config  # reads back as it was asked
    sm: Any = aws.client("sagemaker")
    name = sm.describe_endpoint(EndpointName="ep")["EndpointConfigName"]
    detail = sm.describe_endpoint_config(EndpointConfigName=name)
    assert [v["VariantName"] for v in detail["ProductionVariants"]] == ["m-v1"]
    assert [v["VariantName"] for v in detail["ShadowProductionVariants"]] == ["m-v2"]
    assert detail["DataCaptureConfig"] == {
        "EnableCapture": True,
        "InitialSamplingPercentage": 100,
        "DestinationS3Uri": f"s3://{CAPTURES}/",
        "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
        "CaptureContentTypeHeader": {"JsonContentTypes": ["application/json"]},
    }
    s3: Any = aws.client("s3")
    s3.head_bucket(Bucket=CAPTURES)  # made by mmm: SageMaker only writes there
    # the shadow stopped: back to two production variants, without data capture
    stopped = config.model_copy(update={"shadow": None})
    _settle(serving, stopped)
    name = sm.describe_endpoint(EndpointName="ep")["EndpointConfigName"]
    detail = sm.describe_endpoint_config(EndpointConfigName=name)
    assert [v["VariantName"] for v in detail["ProductionVariants"]] == ["m-v1", "m-v2"]
    assert not detail.get("ShadowProductionVariants") and not detail.get("DataCaptureConfig")
    assert len(sm.list_endpoint_configs()["EndpointConfigs"]) == 1  # the shadow's swept


def test_a_shadow_beside_more_than_one_production_variant_is_refused(aws: Aws) -> None:  # noqa: F811
    serving = SageMakerServing(aws.clients, ROLE_ARN, IMAGES)
    two = _config({"m-v1": 50, "m-v2": 50, "m-v3": 0})
    with pytest.raises(InvalidInput, match=r"endpoint ep \(us-east-1\).*exactly one production"):
        serving.apply(with_shadow(two, "m-v3", 100))
    serving_itself = _config({"m-v1": 100})
    with pytest.raises(InvalidInput, match=r"endpoint ep \(us-east-1\).*m-v1 cannot both"):
        serving.apply(with_shadow(serving_itself, "m-v1", 100))
    sm: Any = aws.client("sagemaker")
    assert sm.list_endpoint_configs()["EndpointConfigs"] == []  # refused before anything
    assert sm.list_models()["Models"] == []


def _captures(aws: Aws) -> dict[str, list[dict[str, Any]]]:  # noqa: F811
    """The capture records in the bucket, by variant."""
    s3: Any = aws.client("s3")
    found: dict[str, list[dict[str, Any]]] = {}
    for obj in s3.list_objects_v2(Bucket=CAPTURES).get("Contents", []):
        match = KEY.match(obj["Key"])
        assert match and match["endpoint"] == "ep", obj["Key"]
        body = s3.get_object(Bucket=CAPTURES, Key=obj["Key"])["Body"].read().decode()
        found.setdefault(match["variant"], []).extend(
            json.loads(line) for line in body.splitlines()
        )
    return found


def _a_key(aws: Aws, variant: str) -> str:  # noqa: F811
    """The key of one of the variant's capture files."""
    s3: Any = aws.client("s3")
    return str(s3.list_objects_v2(Bucket=CAPTURES, Prefix=f"ep/{variant}/")["Contents"][0]["Key"])


def _put(aws: Aws, key: str, records: list[dict[str, Any]] | bytes) -> None:  # noqa: F811
    """A capture file written beside SageMaker's."""
    if not isinstance(records, bytes):
        records = "".join(json.dumps(r) + "\n" for r in records).encode()
    s3: Any = aws.client("s3")
    s3.put_object(Bucket=CAPTURES, Key=key, Body=records)


def test_replay_is_captured_in_sagemakers_format_and_paired_by_inference_id(
    aws: Aws,  # noqa: F811
    shadowed: tuple[SageMakerServing, EndpointConfig],
    tmp_path: Path,
) -> None:
    serving, _ = shadowed
    rows = ROWS[:5]
    assert serving.replay("ep", REGION, [(f"r{i}", row) for i, row in enumerate(rows)]) == 5
    records = _captures(aws)
    assert sorted(records) == ["m-v1", "m-v2"]
    first = records["m-v2"][0]
    assert first["eventVersion"] == "0"
    assert set(first["eventMetadata"]) == {"eventId", "inferenceId", "inferenceTime"}
    inputs, outputs = first["captureData"]["endpointInput"], first["captureData"]["endpointOutput"]
    assert inputs["mode"] == "INPUT" and outputs["mode"] == "OUTPUT"
    assert inputs["encoding"] == outputs["encoding"] == "JSON"
    assert inputs["observedContentType"] == "application/json"
    row = json.loads(inputs["data"])["instances"][0]
    assert json.loads(outputs["data"]) == json.loads(
        GOOD(json.dumps({"instances": [row]}).encode())
    )
    ids = {r["eventMetadata"]["inferenceId"] for r in records["m-v1"]}
    assert ids == {r["eventMetadata"]["inferenceId"] for r in records["m-v2"]}
    assert ids == {f"r{i}" for i in range(5)}

    # a request of two instances (two pairs), a request without an inference id (no pair),
    # one production alone answered (no partner), and an old file never read (not JSON)
    send(aws.clients, "ep", {"instances": ROWS[5:7]}, REGION, "two")
    send(aws.clients, "ep", {"instances": ROWS[7:8]}, REGION)
    lonely = dict(records["m-v1"][0], eventMetadata={"eventId": "e", "inferenceId": "lonely"})
    hour = _a_key(aws, "m-v1").rsplit("/", 1)[0]
    _put(aws, f"{hour}/00000000-0000-0000-0000-000000000000.jsonl", [lonely])
    _put(aws, "ep/m-v1/2001/01/01/00/old.jsonl", b"not a capture record\n")

    pairs = list(serving.captured("ep", REGION, "m-v2"))
    assert len(pairs) == 7
    assert {p.request_id for p in pairs} == ids | {"two#0", "two#1"}
    for p in pairs:
        assert p.input in ROWS[:7]
        assert p.production == pytest.approx(_predict(p.input))
        assert p.shadow == pytest.approx(_predict(p.input), abs=1e-3)
        assert (p.production_variant, p.shadow_variant) == ("m-v1", "m-v2")
        assert p.production_error is None and p.shadow_error is None and p.shadow_ms is None

    # the shadow's captures cleared (as core.steps.shadow.clear_captures does): no pairs
    # left, and production's files are not the shadow step's to delete
    store = S3ArtifactStore(aws.clients, "mmm", REGION, tmp_path / "cache")
    for uri in store.list("captures", "ep/m-v2/"):
        store.delete(uri)
    assert list(serving.captured("ep", REGION, "m-v2")) == []
    assert store.list("captures", "ep/m-v1/")


def test_replay_needs_a_shadow(aws: Aws) -> None:  # noqa: F811
    serving = SageMakerServing(aws.clients, ROLE_ARN, IMAGES)
    _settle(serving, _config({"m-v1": 100}))
    with pytest.raises(InvalidInput, match="no shadow variant"):
        serving.replay("ep", REGION, [("r0", ROWS[0])])


def _line(inference_id: str | None, request: dict[str, Any], answer: dict[str, Any]) -> bytes:
    meta = {"eventId": "e", "inferenceTime": "2026-01-01T00:00:00Z"}
    if inference_id is not None:
        meta["inferenceId"] = inference_id
    data = {"endpointInput": {**request, "mode": "INPUT"}}
    data["endpointOutput"] = {**answer, "mode": "OUTPUT"}
    return json.dumps({"captureData": data, "eventMetadata": meta, "eventVersion": "0"}).encode()


def test_capture_records_of_every_encoding_pair_as_the_gateways_pairs() -> None:
    """CSV and BASE64 bodies read as JSON ones do; a side that answered the wrong number of
    predictions (or nothing readable) is that side's error, as the gateway records it."""
    csv_in = {"observedContentType": "text/csv", "encoding": "CSV", "data": "1,2\n3,4"}
    b64 = base64.b64encode(b'{"predictions": [0.5, 0.75]}').decode()
    b64_out = {"observedContentType": "application/x-json", "encoding": "BASE64", "data": b64}
    csv_out = {"observedContentType": "text/csv", "encoding": "CSV", "data": "cat\ndog"}
    one = {"observedContentType": "application/json", "encoding": "JSON", "data": "[1]"}
    broken = {"observedContentType": "application/json", "encoding": "JSON", "data": "{"}
    production = [
        ("m-v1", capture.parse(_line("a", csv_in, b64_out), "p:1")),
        ("m-v1", capture.parse(_line("b", csv_in, csv_out), "p:2")),
        ("m-v1", capture.parse(_line(None, csv_in, b64_out), "p:3")),
    ]
    shadow = [
        capture.parse(_line("a", csv_in, one), "s:1"),
        capture.parse(_line("b", csv_in, broken), "s:2"),
        capture.parse(_line(None, csv_in, b64_out), "s:3"),
    ]
    pairs = list(capture.pair(production, shadow, "m-v2"))
    assert [(p.request_id, p.input, p.production) for p in pairs] == [
        ("a#0", [1.0, 2.0], 0.5),
        ("a#1", [3.0, 4.0], 0.75),
        ("b#0", [1.0, 2.0], "cat"),
        ("b#1", [3.0, 4.0], "dog"),
    ]
    assert {p.shadow for p in pairs} == {None}
    assert pairs[0].shadow_error == "variant m-v2 answered 1 predictions for 2 instances"
    assert "variant m-v2: captured application/json cannot be read" in str(pairs[2].shadow_error)
    with pytest.raises(PortError, match="p:9: not a SageMaker capture record"):
        capture.parse(b'{"captureData": []}', "p:9")


# ---------------------------------------------------------------- whole deployments

MODEL = "churn"
ENDPOINT = "churn-scorer"


@pytest.fixture
def svc(tmp_path: Path, aws: Aws) -> Service:  # noqa: F811
    """Real S3, SageMaker and CloudWatch adapters (as tests/integration/test_aws_pipeline.py
    builds them), versions 1 and 2 registered, version 1 serving."""
    home = tmp_path / "ws"
    home.mkdir()
    settings = {
        "worker": {"poll_s": 0.02, "backoff_s": 0, "max_attempts": 3},
        "defaults": {"regions": [REGION]},
        "policy": {"allow_self_approval": True, "admins": ["alice"]},
    }
    (home / "mmm.yaml").write_text(yaml.safe_dump(settings))
    ports = Ports(
        registry=LocalRegistry(home / "registry"),
        artifacts=S3ArtifactStore(aws.clients, "mmm", REGION, home / "cache"),
        codehost=RecordingCodeHost(),
        serving=SageMakerServing(aws.clients, ROLE_ARN, IMAGES, bucket_prefix="mmm"),
        monitor=CloudWatchMonitor(aws.clients),
        notifier=SilentNotifier(),
    )
    service = Service(load_workspace(home), SqliteStore(home / "state.db"), ports, "alice")
    for seed in (0, 1):
        artifact = train_sklearn_regressor(tmp_path / f"m{seed}", seed=seed)
        golden = write_golden(artifact, Library.SKLEARN, tmp_path / f"m{seed}")
        service.register(MODEL, artifact, "sklearn", golden, "risk")
    first = service.run(service.deploy(MODEL, "1", ENDPOINT))
    assert first.state is DeploymentState.SUCCEEDED, first.shown_error
    return service


def _served(svc: Service, aws: Aws) -> tuple[list[tuple[str, float]], dict[str, Any]]:  # noqa: F811
    """The endpoint's variants as mmm reads them, and its config as SageMaker holds it."""
    config = svc.ports.serving.get_endpoint(ENDPOINT, REGION)
    assert config is not None
    sm: Any = aws.client("sagemaker")
    name = sm.describe_endpoint(EndpointName=ENDPOINT)["EndpointConfigName"]
    return [(v.name, v.weight) for v in config.variants], sm.describe_endpoint_config(
        EndpointConfigName=name
    )


def _captured_objects(objects: list[str]) -> list[str]:
    return [o for o in objects if o.startswith(f"{CAPTURES}/")]


def test_a_shadow_answering_like_production_is_promoted(
    svc: Service,
    aws: Aws,  # noqa: F811
    tmp_path: Path,
) -> None:
    LIFECYCLE.responders.update({"churn-v1": PRODUCTION, "churn-v2": GOOD})
    # the shadow's captures of an earlier test: cleared when this one starts
    s3: Any = aws.client("s3")
    s3.create_bucket(Bucket=CAPTURES)
    stale = f"{ENDPOINT}/churn-v2/2001/01/01/00/stale.jsonl"
    s3.put_object(Bucket=CAPTURES, Key=stale, Body=b"not a capture record\n")
    before = inventory(aws)
    d = svc.run(svc.deploy(MODEL, "2", ENDPOINT, file=replayed_shadow_file(tmp_path, ROWS)))
    assert d.state is DeploymentState.SUCCEEDED, d.shown_error
    assert d.analysis is not None and d.analysis["verdict"] == "pass", d.analysis
    assert d.analysis["samples"] == len(ROWS)
    variants, detail = _served(svc, aws)
    assert variants == [("churn-v2", 100.0)]
    assert not detail.get("ShadowProductionVariants") and not detail.get("DataCaptureConfig")
    after = inventory(aws)
    assert [m.split("-")[:2] for m in after["models"]] == [["churn", "v2"]]
    assert len(after["configs"]) == 1 and after["endpoints"] == [ENDPOINT]
    # the candidate's alarms made; the drained version's stay until it is retired (as on
    # every backend: drain_old deletes no alarm)
    candidate = [f"mmm/{ENDPOINT}/churn-v2/{a}" for a in ("error-rate", "p99-latency")]
    assert after["alarms"] == sorted(before["alarms"] + candidate)
    captured = _captured_objects(after["objects"])
    assert len(captured) == 2 * len(ROWS)  # one file per request and variant, kept
    assert {o.split("/")[2] for o in captured} == {"churn-v1", "churn-v2"}
    assert _captured_objects(before["objects"]) == [f"{CAPTURES}/{stale}"]


def test_a_shadow_answering_shifted_values_is_rolled_back(
    svc: Service,
    aws: Aws,  # noqa: F811
    tmp_path: Path,
) -> None:
    LIFECYCLE.responders.update({"churn-v1": PRODUCTION, "churn-v2": BAD})
    before = inventory(aws)
    d = svc.run(svc.deploy(MODEL, "2", ENDPOINT, file=replayed_shadow_file(tmp_path, ROWS)))
    assert d.state is DeploymentState.ROLLED_BACK, d.shown_error
    assert d.analysis is not None and d.analysis["verdict"] == "fail", d.analysis
    assert "shadow analysis failed" in (d.shown_error or "")
    variants, detail = _served(svc, aws)
    assert variants == [("churn-v1", 100.0)]
    assert not detail.get("ShadowProductionVariants") and not detail.get("DataCaptureConfig")
    after = inventory(aws)
    # nothing mmm made for the candidate is left but what SageMaker captured of it (and
    # the analysis' charts, which tell why it was rolled back)
    assert {k: v for k, v in after.items() if k != "objects"} == {
        k: v for k, v in before.items() if k != "objects"
    }
    new = set(after["objects"]) - set(before["objects"])
    charts = {o for o in new if o.startswith(f"mmm-reports-{REGION}/{d.id}/")}
    assert sorted(new - charts) == _captured_objects(sorted(new)) and charts
    assert len(_captured_objects(sorted(new))) == 2 * len(ROWS)
    assert not set(before["objects"]) - set(after["objects"])


def test_a_replay_run_again_after_a_kill_sends_only_what_was_not_captured(
    svc: Service,
    aws: Aws,  # noqa: F811
    tmp_path: Path,
) -> None:
    """A worker killed after collect's replay, before its result was logged, runs it again:
    production answers each replayed input once, and the analysis has each pair once."""
    LIFECYCLE.responders.update({"churn-v1": PRODUCTION, "churn-v2": GOOD})
    d = svc.deploy(MODEL, "2", ENDPOINT, file=replayed_shadow_file(tmp_path, ROWS))
    worker = Worker(svc.ws, svc.store, svc.ports)
    while True:  # up to the collection, not yet run
        d = svc.get(d.id)
        if d.state is DeploymentState.QUEUED:
            worker.apply(d, Start(at=utcnow()))
            continue
        if d.pending[0].action == "collect":
            break
        worker.apply(d, worker._execute(d, d.pending[0]))
    executor = Executor(svc.ws, svc.ports, svc.store, worker.clock)
    first = executor.run(d, d.pending[0])  # its result lost with the worker
    d = svc.run(d)
    assert d.state is DeploymentState.SUCCEEDED, d.shown_error
    assert getattr(first, "result", {})["samples"] == len(ROWS)
    assert d.analysis is not None and d.analysis["samples"] == len(ROWS)
    captured = _captured_objects(inventory(aws)["objects"])
    production = [o for o in captured if o.split("/")[2] == "churn-v1"]
    assert len(production) == len(ROWS)  # before: twice as many, each input answered twice
    assert len(captured) == 2 * len(ROWS)
