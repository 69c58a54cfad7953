"""HPA scale-ups, scale-downs and rollouts of a service at peak (the escalation loop, fake API and clock).

Pods a scale-up or a rollout adds get the service's current level in the first plan after they
run; pods that go (scale-down, the old ReplicaSet of a rollout) stop counting at once: the
status and heady_pods_at_peak never count a pod that is gone.
"""

from __future__ import annotations

from typing import Any

import msgspec

from heady_operator import metrics
from heady_operator.kube import objects as k
from heady_operator.planning.levels import Level
from tests import objects
from tests.unit.test_escalation_loop import BASE, LIMITS, NS, Clock, FakeApi, attention, drain, world

CONTAINER = {"name": "app", "resources": objects.resources(BASE, LIMITS)}


class RolloutApi(FakeApi):
    """The resize response keeps the pod's own ReplicaSet (web-<hash>-<i> pods of a rollout)."""

    def pod_with(self, namespace: str, name: str, containers: list[dict[str, Any]], rv: int) -> k.Pod:
        entry = self.state.pods[(namespace, name)]
        parts = name.split("-")
        hash_ = parts[1] if len(parts) == 3 else "abc12"
        raw = msgspec.to_builtins(
            objects.pod(namespace, name, "web", containers, qos=str(entry.record.qos), hash_=hash_)
        )
        raw["metadata"]["resourceVersion"] = str(rv)
        return msgspec.convert(raw, k.Pod)


def status_of(api: Any, name: str) -> dict[str, Any]:
    return [st for p, n, st in api.statuses if p == "headyservices" and n == name][-1]


def at_peak_metric(name: str) -> float:
    value = metrics.REGISTRY.get_sample_value("heady_pods_at_peak", {"namespace": NS, "service": name})
    return float(value or 0.0)


async def test_a_scale_up_at_peak_gets_peak_in_one_plan_and_a_scale_down_stops_counting() -> None:
    clock = Clock()
    state, esc, api = world(clock, {"web": 2})
    attention(state, clock, "look", "web", 300)
    esc.plan_once()
    await drain(esc, lambda: len(api.resizes) == 2, "the two pods at peak")
    # The HPA adds two pods: created Pending, then running on a node.
    for i in (2, 3):
        state.on_pod("ADDED", objects.pod(NS, f"web-{i}", "web", [CONTAINER], None, "Burstable", "Pending"))
    esc.plan_once()
    assert len(api.resizes) == 2, "a pod that does not run yet is not resized"
    for i in (2, 3):
        state.on_pod(
            "MODIFIED", objects.pod(NS, f"web-{i}", "web", [CONTAINER], qos="Burstable", resource_version=2)
        )
    delta = esc.plan_once()
    assert {k[1] for k, d in delta.pods.items() if d.level is Level.PEAK and d.needs_resize} == {
        "web-2",
        "web-3",
    }
    await drain(esc, lambda: len(api.resizes) == 4, "the new pods at peak")
    esc.plan_once()
    await esc.reporter.flush()
    status = status_of(api, "web")
    assert (status["podsAtPeak"], status["podsTotal"], status["level"]) == (4, 4, "Peak")
    assert at_peak_metric("web") == 4
    # Scale down to one: the pods go (deletionTimestamp first, then DELETED).
    for i in (1, 2, 3):
        state.on_pod("DELETED", objects.pod(NS, f"web-{i}", "web", [CONTAINER], qos="Burstable"))
    esc.plan_once()
    await esc.reporter.flush()
    status = status_of(api, "web")
    assert (status["podsAtPeak"], status["podsTotal"], status["podsAtPeakSummary"]) == (1, 1, "1/1")
    assert at_peak_metric("web") == 1
    assert not any(k[1] in ("web-1", "web-2", "web-3") for k in state.planner.pods)


async def test_a_rollout_at_peak_moves_the_level_to_the_new_pods_and_forgets_the_old() -> None:
    clock = Clock()
    state, esc, api = world(clock, {"web": 2})
    api = RolloutApi(state)
    esc.api = esc.reporter.api = api
    attention(state, clock, "look", "web", 300)
    esc.plan_once()
    await drain(esc, lambda: len(api.resizes) == 2, "the two pods at peak")
    # The Deployment rolls out: a new ReplicaSet, its pods surge in, the old ones terminate.
    state.on_replica_set("ADDED", objects.replica_set(NS, "web", "new99"))
    for i in range(2):
        new = f"web-new99-{i}"
        state.on_pod("ADDED", objects.pod(NS, new, "web", [CONTAINER], qos="Burstable", hash_="new99"))
        delta = esc.plan_once()
        assert delta.pods[(NS, new)].level is Level.PEAK, "the service's current level in one plan"
        await drain(esc, lambda new=new: any(n == new for n, _ in api.resizes), f"{new} at peak")
        terminating = objects.pod(NS, f"web-{i}", "web", [CONTAINER], qos="Burstable", resource_version=9)
        terminating.metadata.deletionTimestamp = "2026-11-29T12:00:01Z"
        state.on_pod("MODIFIED", terminating)
        esc.plan_once()
        await esc.reporter.flush()
        status = status_of(api, "web")
        assert status["podsAtPeak"] == status["podsTotal"] == 2, f"during the rollout, step {i}"
    assert sorted(k[1] for k in state.pods_of((NS, "web"))) == ["web-new99-0", "web-new99-1"]
    assert at_peak_metric("web") == 2
    assert state.planner.service_decisions[(NS, "web")].pods_at_peak == 2
