"""The examples of docs/large-models.md, read by mmm's own readers and made on SageMaker (a
moto server with tests.support.moto_sagemaker). Each deployment file is read as
`mmm deploy -f FILE` reads it, over the defaults of the page's `mmm.yaml` fragment; the
SageMaker adapter the composition root builds from that fragment asks SageMaker for what
the page says (the image of `aws.images`, the model folder as an uncompressed S3 prefix,
the GPU instance type, both timeouts from `startup_s`, the env, autoscaling); the page's
golden cases reach the candidate variant alone in mmm's invocation contract; and after
the endpoint is deleted nothing is left. A changed example (an unknown key) is refused,
so a page mmm does not read cannot pass."""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.adapters.aws import S3ArtifactStore, SageMakerServing
from core.adapters.aws.autoscaling import DIMENSION, METRIC, POLICY, resource_id
from core.bootstrap import build_ports, load_workspace
from core.container_models import check_container_model
from core.domain import Library
from core.layout import artifact_key, variant_name
from core.ports import EndpointConfig, Variant
from core.runtime.golden import GoldenCase, read_golden
from core.service.errors import BadRequest
from core.service.inputs import deployment_spec
from core.spec import DeploymentSpec, SpecError, load_yaml, merge, parse_settings
from core.steps.endpoints import endpoint_template
from core.traffic import add_variant
from core.workspace import Workspace
from tests.support import moto_sagemaker
from tests.support.container_models import huggingface_folder, vision_folder
from tests.support.moto_server import REGION, Aws, aws, inventory  # noqa: F401

PAGE = Path(__file__).resolve().parents[2] / "docs" / "large-models.md"
# A marker line, then (blank lines allowed) a fenced block: its language and its text.
_MARKED = re.compile(
    r"^<!-- example: (?P<name>[a-z-]+) -->\n(?:[ \t]*\n)*```(?P<lang>\w+)\n(?P<body>.*?)^```[ \t]*$",
    re.M | re.S,
)
# What a toolkit takes from code/inference.py (both the Hugging Face and the PyTorch one).
_HANDLERS = {"model_fn", "input_fn", "predict_fn", "output_fn"}
_DLC_GPU = re.compile(rf"^763104351884\.dkr\.ecr\.{REGION}\.amazonaws\.com/[a-z-]+:\S*-gpu-\S*$")
# SageMaker's GPU instance types that moto 5.2's endpoint configs do not know yet


@dataclass(frozen=True)
class Example:
    model: str  # as the page registers it
    library: Library
    instance_type: str  # the GPU instance the page names
    folder: Callable[[Path], Path]  # a small stand-in of the page's model folder


EXAMPLES = {
    "llm": Example(
        "assistant-llm",
        Library.HUGGINGFACE,
        "ml.g5.2xlarge",
        lambda at: huggingface_folder(at / "Qwen2.5-7B-Instruct", sharded=True),
    ),
    "vision": Example(
        "image-classifier",
        Library.PYTORCH,
        "ml.g4dn.xlarge",
        lambda at: vision_folder(at / "resnet50"),
    ),
}


# ---------------------------------------------------------------- the page


def marked() -> dict[str, tuple[str, str]]:
    """Every marked block of the page: name -> (language, text)."""
    found: dict[str, tuple[str, str]] = {}
    for match in _MARKED.finditer(PAGE.read_text(encoding="utf-8")):
        assert match["name"] not in found, f"{PAGE.name}: two blocks marked {match['name']}"
        found[match["name"]] = (match["lang"], match["body"])
    return found


def block(name: str, lang: str) -> str:
    blocks = marked()
    assert name in blocks, f"{PAGE.name}: no ```{lang} block after <!-- example: {name} -->"
    assert blocks[name][0] == lang, f"{PAGE.name}: the block {name} is not ```{lang}"
    return blocks[name][1]


def write_block(name: str, lang: str, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(block(name, lang), encoding="utf-8")
    return path


def golden(name: str, tmp: Path) -> list[GoldenCase]:
    return read_golden(write_block(f"{name}-golden", "jsonl", tmp / f"golden-{name}.jsonl"))


def workspace(home: Path, aws: Aws) -> Workspace:  # noqa: F811
    """A workspace whose mmm.yaml is the page's fragment, pointed at the moto server, read
    as mmm reads it."""
    data = load_yaml(block("settings", "yaml"), f"{PAGE.name}: settings")
    home.mkdir(parents=True)
    served = merge(data, {"aws": {"endpoint_url": aws.url}})
    (home / "mmm.yaml").write_text(yaml.safe_dump(served), encoding="utf-8")
    return load_workspace(home)


def spec_of(name: str, ws: Workspace, tmp: Path) -> DeploymentSpec:
    """The example as `mmm deploy MODEL VERSION -f FILE` reads it, with the defaults of the
    workspace's settings."""
    path = write_block(name, "yaml", tmp / f"deploy-{name}.yaml")
    return deployment_spec(ws.settings.defaults, path, None, None, None)


def local_storage(instance_type: str) -> bool:
    """SageMaker attaches no EBS volume to these instance types (their storage is local NVMe)
    and refuses VolumeSizeInGB for them: the SageMaker Python SDK's rule
    (`volume_size_supported`: a "d" in the family, g5, g6)."""
    family = instance_type.removeprefix("ml.").split(".")[0]
    return "d" in family or family.startswith(("g5", "g6"))


# ---------------------------------------------------------------- endpoints


def endpoint_config(spec: DeploymentSpec, candidate: Variant) -> EndpointConfig:
    """What a deployment's create_variant step asks serving for on a new endpoint
    (core.steps.endpoints): the endpoint as the spec sets it, serving only the candidate."""
    assert spec.endpoint is not None
    template = endpoint_template(spec, spec.endpoint, REGION)
    return add_variant(None, candidate, template)


def settle(serving: SageMakerServing, name: str, config: EndpointConfig | None) -> None:
    """Look until the endpoint serves `config` (is gone, for None), as the step looks."""
    for _ in range(20):
        if serving.settled(name, REGION, config) is None:
            return
    pytest.fail(f"endpoint {name} still changing after 20 looks")


def answering(cases: list[GoldenCase], seen: list[Any]) -> moto_sagemaker.Responder:
    """A container that answers mmm's contract with the golden outputs, recording each
    request body it is sent."""
    outputs = {json.dumps(c.input, sort_keys=True): c.output for c in cases}

    def respond(body: bytes) -> bytes:
        request = json.loads(body)
        seen.append(request)
        answers = [outputs[json.dumps(i, sort_keys=True)] for i in request["instances"]]
        return json.dumps({"predictions": answers}).encode()

    return respond


# ---------------------------------------------------------------- tests


def test_the_page_holds_its_examples_and_mmm_reads_them(tmp_path: Path) -> None:
    assert set(marked()) == {"settings", *EXAMPLES} | {
        f"{name}-{part}" for name in EXAMPLES for part in ("code", "golden")
    }
    settings = parse_settings(load_yaml(block("settings", "yaml"), "settings"), "settings")
    backends = settings.backends
    assert (backends.serving, backends.artifacts, backends.monitor) == (
        "sagemaker",
        "s3",
        "cloudwatch",
    )
    assert settings.aws.region == REGION and settings.aws.role_arn is not None
    for example in EXAMPLES.values():
        assert _DLC_GPU.match(settings.aws.images[example.library]), example.library
    for name in EXAMPLES:
        source = block(f"{name}-code", "python")
        defined = {n.name for n in ast.parse(source).body if isinstance(n, ast.FunctionDef)}
        assert defined >= _HANDLERS, f"{name}-code lacks {_HANDLERS - defined}"
        assert golden(name, tmp_path), name


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_an_example_is_made_on_sagemaker_as_the_page_says(
    name: str,
    aws: Aws,  # noqa: F811
    tmp_path: Path,
) -> None:
    example = EXAMPLES[name]
    ws = workspace(tmp_path / "ws", aws)
    spec = spec_of(name, ws, tmp_path)
    assert spec.endpoint is not None and spec.autoscaling is not None
    assert spec.regions == [REGION]
    assert spec.instance.type == example.instance_type
    if local_storage(spec.instance.type):
        assert spec.instance.volume_gb is None, "SageMaker refuses VolumeSizeInGB here"
    ports = build_ports(ws)
    serving, store = ports.serving, ports.artifacts
    assert isinstance(serving, SageMakerServing) and isinstance(store, S3ArtifactStore)
    images, role = ws.settings.aws.images, ws.settings.aws.role_arn

    # the model folder as the page lays it out, with its code/inference.py: still a model
    # mmm registers, put whole under a production prefix
    folder = example.folder(tmp_path / "models")
    write_block(f"{name}-code", "python", folder / "code" / "inference.py")
    check_container_model(folder, example.library)
    key = artifact_key(example.model, "1", f"{folder.name}/")
    uri = store.put("production", key, folder)
    assert uri == f"s3://{ws.settings.aws.bucket_prefix}-production-{REGION}/{key}"

    candidate = Variant(
        name=variant_name(example.model, "1"),
        model=example.model,
        version="1",
        library=example.library,
        artifact=uri,
        weight=0,
    )
    config = endpoint_config(spec, candidate)
    assert serving.apply(config) is None
    settle(serving, spec.endpoint, config)
    assert serving.get_endpoint(spec.endpoint, REGION) == config

    sm: Any = aws.client("sagemaker")
    endpoint = sm.describe_endpoint(EndpointName=spec.endpoint)
    assert endpoint["EndpointStatus"] == "InService"
    described = sm.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    (variant,) = described["ProductionVariants"]
    assert variant["VariantName"] == candidate.name
    assert variant["InstanceType"] == example.instance_type
    assert variant["InitialInstanceCount"] == spec.instance.count
    assert variant["ModelDataDownloadTimeoutInSeconds"] == spec.timeouts.startup_s
    assert variant["ContainerStartupHealthCheckTimeoutInSeconds"] == spec.timeouts.startup_s
    assert variant.get("VolumeSizeInGB") == spec.instance.volume_gb
    model = sm.describe_model(ModelName=variant["ModelName"])
    assert model["ExecutionRoleArn"] == role
    container = model["PrimaryContainer"]
    assert container["Image"] == images[example.library]
    assert container["ModelDataSource"] == {
        "S3DataSource": {"S3Uri": uri, "S3DataType": "S3Prefix", "CompressionType": "None"}
    }
    assert "ModelDataUrl" not in container
    environment = container["Environment"]
    assert {k: v for k, v in environment.items() if not k.startswith("MMM_")} == spec.env
    assert environment["MMM_LIBRARY"] == example.library

    aas: Any = aws.client("application-autoscaling")
    scaled = resource_id(spec.endpoint, candidate.name)
    targets = aas.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"]
    assert [
        (t["ResourceId"], t["ScalableDimension"], t["MinCapacity"], t["MaxCapacity"])
        for t in targets
    ] == [(scaled, DIMENSION, spec.autoscaling.min, spec.autoscaling.max)]
    (policy,) = aas.describe_scaling_policies(ServiceNamespace="sagemaker")["ScalingPolicies"]
    assert (policy["PolicyName"], policy["ResourceId"]) == (POLICY, scaled)
    assert policy["TargetTrackingScalingPolicyConfiguration"] == {
        "TargetValue": float(spec.autoscaling.target_invocations_per_instance),
        "PredefinedMetricSpecification": {"PredefinedMetricType": METRIC},
    }

    # the page's golden cases, one request each to the candidate alone (TargetVariant), in
    # mmm's contract: what the page's code/inference.py reads and answers
    cases = golden(name, tmp_path)
    seen: list[Any] = []
    moto_sagemaker.LIFECYCLE.responders[candidate.name] = answering(cases, seen)
    for case in cases:
        assert serving.predict(spec.endpoint, REGION, candidate.name, [case.input]) == [case.output]
    assert seen == [{"instances": [case.input]} for case in cases]

    assert serving.delete(spec.endpoint, REGION) is True
    settle(serving, spec.endpoint, None)
    assert store.delete(uri) is True
    left = inventory(aws)
    assert (left["endpoints"], left["configs"], left["models"]) == ([], [], [])
    assert [o for o in left["objects"] if "/models/" in o] == []
    assert aas.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"] == []
    assert aas.describe_scaling_policies(ServiceNamespace="sagemaker")["ScalingPolicies"] == []


@pytest.mark.parametrize("name", sorted(EXAMPLES))
@pytest.mark.parametrize(
    ("change", "key"),
    [
        (lambda data: {**data, "gpus": 1}, "gpus"),
        (
            lambda data: merge(data, {"timeouts": {"startup_seconds": 900}}),
            "timeouts.startup_seconds",
        ),
        (lambda data: merge(data, {"instance": {"volume_size": 100}}), "instance.volume_size"),
    ],
    ids=["top-level", "timeouts", "instance"],
)
def test_a_changed_example_is_refused_naming_the_key(
    name: str,
    change: Callable[[dict[str, Any]], dict[str, Any]],
    key: str,
    tmp_path: Path,
) -> None:
    data = load_yaml(block(name, "yaml"), name)
    path = tmp_path / "deploy.yaml"
    path.write_text(yaml.safe_dump(change(data)), encoding="utf-8")
    with pytest.raises(
        BadRequest, match=rf"^{re.escape(str(path))}: {re.escape(key)}: unknown key"
    ):
        deployment_spec({}, path, None, None, None)


def test_a_changed_settings_fragment_is_refused_naming_the_key(tmp_path: Path) -> None:
    data = load_yaml(block("settings", "yaml"), "settings")
    images = data["aws"]["images"]
    home = tmp_path / "ws"
    home.mkdir()
    (home / "mmm.yaml").write_text(yaml.safe_dump(merge(data, {"aws": {"image": images}})))
    with pytest.raises(SpecError, match=r"mmm\.yaml: aws\.image: unknown key"):
        load_workspace(home)
