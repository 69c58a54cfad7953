"""The informers that feed ClusterState: one list + watch per resource the planner reads."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from heady_operator.kube import vpa
from heady_operator.kube.client import Kube
from heady_operator.kube.informer import Informer
from heady_operator.kube.objects import (
    CustomObject,
    Namespace,
    Node,
    Pod,
    ReplicaSet,
    VerticalPodAutoscaler,
    Workload,
)
from heady_operator.models.common import GROUP, VERSION
from heady_operator.state.cluster import ClusterState

log = logging.getLogger(__name__)


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


class VpaFeed:
    """The optional VerticalPodAutoscaler informers: run while the CRD is served and readable.

    Looked for at start (so a first plan already knows the VPAs) and every `interval` seconds
    after: installing the CRD later starts the watch, removing it stops it, and neither is an
    error loop. Services with peakFrom say in their PeakSource condition when it is missing.
    """

    def __init__(self, kube: Kube, state: ClusterState, namespaces: list[str], interval: float) -> None:
        self.kube = kube
        self.state = state
        self.scopes: list[str | None] = list(namespaces) if namespaces else [None]
        self.interval = interval
        self.informers: list[Informer[Any]] = []
        self._tasks: list[asyncio.Task[None]] = []

    async def check(self) -> None:
        why = await vpa.unavailable(self.kube, self.scopes[0])
        if why is None and not self._tasks:
            self.informers = [
                Informer(self.kube.api, vpa.path(ns), VerticalPodAutoscaler, self.state.on_vpa)
                for ns in self.scopes
            ]
            self._tasks = [asyncio.create_task(i.run(), name=f"informer {i.path}") for i in self.informers]
            try:
                await asyncio.wait_for(asyncio.gather(*(i.synced.wait() for i in self.informers)), 60)
                log.info("watching VerticalPodAutoscalers (spec.peakFrom)")
            except TimeoutError:
                log.warning("no first listing of VerticalPodAutoscalers within 60 s; the watch keeps trying")
        elif why is not None and self._tasks:
            self.stop()
            log.info("stopped watching VerticalPodAutoscalers: %s", why)
        elif why is not None and self.state.vpa_unavailable != why:
            log.info("VerticalPodAutoscalers are not watched (spec.peakFrom needs the VPA CRD): %s", why)
        self.state.set_vpa_available(why)

    async def check_safely(self) -> None:
        try:
            await self.check()
        except asyncio.CancelledError:
            raise
        except Exception:  # a failed look is tried again at the next interval, never a crash
            log.exception("looking for the VerticalPodAutoscaler CRD failed")

    def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        self._tasks = []
        self.informers = []

    async def run(self) -> None:
        try:
            while True:
                await asyncio.sleep(self.interval)
                await self.check_safely()
        finally:
            self.stop()
