"""The pydantic models mirror the CRD schemas: same fields, same defaults, same enums."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from heady_operator.models.arena import ArenaSessionSpec
from heady_operator.models.attention import AttentionSignalSpec
from heady_operator.models.common import PRIORITY_VALUES, PriorityLevel
from heady_operator.models.headyservice import HeadyServiceSpec

CRDS = Path(__file__).resolve().parents[2] / "crds"
CASES = [
    ("heady.io_headyservices.yaml", HeadyServiceSpec),
    ("heady.io_attentionsignals.yaml", AttentionSignalSpec),
    ("heady.io_arenasessions.yaml", ArenaSessionSpec),
]


def _spec_schema(file: str) -> dict[str, Any]:
    crd = yaml.safe_load((CRDS / file).read_text())
    schema: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    return schema


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def _compare(schema: dict[str, Any], model: type[BaseModel], path: str) -> list[str]:
    problems = []
    props = schema.get("properties", {})
    fields = {f.alias or name: f for name, f in model.model_fields.items()}
    for missing in sorted(set(props) - set(fields)):
        problems.append(f"{path}.{missing}: in the CRD, not in {model.__name__}")
    for extra in sorted(set(fields) - set(props)):
        problems.append(f"{path}.{extra}: in {model.__name__}, not in the CRD")
    for name in sorted(set(props) & set(fields)):
        prop, field = props[name], fields[name]
        if "default" in prop and not field.is_required():
            default = field.get_default(call_default_factory=True)
            default = getattr(default, "value", default)
            if default != prop["default"]:
                problems.append(
                    f"{path}.{name}: default {prop['default']!r} in the CRD, {default!r} in the model"
                )
        sub = prop.get("items", prop) if prop.get("type") == "array" else prop
        nested = _model_of(field.annotation)
        if sub.get("type") == "object" and "properties" in sub and nested is not None:
            problems += _compare(sub, nested, f"{path}.{name}")
    return problems


@pytest.mark.parametrize(("file", "model"), CASES, ids=[c[0] for c in CASES])
def test_model_mirrors_crd(file: str, model: type[BaseModel]) -> None:
    assert _compare(_spec_schema(file), model, "spec") == []


@pytest.mark.parametrize("file", [c[0] for c in CASES[::2]])
def test_priority_enum_matches(file: str) -> None:
    assert _spec_schema(file)["properties"]["priority"]["enum"] == [p.value for p in PriorityLevel]


def test_priority_numbers_are_the_seeds() -> None:
    assert [PRIORITY_VALUES[p] for p in PriorityLevel] == [25, 40, 65, 80, 90, 125, 150]
