"""The attention transition model and predictive pre-escalation through the controller."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from heady_operator.config import Settings
from heady_operator.planning.incremental import IncrementalPlanner
from heady_operator.planning.levels import Level
from heady_operator.planning.prediction import TransitionModel
from heady_operator.state.cluster import ClusterState
from tests import objects

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
A, B, C = ("ns", "a"), ("ns", "b"), ("ns", "c")


def test_transitions_are_counted_per_user_and_predicted_above_threshold() -> None:
    m = TransitionModel()
    for i in range(3):
        m.observe("u1", A, T0 + timedelta(seconds=10 * i))
        m.observe("u1", B, T0 + timedelta(seconds=10 * i + 1))
    m.observe("u2", A, T0)
    m.observe("u2", C, T0)
    assert m.probability(A, B) == 0.75
    assert m.predict(A, threshold=0.6, min_observations=3) == (B, 0.75)
    assert m.predict(A, threshold=0.8, min_observations=3) is None
    assert m.predict(A, threshold=0.6, min_observations=5) is None
    assert m.predict(C, threshold=0.1, min_observations=1) is None


def test_hits_and_misses() -> None:
    m = TransitionModel()
    m.expect("u", B, T0 + timedelta(seconds=20))
    assert m.observe("u", B, T0 + timedelta(seconds=5)) == "hit"
    m.expect("u", C, T0 + timedelta(seconds=20))
    assert m.expire(T0 + timedelta(seconds=30)) == ["miss"]
    assert m.stats_for(B)["hits"] == 1
    assert m.stats_for(C)["misses"] == 1


def test_round_trips_through_json() -> None:
    m = TransitionModel()
    m.observe("u", A, T0)
    m.observe("u", B, T0)
    again = TransitionModel.from_json(m.to_json())
    assert again.counts == m.counts
    assert TransitionModel.from_json("").counts == {}


def test_old_evidence_is_halved_when_a_row_grows_too_large() -> None:
    m = TransitionModel(max_count=4)
    for _ in range(3):
        m.observe("u", A, T0)
        m.observe("u", B, T0)
    assert sum(m.counts["ns/a"].values()) <= 4


# ------------------------------------------------------------------ through the cluster state


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def _state(settings: Settings, clock: Clock) -> ClusterState:
    state = ClusterState(settings, IncrementalPlanner(), clock)
    state.on_node("ADDED", objects.node("n1"))
    container = {"name": "app", "resources": objects.resources(limits={"cpu": "1", "memory": "1Gi"})}
    for name in ("a", "b", "c"):
        state.on_workload("ADDED", "Deployment", objects.deployment("ns", name, [container]))
        state.on_replica_set("ADDED", objects.replica_set("ns", name))
        state.on_service("ADDED", objects.headyservice("ns", name, {"workload": {"name": name}}))
        running = {
            "name": "app",
            "resources": objects.resources({"cpu": "900m", "memory": "921Mi"}, {"cpu": "1", "memory": "1Gi"}),
        }
        state.on_pod("ADDED", objects.pod("ns", f"{name}-0", name, [running], qos="Burstable"))
    return state


def _signal(name: str, svc: str, user: str, at: datetime) -> Any:
    return objects.signal("ns", name, {"services": [svc], "user": user, "ttlSeconds": 5, "source": "ui"}, at)


def test_learned_transition_pre_escalates_the_next_service() -> None:
    clock = Clock()
    state = _state(Settings(prediction_min_observations=3, prediction_threshold=0.6), clock)
    # A user goes a -> b three times.
    for i in range(3):
        clock.now = T0 + timedelta(seconds=20 * i)
        state.on_signal("ADDED", _signal(f"sa{i}", "a", "u", clock.now))
        clock.now += timedelta(seconds=1)
        state.on_signal("ADDED", _signal(f"sb{i}", "b", "u", clock.now))
    # Then attention lands on a again, with b quiet: b is raised before the user gets there.
    clock.now = T0 + timedelta(seconds=100)
    state.on_signal("ADDED", _signal("sa-again", "a", "u", clock.now))
    state.planner.plan(clock.now)
    assert state.planner.pod_decisions[("ns", "b-0")].level is Level.PEAK
    predicted = [e for e in state.signals.values() if e.path == "predictor"]
    assert len(predicted) == 1 and predicted[0].signal is not None
    assert predicted[0].signal.services == (B,)
    assert state.model.last_predicted["ns/a"] == "ns/b"
    # The user does go to b within the prediction's TTL: a hit.
    clock.now += timedelta(seconds=2)
    state.on_signal("ADDED", _signal("sb-again", "b", "u", clock.now))
    assert state.model.stats_for(B)["hits"] == 1


def test_signals_without_a_user_teach_the_model_nothing() -> None:
    clock = Clock()
    state = _state(Settings(), clock)
    for i, svc in enumerate(["a", "b", "a", "b", "c"]):
        clock.now = T0 + timedelta(seconds=i)
        state.on_signal(
            "ADDED", objects.signal("ns", f"s{i}", {"services": [svc], "ttlSeconds": 5}, clock.now)
        )
    assert state.model.counts == {}
    assert state.model.last == {}


# ------------------------------------------------------------------ anonymous attention (issue 17)


def test_attention_without_a_user_trains_nothing() -> None:
    m = TransitionModel()
    for user in (None, "", "  "):
        for _ in range(5):
            assert m.observe(user, A, T0) is None
            assert m.observe(user, B, T0) is None
        m.expect(user, C, T0 + timedelta(seconds=5))
    assert m.counts == {} and m.last == {} and m.expected == {}
    assert m.expire(T0 + timedelta(minutes=1)) == []  # no miss for a prediction nobody can confirm


def test_a_model_saved_before_users_were_required_is_cleaned_when_loaded() -> None:
    # What the old code saved: counts that may hold anonymous users' moves, no version.
    old = '{"counts": {"ns/a": {"ns/b": 7}}, "hits": {"ns/b": 2}, "misses": {}, "lastPredicted": {"ns/a": "ns/b"}}'
    m = TransitionModel.from_json(old)
    assert m.counts == {}
    assert m.predict(A, threshold=0.1, min_observations=1) is None
    assert m.stats_for(B)["hits"] == 2  # history of what was predicted is kept
    assert m.dirty  # the cleaned model is saved over the old one
    assert '"version": 2' in m.to_json()


def test_a_current_model_round_trips_and_is_not_rewritten() -> None:
    m = TransitionModel()
    m.observe("u", A, T0)
    m.observe("u", B, T0)
    again = TransitionModel.from_json(m.to_json())
    assert again.counts == {"ns/a": {"ns/b": 1}}
    assert not again.dirty


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[1, 2]",
        "null",
        '{"version": 2, "counts": {"ns/a": {"ns/b": "7"}}}',
        '{"version": 2, "counts": {"ns/a": {"ns/b": -1}}}',
        '{"version": 2, "counts": {"ns/a": {"ns/b": 1e400}}}',
        '{"version": 2, "counts": {"ns/a": [1]}}',
        '{"version": 2, "counts": {"noslash": {"ns/b": 1}}}',
        '{"version": 2, "hits": {"ns/b": null}, "lastPredicted": {"ns/a": 5}}',
        "[" * 100_000,
    ],
)
def test_an_unreadable_model_configmap_never_raises(text: str) -> None:
    m = TransitionModel.from_json(text)
    assert m.counts == {}
    assert m.dirty
