"""Whole deployments on S3, SageMaker and CloudWatch (the real adapters, boto3 over HTTP to
a moto server extended with SageMaker's statuses and UpdateEndpoint), with the embedded
registry and a recording code host, in-process. After abort and retirement nothing mmm
made is left, and what it did not make is untouched."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.adapters.aws import CloudWatchMonitor, S3ArtifactStore, SageMakerServing, VariantScaling
from core.adapters.local.codehost import LocalGitCodeHost
from core.adapters.local.registry import LocalRegistry
from core.bootstrap import SilentNotifier, load_workspace
from core.domain import DeploymentState, Library
from core.ports import CodeHost, Ports
from core.service import Service
from core.store.sqlite import SqliteStore
from tests.support import moto_sagemaker
from tests.support.container_models import container_golden, torchscript_archive
from tests.support.fakes import RecordingCodeHost
from tests.support.models import train_sklearn_regressor, write_golden
from tests.support.moto_server import (  # noqa: F401
    IMAGES,
    REGION,
    ROLE_ARN,
    Aws,
    aws,
    foreign_things,
    inventory,
)

MODEL = "churn"
ENDPOINT = "churn-scorer"


def _service(
    home: Path,
    aws: Aws,  # noqa: F811
    settings: dict[str, Any] | None = None,
    codehost: CodeHost | None = None,
) -> Service:
    home.mkdir(parents=True, exist_ok=True)
    base: dict[str, Any] = {
        "worker": {"poll_s": 0.02, "backoff_s": 0, "max_attempts": 3},
        "defaults": {"regions": [REGION]},
        "policy": {"allow_self_approval": True, "admins": ["alice"]},
    }
    (home / "mmm.yaml").write_text(yaml.safe_dump({**base, **(settings or {})}))
    ws = load_workspace(home)
    artifacts = S3ArtifactStore(aws.clients, "mmm", REGION, home / "cache")
    ports = Ports(
        registry=LocalRegistry(home / "registry"),
        artifacts=artifacts,
        codehost=codehost or RecordingCodeHost(),
        serving=SageMakerServing(aws.clients, ROLE_ARN, IMAGES),
        monitor=CloudWatchMonitor(aws.clients),
        notifier=SilentNotifier(),
    )
    return Service(ws, SqliteStore(home / "state.db"), ports, "alice")


@pytest.fixture
def svc(tmp_path: Path, aws: Aws) -> Service:  # noqa: F811
    service = _service(tmp_path / "ws", aws)
    for seed in (0, 1):
        artifact = train_sklearn_regressor(tmp_path / f"m{seed}", seed=seed)
        golden = write_golden(artifact, Library.SKLEARN, tmp_path / f"m{seed}")
        service.register(MODEL, artifact, "sklearn", golden, "risk")
    return service


def _file(tmp_path: Path, **spec: Any) -> Path:
    path = tmp_path / f"deploy-{len(list(tmp_path.glob('deploy-*')))}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def _only_foreign_left(aws: Aws) -> None:  # noqa: F811
    left = inventory(aws)
    assert left["models"] == ["their-model"]
    assert left["configs"] == ["their-config"]
    assert left["endpoints"] == ["their-endpoint"]
    assert left["alarms"] == ["their-alarm"]
    assert left["dashboards"] == []
    production = [o for o in left["objects"] if o.startswith("mmm-production-")]
    assert production == []
    assert "someone-else/models/churn/1/model.joblib" in left["objects"]


def _variants(svc: Service, endpoint: str = ENDPOINT) -> list[tuple[str, float]]:
    config = svc.ports.serving.get_endpoint(endpoint, REGION)
    assert config is not None
    return [(v.name, v.weight) for v in config.variants]


def test_all_at_once_then_abort_leaves_only_what_mmm_did_not_make(
    svc: Service,
    aws: Aws,  # noqa: F811
    tmp_path: Path,
) -> None:
    foreign_things(aws)
    d = svc.run(svc.deploy(MODEL, "1", ENDPOINT))
    assert d.state is DeploymentState.SUCCEEDED, d.shown_error
    assert _variants(svc) == [("churn-v1", 100.0)]
    made = inventory(aws)
    assert made["alarms"] == sorted(
        [
            "their-alarm",
            f"mmm/{ENDPOINT}/churn-v1/error-rate",
            f"mmm/{ENDPOINT}/churn-v1/p99-latency",
        ]
    )
    assert made["dashboards"] == [f"mmm-{ENDPOINT}"]
    assert f"mmm-production-{REGION}/models/churn/1/model.joblib" in made["objects"]
    # the generated code names the S3 location, never a cache path
    codehost: Any = svc.ports.codehost
    files = str(codehost._load()["changes"][d.id]["files"])
    assert "s3://mmm-staging-us-east-1/models/churn/1/" in files
    assert str(tmp_path) not in files

    # a second version queued with a gate, aborted while it waits there
    second = svc.run(
        svc.deploy(
            MODEL,
            "2",
            ENDPOINT,
            file=_file(
                tmp_path,
                gates=["before_finalize"],
                strategy={"kind": "blue-green", "steps": [50, 100], "bake_s": 0},
            ),
        )
    )
    assert second.state is DeploymentState.WAITING_APPROVAL, second.shown_error
    assert sorted(_variants(svc)) == [("churn-v1", 0.0), ("churn-v2", 100.0)]
    aborted = svc.run(svc.abort(second.id, reason="changed my mind"))
    assert aborted.state is DeploymentState.ABORTED, aborted.shown_error
    assert _variants(svc) == [("churn-v1", 100.0)]
    left = inventory(aws)
    assert not [o for o in left["objects"] if "/churn/2/" in o]  # staged copy included
    assert not [a for a in left["alarms"] if "churn-v2" in a]
    assert not [m for m in left["models"] if m.startswith("churn-v2")]
    assert len([c for c in left["configs"] if c.startswith(ENDPOINT)]) == 1  # old ones swept

    retired = svc.run(svc.retire(MODEL, force=True))
    assert retired.state is DeploymentState.SUCCEEDED, retired.shown_error
    _only_foreign_left(aws)


def test_blue_green_with_a_gate_between_steps(svc: Service, aws: Aws, tmp_path: Path) -> None:  # noqa: F811
    first = svc.run(svc.deploy(MODEL, "1", ENDPOINT))
    assert first.state is DeploymentState.SUCCEEDED, first.shown_error
    spec = {
        "gates": ["between_steps"],
        "strategy": {"kind": "blue-green", "steps": [25, 100], "bake_s": 0},
    }
    d = svc.run(svc.deploy(MODEL, "2", ENDPOINT, file=_file(tmp_path, **spec)))
    assert d.state is DeploymentState.WAITING_APPROVAL, d.shown_error
    assert sorted(_variants(svc)) == [("churn-v1", 75.0), ("churn-v2", 25.0)]
    endpoint: Any = aws.client("sagemaker").describe_endpoint(EndpointName=ENDPOINT)
    assert {v["VariantName"]: v["CurrentWeight"] for v in endpoint["ProductionVariants"]} == {
        "churn-v1": 75.0, "churn-v2": 25.0,
    }  # fmt: skip
    done = svc.run(svc.approve(d.id))
    assert done.state is DeploymentState.SUCCEEDED, done.shown_error
    assert _variants(svc) == [("churn-v2", 100.0)]  # the old variant removed at the end
    assert [e["EndpointName"] for e in aws.client("sagemaker").list_endpoints()["Endpoints"]] == [
        ENDPOINT
    ]  # type: ignore[attr-defined]

    retired = svc.run(svc.retire(MODEL, force=True))
    assert retired.state is DeploymentState.SUCCEEDED, retired.shown_error
    left = inventory(aws)
    assert left["models"] == left["configs"] == left["endpoints"] == left["alarms"] == []
    assert not [o for o in left["objects"] if o.startswith("mmm-production-")]


def test_an_alarm_in_alarm_during_a_bake_rolls_back(svc: Service, aws: Aws, tmp_path: Path) -> None:  # noqa: F811
    first = svc.run(svc.deploy(MODEL, "1", ENDPOINT))
    assert first.state is DeploymentState.SUCCEEDED, first.shown_error
    cw: Any = aws.client("cloudwatch")

    def breach(d: Any) -> None:  # the candidate's error-rate alarm fires once it exists
        name = f"mmm/{ENDPOINT}/churn-v2/error-rate"
        if cw.describe_alarms(AlarmNames=[name])["MetricAlarms"]:
            cw.set_alarm_state(AlarmName=name, StateValue="ALARM", StateReason="5xx")

    spec = {"strategy": {"kind": "blue-green", "steps": [50, 100], "bake_s": 30}}
    d = svc.run(svc.deploy(MODEL, "2", ENDPOINT, file=_file(tmp_path, **spec)), on_change=breach)
    assert d.state in (DeploymentState.ROLLED_BACK, DeploymentState.FAILED), d.state
    assert "alarm" in (d.shown_error or "") or any("fired" in str(e) for e in d.events)
    assert _variants(svc) == [("churn-v1", 100.0)]
    assert not [a for a in inventory(aws)["alarms"] if "churn-v2" in a]


def test_a_breach_over_between_two_looks_of_a_bake_still_rolls_back(
    svc: Service,
    aws: Aws,  # noqa: F811
    tmp_path: Path,
) -> None:
    first = svc.run(svc.deploy(MODEL, "1", ENDPOINT))
    assert first.state is DeploymentState.SUCCEEDED, first.shown_error
    cw: Any = aws.client("cloudwatch")
    name = f"mmm/{ENDPOINT}/churn-v2/p99-latency"
    flapped = []

    def flap(d: Any) -> None:  # in ALARM and back to OK before the bake looks again
        looked = [c for c in d.pending if c.action == "bake" and c.step in d.context.progress]
        if looked and not flapped:
            cw.set_alarm_state(AlarmName=name, StateValue="ALARM", StateReason="slow")
            cw.set_alarm_state(AlarmName=name, StateValue="OK", StateReason="fast again")
            flapped.append(d.step)

    spec = {"strategy": {"kind": "blue-green", "steps": [50, 100], "bake_s": 30}}
    d = svc.run(svc.deploy(MODEL, "2", ENDPOINT, file=_file(tmp_path, **spec)), on_change=flap)
    assert flapped
    assert cw.describe_alarms(AlarmNames=[name])["MetricAlarms"] == []  # deleted by the undo
    assert d.state is DeploymentState.ROLLED_BACK, d.state
    assert any(name in str(e) for e in d.events)
    assert _variants(svc) == [("churn-v1", 100.0)]


@pytest.mark.parametrize(
    ("step", "call"),
    [("create_variant", "UpdateEndpoint"), ("shift:50", "UpdateEndpointWeightsAndCapacities")],
)
def test_an_abort_while_an_update_is_in_flight_waits_for_it_then_undoes_it(
    svc: Service,
    aws: Aws,  # noqa: F811
    tmp_path: Path,
    step: str,
    call: str,
) -> None:
    """SageMaker refuses a change while the endpoint is Updating: an abort that arrives then
    lets the update finish, then undoes it, and nothing of the candidate is left."""
    first = svc.run(svc.deploy(MODEL, "1", ENDPOINT))
    assert first.state is DeploymentState.SUCCEEDED, first.shown_error
    before = inventory(aws)
    moto_sagemaker.LIFECYCLE.looks = 4
    sm: Any = aws.client("sagemaker")
    seen: list[str] = []

    def abort_in_flight(d: Any) -> None:
        looked = [c for c in d.pending if c.step == step and c.step in d.context.progress]
        if looked and not seen and d.phase.value != "compensating":
            status = sm.describe_endpoint(EndpointName=ENDPOINT)["EndpointStatus"]
            seen.append(status)
            svc.abort(d.id, reason=f"while {call} is in flight")

    spec = {"strategy": {"kind": "blue-green", "steps": [50, 100], "bake_s": 0}}
    d = svc.run(
        svc.deploy(MODEL, "2", ENDPOINT, file=_file(tmp_path, **spec)), on_change=abort_in_flight
    )
    assert seen == ["Updating"]
    assert d.state is DeploymentState.ABORTED, d.shown_error
    assert _variants(svc) == [("churn-v1", 100.0)]
    assert sm.describe_endpoint(EndpointName=ENDPOINT)["EndpointStatus"] == "InService"
    assert inventory(aws) == before


def test_autoscaling_follows_the_variant_that_serves_until_retirement(
    svc: Service,
    aws: Aws,  # noqa: F811
    tmp_path: Path,
) -> None:
    scaling = VariantScaling(aws.clients)
    auto = {"autoscaling": {"min": 1, "max": 4, "target_invocations_per_instance": 70}}

    def scaled() -> list[tuple[str, int, int, float | None]]:
        return [(t.variant, t.min, t.max, t.target) for t in scaling.targets(REGION, ENDPOINT)]

    first = svc.run(svc.deploy(MODEL, "1", ENDPOINT, file=_file(tmp_path, **auto)))
    assert first.state is DeploymentState.SUCCEEDED, first.shown_error
    assert scaled() == [("churn-v1", 1, 4, 70.0)]
    spec = {
        "gates": ["between_steps"],
        "strategy": {"kind": "blue-green", "steps": [50, 100], "bake_s": 0},
    }
    d = svc.run(svc.deploy(MODEL, "2", ENDPOINT, file=_file(tmp_path, **spec)))
    assert d.state is DeploymentState.WAITING_APPROVAL, d.shown_error
    # the endpoint's scaling carries over to the candidate while both serve
    assert scaled() == [("churn-v1", 1, 4, 70.0), ("churn-v2", 1, 4, 70.0)]
    done = svc.run(svc.approve(d.id))
    assert done.state is DeploymentState.SUCCEEDED, done.shown_error
    assert scaled() == [("churn-v2", 1, 4, 70.0)]
    retired = svc.run(svc.retire(MODEL, force=True))
    assert retired.state is DeploymentState.SUCCEEDED, retired.shown_error
    assert scaled() == []
    policies: Any = aws.client("application-autoscaling")
    assert policies.describe_scaling_policies(ServiceNamespace="sagemaker")["ScalingPolicies"] == []


def test_a_silent_rollback_fails_the_deployment_with_its_reason(
    svc: Service,
    aws: Aws,  # noqa: F811
    tmp_path: Path,
) -> None:
    first = svc.run(svc.deploy(MODEL, "1", ENDPOINT))
    assert first.state is DeploymentState.SUCCEEDED, first.shown_error
    moto_sagemaker.LIFECYCLE.fail_next_update("container health check failed")
    d = svc.run(svc.deploy(MODEL, "2", ENDPOINT))
    assert d.state is not DeploymentState.SUCCEEDED
    assert d.state in (DeploymentState.FAILED, DeploymentState.ROLLED_BACK), d.state
    assert "rolled back" in (d.shown_error or "") and "container health check failed" in (
        d.shown_error or ""
    )
    assert _variants(svc) == [("churn-v1", 100.0)]


OTHER = "eu-west-1"


def _served_from(aws: Aws, region: str) -> list[str]:  # noqa: F811
    """The model data each SageMaker model mmm made in `region` reads."""
    sm: Any = aws.client("sagemaker", region)
    uris = []
    for summary in sm.list_models()["Models"]:
        if summary["ModelName"] == "their-model":
            continue
        container = sm.describe_model(ModelName=summary["ModelName"])["PrimaryContainer"]
        source = container.get("ModelDataSource", {}).get("S3DataSource", {})
        uris.append(container.get("ModelDataUrl") or source["S3Uri"])
    return sorted(uris)


def test_each_region_serves_its_own_production_copy(
    svc: Service,
    aws: Aws,  # noqa: F811
    tmp_path: Path,
) -> None:
    foreign_things(aws)
    both = [REGION, OTHER]
    first = svc.run(svc.deploy(MODEL, "1", ENDPOINT, regions=both))
    assert first.state is DeploymentState.SUCCEEDED, first.shown_error
    key = "models/churn/1/model.joblib"
    objects = inventory(aws)["objects"]
    assert f"mmm-production-{REGION}/{key}" in objects
    assert f"mmm-production-{OTHER}/{key}" in objects
    assert _served_from(aws, REGION) == [f"s3://mmm-production-{REGION}/{key}"]
    assert _served_from(aws, OTHER) == [f"s3://mmm-production-{OTHER}/{key}"]
    # above the adapters one version is one artifact, whichever region serves it
    configs = {c.region: c for c in svc.ports.serving.endpoints() if c.name == ENDPOINT}
    assert {c.variants[0].artifact for c in configs.values()} == {first.context.artifact_production}
    sites = [s for s in svc.usage(MODEL) if s.kind.value == "artifact"]
    assert sorted(s.location for s in sites) == [
        f"s3://mmm-production-{OTHER}/{key}",
        f"s3://mmm-production-{REGION}/{key}",
    ]

    # v2 to the other region only, stopped at a gate: copied there alone, deleted on abort
    gated = _file(tmp_path, regions=[OTHER], gates=["before_finalize"])
    second = svc.run(svc.deploy(MODEL, "2", ENDPOINT, file=gated))
    assert second.state is DeploymentState.WAITING_APPROVAL, second.shown_error
    v2 = [o for o in inventory(aws)["objects"] if o.startswith("mmm-production-") and "/2/" in o]
    assert v2 == [f"mmm-production-{OTHER}/models/churn/2/model.joblib"]
    aborted = svc.run(svc.abort(second.id, reason="not yet"))
    assert aborted.state is DeploymentState.ABORTED, aborted.shown_error
    left = inventory(aws)["objects"]
    assert not [o for o in left if o.startswith("mmm-production-") and "/churn/2/" in o]
    assert f"mmm-production-{OTHER}/{key}" in left  # v1 still serves there: kept
    assert _served_from(aws, OTHER) == [f"s3://mmm-production-{OTHER}/{key}"]

    retired = svc.run(svc.retire(MODEL, force=True))
    assert retired.state is DeploymentState.SUCCEEDED, retired.shown_error
    _only_foreign_left(aws)
    sm: Any = aws.client("sagemaker", OTHER)
    cw: Any = aws.client("cloudwatch", OTHER)
    assert sm.list_models()["Models"] == sm.list_endpoints()["Endpoints"] == []
    assert sm.list_endpoint_configs()["EndpointConfigs"] == []
    assert cw.describe_alarms()["MetricAlarms"] == []
    assert not [o for o in inventory(aws)["objects"] if o.startswith("mmm-")]


def _golden_change(artifact_uri: str, golden: str, endpoint: str) -> dict[str, str]:
    from core.codegen import CodegenContext, render_change
    from core.spec import parse_deployment

    ctx = CodegenContext(
        endpoint=endpoint,
        model=MODEL,
        version=1,
        library=Library.SKLEARN,
        artifact_uri=artifact_uri,
        golden_cases_jsonl=golden,
        spec=parse_deployment({"endpoint": endpoint}),
        deployment_id=f"dep-{endpoint}",
        generated_at="2026-01-01T00:00:00.000Z",
    )
    return render_change(ctx)[0]


def test_the_local_checks_run_golden_tests_on_artifacts_held_on_s3(
    aws: Aws,  # noqa: F811
    tmp_path: Path,
) -> None:
    store = S3ArtifactStore(aws.clients, "mmm", REGION, tmp_path / "cache")
    host = LocalGitCodeHost(tmp_path / "app", check_timeout_s=240, artifacts=store)
    files: dict[str, str] = {}
    for seed, endpoint in ((0, "churn-a"), (1, "churn-b")):  # one artifact per golden test
        artifact = train_sklearn_regressor(tmp_path / f"m{seed}", seed=seed)
        golden = write_golden(artifact, Library.SKLEARN, tmp_path / f"m{seed}").read_text()
        uri = store.put("staging", f"models/{MODEL}/{seed}/model.joblib", artifact)
        files |= _golden_change(uri, golden, endpoint)
    result = host.run_checks(host.open_change("both", files, [], "Deploy", "alice"))
    assert result.passed and result.summary.startswith("2 passed"), result.output

    # a descriptor naming a bucket that is not mmm's: not fetched, and its test says so
    foreign_things(aws)
    elsewhere = _golden_change("s3://someone-else/models/churn/1/model.joblib", golden, "x")
    result = host.run_checks(host.open_change("other", elsewhere, [], "Deploy", "alice"))
    assert not result.passed
    assert "only a local artifact can be checked here" in result.output


def test_a_deployment_goes_to_the_home_region_where_sagemaker_serves(
    tmp_path: Path,
    aws: Aws,  # noqa: F811
) -> None:
    settings = {"defaults": {}, "backends": {"serving": "sagemaker"}, "aws": {"region": REGION}}
    svc = _service(tmp_path / "ws", aws, settings)
    artifact = train_sklearn_regressor(tmp_path / "m", seed=0)
    svc.register(MODEL, artifact, "sklearn", write_golden(artifact, Library.SKLEARN, tmp_path))
    assert svc.deploy(MODEL, "1", ENDPOINT, dry_run=True).regions == [REGION]


def _prompts_answered(change: Any) -> Any:
    """A container behind SageMaker's runtime answering the golden prompts of
    tests.support.container_models.container_golden ("What is i + i?" -> change(i + i))."""

    def respond(body: bytes) -> bytes:
        answers = []
        for instance in json.loads(body)["instances"]:
            i = int(instance["inputs"].split()[2])
            answers.append(change(i + i))
        return json.dumps({"predictions": answers}).encode()

    return respond


def test_a_container_model_is_checked_on_its_variant_before_traffic_shifts(
    tmp_path: Path,
    aws: Aws,  # noqa: F811
) -> None:
    svc = _service(tmp_path / "ws", aws)
    for v in (1, 2):
        archive = torchscript_archive(tmp_path / f"v{v}" / "vision.pt")
        golden = container_golden(tmp_path / f"v{v}" / "golden.jsonl")
        svc.register("vision", archive, "pytorch", golden, "cv")
    moto_sagemaker.LIFECYCLE.responders["vision-v1"] = _prompts_answered(str)
    d = svc.run(svc.deploy("vision", "1", "vision-api"))
    assert d.state is DeploymentState.SUCCEEDED, d.shown_error
    sm: Any = aws.client("sagemaker")
    (model,) = sm.list_models()["Models"]
    container = sm.describe_model(ModelName=model["ModelName"])["PrimaryContainer"]
    assert container["Image"] == IMAGES["pytorch"]
    assert container["Environment"]["MMM_LIBRARY"] == "pytorch"
    served = inventory(aws)
    # v2 answers wrongly: checked on its own variant (weight 0, TargetVariant), it never
    # gets traffic, and what its deployment made is undone
    moto_sagemaker.LIFECYCLE.responders["vision-v2"] = _prompts_answered(lambda n: f"{n}!")
    d = svc.run(svc.deploy("vision", "2", "vision-api", "blue-green"))
    assert d.state is DeploymentState.FAILED
    assert d.error is not None and "golden-data check on the endpoint failed" in d.error
    assert 'expected "0", got "0!"' in d.error
    assert _variants(svc, "vision-api") == [("vision-v1", 100.0)]
    left = inventory(aws)
    assert {k: v for k, v in left.items() if k != "objects"} == {
        k: v for k, v in served.items() if k != "objects"
    }
    assert [o for o in left["objects"] if "/vision/2/" in o] == []
    # a container that answers an error (SageMaker's ModelError) fails the case, saying why
    moto_sagemaker.LIFECYCLE.responders["vision-v2"] = _prompts_answered(_refuse)
    d = svc.run(svc.deploy("vision", "2", "vision-api", "blue-green"))
    assert d.state is DeploymentState.FAILED
    assert d.error is not None and "predict failed" in d.error and "out of memory" in d.error


def _refuse(n: int) -> str:
    raise RuntimeError("CUDA out of memory")


def test_regions_roll_out_in_waves_and_a_failure_in_the_second_undoes_both(
    svc: Service,
    aws: Aws,  # noqa: F811
    tmp_path: Path,
) -> None:
    both = [REGION, OTHER]
    first = svc.run(svc.deploy(MODEL, "1", ENDPOINT, regions=both))
    assert first.state is DeploymentState.SUCCEEDED, first.shown_error
    blue_green = {"regions": both, "strategy": {"kind": "blue-green", "steps": [50, 100],
                                                "bake_s": 0}}  # fmt: skip
    before = inventory(aws), inventory(aws, OTHER)
    # the first UpdateEndpoint (the candidate in the first region) goes through; the second
    # (in the second region) rolls back, as SageMaker does when a variant cannot start
    moto_sagemaker.LIFECYCLE.fail_next_update("the candidate's container did not start", after=1)
    d = svc.run(svc.deploy(MODEL, "2", ENDPOINT, file=_file(tmp_path, **blue_green)))
    assert d.state is DeploymentState.FAILED
    assert d.error is not None and d.error.startswith(f"create_variant@{OTHER}:")
    assert "the candidate's container did not start" in d.error
    done = [e.step for e in d.events if type(e).__name__ == "StepSucceeded"]
    # the first region went all the way before the second began
    assert done[done.index(f"create_variant@{REGION}") :] == [
        f"create_variant@{REGION}", f"create_alarms@{REGION}",
        f"shift:50@{REGION}", f"shift:100@{REGION}",
    ]  # fmt: skip
    for region in both:
        config = svc.ports.serving.get_endpoint(ENDPOINT, region)
        assert config is not None and [(v.name, v.weight) for v in config.variants] == [
            ("churn-v1", 100.0)
        ]
    after = inventory(aws), inventory(aws, OTHER)
    for was, now in zip(before, after, strict=True):
        assert {k: v for k, v in now.items() if k != "configs"} == {
            k: v for k, v in was.items() if k != "configs"
        }
