"""The first consistent listing of everything the escalation controller looks at."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from heady_operator.escalation import EscalationController
from heady_operator.kube.client import Kube
from heady_operator.models.common import GROUP, VERSION


async def _items(call: Callable[..., Awaitable[Any]], *args: Any) -> list[dict[str, Any]]:
    resp = await call(*args, _preload_content=False)
    data = json.loads(await resp.read())
    items: list[dict[str, Any]] = data.get("items", [])
    return items


async def initial_sync(kube: Kube, controller: EscalationController, namespaces: list[str]) -> None:
    for node in await _items(kube.core.list_node):
        controller.on_node("ADDED", node)
    scopes: list[str | None] = list(namespaces) if namespaces else [None]
    for ns in scopes:
        if ns is None:
            deps = await _items(kube.apps.list_deployment_for_all_namespaces)
            sts = await _items(kube.apps.list_stateful_set_for_all_namespaces)
            pods = await _items(kube.core.list_pod_for_all_namespaces)
            svcs = await _items(kube.custom.list_cluster_custom_object, GROUP, VERSION, "headyservices")
            sigs = await _items(kube.custom.list_cluster_custom_object, GROUP, VERSION, "attentionsignals")
        else:
            deps = await _items(kube.apps.list_namespaced_deployment, ns)
            sts = await _items(kube.apps.list_namespaced_stateful_set, ns)
            pods = await _items(kube.core.list_namespaced_pod, ns)
            svcs = await _items(
                kube.custom.list_namespaced_custom_object, GROUP, VERSION, ns, "headyservices"
            )
            sigs = await _items(
                kube.custom.list_namespaced_custom_object, GROUP, VERSION, ns, "attentionsignals"
            )
        for d in deps:
            controller.on_workload("ADDED", {**d, "kind": "Deployment"})
        for s in sts:
            controller.on_workload("ADDED", {**s, "kind": "StatefulSet"})
        for p in pods:
            controller.on_pod("ADDED", p)
        for h in svcs:
            controller.on_service("ADDED", {**h, "apiVersion": f"{GROUP}/{VERSION}", "kind": "HeadyService"})
        for a in sigs:
            controller.on_signal(
                "ADDED", {**a, "apiVersion": f"{GROUP}/{VERSION}", "kind": "AttentionSignal"}
            )
