"""Kubernetes object bodies (plain dicts) to the planner's plain data, and back. Pure."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from heady_operator.models.quantity import QuantityError, cpu_millis, format_cpu, format_memory, memory_bytes
from heady_operator.planning.levels import POD_LEVEL, Amount, ContainerResources

Body = Mapping[str, Any]


def amount(resources: Mapping[str, Any] | None) -> Amount:
    resources = resources or {}
    return _amount(resources.get("cpu"), resources.get("memory"))


# Every pod event parses its containers' quantities; a cluster has few distinct ones.
@functools.lru_cache(maxsize=4096)
def _amount(cpu: Any, mem: Any) -> Amount:
    try:
        return Amount(
            cpu=None if cpu is None else cpu_millis(cpu),
            memory=None if mem is None else memory_bytes(mem),
        )
    except QuantityError:
        return Amount()


def _amount_dict(a: Amount) -> dict[str, str]:
    out: dict[str, str] = {}
    if a.cpu is not None:
        out["cpu"] = format_cpu(a.cpu)
    if a.memory is not None:
        out["memory"] = format_memory(a.memory)
    return out


def resize_patch(target: tuple[ContainerResources, ...]) -> dict[str, Any]:
    """Strategic-merge body for pods/{name}/resize: only the containers' resources, or the
    pod-level ones (spec.resources) for a pod planned at the pod level."""
    containers = []
    spec: dict[str, Any] = {}
    for c in target:
        resources: dict[str, Any] = {}
        if c.requests != Amount():
            resources["requests"] = _amount_dict(c.requests)
        if c.limits != Amount():
            resources["limits"] = _amount_dict(c.limits)
        if c.name == POD_LEVEL:
            spec["resources"] = resources
        else:
            containers.append({"name": c.name, "resources": resources})
    if containers:
        spec["containers"] = containers
    return {"spec": spec}


def pod_level(
    requests: Mapping[str, Any] | None, limits: Mapping[str, Any] | None
) -> ContainerResources | None:
    """A pod's (or template's) pod-level cpu/memory as the planner's pseudo-container, if it has any.

    With pod-level resources the pod's QoS class and its scheduling requests come from them
    (KEP-2837), so they are what heady moves; the containers' own resources stay as they are."""
    req, lim = amount(requests), amount(limits)
    if req == Amount() and lim == Amount():
        return None
    return ContainerResources(POD_LEVEL, req, lim)
