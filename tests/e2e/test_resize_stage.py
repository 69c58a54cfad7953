"""The simulated kubelet (kwok Stages in hack/kwok/stages.yaml) plays its part of in-place resize.

The API server, its PodResizeValidator admission and the pods/{name}/resize subresource are real;
only the kubelet's answer is simulated by Stages: they copy the resized spec into
status.containerStatuses[].resources/allocatedResources, or report PodResizePending/Infeasible.
"""

from __future__ import annotations

import pytest
from kubernetes import client

from tests.harness import Cluster, deployment, requests_of, status_requests_of, wait_for

pytestmark = pytest.mark.k8s


def _running_pod(cluster: Cluster, ns: str, app: str) -> client.V1Pod:
    def ready() -> client.V1Pod | None:
        pods = [p for p in cluster.pods(ns, f"app={app}") if p.status.phase == "Running"]
        return pods[0] if pods and status_requests_of(pods[0]) else None

    return wait_for(ready, f"a running pod of {app} with status resources")


def test_running_pod_reports_its_resources(cluster: Cluster, ns: str) -> None:
    cluster.apply(deployment("r", ns, 1, {"cpu": "500m", "memory": "512Mi"}, {"cpu": "1", "memory": "1Gi"}))
    pod = _running_pod(cluster, ns, "r")
    assert status_requests_of(pod) == {"cpu": "500m", "memory": "512Mi"}
    assert pod.status.qos_class == "Burstable"


def test_resize_is_accepted_and_status_follows(cluster: Cluster, ns: str) -> None:
    cluster.apply(deployment("r", ns, 1, {"cpu": "500m", "memory": "512Mi"}, {"cpu": "1", "memory": "1Gi"}))
    pod = _running_pod(cluster, ns, "r")
    body = {
        "spec": {
            "containers": [{"name": "app", "resources": {"requests": {"cpu": "900m", "memory": "800Mi"}}}]
        }
    }
    resized = cluster.core.patch_namespaced_pod_resize(pod.metadata.name, ns, body)
    assert requests_of(resized) == {"cpu": "900m", "memory": "800Mi"}
    assert resized.metadata.generation == 2

    def actuated() -> client.V1Pod | None:
        p = cluster.core.read_namespaced_pod(pod.metadata.name, ns)
        return p if status_requests_of(p) == {"cpu": "900m", "memory": "800Mi"} else None

    done = wait_for(actuated, "status resources to follow the resize")
    assert done.status.observed_generation == 2
    assert done.status.container_statuses[0].allocated_resources == {"cpu": "900m", "memory": "800Mi"}
    assert done.status.container_statuses[0].restart_count == 0
    assert not [c for c in done.status.conditions if c.type.startswith("PodResize")]


def test_resize_that_would_change_qos_is_refused(cluster: Cluster, ns: str) -> None:
    cluster.apply(deployment("r", ns, 1, {"cpu": "500m", "memory": "512Mi"}, {"cpu": "1", "memory": "1Gi"}))
    pod = _running_pod(cluster, ns, "r")
    body = {
        "spec": {"containers": [{"name": "app", "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}}]}
    }
    with pytest.raises(client.ApiException) as err:
        cluster.core.patch_namespaced_pod_resize(pod.metadata.name, ns, body)
    assert err.value.status == 422
    assert "QOS Class may not change" in err.value.body


def test_resize_over_node_allocatable_is_refused_by_admission(cluster: Cluster, ns: str) -> None:
    cluster.apply(deployment("r", ns, 1, {"cpu": "500m", "memory": "512Mi"}, {"cpu": "1", "memory": "1Gi"}))
    pod = _running_pod(cluster, ns, "r")
    body = {
        "spec": {
            "containers": [{"name": "app", "resources": {"requests": {"cpu": "9"}, "limits": {"cpu": "10"}}}]
        }
    }
    with pytest.raises(client.ApiException) as err:
        cluster.core.patch_namespaced_pod_resize(pod.metadata.name, ns, body)
    assert err.value.status == 403
    assert "node didn't have enough allocatable resources" in err.value.body


def test_kubelet_reports_infeasible_when_the_node_cannot_hold_it(cluster: Cluster, ns: str) -> None:
    """The API believes the node is bigger than the kubelet does (stale allocatable): Infeasible.

    Raising one node's allocatable in the API to 16 CPU lets admission accept a 12-CPU resize;
    the simulated kubelet knows the node really has 8 and answers PodResizePending/Infeasible.
    """
    node = "kwok-node-3"
    patch = {"status": {"allocatable": {"cpu": "16"}}}
    cluster.core.patch_node_status(node, patch)
    try:
        cluster.apply(
            deployment(
                "r", ns, 1, {"cpu": "500m", "memory": "512Mi"}, {"cpu": "1", "memory": "1Gi"}, node=node
            )
        )
        pod = _running_pod(cluster, ns, "r")
        body = {
            "spec": {
                "containers": [
                    {"name": "app", "resources": {"requests": {"cpu": "12"}, "limits": {"cpu": "13"}}}
                ]
            }
        }
        cluster.core.patch_namespaced_pod_resize(pod.metadata.name, ns, body)

        def infeasible() -> client.V1PodCondition | None:
            p = cluster.core.read_namespaced_pod(pod.metadata.name, ns)
            conds = [c for c in p.status.conditions or [] if c.type == "PodResizePending"]
            return conds[0] if conds else None

        cond = wait_for(infeasible, "PodResizePending on the pod")
        assert cond.reason == "Infeasible"
        p = cluster.core.read_namespaced_pod(pod.metadata.name, ns)
        assert status_requests_of(p)["cpu"] == "500m", (
            "an infeasible resize leaves the running resources alone"
        )

        # Asking for something that fits clears the condition, as the kubelet does.
        back = {
            "spec": {
                "containers": [
                    {"name": "app", "resources": {"requests": {"cpu": "600m"}, "limits": {"cpu": "1"}}}
                ]
            }
        }
        cluster.core.patch_namespaced_pod_resize(pod.metadata.name, ns, back)
        wait_for(lambda: infeasible() is None, "the Infeasible condition to clear")
    finally:
        cluster.core.patch_node_status(node, {"status": {"allocatable": {"cpu": "8"}}})
