"""Every sample in manifests/ is accepted by the real API server and by the pydantic models;
bad samples in tests/e2e/bad/ are refused by both, the server with a message a user can act on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, ValidationError

from heady_operator.models.arena import ArenaSessionSpec
from heady_operator.models.attention import AttentionSignalSpec
from heady_operator.models.headyservice import HeadyServiceSpec
from tests.harness import ROOT, Cluster

pytestmark = pytest.mark.k8s

MODELS: dict[str, type[BaseModel]] = {
    "HeadyService": HeadyServiceSpec,
    "AttentionSignal": AttentionSignalSpec,
    "ArenaSession": ArenaSessionSpec,
}
BAD = sorted((Path(__file__).parent / "bad").glob("*.yaml"))


def _heady_docs() -> list[dict[str, Any]]:
    docs = []
    for path in sorted((ROOT / "manifests").glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d and d["kind"] in MODELS]
    return docs


def test_samples_cover_every_kind() -> None:
    assert {d["kind"] for d in _heady_docs()} == set(MODELS)


@pytest.mark.parametrize("doc", _heady_docs(), ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_sample_is_accepted_by_server_and_model(cluster: Cluster, doc: dict[str, Any]) -> None:
    MODELS[doc["kind"]].model_validate(doc["spec"])
    cluster.kubectl("create", "namespace", doc["metadata"]["namespace"], check=False)
    res = cluster.kubectl("apply", "--dry-run=server", "-f", "-", input=yaml.safe_dump(doc), check=False)
    assert res.returncode == 0, res.stderr


@pytest.mark.parametrize("path", BAD, ids=lambda p: p.stem)
def test_bad_sample_is_refused_with_a_readable_message(cluster: Cluster, path: Path) -> None:
    text = path.read_text()
    expect = text.splitlines()[0].removeprefix("# expect:").strip()
    res = cluster.kubectl("apply", "-n", "default", "--dry-run=server", "-f", str(path), check=False)
    assert res.returncode != 0, f"{path.name} was accepted"
    assert expect in res.stderr, res.stderr
    doc = yaml.safe_load(text)
    with pytest.raises(ValidationError):
        MODELS[doc["kind"]].model_validate(doc["spec"])
