"""HeadyService levels end to end: the operator process, the real API server, kwok's simulated kubelets."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client

from tests.harness import (
    Cluster,
    OperatorProcess,
    attention,
    condition,
    deployment,
    headyservice,
    requests_of,
    status_requests_of,
    wait_for,
)

pytestmark = pytest.mark.k8s

PEAK = {"cpu": "1999m", "memory": "2Gi"}  # Burstable: limits 2/2Gi stay, CPU request stops 1m short
BASE = {"cpu": "1800m", "memory": "1843Mi"}
LIMITS = {"cpu": "2", "memory": "2Gi"}
START = {"cpu": "1", "memory": "1Gi"}


def _levels(cluster: Cluster, ns: str, app: str) -> list[dict[str, str]]:
    return [requests_of(p) for p in cluster.pods(ns, f"app={app}") if p.status.phase == "Running"]


def _all_at(cluster: Cluster, ns: str, app: str, want: dict[str, str], count: int) -> bool:
    pods = [p for p in cluster.pods(ns, f"app={app}") if p.status.phase == "Running"]
    return len(pods) == count and all(requests_of(p) == want and status_requests_of(p) == want for p in pods)


def _service(cluster: Cluster, ns: str, name: str) -> dict[str, Any]:
    return cluster.get("headyservices", ns, name)


def _setup(cluster: Cluster, ns: str, name: str, replicas: int = 2, **spec: Any) -> None:
    cluster.apply(deployment(name, ns, replicas, START, LIMITS))
    cluster.apply(headyservice(name, ns, peak=LIMITS, **spec))


def test_settles_at_baseline_then_attention_brings_peak_and_expiry_relaxes(
    cluster: Cluster, operator: OperatorProcess, ns: str
) -> None:
    _setup(cluster, ns, "web", cooldownSeconds=1)
    wait_for(lambda: _all_at(cluster, ns, "web", BASE, 2), "both pods at baseline (spec and status)")
    svc = wait_for(
        lambda: (s := _service(cluster, ns, "web")).get("status", {}).get("level") == "Baseline" and s,
        "HeadyService level Baseline",
    )
    assert svc["status"]["observedGeneration"] == svc["metadata"]["generation"]
    assert condition(svc, "Ready")["status"] == "True"

    cluster.apply(attention("look", ns, "web", ttlSeconds=3, source="ui", intensity=0.9))
    wait_for(lambda: _all_at(cluster, ns, "web", PEAK, 2), "both pods at peak (spec and status)", timeout=10)
    svc = wait_for(
        lambda: (s := _service(cluster, ns, "web")).get("status", {}).get("level") == "Peak" and s,
        "level Peak",
    )
    assert svc["status"]["podsAtPeakSummary"] == "2/2"
    assert svc["status"]["lastAttention"]["source"] == "ui"
    restarts = [p.status.container_statuses[0].restart_count for p in cluster.pods(ns, "app=web")]
    assert restarts == [0, 0], "in-place resize must not restart containers"

    wait_for(
        lambda: _all_at(cluster, ns, "web", BASE, 2),
        "relaxed to baseline after expiry + cooldown",
        timeout=20,
    )
    sig = wait_for(
        lambda: (a := cluster.get("attentionsignals", ns, "look")).get("status", {}).get("expired") and a,
        "the signal marked expired",
    )
    assert condition(sig, "Ready")["reason"] == "Expired"
    # Events are posted by the reporter, a moment after the resizes themselves.
    wait_for(lambda: {"Escalated", "Relaxed"} <= {e.reason for e in cluster.events(ns, "web")}, "both Events")
    escalated = next(e for e in cluster.events(ns, "web") if e.reason == "Escalated")
    assert "signal look" in escalated.message
    assert 'heady_signal_to_resize_seconds_count{source="ui"}' in operator.metrics()


def test_third_high_priority_escalation_waits_with_a_reason(
    cluster: Cluster, operator: OperatorProcess, ns: str
) -> None:
    for name in ("a", "b", "c"):
        _setup(cluster, ns, name, replicas=1, priority="high")
    for name in ("a", "b", "c"):
        wait_for(lambda n=name: _all_at(cluster, ns, n, BASE, 1), f"{name} at baseline")
    cluster.apply(attention("sa", ns, "a", intensity=0.9, ttlSeconds=120))
    cluster.apply(attention("sb", ns, "b", intensity=0.8, ttlSeconds=120))
    wait_for(
        lambda: _all_at(cluster, ns, "a", PEAK, 1) and _all_at(cluster, ns, "b", PEAK, 1), "a and b at peak"
    )
    cluster.apply(attention("sc", ns, "c", intensity=0.7, ttlSeconds=120))
    svc = wait_for(
        lambda: (s := _service(cluster, ns, "c")).get("status", {}).get("waitingReason") and s, "c waiting"
    )
    assert "2 high-priority escalations in flight (a, b)" in svc["status"]["waitingReason"]
    assert condition(svc, "Ready")["reason"] == "HighPriorityLimit"
    assert _levels(cluster, ns, "c") == [BASE]
    assert any(e.reason == "EscalationWaiting" for e in cluster.events(ns, "c"))
    # When one of the two lets go, the waiting one gets its turn.
    cluster.custom.delete_namespaced_custom_object("heady.io", "v1alpha1", ns, "attentionsignals", "sa")
    _ = cluster.apply(headyservice("a", ns, peak=LIMITS, priority="high", cooldownSeconds=0))
    wait_for(lambda: _all_at(cluster, ns, "c", PEAK, 1), "c escalated once a slot is free", timeout=15)


def test_kubelet_infeasible_is_reported_and_falls_back_to_baseline(
    cluster: Cluster, operator: OperatorProcess, ns: str
) -> None:
    """The API thinks kwok-node-2 has 16 CPU; its (simulated) kubelet knows it has 8."""
    node = "kwok-node-2"
    cluster.core.patch_node_status(node, {"status": {"allocatable": {"cpu": "16"}}})
    try:
        cluster.apply(
            deployment("big", ns, 1, {"cpu": "1", "memory": "1Gi"}, {"cpu": "12", "memory": "2Gi"}, node=node)
        )
        cluster.apply(
            headyservice("big", ns, containers=[{"name": "app", "peak": {"cpu": "11"}}], baselineRatio=0.5)
        )
        base = {"cpu": "5500m", "memory": "512Mi"}  # memory: half of the requests (no explicit peak)
        wait_for(lambda: _levels(cluster, ns, "big") == [base], "baseline 5.5 CPU")
        cluster.apply(attention("go", ns, "big", ttlSeconds=120))
        svc = wait_for(
            lambda: (
                (s := _service(cluster, ns, "big"))
                and (c := condition(s, "Degraded"))
                and c["status"] == "True"
                and s
            ),
            "Degraded=True on the service",
            timeout=20,
        )
        assert condition(svc, "Degraded")["reason"] == "Infeasible"
        assert "infeasible" in condition(svc, "Degraded")["message"]
        wait_for(lambda: _levels(cluster, ns, "big") == [base], "fallback to baseline")
        assert 'heady_resize_failures_total{reason="Infeasible"}' in operator.metrics()
    finally:
        cluster.core.patch_node_status(node, {"status": {"allocatable": {"cpu": "8"}}})


def test_peak_that_does_not_fit_the_node_is_held_at_baseline(
    cluster: Cluster, operator: OperatorProcess, ns: str
) -> None:
    cluster.apply(deployment("huge", ns, 1, {"cpu": "1", "memory": "1Gi"}, {"cpu": "20", "memory": "2Gi"}))
    cluster.apply(
        headyservice("huge", ns, containers=[{"name": "app", "peak": {"cpu": "7"}}], baselineRatio=0.5)
    )
    wait_for(lambda: _levels(cluster, ns, "huge") == [{"cpu": "3500m", "memory": "512Mi"}], "baseline")
    # Fill the same node so the 3.5 CPU step up cannot fit.
    node = cluster.pods(ns, "app=huge")[0].spec.node_name
    cluster.apply(deployment("filler", ns, 1, {"cpu": "2"}, None, node=node))
    wait_for(
        lambda: any(p.status.phase == "Running" for p in cluster.pods(ns, "app=filler")), "filler running"
    )
    cluster.apply(attention("go", ns, "huge", ttlSeconds=120))

    def held() -> dict[str, Any] | None:
        svc = _service(cluster, ns, "huge")
        ready = condition(svc, "Ready") or {}
        return svc if "NodeCapacity" in ready.get("message", "") else None

    svc = wait_for(held, "NodeCapacity reported")
    assert svc["status"]["podsAtPeak"] == 0


def test_rollout_pods_get_their_level_and_deleting_the_service_leaves_peak(
    cluster: Cluster, operator: OperatorProcess, ns: str
) -> None:
    _setup(cluster, ns, "roll")
    cluster.apply(attention("look", ns, "roll", ttlSeconds=300))
    wait_for(lambda: _all_at(cluster, ns, "roll", PEAK, 2), "peak")
    victim = cluster.pods(ns, "app=roll")[0].metadata.name
    cluster.core.delete_namespaced_pod(victim, ns, grace_period_seconds=0)
    wait_for(
        lambda: (
            victim not in {p.metadata.name for p in cluster.pods(ns, "app=roll")}
            and _all_at(cluster, ns, "roll", PEAK, 2)
        ),
        "the replacement pod raised to peak",
    )
    cluster.custom.delete_namespaced_custom_object("heady.io", "v1alpha1", ns, "headyservices", "roll")
    cluster.custom.delete_namespaced_custom_object("heady.io", "v1alpha1", ns, "attentionsignals", "look")
    # Nothing is taken away from a workload heady no longer manages.
    with pytest.raises(AssertionError):
        wait_for(lambda: not _all_at(cluster, ns, "roll", PEAK, 2), "pods leaving peak", timeout=3)


def test_operator_killed_mid_escalation_loses_nothing(
    cluster: Cluster, operator: OperatorProcess, ns: str
) -> None:
    op = operator  # the only operator running: killing it really stops all escalation work
    try:
        _setup(cluster, ns, "one", cooldownSeconds=5)
        _setup(cluster, ns, "two")
        wait_for(
            lambda: _all_at(cluster, ns, "one", BASE, 2) and _all_at(cluster, ns, "two", BASE, 2), "baseline"
        )
        cluster.apply(attention("s1", ns, "one", ttlSeconds=300))
        wait_for(lambda: _all_at(cluster, ns, "one", PEAK, 2), "one at peak")
        since = wait_for(
            lambda: _service(cluster, ns, "one").get("status", {}).get("escalatedSince"),
            "escalatedSince recorded",
        )
        op.kill()
        # While the operator is down: new attention arrives, and a pod is recreated.
        cluster.apply(attention("s2", ns, "two", ttlSeconds=300))
        victim = cluster.pods(ns, "app=one")[0].metadata.name
        cluster.core.delete_namespaced_pod(victim, ns, grace_period_seconds=0)
        op.start()
        wait_for(lambda: _all_at(cluster, ns, "two", PEAK, 2), "two escalated after restart")
        wait_for(lambda: _all_at(cluster, ns, "one", PEAK, 2), "one still at peak, new pod included")
        assert _service(cluster, ns, "one")["status"]["escalatedSince"] == since
        relaxed = [e for e in cluster.events(ns, "one") if e.reason == "Relaxed"]
        assert not relaxed, "a restart must not relax an escalation"
    finally:
        if op.proc is None:
            op.start()


def test_bad_references_are_reported_not_crashed_on(
    cluster: Cluster, operator: OperatorProcess, ns: str
) -> None:
    cluster.apply(headyservice("ghost", ns))
    svc = wait_for(
        lambda: (s := _service(cluster, ns, "ghost")) and condition(s, "Ready") and s,
        "Ready condition on ghost",
    )
    ready = condition(svc, "Ready")
    assert ready["status"] == "False" and ready["reason"] == "WorkloadNotFound"
    assert "Deployment ghost not found" in ready["message"]
    cluster.apply(attention("nobody", ns, "missing", ttlSeconds=60))
    sig = wait_for(
        lambda: (a := cluster.get("attentionsignals", ns, "nobody")) and condition(a, "Ready") and a,
        "signal status",
    )
    assert condition(sig, "Ready")["reason"] == "ServiceNotFound"
    assert operator.healthy()


def test_guaranteed_pods_move_requests_and_limits_together(
    cluster: Cluster, operator: OperatorProcess, ns: str
) -> None:
    both = {"cpu": "1", "memory": "1Gi"}
    cluster.apply(deployment("g", ns, 1, both, both))
    cluster.apply(headyservice("g", ns))
    base = {"cpu": "900m", "memory": "921Mi"}

    def resources() -> tuple[dict[str, str], dict[str, str]]:
        pod: client.V1Pod = cluster.pods(ns, "app=g")[0]
        r = pod.spec.containers[0].resources
        return dict(r.requests), dict(r.limits)

    wait_for(lambda: resources() == (base, base), "Guaranteed pod at baseline, limits moved with requests")
    cluster.apply(attention("go", ns, "g", ttlSeconds=60))
    wait_for(lambda: resources() == (both, both), "Guaranteed pod at peak")
    assert cluster.pods(ns, "app=g")[0].status.qos_class == "Guaranteed"


def test_without_an_explicit_peak_baseline_never_exceeds_what_the_owner_asked(
    cluster: Cluster, operator: OperatorProcess, ns: str
) -> None:
    """Default peak is the template's requests: 100m/100Mi requests (200m/200Mi limits) run at
    90m/90Mi and go back to exactly 100m/100Mi at peak, never to the limits."""
    cluster.apply(
        deployment("own", ns, 1, {"cpu": "100m", "memory": "100Mi"}, {"cpu": "200m", "memory": "200Mi"})
    )
    cluster.apply(headyservice("own", ns))
    wait_for(
        lambda: _levels(cluster, ns, "own") == [{"cpu": "90m", "memory": "90Mi"}], "baseline below requests"
    )
    cluster.apply(attention("go", ns, "own", ttlSeconds=60))
    wait_for(
        lambda: _levels(cluster, ns, "own") == [{"cpu": "100m", "memory": "100Mi"}], "peak = the requests"
    )
