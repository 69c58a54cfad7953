"""The informers that feed ClusterState: one list + watch per resource the planner reads."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from heady_operator.kube.client import Kube
from heady_operator.kube.informer import Informer
from heady_operator.kube.objects import CustomObject, Namespace, Node, Pod, ReplicaSet, Workload
from heady_operator.models.common import GROUP, VERSION
from heady_operator.state.cluster import ClusterState


def _scoped(prefix: str, plural: str, namespace: str | None) -> str:
    return f"{prefix}/namespaces/{namespace}/{plural}" if namespace else f"{prefix}/{plural}"


def informers(kube: Kube, state: ClusterState, namespaces: list[str]) -> list[Informer[Any]]:
    """ReplicaSets and workloads before pods, so a pod's owner is known when it arrives."""
    api = kube.api
    out: list[Informer[Any]] = [Informer(api, "/api/v1/nodes", Node, state.on_node)]
    if state.scope.sharded:
        # First: which namespaces are this shard's. Every namespace is watched (they are few) and
        # the selector applied here, so a label change moves a namespace in or out at once.
        out.insert(0, Informer(api, "/api/v1/namespaces", Namespace, state.on_namespace))
    scopes: list[str | None] = list(namespaces) if namespaces else [None]
    apps = "/apis/apps/v1"

    def workload(kind: str) -> Callable[[str, Workload], None]:
        return lambda event, obj: state.on_workload(event, kind, obj)

    for ns in scopes:
        out.append(Informer(api, _scoped(apps, "replicasets", ns), ReplicaSet, state.on_replica_set))
        out.append(Informer(api, _scoped(apps, "deployments", ns), Workload, workload("Deployment")))
        out.append(Informer(api, _scoped(apps, "statefulsets", ns), Workload, workload("StatefulSet")))
    for ns in scopes:
        out.append(Informer(api, _scoped("/api/v1", "pods", ns), Pod, state.on_pod))
        out.append(
            Informer(
                api,
                _scoped(f"/apis/{GROUP}/{VERSION}", "attentionsignals", ns),
                CustomObject,
                state.on_signal,
            )
        )
    return out


async def start(infs: list[Informer[Any]], timeout: float = 300.0) -> list[asyncio.Task[None]]:  # noqa: ASYNC109
    """Run every informer and wait until each has listed once."""
    tasks = [asyncio.create_task(i.run(), name=f"informer {i.path}") for i in infs]
    waiting = [asyncio.create_task(i.synced.wait()) for i in infs]
    try:
        _, pending = await asyncio.wait(waiting, timeout=timeout)
        if pending:
            failed = [i.path for i in infs if not i.synced.is_set()]
            raise TimeoutError(f"no first listing of {', '.join(failed)} within {timeout:.0f} s")
    except BaseException:
        for t in tasks + waiting:
            t.cancel()
        raise
    return tasks
