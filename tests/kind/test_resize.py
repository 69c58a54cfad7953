"""Baseline -> peak -> baseline on a real kubelet: the kernel's cgroup values, read from inside the
container, follow the operator's resizes, and the container is never restarted."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client

from tests.harness import Cluster, OperatorProcess, attention, condition, headyservice, wait_for
from tests.kind.realnode import (
    BUSY,
    busybox_deployment,
    cpu_use,
    expected,
    matches,
    read_cgroup,
)

pytestmark = pytest.mark.kind


def _pod(cluster: Cluster, ns: str, app: str) -> client.V1Pod:
    pods = [p for p in cluster.pods(ns, f"app={app}") if p.status.phase == "Running"]
    assert len(pods) == 1, f"expected one running pod of {app}, got {[p.metadata.name for p in pods]}"
    return pods[0]


def _at(
    cluster: Cluster, ns: str, app: str, requests: dict[str, str], limits: dict[str, str]
) -> client.V1Pod | None:
    """The pod when spec, kubelet status and the kernel all say `requests`/`limits`."""
    pods = [p for p in cluster.pods(ns, f"app={app}") if p.status.phase == "Running"]
    if len(pods) != 1:
        return None
    pod = pods[0]
    c = pod.spec.containers[0].resources
    st = (pod.status.container_statuses or [None])[0]
    if st is None or st.resources is None:
        return None
    if dict(c.requests or {}) != requests or dict(c.limits or {}) != limits:
        return None
    if dict(st.resources.requests or {}) != requests or dict(st.resources.limits or {}) != limits:
        return None
    if not matches(read_cgroup(cluster, ns, pod.metadata.name), expected(requests, limits)):
        return None
    return pod


def _identity(pod: client.V1Pod) -> tuple[str, int, str]:
    st = pod.status.container_statuses[0]
    return st.container_id, st.restart_count, pod.status.qos_class


def _cycle(
    cluster: Cluster,
    ns: str,
    app: str,
    start: tuple[dict[str, str], dict[str, str]],
    baseline: tuple[dict[str, str], dict[str, str]],
    peak: tuple[dict[str, str], dict[str, str]],
    qos: str,
    spec: dict[str, Any],
) -> None:
    cluster.apply(busybox_deployment(app, ns, start[0], start[1]))
    wait_for(lambda: _at(cluster, ns, app, *start), f"{app} running as created", timeout=90)
    first = _identity(_pod(cluster, ns, app))
    assert first[1:] == (0, qos)

    cluster.apply(headyservice(app, ns, **spec))
    pod = wait_for(lambda: _at(cluster, ns, app, *baseline), f"{app} at baseline in the cgroup", timeout=60)
    assert _identity(pod) == first, "baseline must be reached in place (same container, no restart)"

    cluster.apply(attention("look", ns, app, ttlSeconds=8, intensity=0.9, source="kind"))
    pod = wait_for(lambda: _at(cluster, ns, app, *peak), f"{app} at peak in the cgroup", timeout=30)
    assert _identity(pod) == first, "peak must be reached in place (same container, no restart)"
    svc = wait_for(
        lambda: (s := cluster.get("headyservices", ns, app)).get("status", {}).get("level") == "Peak" and s,
        "HeadyService level Peak",
    )
    assert condition(svc, "Ready")["status"] == "True"

    pod = wait_for(
        lambda: _at(cluster, ns, app, *baseline), f"{app} back at baseline in the cgroup", timeout=60
    )
    assert _identity(pod) == first, "relaxing must happen in place (same container, no restart)"
    wait_for(
        lambda: cluster.get("headyservices", ns, app).get("status", {}).get("level") == "Baseline",
        "HeadyService level Baseline",
    )


def test_burstable_requests_move_and_the_kernel_follows(
    cluster: Cluster, operator: OperatorProcess, ns: str
) -> None:
    limits = {"cpu": "1", "memory": "256Mi"}
    _cycle(
        cluster,
        ns,
        "burst",
        start=({"cpu": "200m", "memory": "64Mi"}, limits),
        baseline=({"cpu": "400m", "memory": "64Mi"}, limits),
        peak=({"cpu": "800m", "memory": "128Mi"}, limits),
        qos="Burstable",
        spec={
            "containers": [{"name": "app", "peak": {"cpu": "800m", "memory": "128Mi"}}],
            "baselineRatio": 0.5,
            "cooldownSeconds": 1,
        },
    )


def test_guaranteed_requests_and_limits_move_together(
    cluster: Cluster, operator: OperatorProcess, ns: str
) -> None:
    start = {"cpu": "500m", "memory": "128Mi"}
    base = {"cpu": "500m", "memory": "96Mi"}
    peak = {"cpu": "1", "memory": "192Mi"}
    _cycle(
        cluster,
        ns,
        "guar",
        start=(start, start),
        baseline=(base, base),
        peak=(peak, peak),
        qos="Guaranteed",
        spec={"containers": [{"name": "app", "peak": peak}], "baselineRatio": 0.5, "cooldownSeconds": 1},
    )


def test_cpu_limit_is_enforced_on_a_busy_container(
    cluster: Cluster, operator: OperatorProcess, ns: str
) -> None:
    """A spinning container uses what its resized CFS quota allows: ~0.2 cores at baseline, far more at peak."""
    base = {"cpu": "200m", "memory": "32Mi"}  # 0.2 x peak
    peak = {"cpu": "1", "memory": "160Mi"}
    cluster.apply(busybox_deployment("spin", ns, base, base, command=BUSY))
    cluster.apply(
        headyservice(
            "spin", ns, containers=[{"name": "app", "peak": peak}], baselineRatio=0.2, cooldownSeconds=1
        )
    )
    pod = wait_for(lambda: _at(cluster, ns, "spin", base, base), "spin at baseline", timeout=60)
    name = pod.metadata.name
    at_base = cpu_use(cluster, ns, name)
    cluster.apply(attention("burst", ns, "spin", ttlSeconds=20, intensity=0.9))
    wait_for(lambda: _at(cluster, ns, "spin", peak, peak), "spin at peak", timeout=30)
    at_peak = cpu_use(cluster, ns, name)
    # Baseline: the 0.2-core quota is what holds the spinning loop back, period after period.
    assert at_base.cores <= 0.2 * 1.25, f"baseline quota is 0.2 cores but the container used {at_base}"
    # (On a quiet machine nearly every period; on a saturated one the loop often cannot even use
    # its 20 ms before the period ends.)
    assert at_base.throttled >= 0.1, f"a spinning loop under a 0.2-core quota must be throttled: {at_base}"
    # Peak: the loop gets past the old cap (on a quiet machine, about one core); on a machine
    # busy enough that it cannot, the quota at least no longer throttles it.
    assert at_peak.cores <= 1.0 * 1.1, at_peak
    assert at_peak.cores > 0.2 * 1.25 or at_peak.throttled < 0.2, (
        f"peak quota is 1 core, yet the container is held as before: {at_peak} vs {at_base}"
    )
    assert _identity(_pod(cluster, ns, "spin"))[1] == 0
