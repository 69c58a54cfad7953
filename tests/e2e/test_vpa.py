"""spec.peakFrom and VPA conflicts end to end: the real API server with the VerticalPodAutoscaler CRD
(tests/e2e/crds/, the published autoscaling.k8s.io/v1 schema) and the operator process.

No VPA controllers run: the test writes status.recommendation itself, as the VPA recommender
would, and sets updateMode as a user would. The shared operator is stopped during these tests: a
second operator with a 1 s CRD discovery and a 3 s settle window plays its part, so installing the
CRD, following a recommendation and waiting out the settle window all happen within seconds.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.harness import (
    ROOT,
    Cluster,
    OperatorProcess,
    attention,
    condition,
    deployment,
    headyservice,
    requests_of,
    wait_for,
)

pytestmark = pytest.mark.k8s

VPA_CRD = ROOT / "tests" / "e2e" / "crds" / "verticalpodautoscalers.autoscaling.k8s.io.yaml"
VPA_API = ("autoscaling.k8s.io", "v1")
START = {"cpu": "100m", "memory": "64Mi"}
LIMITS = {"cpu": "1", "memory": "1Gi"}
SETTLE_S = 3


def remove_crd(cluster: Cluster) -> None:
    cluster.kubectl("delete", "-f", str(VPA_CRD), "--ignore-not-found", "--wait=true", "--timeout=60s")


def install_crd(cluster: Cluster) -> None:
    cluster.kubectl("apply", "-f", str(VPA_CRD))
    cluster.kubectl(
        "wait",
        "--for=condition=Established",
        "crd/verticalpodautoscalers.autoscaling.k8s.io",
        "--timeout=60s",
    )


@pytest.fixture(scope="module")
def vpa_operator(
    cluster: Cluster, operator: OperatorProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    remove_crd(cluster)
    operator.stop()
    op = OperatorProcess(
        cluster,
        tmp_path_factory.mktemp("vpa-operator"),
        {
            "HEADY_VPA_DISCOVERY_SECONDS": "1",
            "HEADY_VPA_SETTLE_SECONDS": str(SETTLE_S),
            "HEADY_VPA_MIN_CHANGE": "0.1",
        },
    )
    op.start()
    try:
        yield op
    finally:
        op.stop()
        remove_crd(cluster)
        operator.start()


def vpa(name: str, ns: str, target: str, mode: str | None) -> dict[str, Any]:
    spec: dict[str, Any] = {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target}}
    if mode is not None:
        spec["updatePolicy"] = {"updateMode": mode}
    return {
        "apiVersion": "autoscaling.k8s.io/v1",
        "kind": "VerticalPodAutoscaler",
        "metadata": {"name": name, "namespace": ns},
        "spec": spec,
    }


def recommend(cluster: Cluster, ns: str, name: str, cpu: str, memory: str, upper_cpu: str = "2") -> None:
    """What the VPA recommender writes: status.recommendation.containerRecommendations."""
    status = {
        "recommendation": {
            "containerRecommendations": [
                {
                    "containerName": "app",
                    "lowerBound": {"cpu": "10m", "memory": "16Mi"},
                    "target": {"cpu": cpu, "memory": memory},
                    "uncappedTarget": {"cpu": cpu, "memory": memory},
                    "upperBound": {"cpu": upper_cpu, "memory": "1Gi"},
                }
            ]
        },
        "conditions": [{"type": "RecommendationProvided", "status": "True"}],
    }
    cluster.custom.patch_namespaced_custom_object_status(
        *VPA_API, ns, "verticalpodautoscalers", name, {"status": status}
    )


def pods_at(cluster: Cluster, ns: str, app: str, want: dict[str, str], count: int) -> bool:
    pods = [p for p in cluster.pods(ns, f"app={app}") if p.status.phase == "Running"]
    return len(pods) == count and all(requests_of(p) == want for p in pods)


def test_peak_from_waits_for_the_crd_then_follows_the_recommendation(
    cluster: Cluster, vpa_operator: OperatorProcess, ns: str
) -> None:
    cluster.apply(deployment("web", ns, 2, START, LIMITS))
    service = headyservice("web", ns, peak={"cpu": "800m"}, cooldownSeconds=0)
    service["spec"]["peakFrom"] = {"verticalPodAutoscaler": "web-vpa"}
    cluster.apply(service)
    svc = wait_for(
        lambda: (c := condition(cluster.get("headyservices", ns, "web"), "PeakSource")) and c, "PeakSource"
    )
    assert (svc["status"], svc["reason"]) == ("False", "VPACRDMissing")
    assert "verticalpodautoscalers.autoscaling.k8s.io" in svc["message"]
    # Without the CRD the template is the peak: 100m, baseline 90m.
    wait_for(lambda: pods_at(cluster, ns, "web", {"cpu": "90m", "memory": "57Mi"}, 2), "template baseline")
    assert "watch of /apis/autoscaling.k8s.io" not in vpa_operator.log(), (
        "no watch error loop without the CRD"
    )

    install_crd(cluster)
    cluster.apply(vpa("web-vpa", ns, "web", "Off"))
    recommend(cluster, ns, "web-vpa", "500m", "128Mi")
    got = wait_for(
        lambda: (
            (s := cluster.get("headyservices", ns, "web")).get("status", {}).get("peak", {}).get("source")
            == "VerticalPodAutoscaler/web-vpa"
            and s
        ),
        "status.peak from the VPA",
    )
    assert got["status"]["peak"]["containers"] == [{"name": "app", "cpu": "500m", "memory": "128Mi"}]
    wait_for(
        lambda: (
            condition(cluster.get("headyservices", ns, "web"), "PeakSource")["reason"] == "Recommendation"
        ),
        "PeakSource Recommendation",
    )
    wait_for(lambda: pods_at(cluster, ns, "web", {"cpu": "450m", "memory": "115Mi"}, 2), "VPA baseline")
    cluster.apply(attention("look", ns, "web", ttlSeconds=600))
    wait_for(lambda: pods_at(cluster, ns, "web", {"cpu": "500m", "memory": "128Mi"}, 2), "VPA peak")

    # A 4% change moves no pod, even after the settle window.
    recommend(cluster, ns, "web-vpa", "520m", "128Mi")
    time.sleep(SETTLE_S + 1.5)  # nothing to wait for: the point is that nothing happens
    assert pods_at(cluster, ns, "web", {"cpu": "500m", "memory": "128Mi"}, 2)
    # A big one does, capped by containers[].peak (800m), at most once per settle window.
    recommend(cluster, ns, "web-vpa", "1500m", "128Mi")
    wait_for(lambda: pods_at(cluster, ns, "web", {"cpu": "800m", "memory": "128Mi"}, 2), "capped VPA peak")
    wait_for(
        lambda: cluster.get("headyservices", ns, "web")["status"]["peak"]["containers"][0]["cpu"] == "800m",
        "status.peak says 800m (status is written behind the resizes)",
    )


def test_a_vpa_that_resizes_the_same_pods_is_a_conflict_and_heady_lets_go(
    cluster: Cluster, vpa_operator: OperatorProcess, ns: str
) -> None:
    install_crd(cluster)
    wait_for(lambda: "watching VerticalPodAutoscalers" in vpa_operator.log(), "the VPA watch", 10)
    cluster.apply(deployment("api", ns, 2, START, LIMITS))
    cluster.apply(headyservice("api", ns, peak={"cpu": "400m", "memory": "64Mi"}, cooldownSeconds=0))
    wait_for(lambda: pods_at(cluster, ns, "api", {"cpu": "360m", "memory": "57Mi"}, 2), "baseline")
    cluster.apply(vpa("api-vpa", ns, "api", "InPlaceOrRecreate"))
    conflict = wait_for(
        lambda: (
            (c := condition(cluster.get("headyservices", ns, "api"), "Conflict"))
            and c["status"] == "True"
            and c
        ),
        "Conflict",
    )
    assert conflict["reason"] == "VerticalPodAutoscaler"
    assert "updateMode InPlaceOrRecreate" in conflict["message"]
    assert "set the VPA's spec.updatePolicy.updateMode to Off" in conflict["message"]
    assert "peakFrom.verticalPodAutoscaler: api-vpa" in conflict["message"]
    assert condition(cluster.get("headyservices", ns, "api"), "Ready")["reason"] == "VPAConflict"
    cluster.apply(attention("look", ns, "api", ttlSeconds=600))
    time.sleep(2)  # heady must not act: nothing to wait for
    assert pods_at(cluster, ns, "api", {"cpu": "360m", "memory": "57Mi"}, 2), "heady left the pods alone"
    # The user follows the advice: the VPA only recommends, heady takes the pods back.
    cluster.apply(vpa("api-vpa", ns, "api", "Off"))
    wait_for(lambda: pods_at(cluster, ns, "api", {"cpu": "400m", "memory": "64Mi"}, 2), "peak after the fix")
    wait_for(
        lambda: condition(cluster.get("headyservices", ns, "api"), "Conflict")["status"] == "False",
        "Conflict cleared",
    )
