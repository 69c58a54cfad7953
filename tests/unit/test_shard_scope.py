"""A shard's scope: a label selector on namespaces, applied as namespaces come, change and go."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
import pytest

from heady_operator.config import Settings
from heady_operator.kube import objects as k
from heady_operator.models.attention import AttentionSignalSpec
from heady_operator.planning.incremental import IncrementalPlanner
from heady_operator.state.cluster import ClusterState
from heady_operator.state.scope import Scope, parse_selector
from tests import objects

T0 = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def namespace(name: str, **labels: str) -> k.Namespace:
    return msgspec.convert({"metadata": {"name": name, "labels": labels}}, k.Namespace)


def test_selectors_parse_like_kubectls_equality_selectors() -> None:
    assert parse_selector("heady.io/shard=a") == {"heady.io/shard": "a"}
    assert parse_selector(" heady.io/shard==a , tier=games ") == {"heady.io/shard": "a", "tier": "games"}
    for bad in ("heady.io/shard", "=a", "tier!=games"):
        with pytest.raises(ValueError, match="not key=value"):
            parse_selector(bad)


def test_a_scope_without_a_selector_holds_everything() -> None:
    scope = Scope()
    assert "anything" in scope and not scope.sharded
    assert scope.update("anything", {}) is None


def test_namespaces_join_and_leave_with_their_labels() -> None:
    scope = Scope({"heady.io/shard": "a"})
    assert "shop" not in scope
    assert scope.update("shop", {"heady.io/shard": "a"}) is True
    assert "shop" in scope
    assert scope.update("shop", {"heady.io/shard": "a", "x": "y"}) is None
    assert scope.update("shop", {"heady.io/shard": "b"}) is False
    assert scope.update("shop", {"heady.io/shard": "a"}) is True
    assert scope.update("shop", None) is False


def state() -> ClusterState:
    cfg = Settings(shard_selector="heady.io/shard=a", prediction_enabled=False)
    return ClusterState(cfg, IncrementalPlanner(), lambda: T0)


def test_a_shard_acts_only_in_its_namespaces_and_replays_one_that_joins() -> None:
    s = state()
    s.on_namespace("ADDED", namespace("mine", **{"heady.io/shard": "a"}))
    s.on_namespace("ADDED", namespace("theirs", **{"heady.io/shard": "b"}))
    spec = {"workload": {"name": "web"}}
    s.on_service("ADDED", objects.headyservice("mine", "web", spec))
    s.on_service("ADDED", objects.headyservice("theirs", "web", spec))
    s.on_signal("ADDED", objects.signal("theirs", "look", {"services": ["web"], "ttlSeconds": 60}, T0))
    assert set(s.services) == {("mine", "web")}
    assert not s.signals
    event = AttentionSignalSpec.model_validate({"services": ["web"], "ttlSeconds": 60})
    assert s.add_ingested(event, "theirs", "redis-1-0", T0, "redis") == "elsewhere"
    assert s.add_ingested(event, "mine", "redis-1-0", T0, "redis") == "applied"
    # "theirs" moves to shard a: what is there is acted on at once.
    s.on_namespace("MODIFIED", namespace("theirs", **{"heady.io/shard": "a"}))
    assert set(s.services) == {("mine", "web"), ("theirs", "web")}
    assert ("theirs", "look") in s.signals
    # "mine" leaves: as if its objects were deleted (its pods stay where they are).
    s.on_namespace("MODIFIED", namespace("mine", **{"heady.io/shard": "c"}))
    assert set(s.services) == {("theirs", "web")}
    assert ("mine", "redis-1-0") not in s.signals and s.ingested_live == 0
