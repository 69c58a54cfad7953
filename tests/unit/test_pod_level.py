"""Pods that declare pod-level resources (spec.resources) are resized at the pod level, QoS kept;
a cluster that cannot do that says so in the service's Degraded condition and is not retried."""

from __future__ import annotations

from typing import Any

import msgspec

from heady_operator.config import Settings
from heady_operator.kube import objects as k
from heady_operator.kube.convert import resize_patch
from heady_operator.kube.objects import from_dict
from heady_operator.kube.resize import ResizeFailed, failure_reason
from heady_operator.planning.incremental import IncrementalPlanner
from heady_operator.planning.levels import POD_LEVEL, Amount, ContainerResources, QoS
from heady_operator.reconcile.escalation import Escalation
from heady_operator.state.cluster import ClusterState
from tests import objects
from tests.unit.test_escalation_loop import NS, Clock, FakeApi, drain

MI = 2**20
UNSUPPORTED_403 = (
    'pods "web-0" is forbidden: pod update requires features InPlacePodLevelResourcesVerticalScaling '
    'which are not available on node "n1"'
)


def pod_level_pod(name: str, resources: dict[str, Any], qos: str, rv: int = 1) -> k.Pod:
    raw = msgspec.to_builtins(
        objects.pod(NS, name, "web", [{"name": "app"}, {"name": "side"}], qos=qos, resource_version=rv)
    )
    raw["spec"]["resources"] = resources
    return from_dict(k.Pod, raw)


class PodLevelApi(FakeApi):
    async def resize(self, namespace: str, name: str, body: dict[str, Any]) -> k.Pod:
        self.resizes.append((name, body))
        queued = self.fail.get(name)
        if queued:
            raise queued.pop(0)
        self.rv += 1
        qos = str(self.state.pods[(namespace, name)].record.qos)
        return pod_level_pod(name, body["spec"]["resources"], qos, self.rv)


def pod_level_world(
    clock: Clock, resources: dict[str, Any], qos: str
) -> tuple[ClusterState, Escalation, PodLevelApi]:
    cfg = Settings(prediction_enabled=False, status_min_interval_seconds=0, status_settle_seconds=0)
    state = ClusterState(cfg, IncrementalPlanner(), clock, monotonic=clock.monotonic)
    api = PodLevelApi(state)
    esc = Escalation(cfg, state, api, clock, clock.monotonic)
    state.on_node("ADDED", objects.node("n1"))
    template = {
        "metadata": {"namespace": NS, "name": "web"},
        "spec": {
            "template": {"spec": {"containers": [{"name": "app"}, {"name": "side"}], "resources": resources}}
        },
    }
    state.on_workload("ADDED", "Deployment", from_dict(k.Workload, template))
    state.on_replica_set("ADDED", objects.replica_set(NS, "web"))
    spec = {"workload": {"name": "web"}, "cooldownSeconds": 0, "maxPeakSeconds": 600}
    state.on_service("ADDED", objects.headyservice(NS, "web", spec))
    for i in range(2):
        state.on_pod("ADDED", pod_level_pod(f"web-{i}", resources, qos))
    esc.mark_synced()
    return state, esc, api


def test_the_patch_of_a_pod_level_target_is_spec_resources() -> None:
    target = (ContainerResources(POD_LEVEL, Amount(900, 900 * MI), Amount(900, 900 * MI)),)
    assert resize_patch(target) == {
        "spec": {
            "resources": {
                "requests": {"cpu": "900m", "memory": "900Mi"},
                "limits": {"cpu": "900m", "memory": "900Mi"},
            }
        }
    }


def test_failures_that_mean_the_cluster_cannot_resize_pod_level_resources() -> None:
    assert failure_reason(403, UNSUPPORTED_403) == "Unsupported"
    gate_off = "resize of pods with pod-level resources is forbidden when InPlacePodLevelResourcesVerticalScalingEnabled feature gate is disabled"
    assert failure_reason(422, gate_off) == "Unsupported"
    assert failure_reason(403, "exceeds the node's allocatable") == "Infeasible"


async def test_guaranteed_pod_level_resources_move_requests_and_limits_together() -> None:
    clock = Clock()
    peak = {"cpu": "1", "memory": "1Gi"}
    state, esc, api = pod_level_world(clock, {"requests": peak, "limits": peak}, "Guaranteed")
    record = state.pods[(NS, "web-0")].record
    assert record.containers == (
        ContainerResources(POD_LEVEL, Amount(1000, 1024 * MI), Amount(1000, 1024 * MI)),
    )
    esc.plan_once()
    await drain(esc, lambda: len(api.resizes) == 2, "both to baseline")
    body = api.resizes[0][1]
    assert "containers" not in body["spec"], "the containers' own resources are not touched"
    assert body["spec"]["resources"] == {
        "requests": {"cpu": "900m", "memory": "921Mi"},
        "limits": {"cpu": "900m", "memory": "921Mi"},
    }
    state.on_signal("ADDED", objects.signal(NS, "look", {"services": ["web"], "ttlSeconds": 30}, clock.now))
    esc.plan_once()
    await drain(esc, lambda: len(api.resizes) == 4, "both to peak")
    assert api.resizes[-1][1]["spec"]["resources"]["limits"] == {"cpu": "1", "memory": "1Gi"}
    assert state.pods[(NS, "web-1")].record.qos is QoS.GUARANTEED


async def test_burstable_pod_level_resources_move_requests_under_their_limits() -> None:
    clock = Clock()
    resources = {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "2Gi"}}
    _state, esc, api = pod_level_world(clock, resources, "Burstable")
    esc.plan_once()
    await drain(esc, lambda: len(api.resizes) == 2, "both to baseline")
    assert api.resizes[0][1]["spec"]["resources"] == {
        "requests": {"cpu": "900m", "memory": "921Mi"},
        "limits": {"cpu": "1", "memory": "2Gi"},
    }


async def test_a_cluster_without_pod_level_resize_is_a_clear_condition_not_a_retry_loop() -> None:
    clock = Clock()
    peak = {"cpu": "1", "memory": "1Gi"}
    _state, esc, api = pod_level_world(clock, {"requests": peak, "limits": peak}, "Guaranteed")
    api.fail["web-0"] = [ResizeFailed("Unsupported", UNSUPPORTED_403)]
    esc.plan_once()
    await drain(esc, lambda: len(api.resizes) == 2, "both tried")
    for _ in range(3):
        clock.advance(5)
        esc.plan_once()
        await drain(esc, lambda: not esc.queue.busy(), "settled")
    assert [n for n, _ in api.resizes].count("web-0") == 1, "not retried"
    await esc.reporter.flush()
    status = [st for p, n, st in api.statuses if p == "headyservices" and n == "web"][-1]
    degraded = next(c for c in status["conditions"] if c["type"] == "Degraded")
    assert degraded["status"] == "True" and degraded["reason"] == "PodLevelResizeUnsupported"
    assert "web-0" in degraded["message"] and "InPlacePodLevelResourcesVerticalScaling" in degraded["message"]


def test_explicit_container_peaks_on_a_pod_level_workload_are_refused_readably() -> None:
    clock = Clock()
    peak = {"cpu": "1", "memory": "1Gi"}
    state, _, _ = pod_level_world(clock, {"requests": peak, "limits": peak}, "Guaranteed")
    spec = {"workload": {"name": "web"}, "containers": [{"name": "app", "peak": {"cpu": "2"}}]}
    state.on_service("MODIFIED", objects.headyservice(NS, "web", spec, generation=2))
    error = state.services[(NS, "web")].error
    assert error is not None and "pod-level resources" in error


class _Resp:
    def __init__(self, status: int, body: bytes) -> None:
        self.status, self.reason, self._body = status, "Forbidden", body

    async def read(self) -> bytes:
        return self._body


class _Core:
    def __init__(self, resp: _Resp) -> None:
        self.resp = resp

    async def patch_namespaced_pod_resize(self, *args: Any, **kwargs: Any) -> _Resp:
        return self.resp


async def test_an_error_answer_to_a_resize_is_a_resize_failure_not_a_pod() -> None:
    """The client does not raise on error answers when it does not preload them."""
    import json
    from types import SimpleNamespace

    import pytest

    from heady_operator.kube.resize import resize_pod

    body = json.dumps(
        {"kind": "Status", "status": "Failure", "message": UNSUPPORTED_403, "code": 403}
    ).encode()
    kube: Any = SimpleNamespace(core=_Core(_Resp(403, body)))
    with pytest.raises(ResizeFailed) as info:
        await resize_pod(kube, NS, "web-0", {"spec": {}})
    assert info.value.reason == "Unsupported" and "not available on node" in info.value.message
