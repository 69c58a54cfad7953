"""Kubernetes object bodies (plain dicts) to the planner's plain data, and back. Pure."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from heady_operator.models.quantity import QuantityError, cpu_millis, format_cpu, format_memory, memory_bytes
from heady_operator.planning.levels import Amount, ContainerResources

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
    """Strategic-merge body for pods/{name}/resize: only the containers' resources."""
    containers = []
    for c in target:
        resources: dict[str, Any] = {}
        if c.requests != Amount():
            resources["requests"] = _amount_dict(c.requests)
        if c.limits != Amount():
            resources["limits"] = _amount_dict(c.limits)
        containers.append({"name": c.name, "resources": resources})
    return {"spec": {"containers": containers}}
