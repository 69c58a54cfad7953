"""Kubernetes objects as heady's informers decode them, for tests and the simulator.

Pods carry their real owner chain (ReplicaSet -> Deployment), as the controller-manager
makes it, because that chain is how heady tells which HeadyService a pod belongs to.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from heady_operator.kube import objects
from heady_operator.kube.objects import from_dict


def resources(requests: dict[str, str] | None = None, limits: dict[str, str] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if requests:
        out["requests"] = requests
    if limits:
        out["limits"] = limits
    return out


def node(name: str, cpu: str = "8", memory: str = "32Gi") -> objects.Node:
    return from_dict(
        objects.Node, {"metadata": {"name": name}, "status": {"allocatable": {"cpu": cpu, "memory": memory}}}
    )


def deployment(namespace: str, name: str, containers: list[dict[str, Any]]) -> objects.Workload:
    return from_dict(
        objects.Workload,
        {
            "metadata": {"namespace": namespace, "name": name},
            "spec": {"template": {"spec": {"containers": containers}}},
        },
    )


def replica_set(namespace: str, deployment_name: str, hash_: str = "abc12") -> objects.ReplicaSet:
    return from_dict(
        objects.ReplicaSet,
        {
            "metadata": {
                "namespace": namespace,
                "name": f"{deployment_name}-{hash_}",
                "ownerReferences": [{"kind": "Deployment", "name": deployment_name, "controller": True}],
            }
        },
    )


def pod(
    namespace: str,
    name: str,
    deployment_name: str,
    containers: list[dict[str, Any]],
    node_name: str | None = "n1",
    qos: str | None = None,
    phase: str = "Running",
    resource_version: int = 1,
    hash_: str = "abc12",
) -> objects.Pod:
    status: dict[str, Any] = {"phase": phase}
    if qos:
        status["qosClass"] = qos
    return from_dict(
        objects.Pod,
        {
            "metadata": {
                "namespace": namespace,
                "name": name,
                "resourceVersion": str(resource_version),
                "labels": {"app": deployment_name, "pod-template-hash": hash_},
                "ownerReferences": [
                    {"kind": "ReplicaSet", "name": f"{deployment_name}-{hash_}", "controller": True}
                ],
            },
            "spec": {"nodeName": node_name, "containers": containers},
            "status": status,
        },
    )


def headyservice(namespace: str, name: str, spec: dict[str, Any], generation: int = 1) -> dict[str, Any]:
    return {
        "apiVersion": "heady.io/v1alpha1",
        "kind": "HeadyService",
        "metadata": {"namespace": namespace, "name": name, "generation": generation, "uid": f"uid-{name}"},
        "spec": spec,
    }


def signal(namespace: str, name: str, spec: dict[str, Any], created: datetime) -> objects.CustomObject:
    return from_dict(
        objects.CustomObject,
        {
            "metadata": {
                "namespace": namespace,
                "name": name,
                "uid": f"uid-{name}",
                "creationTimestamp": created.isoformat(),
            },
            "spec": spec,
        },
    )
