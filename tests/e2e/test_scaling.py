"""HPA-style scale-ups, scale-downs and rollouts of a service at peak, end to end.

New pods get the service's level as soon as they run; pods that go stop counting at once: the
HeadyService's status and heady_pods_at_peak never count a pod that is gone.
"""

from __future__ import annotations

import uuid

import pytest

from tests.harness import Cluster, OperatorProcess, attention, deployment, headyservice, requests_of, wait_for

pytestmark = pytest.mark.k8s

START = {"cpu": "100m", "memory": "64Mi"}
LIMITS = {"cpu": "400m", "memory": "256Mi"}
PEAK = {"cpu": "300m", "memory": "128Mi"}


def running(cluster: Cluster, ns: str) -> list[dict[str, str]]:
    return [
        requests_of(p)
        for p in cluster.pods(ns, "app=web")
        if p.status.phase == "Running" and not p.metadata.deletion_timestamp
    ]


def counted(cluster: Cluster, operator: OperatorProcess, ns: str, n: int) -> bool:
    status = cluster.get("headyservices", ns, "web").get("status", {})
    metric = f'heady_pods_at_peak{{namespace="{ns}",service="web"}} {float(n)}'
    return (
        status.get("podsTotal") == n
        and status.get("podsAtPeak") == n
        and status.get("level") == "Peak"
        and metric in operator.metrics()
    )


def test_scale_up_down_and_rollout_at_peak(cluster: Cluster, operator: OperatorProcess, ns: str) -> None:
    cluster.apply(deployment("web", ns, 2, START, LIMITS))
    cluster.apply(headyservice("web", ns, peak=PEAK, cooldownSeconds=0))
    cluster.apply(attention("look", ns, "web", ttlSeconds=600))
    wait_for(lambda: running(cluster, ns) == [PEAK] * 2, "2 pods at peak")
    wait_for(lambda: counted(cluster, operator, ns, 2), "2/2 counted")

    cluster.apps.patch_namespaced_deployment_scale("web", ns, {"spec": {"replicas": 5}})
    wait_for(lambda: running(cluster, ns) == [PEAK] * 5, "the 3 new pods at peak too", timeout=20)
    wait_for(lambda: counted(cluster, operator, ns, 5), "5/5 counted")

    cluster.apps.patch_namespaced_deployment_scale("web", ns, {"spec": {"replicas": 1}})
    wait_for(lambda: counted(cluster, operator, ns, 1), "1/1 counted after the scale-down", timeout=20)

    cluster.apps.patch_namespaced_deployment(
        "web", ns, {"spec": {"template": {"metadata": {"annotations": {"rollout": uuid.uuid4().hex}}}}}
    )
    wait_for(
        lambda: (
            [(p.metadata.annotations or {}).get("rollout") is not None for p in cluster.pods(ns, "app=web")]
            == [True]
            and running(cluster, ns) == [PEAK]
        ),
        "the rolled-out pod at peak, the old one gone",
        timeout=30,
    )
    wait_for(lambda: counted(cluster, operator, ns, 1), "1/1 counted after the rollout", timeout=20)
