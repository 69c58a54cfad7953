"""Pod-level resources (spec.resources, beta and in-place resizable in Kubernetes 1.36) end to end.

kwok's Stages play the kubelet: status.resources follows spec.resources, and a node declares
InPlacePodLevelResourcesVerticalScaling (status.declaredFeatures) unless labelled
heady.io/declared-features=none, which stands for a kubelet that cannot resize at the pod level:
the API server's NodeDeclaredFeatureValidator then refuses the resize, for real.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.harness import Cluster, OperatorProcess, attention, condition, headyservice, wait_for

pytestmark = pytest.mark.k8s

POD = {"cpu": "200m", "memory": "128Mi"}
BASE = {"cpu": "180m", "memory": "115Mi"}


def pod_level_deployment(name: str, ns: str, node: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "resources": {"requests": dict(POD), "limits": dict(POD)},
        "containers": [
            {"name": "app", "image": "example/app:1"},
            {"name": "side", "image": "example/side:1"},
        ],
    }
    if node:
        spec["nodeSelector"] = {"kubernetes.io/hostname": node}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": spec},
        },
    }


def pod_levels(
    cluster: Cluster, ns: str, app: str
) -> list[tuple[dict[str, str], dict[str, str], str, dict[str, str]]]:
    out = []
    for p in cluster.pods(ns, f"app={app}"):
        if p.status.phase != "Running" or p.metadata.deletion_timestamp:
            continue
        raw = cluster.api.sanitize_for_serialization(p)
        status_resources = (raw.get("status") or {}).get("resources") or {}
        out.append(
            (
                dict(p.spec.resources.requests or {}),
                dict(p.spec.resources.limits or {}),
                p.status.qos_class,
                dict(status_resources.get("requests") or {}),
            )
        )
    return out


def all_at(cluster: Cluster, ns: str, app: str, want: dict[str, str]) -> bool:
    got = pod_levels(cluster, ns, app)
    return len(got) == 2 and all(g == (want, want, "Guaranteed", want) for g in got)


def test_pod_level_resources_are_resized_at_the_pod_level_qos_kept(
    cluster: Cluster, operator: OperatorProcess, ns: str
) -> None:
    cluster.apply(pod_level_deployment("web", ns))
    cluster.apply(headyservice("web", ns, cooldownSeconds=0))
    wait_for(lambda: all_at(cluster, ns, "web", BASE), "pod-level baseline in spec and status, Guaranteed")
    cluster.apply(attention("look", ns, "web", ttlSeconds=600))
    wait_for(lambda: all_at(cluster, ns, "web", POD), "pod-level peak", timeout=15)
    pods = cluster.pods(ns, "app=web")
    assert all(c.resources.requests is None for p in pods for c in p.spec.containers), "containers untouched"
    assert all(cs.restart_count == 0 for p in pods for cs in p.status.container_statuses)
    svc = wait_for(
        lambda: (s := cluster.get("headyservices", ns, "web")).get("status", {}).get("level") == "Peak" and s,
        "level Peak",
    )
    assert condition(svc, "Degraded")["status"] == "False"


@pytest.fixture
def node_without_pod_level_resize(cluster: Cluster) -> Iterator[str]:
    name = "kwok-node-no-pod-level-resize"
    node = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "type": "kwok",
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "heady.io/declared-features": "none",
            },
        },
        "spec": {"taints": [{"key": "heady.io/test", "value": "pod-level", "effect": "NoSchedule"}]},
        "status": {
            "allocatable": {"cpu": "8", "memory": "32Gi", "pods": "110"},
            "capacity": {"cpu": "8", "memory": "32Gi", "pods": "110"},
        },
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps(node))
    wait_for(
        lambda: any(
            c.type == "Ready" and c.status == "True"
            for c in cluster.core.read_node(name).status.conditions or []
        ),
        "the node Ready",
    )
    assert not cluster.core.read_node(name).status.declared_features
    try:
        yield name
    finally:
        cluster.core.delete_node(name)


def test_a_node_that_cannot_resize_pod_level_resources_is_a_clear_condition(
    cluster: Cluster, operator: OperatorProcess, ns: str, node_without_pod_level_resize: str
) -> None:
    deploy = pod_level_deployment("old", ns, node_without_pod_level_resize)
    deploy["spec"]["template"]["spec"]["tolerations"] = [
        {"key": "heady.io/test", "operator": "Equal", "value": "pod-level", "effect": "NoSchedule"}
    ]
    cluster.apply(deploy)
    cluster.apply(headyservice("old", ns, cooldownSeconds=0))
    degraded = wait_for(
        lambda: (
            (c := condition(cluster.get("headyservices", ns, "old"), "Degraded"))
            and c["reason"] == "PodLevelResizeUnsupported"
            and c
        ),
        "Degraded PodLevelResizeUnsupported",
    )
    assert degraded["status"] == "True"
    assert "InPlacePodLevelResourcesVerticalScaling" in degraded["message"]
    assert node_without_pod_level_resize in degraded["message"], "the API server's words name the node"
    got = pod_levels(cluster, ns, "old")
    assert got and all(g[0] == POD for g in got), "left as they are"
    failures = [
        line
        for line in operator.metrics().splitlines()
        if line.startswith('heady_resize_failures_total{reason="Unsupported"}')
    ]
    assert failures and float(failures[0].split()[-1]) >= 1
