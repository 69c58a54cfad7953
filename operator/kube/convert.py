"""Kubernetes object bodies (plain dicts) to the planner's plain data, and back. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from heady_operator.models.quantity import QuantityError, cpu_millis, format_cpu, format_memory, memory_bytes
from heady_operator.planning.levels import Amount, ContainerResources, QoS

Body = Mapping[str, Any]


def amount(resources: Mapping[str, Any] | None) -> Amount:
    resources = resources or {}
    cpu = resources.get("cpu")
    mem = resources.get("memory")
    try:
        return Amount(
            cpu=None if cpu is None else cpu_millis(cpu),
            memory=None if mem is None else memory_bytes(mem),
        )
    except QuantityError:
        return Amount()


def container_resources(container: Body) -> ContainerResources:
    res = container.get("resources") or {}
    return ContainerResources(container["name"], amount(res.get("requests")), amount(res.get("limits")))


def pod_containers(pod: Body) -> tuple[ContainerResources, ...]:
    return tuple(container_resources(c) for c in pod.get("spec", {}).get("containers", []))


def pod_qos(pod: Body) -> QoS | None:
    qos = pod.get("status", {}).get("qosClass")
    return QoS(qos) if qos in {q.value for q in QoS} else None


def resize_condition(pod: Body) -> tuple[str, str] | None:
    """(type, reason) of a pending or in-progress resize reported by the kubelet, if any."""
    for cond in pod.get("status", {}).get("conditions") or []:
        if cond.get("type") in ("PodResizePending", "PodResizeInProgress") and cond.get("status") == "True":
            return cond["type"], cond.get("reason") or ""
    return None


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


def selector_matches(selector: Body | None, labels: Mapping[str, str]) -> bool:
    """metav1.LabelSelector semantics; an empty or missing selector matches nothing (safer for us)."""
    if not selector:
        return False
    match_labels = selector.get("matchLabels") or {}
    exprs = selector.get("matchExpressions") or []
    if not match_labels and not exprs:
        return False
    for key, value in match_labels.items():
        if labels.get(key) != value:
            return False
    for expr in exprs:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True
