"""The ArenaSession pydantic models against the CRD they mirror (crds/heady.io_arenasessions.yaml)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from heady_operator.models.arena import (
    ArenaSessionSpec,
    ArenaSessionStatus,
    ChaosExperiment,
    ChaosKind,
    ChaosMode,
)
from heady_operator.models.common import PriorityLevel

CRD = Path(__file__).parents[2] / "crds" / "heady.io_arenasessions.yaml"


def crd_spec_schema() -> dict[str, Any]:
    crd = yaml.safe_load(CRD.read_text())
    schema: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    return schema


def _resolve(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """Follow $ref and drop the `| None` branch of optional fields."""
    if "$ref" in schema:
        target = defs[schema["$ref"].rsplit("/", 1)[-1]]
        return _resolve({**target, **{k: v for k, v in schema.items() if k != "$ref"}}, defs)
    if "anyOf" in schema:
        branches = [b for b in schema["anyOf"] if b.get("type") != "null"]
        assert len(branches) == 1, schema
        rest = {k: v for k, v in schema.items() if k != "anyOf"}
        return _resolve({**branches[0], **rest}, defs)
    return schema


KEYWORDS = ("minimum", "maximum", "minLength", "maxLength", "minItems", "maxItems", "pattern", "enum")


def compare(crd: dict[str, Any], model: dict[str, Any], defs: dict[str, Any], path: str) -> list[str]:
    model = _resolve(model, defs)
    problems = []
    for key in KEYWORDS:
        if key in crd or key in model:
            a, b = crd.get(key), model.get(key)
            if key == "enum" and a is not None and b is not None:
                a, b = sorted(a), sorted(b)
            if a != b:
                problems.append(f"{path}: {key} CRD {a!r} model {b!r}")
    if "default" in crd and crd["default"] != model.get("default"):
        problems.append(f"{path}: default CRD {crd['default']!r} model {model.get('default')!r}")
    if crd.get("type") == "object" and "properties" in crd:
        crd_props, model_props = crd["properties"], model.get("properties", {})
        if set(crd_props) != set(model_props):
            problems.append(f"{path}: properties CRD {sorted(crd_props)} model {sorted(model_props)}")
        if sorted(crd.get("required", [])) != sorted(model.get("required", [])):
            problems.append(f"{path}: required CRD {crd.get('required')} model {model.get('required')}")
        for name in set(crd_props) & set(model_props):
            problems += compare(crd_props[name], model_props[name], defs, f"{path}.{name}")
    if crd.get("type") == "array":
        problems += compare(crd["items"], model["items"], defs, f"{path}[]")
    return problems


def test_spec_model_mirrors_the_crd() -> None:
    model = ArenaSessionSpec.model_json_schema(by_alias=True)
    assert compare(crd_spec_schema(), model, model.get("$defs", {}), "spec") == []


def test_the_comparison_notices_drift() -> None:
    model = ArenaSessionSpec.model_json_schema(by_alias=True)
    crd = crd_spec_schema()
    crd["properties"]["battleDepth"]["default"] = 4
    crd["properties"]["chaos"]["properties"]["experiments"]["items"]["properties"]["mode"]["enum"].append(
        "half"
    )
    del crd["properties"]["requiresGPU"]
    problems = compare(crd, model, model.get("$defs", {}), "spec")
    assert "spec.battleDepth: default CRD 4 model 3" in problems
    assert any(p.startswith("spec.chaos.experiments[].mode: enum") for p in problems)
    assert any("requiresGPU" in p for p in problems)


def test_defaults() -> None:
    spec = ArenaSessionSpec.model_validate({"repos": [{"name": "HeadyMe"}]})
    assert spec.repos[0].branch == "main"
    assert spec.priority is PriorityLevel.MEDIUM
    assert (spec.duration_seconds, spec.battle_depth, spec.requires_gpu) == (3600, 3, False)
    assert spec.risk.technical.complexity == 0.0
    assert spec.chaos is None
    assert spec.services == []


def test_camel_case_on_the_wire() -> None:
    body = {
        "repos": [{"name": "a", "branch": "dev"}],
        "durationSeconds": 60,
        "battleDepth": 7,
        "requiresGPU": True,
        "risk": {"operational": {"resourceUtilization": 0.5, "errorRate": 0.1}},
        "chaos": {"dryRun": True, "experiments": [{"name": "kill-one", "kind": "pod_termination"}]},
    }
    spec = ArenaSessionSpec.model_validate(body)
    assert spec.requires_gpu
    assert spec.risk.operational.error_rate == 0.1
    assert spec.chaos is not None
    experiment = spec.chaos.experiments[0]
    assert (experiment.mode, experiment.duration_seconds, experiment.recovery_objective_seconds) == (
        ChaosMode.ONE,
        30,
        120,
    )
    dumped = spec.model_dump(by_alias=True, exclude_defaults=True)
    assert dumped["requiresGPU"] is True
    assert dumped["battleDepth"] == 7


@pytest.mark.parametrize(
    ("experiment", "message"),
    [
        ({"name": "x", "kind": "pod_termination", "mode": "fixed"}, "mode fixed and percent need a value"),
        ({"name": "x", "kind": "pod_termination", "mode": "percent"}, "mode fixed and percent need a value"),
        (
            {"name": "x", "kind": "api_failure", "mode": "percent", "value": 101},
            "a percent value must be at most 100",
        ),
        ({"name": "x", "kind": "zone_outage"}, "zone_outage needs a zone"),
        ({"name": "Bad_Name", "kind": "api_failure"}, "pattern"),
        ({"name": "x", "kind": "meteor"}, "kind"),
        ({"name": "x", "kind": "api_failure", "jitterPercent": 101}, "jitterPercent"),
    ],
)
def test_chaos_rules_of_the_crd(experiment: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ChaosExperiment.model_validate(experiment)


@pytest.mark.parametrize(
    "experiment",
    [
        {"name": "x", "kind": "pod_termination", "mode": "fixed", "value": 500},  # fixed has no 100 cap
        {"name": "x", "kind": "pod_termination", "mode": "percent", "value": 100},
        {"name": "x", "kind": "zone_outage", "zone": "eu-1a", "mode": "all"},
        {"name": "x", "kind": "network_partition", "selector": {"app": "api"}},
    ],
)
def test_chaos_experiments_the_crd_accepts(experiment: dict[str, Any]) -> None:
    assert ChaosExperiment.model_validate(experiment).kind in set(ChaosKind)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"repos": []}, "at least 1"),
        ({"repos": [{"name": "a"}, {"name": "a"}]}, "duplicate repo name 'a'"),
        ({"repos": [{"name": "a"}], "services": ["s", "s"]}, "duplicate service 's'"),
        ({"repos": [{"name": "a"}], "services": [""]}, "at least 1 character"),
        ({"repos": [{"name": "a"}], "battleDepth": 8}, "battleDepth"),
        ({"repos": [{"name": "a"}], "priority": "urgent"}, "priority"),
        ({"repos": [{"name": "a"}], "risk": {"technical": {"complexity": 1.5}}}, "complexity"),
        ({"repos": [{"name": "a"}], "requiresGpu": True}, "requiresGpu"),  # the CRD spells it requiresGPU
        (
            {
                "repos": [{"name": "a"}],
                "chaos": {
                    "experiments": [
                        {"name": "e", "kind": "api_failure"},
                        {"name": "e", "kind": "api_failure"},
                    ]
                },
            },
            "duplicate experiment name 'e'",
        ),
    ],
)
def test_invalid_specs(body: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ArenaSessionSpec.model_validate(body)


def test_status_keeps_unknown_fields_and_reads_conditions() -> None:
    status = ArenaSessionStatus.model_validate(
        {
            "observedGeneration": 2,
            "queuedAt": "2026-11-23T12:00:00Z",
            "allocation": {"cpu": "12", "memory": "24Gi", "scale": 1.0},
            "conditions": [{"type": "Admitted", "status": "True", "reason": "QuotaReserved"}],
            "futureField": {"x": 1},
        }
    )
    admitted = status.condition("Admitted")
    assert admitted is not None
    assert admitted.reason == "QuotaReserved"
    assert status.condition("Finished") is None
    assert status.queued_at is not None
    assert status.queued_at.year == 2026
    assert status.model_dump(by_alias=True)["futureField"] == {"x": 1}
