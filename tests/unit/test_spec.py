"""The deployment file and mmm.yaml: strict, with errors that name the file, the key and why."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.plan import deploy_plan
from core.spec import (
    BlueGreen,
    Shadow,
    SpecError,
    deployment_schema,
    parse_deployment,
    parse_settings,
    read_deployment_file,
)

CONTRACT_EXAMPLE = """
endpoint: churn-scorer
regions: [us-east-1]
instance: {type: ml.m5.large, count: 2}
autoscaling: {min: 1, max: 4, target_invocations_per_instance: 100}
timeouts: {startup_s: 600, invocation_ms: 2000}
env: {LOG_LEVEL: info}
gates: [before_rollout]
strategy:
  kind: shadow
  steps: [10, 50, 100]
  bake_s: 60
  sample_percent: 100
  min_samples: 500
  traffic: live
  auto_approve: true
  then: all-at-once
"""


def test_the_contract_example_parses(tmp_path: Path) -> None:
    f = tmp_path / "d.yaml"
    f.write_text(CONTRACT_EXAMPLE)
    spec = parse_deployment(read_deployment_file(f))
    assert isinstance(spec.strategy, Shadow) and spec.strategy.auto_approve
    assert spec.instance.count == 2 and spec.autoscaling is not None and spec.autoscaling.max == 4
    assert spec.regions == ["us-east-1"]


def test_everything_is_optional() -> None:
    spec = parse_deployment({})
    assert spec.endpoint is None and spec.strategy.kind == "all-at-once"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"endpont": "x"}, "f.yaml: endpont: unknown key"),
        ({"strategy": {"kind": "blue-green", "step": [100]}}, "f.yaml: strategy.step: unknown key"),
        ({"strategy": {"kind": "canary"}}, "f.yaml: strategy"),
        ({"strategy": {"kind": "blue-green", "steps": [10, 10, 100]}}, "steps must increase"),
        ({"strategy": {"kind": "blue-green", "steps": [10, 50]}}, "last step must be 100"),
        ({"instance": {"count": 0}}, "f.yaml: instance.count"),
        ({"autoscaling": {"min": 5, "max": 2}}, "min must not exceed max"),
        ({"autoscaling": {"min": 0, "max": 2}}, "f.yaml: autoscaling.min"),
        ({"regions": []}, "needs at least one region"),
        ({"endpoint": "Bad Name"}, "f.yaml: endpoint"),
        (
            {"env": {"API_TOKEN": "abc"}},
            "reference such as ${API_TOKEN}, passed on as that text, not",
        ),
        ({"env": {"hfToken": "abc"}}, "hfToken looks like a secret"),
        ({"gates": ["whenever"]}, "f.yaml: gates.0"),
    ],
)
def test_errors_name_the_file_the_key_and_the_reason(
    data: dict[str, object], expected: str
) -> None:
    with pytest.raises(SpecError) as err:
        parse_deployment(data, "f.yaml")
    assert expected in str(err.value)
    assert "\n" not in str(err.value)


def test_secret_references_pass_and_values_never_echo() -> None:
    assert (
        parse_deployment({"env": {"DB_PASSWORD": "${DB_PASSWORD}"}}).env["DB_PASSWORD"]
        == "${DB_PASSWORD}"
    )
    with pytest.raises(SpecError) as err:
        parse_deployment({"env": {"DB_PASSWORD": "hunter2"}})
    assert "hunter2" not in str(err.value)


def test_token_counts_and_tokenizer_settings_are_not_secrets() -> None:
    env = {"MAX_NEW_TOKENS": "256", "MAX_TOTAL_TOKENS": "4096", "TOKENIZERS_PARALLELISM": "false"}
    assert parse_deployment({"env": env}).env == env


def test_yaml_errors_give_the_line(tmp_path: Path) -> None:
    f = tmp_path / "d.yaml"
    f.write_text("endpoint: a\nstrategy: {kind: [\n")
    with pytest.raises(SpecError, match=r"d.yaml: line \d+: not valid YAML"):
        read_deployment_file(f)
    f.write_text("- just\n- a list\n")
    with pytest.raises(SpecError, match="expected a mapping"):
        read_deployment_file(f)


def test_settings_unknown_keys_and_defaults_are_checked() -> None:
    with pytest.raises(SpecError, match=r"mmm\.yaml: backend: unknown key"):
        parse_settings({"backend": {}})
    with pytest.raises(SpecError, match=r"mmm.yaml: defaults: gatez: unknown key"):
        parse_settings({"defaults": {"gatez": []}})
    with pytest.raises(SpecError, match=r"backends\.store"):
        parse_settings({"backends": {"store": "postgres"}})
    s = parse_settings(
        {"slack": {"users": {"U1": "alice"}}, "defaults": {"gates": ["before_merge"]}}
    )
    assert s.slack.users == {"U1": "alice"}


def test_schema_describes_every_key() -> None:
    schema = deployment_schema()
    assert set(schema["properties"]) >= {
        "endpoint", "regions", "instance", "autoscaling", "timeouts", "env", "gates", "strategy",
    }  # fmt: skip
    assert schema["additionalProperties"] is False


@given(st.lists(st.integers(1, 100), min_size=1, max_size=6, unique=True))
def test_blue_green_plans_shift_to_each_step_in_order(raw: list[int]) -> None:
    steps = sorted(set(raw) | {100})
    spec = parse_deployment({"strategy": {"kind": "blue-green", "steps": steps, "bake_s": 1}})
    assert isinstance(spec.strategy, BlueGreen)
    shifts = [s.args["percent"] for s in deploy_plan(spec) if s.action.value == "shift_traffic"]
    assert shifts == steps
