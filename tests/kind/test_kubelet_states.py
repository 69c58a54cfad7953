"""The kubelet's own resize states, produced for real and seen through the operator:
Deferred (another pod still holds the room), a memory shrink below what the container uses
(PodResizeInProgress / Error), and resizePolicy RestartContainer."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client

from tests.harness import Cluster, OperatorProcess, attention, condition, headyservice, wait_for
from tests.kind.realnode import (
    SLEEP,
    busybox_deployment,
    expected,
    matches,
    parse_memory,
    read_cgroup,
    resize_condition,
    running_pod,
)

pytestmark = pytest.mark.kind


def _status_memory(pod: client.V1Pod) -> str | None:
    st = (pod.status.container_statuses or [None])[0]
    if st is None or st.resources is None:
        return None
    return str((st.resources.limits or {}).get("memory") or (st.resources.requests or {}).get("memory"))


def _free_memory(cluster: Cluster, node: str) -> int:
    """Allocatable memory the kubelet has not promised to any pod on `node` (terminating ones count)."""
    alloc = parse_memory(cluster.core.read_node(node).status.allocatable["memory"])
    used = 0
    for p in cluster.core.list_pod_for_all_namespaces(field_selector=f"spec.nodeName={node}").items:
        if p.status.phase in ("Succeeded", "Failed"):
            continue
        if p.spec.resources is not None and "memory" in (p.spec.resources.requests or {}):
            used += parse_memory(str(p.spec.resources.requests["memory"]))  # pod-level resources
            continue
        for c in p.spec.containers:
            used += parse_memory(str((c.resources.requests or {}).get("memory", "0")))
    return alloc - used


def _terminating(cluster: Cluster, node: str) -> list[str]:
    return [
        f"{p.metadata.namespace}/{p.metadata.name}"
        for p in cluster.core.list_pod_for_all_namespaces(field_selector=f"spec.nodeName={node}").items
        if p.metadata.deletion_timestamp and p.status.phase not in ("Succeeded", "Failed")
    ]


def test_deferred_resize_resolves_when_the_room_frees(
    cluster: Cluster, operator: OperatorProcess, ns: str
) -> None:
    """A pod being deleted keeps its room on the kubelet until its containers stop. The operator
    (rightly) no longer counts it and asks for peak; the kubelet defers the resize and performs it
    by itself once the pod is gone."""
    limits = {"memory": "1Gi"}
    cluster.apply(busybox_deployment("want", ns, {"cpu": "50m", "memory": "128Mi"}, limits))
    cluster.apply(
        headyservice(
            "want",
            ns,
            containers=[{"name": "app", "peak": {"cpu": "100m", "memory": "768Mi"}}],
            baselineRatio=0.5,
            cooldownSeconds=1,
        )
    )
    base = {"cpu": "50m", "memory": "384Mi"}
    pod = wait_for(
        lambda: (
            (p := running_pod(cluster, ns, "want"))
            and _status_memory(p) == "1Gi"
            and dict(p.spec.containers[0].resources.requests) == base
            and p
        ),
        "want at baseline",
        timeout=60,
    )
    node = pod.spec.node_name
    # Pods an earlier test left terminating (the chart's Postgres and Redis, say) free their room
    # when they stop: the kubelet would then have room for the resize and never defer it.
    wait_for(lambda: not _terminating(cluster, node), "earlier tests' pods gone from the node", timeout=120)
    # The holder takes all but 128Mi of the node's memory and ignores SIGTERM for 25 s.
    hold = _free_memory(cluster, node) - 128 * 1024**2
    holder = busybox_deployment(
        "holder",
        ns,
        {"cpu": "10m", "memory": str(hold)},
        command=["sh", "-c", "trap '' TERM; while :; do sleep 1; done"],
    )
    holder["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 25
    holder["spec"]["template"]["spec"]["nodeName"] = node
    cluster.apply(holder)
    wait_for(lambda: running_pod(cluster, ns, "holder"), "holder running", timeout=60)
    cluster.apps.delete_namespaced_deployment("holder", ns)
    wait_for(lambda: not running_pod(cluster, ns, "holder"), "holder terminating")
    cluster.apply(attention("go", ns, "want", ttlSeconds=120, intensity=0.9))

    def deferred() -> tuple[str, str, str] | None:
        p = running_pod(cluster, ns, "want")
        cond = resize_condition(p) if p else None
        return cond if cond and cond[1] == "Deferred" else None

    cond = wait_for(deferred, "the kubelet defers the resize to peak", timeout=20)
    assert "memory" in cond[2].lower() or "insufficient" in cond[2].lower(), cond
    # The operator saw the kubelet's answer (the API accepted the resize; the node did not yet).
    wait_for(
        lambda: 'heady_resize_failures_total{reason="Deferred"}' in operator.metrics(), "Deferred counted"
    )
    # Resolves by itself once the holder's containers are gone (grace period 25 s).
    peak = {"cpu": "100m", "memory": "768Mi"}
    wait_for(
        lambda: (
            (p := running_pod(cluster, ns, "want"))
            and resize_condition(p) is None
            and matches(read_cgroup(cluster, ns, p.metadata.name), expected(peak, limits))
        ),
        "the deferred resize done by the kubelet alone",
        timeout=90,
        interval=0.5,
    )
    wait_for(
        lambda: cluster.get("headyservices", ns, "want").get("status", {}).get("level") == "Peak",
        "level Peak",
    )
    assert running_pod(cluster, ns, "want").status.container_statuses[0].restart_count == 0


def _mem_hog(name: str, ns: str, fill_mib: int, res: dict[str, str]) -> dict[str, Any]:
    """A Guaranteed pod that keeps `fill_mib` MiB in a memory-backed emptyDir (charged to its cgroup,
    never reclaimable) until /mem/fill is removed."""
    cmd = ["sh", "-c", f"dd if=/dev/zero of=/mem/fill bs=1M count={fill_mib} 2>/dev/null; {SLEEP[2]}"]
    dep = busybox_deployment(name, ns, res, res, command=cmd)
    spec = dep["spec"]["template"]["spec"]
    spec["volumes"] = [{"name": "mem", "emptyDir": {"medium": "Memory"}}]
    spec["containers"][0]["volumeMounts"] = [{"name": "mem", "mountPath": "/mem"}]
    return dep


def test_memory_shrink_below_usage_is_reported_and_not_retried_in_a_loop(
    cluster: Cluster, operator: OperatorProcess, ns: str
) -> None:
    start = {"cpu": "200m", "memory": "256Mi"}
    cluster.apply(_mem_hog("hog", ns, 180, start))
    pod = wait_for(lambda: running_pod(cluster, ns, "hog"), "hog running", timeout=60)
    wait_for(
        lambda: (
            "/mem/fill"
            in cluster.kubectl(
                "exec", "-n", ns, pod.metadata.name, "--", "sh", "-c", "ls /mem/fill; du -m /mem/fill"
            ).stdout
            and int(
                cluster.kubectl(
                    "exec", "-n", ns, pod.metadata.name, "--", "du", "-m", "/mem/fill"
                ).stdout.split()[0]
            )
            >= 180
        ),
        "hog holding 180 MiB",
    )
    # Baseline is 128Mi: below the 180 MiB the container holds.
    cluster.apply(headyservice("hog", ns, containers=[{"name": "app", "peak": start}], baselineRatio=0.5))

    def error() -> tuple[str, str, str] | None:
        p = running_pod(cluster, ns, "hog")
        cond = resize_condition(p) if p else None
        return cond if cond and cond[0] == "PodResizeInProgress" and cond[1] == "Error" else None

    cond = wait_for(error, "PodResizeInProgress/Error from the kubelet", timeout=60)
    assert "memory" in cond[2].lower(), cond

    def reported() -> dict[str, Any] | None:
        svc = cluster.get("headyservices", ns, "hog")
        degraded = condition(svc, "Degraded") or {}
        return (
            svc
            if degraded.get("status") == "True" and pod.metadata.name in degraded.get("message", "")
            else None
        )

    svc = wait_for(reported, "the kubelet's error reported on the HeadyService (Degraded)", timeout=30)
    # No loop: the pod's generation (bumped by every resize) stays put while the error stands.
    gen = running_pod(cluster, ns, "hog").metadata.generation
    with pytest.raises(AssertionError):
        wait_for(
            lambda: running_pod(cluster, ns, "hog").metadata.generation != gen, "another resize", timeout=10
        )
    assert running_pod(cluster, ns, "hog").status.container_statuses[0].restart_count == 0
    # The cause goes: the kubelet completes the shrink by itself, and the report clears.
    cluster.kubectl("exec", "-n", ns, pod.metadata.name, "--", "rm", "/mem/fill")
    base = {"cpu": "100m", "memory": "128Mi"}
    wait_for(
        lambda: matches(read_cgroup(cluster, ns, pod.metadata.name), expected(base, base)),
        "the shrink completed once the memory was freed",
        timeout=90,
        interval=0.5,
    )
    wait_for(
        lambda: (
            (condition(cluster.get("headyservices", ns, "hog"), "Degraded") or {}).get("status") == "False"
        ),
        "Degraded cleared",
        timeout=30,
    )
    del svc


def test_restart_container_policy_is_respected_and_the_restart_reported(
    cluster: Cluster, operator: OperatorProcess, ns: str
) -> None:
    res = {"cpu": "100m", "memory": "64Mi"}
    policy = [
        {"resourceName": "cpu", "restartPolicy": "NotRequired"},
        {"resourceName": "memory", "restartPolicy": "RestartContainer"},
    ]
    cluster.apply(busybox_deployment("rc", ns, res, res, resize_policy=policy))
    peak = {"cpu": "200m", "memory": "128Mi"}
    cluster.apply(
        headyservice(
            "rc", ns, containers=[{"name": "app", "peak": peak}], baselineRatio=0.5, cooldownSeconds=1
        )
    )
    # Baseline (100m / 64Mi) is what the pod already has: nothing to resize, no restart.
    wait_for(lambda: running_pod(cluster, ns, "rc"), "rc running", timeout=60)
    wait_for(
        lambda: cluster.get("headyservices", ns, "rc").get("status", {}).get("level") == "Baseline",
        "Baseline",
    )
    pod = running_pod(cluster, ns, "rc")
    assert pod is not None
    first_id = pod.status.container_statuses[0].container_id
    assert pod.status.container_statuses[0].restart_count == 0
    cluster.apply(attention("go", ns, "rc", ttlSeconds=300, intensity=0.9))

    def restarted_at_peak() -> client.V1Pod | None:
        p = running_pod(cluster, ns, "rc")
        if p is None or not p.status.container_statuses or not p.status.container_statuses[0].ready:
            return None
        st = p.status.container_statuses[0]
        if st.restart_count != 1 or st.container_id == first_id:
            return None
        return p if matches(read_cgroup(cluster, ns, p.metadata.name), expected(peak, peak)) else None

    pod = wait_for(restarted_at_peak, "container restarted once, at peak", timeout=60)
    assert pod.metadata.name == running_pod(cluster, ns, "rc").metadata.name, "the pod itself is kept"

    def restart_reported() -> bool:
        return any("restart" in (e.message or "").lower() for e in cluster.events(ns, "rc"))

    wait_for(
        restart_reported, "an Event on the HeadyService saying the resize restarted a container", timeout=30
    )
