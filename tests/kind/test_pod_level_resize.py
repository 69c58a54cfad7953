"""Pod-level resources (spec.resources on the pod) resized in place by heady on a real kubelet.

Kubernetes 1.36 has PodLevelResources, InPlacePodLevelResourcesVerticalScaling and
NodeDeclaredFeatures on by default (beta), so the kind node needs no feature gate: its kubelet
declares InPlacePodLevelResourcesVerticalScaling in status.declaredFeatures and the API server
accepts a pod-level PATCH of pods/NAME/resize. The kubelet then writes the pod's own cgroup (the
parent of its containers'), which is read here on the kind node, and the containers, which have no
limits of their own, are held to the pod's.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from kubernetes import client

from tests.harness import Cluster, OperatorProcess, attention, condition, headyservice, wait_for
from tests.kind.realnode import (
    SLEEP,
    expected,
    image_refs,
    matches,
    parse_cpu,
    parse_memory,
    read_cgroup,
    read_pod_cgroup,
    resize_condition,
    running_pod,
)

pytestmark = pytest.mark.kind

APP = "plr"
POD = {"cpu": "500m", "memory": "128Mi"}  # as created, and the peak (no containers[].peak on pod-level)
BASE = {"cpu": "450m", "memory": "115Mi"}  # the default baselineRatio 0.9 of it


def pod_level_deployment(name: str, ns: str) -> dict[str, Any]:
    """One Guaranteed busybox pod whose only resources are pod-level (requests = limits)."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "terminationGracePeriodSeconds": 1,
                    "resources": {"requests": dict(POD), "limits": dict(POD)},
                    "containers": [
                        {
                            "name": "app",
                            "image": image_refs()["busybox"],
                            "imagePullPolicy": "Never",
                            "command": SLEEP,
                        }
                    ],
                },
            },
        },
    }


def _same(a: dict[str, str], b: dict[str, str]) -> bool:
    return (
        set(a) == set(b) == {"cpu", "memory"}
        and parse_cpu(a["cpu"]) == parse_cpu(b["cpu"])
        and parse_memory(a["memory"]) == parse_memory(b["memory"])
    )


def _at(cluster: Cluster, ns: str, want: dict[str, str]) -> client.V1Pod | None:
    """The pod when its spec, the kubelet's report and the kernel all say `want` (requests = limits)."""
    pod = running_pod(cluster, ns, APP)
    if pod is None or pod.spec.resources is None or resize_condition(pod) is not None:
        return None
    if dict(pod.spec.resources.requests or {}) != want or dict(pod.spec.resources.limits or {}) != want:
        return None
    # The kubelet reports the pod's limits as read back from the cgroup. (Its memory *request*
    # stays at the value the pod started with: 1.36 does not write memory requests to cgroups and
    # keeps the old one in status, see convertToAPIPodLevelResourcesStatus, so it is not compared.)
    if pod.status.resources is None or not _same(dict(pod.status.resources.limits or {}), want):
        return None
    if not matches(read_pod_cgroup(pod.metadata.uid), expected(want, want)):
        return None
    # The container has no limits of its own: the kubelet holds it to the pod's.
    c = read_cgroup(cluster, ns, pod.metadata.name)
    if (c.cpu_limit_milli, c.memory_limit) != (parse_cpu(want["cpu"]), parse_memory(want["memory"])):
        return None
    return pod


def _identity(pod: client.V1Pod) -> tuple[str, str, int, str]:
    st = pod.status.container_statuses[0]
    return pod.metadata.uid, st.container_id, st.restart_count, pod.status.qos_class


def test_pod_level_resources_resize_the_pod_cgroup_in_place(
    cluster: Cluster, operator: OperatorProcess, ns: str
) -> None:
    node = cluster.core.list_node().items[0]
    assert "InPlacePodLevelResourcesVerticalScaling" in (node.status.declared_features or []), (
        f"the kubelet does not declare pod-level resize: {node.status.declared_features}"
    )

    cluster.apply(pod_level_deployment(APP, ns))
    pod = wait_for(lambda: _at(cluster, ns, POD), "the pod running as created", timeout=90)
    first = _identity(pod)
    assert first[2:] == (0, "Guaranteed")
    assert all(c.resources.requests is None and c.resources.limits is None for c in pod.spec.containers)

    cluster.apply(headyservice(APP, ns, cooldownSeconds=1))
    pod = wait_for(lambda: _at(cluster, ns, BASE), "baseline in spec, status and the pod cgroup", timeout=60)
    assert _identity(pod) == first, "baseline must be reached in place (same pod and container, no restart)"

    sent = time.monotonic()
    cluster.apply(attention("look", ns, APP, ttlSeconds=15, intensity=0.9, source="kind"))
    # The pod's cgroup alone, polled as fast as the node's exec answers: the signal-to-kernel time.
    wait_for(
        lambda: matches(read_pod_cgroup(pod.metadata.uid), expected(POD, POD)),
        "the pod cgroup at peak",
        timeout=30,
        interval=0.02,
    )
    to_cgroup = time.monotonic() - sent
    pod = wait_for(lambda: _at(cluster, ns, POD), "peak in spec, status and the pod cgroup", timeout=30)
    to_all = time.monotonic() - sent
    assert _identity(pod) == first, "peak must be reached in place (same pod and container, no restart)"
    assert all(c.resources.requests is None for c in pod.spec.containers), "containers untouched"
    svc = wait_for(
        lambda: (s := cluster.get("headyservices", ns, APP)).get("status", {}).get("level") == "Peak" and s,
        "HeadyService level Peak",
    )
    assert condition(svc, "Ready")["status"] == "True"
    degraded = condition(svc, "Degraded")
    assert degraded is None or degraded["status"] == "False", degraded
    print(
        f"signal -> pod cgroup at peak {to_cgroup * 1000:.0f} ms; spec, kubelet status and both cgroups "
        f"{to_all * 1000:.0f} ms; restartCount {pod.status.container_statuses[0].restart_count}"
    )

    pod = wait_for(lambda: _at(cluster, ns, BASE), "back at baseline after the signal expired", timeout=60)
    assert _identity(pod) == first, "relaxing must happen in place (same pod and container, no restart)"
    wait_for(
        lambda: cluster.get("headyservices", ns, APP).get("status", {}).get("level") == "Baseline",
        "HeadyService level Baseline",
    )
    unsupported = [
        line
        for line in operator.metrics().splitlines()
        if line.startswith('heady_resize_failures_total{reason="Unsupported"}')
    ]
    assert all(float(line.split()[-1]) == 0 for line in unsupported), unsupported
