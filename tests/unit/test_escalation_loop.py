"""The escalation loop with a fake API and a fake clock: queue, failures, reporting, ownership, restarts.

The fake API plays the apiserver's part of a resize (the pod comes back with the new
resources and a newer resourceVersion) and records every write; nothing else is faked.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest

from heady_operator.config import Settings
from heady_operator.kube import objects as k
from heady_operator.kube.resize import ResizeFailed
from heady_operator.planning.incremental import IncrementalPlanner
from heady_operator.planning.levels import Level, Reason
from heady_operator.planning.tunnel import TunnelConfig
from heady_operator.reconcile.escalation import Escalation
from heady_operator.reconcile.health import Watchdog
from heady_operator.reconcile.queue import Lane, Outcome, ResizeQueue
from heady_operator.state.cluster import ClusterState
from tests import objects

T0 = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
NS = "shop"
LIMITS = {"cpu": "1", "memory": "1Gi"}
BASE = {"cpu": "900m", "memory": "921Mi"}


class Clock:
    def __init__(self) -> None:
        self.now = T0
        self.mono = 1000.0

    def __call__(self) -> datetime:
        return self.now

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
        self.mono += seconds


class FakeApi:
    def __init__(self, state: ClusterState) -> None:
        self.state = state
        self.resizes: list[tuple[str, dict[str, Any]]] = []
        self.statuses: list[tuple[str, str, dict[str, Any]]] = []
        self.events: list[tuple[str, str, str]] = []
        self.fail: dict[str, list[ResizeFailed]] = {}
        self.rv = 100

    async def resize(self, namespace: str, name: str, body: dict[str, Any]) -> k.Pod:
        await asyncio.sleep(0)
        self.resizes.append((name, body))
        queued = self.fail.get(name)
        if queued:
            raise queued.pop(0)
        self.rv += 1
        return self.pod_with(namespace, name, body["spec"]["containers"], self.rv)

    def pod_with(self, namespace: str, name: str, containers: list[dict[str, Any]], rv: int) -> k.Pod:
        entry = self.state.pods[(namespace, name)]
        raw = msgspec.to_builtins(
            objects.pod(namespace, name, name.rsplit("-", 1)[0], containers, qos=str(entry.record.qos))
        )
        raw["metadata"]["resourceVersion"] = str(rv)
        return msgspec.convert(raw, k.Pod)

    async def patch_status(self, plural: str, namespace: str, name: str, status: dict[str, Any]) -> bool:
        self.statuses.append((plural, name, status))
        return True

    async def post_event(
        self, obj: Mapping[str, Any], reason: str, message: str, type_: str = "Normal"
    ) -> None:
        self.events.append((obj["metadata"]["name"], reason, message))

    async def delete_signal(self, namespace: str, name: str) -> None:
        self.state.on_signal("DELETED", objects.signal(namespace, name, {"services": ["x"]}, T0))

    async def write_tunnel(self, config: TunnelConfig) -> bool:
        return True


def world(
    clock: Clock, services: dict[str, int], priority: str = "medium", **settings: Any
) -> tuple[ClusterState, Escalation, FakeApi]:
    cfg = Settings(
        prediction_enabled=False, status_min_interval_seconds=0, status_settle_seconds=0, **settings
    )
    state = ClusterState(cfg, IncrementalPlanner(), clock, monotonic=clock.monotonic)
    api = FakeApi(state)
    esc = Escalation(cfg, state, api, clock, clock.monotonic)
    state.on_node("ADDED", objects.node("n1"))
    for name, replicas in services.items():
        container = {"name": "app", "resources": objects.resources(BASE, LIMITS)}
        state.on_workload("ADDED", "Deployment", objects.deployment(NS, name, [container]))
        state.on_replica_set("ADDED", objects.replica_set(NS, name))
        spec = {"workload": {"name": name}, "priority": priority, "cooldownSeconds": 0, "maxPeakSeconds": 600}
        spec["containers"] = [{"name": "app", "peak": LIMITS}]
        state.on_service("ADDED", objects.headyservice(NS, name, spec))
        for i in range(replicas):
            state.on_pod("ADDED", objects.pod(NS, f"{name}-{i}", name, [container], qos="Burstable"))
    esc.mark_synced()
    return state, esc, api


def attention(state: ClusterState, clock: Clock, name: str, service: str, seconds: int = 30) -> None:
    spec = {"services": [service], "ttlSeconds": seconds, "user": "u1"}
    state.on_signal("ADDED", objects.signal(NS, name, spec, clock.now))


async def idle(esc: Escalation, ticks: int = 50) -> None:
    """Let the queue run a while with nothing expected of it."""
    task = asyncio.create_task(esc.queue.run())
    for _ in range(ticks):
        await asyncio.sleep(0.001)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def drain(esc: Escalation, done: Callable[[], bool], what: str) -> None:
    task = asyncio.create_task(esc.queue.run())
    try:
        for _ in range(2000):
            if done():
                return
            await asyncio.sleep(0.001)
        raise AssertionError(f"never: {what}")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_signal_raises_every_pod_once_and_expiry_relaxes_them() -> None:
    clock = Clock()
    state, esc, api = world(clock, {"web": 2, "api": 2})
    esc.plan_once()
    assert api.resizes == [] and not esc.unsettled, "pods already at baseline are left alone"
    attention(state, clock, "look", "web", 5)
    esc.plan_once()
    assert esc.queue.depth(Lane.ESCALATION) == 2
    await drain(esc, lambda: len(api.resizes) == 2, "two escalations")
    assert sorted(n for n, _ in api.resizes) == ["web-0", "web-1"]
    assert api.resizes[0][1]["spec"]["containers"][0]["resources"]["requests"]["cpu"] == "999m"
    esc.plan_once()  # the resize responses are in the state: nothing more to do
    assert esc.queue.depth(Lane.ESCALATION) == 0 and not esc.unsettled
    clock.advance(6)
    esc.plan_once()
    assert esc.queue.depth(Lane.BACKGROUND) == 2
    await drain(esc, lambda: len(api.resizes) == 4, "two relaxations")
    assert state.planner.service_decisions[(NS, "web")].granted is False


async def test_the_last_target_wins_and_one_patch_per_pod() -> None:
    sent: list[tuple[str, str]] = []

    async def act(key: tuple[str, str], target: Any, lane: Lane) -> Outcome:
        sent.append((key[1], target))
        return Outcome.DONE

    queue = ResizeQueue(act, concurrency=1)
    for target in ("a", "b", "c"):
        queue.put((NS, "p"), target, Lane.BACKGROUND)  # type: ignore[arg-type]
    queue.put((NS, "q"), "x", Lane.BACKGROUND)  # type: ignore[arg-type]
    queue.put((NS, "r"), "up", Lane.ESCALATION)  # type: ignore[arg-type]
    task = asyncio.create_task(queue.run())
    for _ in range(200):
        if len(sent) == 3:
            break
        await asyncio.sleep(0.001)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert sent == [("r", "up"), ("p", "c"), ("q", "x")], (
        "escalations first, then the last target of each pod"
    )


async def test_failures_back_off_per_pod_and_recover() -> None:
    clock = Clock()
    state, esc, api = world(clock, {"web": 1})
    api.fail["web-0"] = [ResizeFailed("Error", "etcd timeout"), ResizeFailed("Conflict", "again")]
    attention(state, clock, "look", "web")
    esc.plan_once()
    await drain(esc, lambda: len(api.resizes) == 1, "first try")
    assert esc.queue.attempts[(NS, "web-0")] == 1
    await idle(esc)
    assert len(api.resizes) == 1
    clock.advance(0.6)
    await drain(esc, lambda: len(api.resizes) == 2, "second try after 0.5 s")
    clock.advance(0.6)
    await idle(esc)
    assert len(api.resizes) == 2
    clock.advance(0.5)
    await drain(esc, lambda: len(api.resizes) == 3, "third try after 1 s")
    esc.plan_once()
    assert state.planner.pod_decisions[(NS, "web-0")].needs_resize is False
    await esc.reporter.flush()
    status = [st for p, n, st in api.statuses if p == "headyservices" and n == "web"][-1]
    degraded = next(c for c in status["conditions"] if c["type"] == "Degraded")
    assert degraded["status"] == "False"


async def test_infeasible_holds_the_pod_at_baseline_and_degrades_the_service() -> None:
    clock = Clock()
    state, esc, api = world(clock, {"web": 2})
    api.fail["web-1"] = [ResizeFailed("Infeasible", "exceeds node allocatable")]
    attention(state, clock, "look", "web")
    esc.plan_once()
    await drain(esc, lambda: len(api.resizes) == 2, "both tried")
    esc.plan_once()
    decision = state.planner.pod_decisions[(NS, "web-1")]
    assert (decision.level, decision.reason, decision.needs_resize) == (
        Level.BASELINE,
        Reason.INFEASIBLE,
        False,
    )
    await esc.reporter.flush()
    status = [st for p, n, st in api.statuses if p == "headyservices" and n == "web"][-1]
    degraded = next(c for c in status["conditions"] if c["type"] == "Degraded")
    assert degraded["reason"] == "Infeasible" and "web-1" in degraded["message"]
    assert len(api.resizes) == 2, "no retry of what the node cannot hold"


async def test_kubelet_deferred_is_left_to_the_kubelet() -> None:
    clock = Clock()
    state, esc, api = world(clock, {"web": 1})
    attention(state, clock, "look", "web")
    esc.plan_once()
    await drain(esc, lambda: len(api.resizes) == 1, "sent")
    raw = msgspec.to_builtins(
        api.pod_with(
            NS,
            "web-0",
            [{"name": "app", "resources": objects.resources({"cpu": "999m", "memory": "1Gi"}, LIMITS)}],
            500,
        )
    )
    raw["status"]["conditions"] = [{"type": "PodResizePending", "status": "True", "reason": "Deferred"}]
    state.on_pod("MODIFIED", msgspec.convert(raw, k.Pod))
    esc.plan_once()
    await idle(esc)
    assert len(api.resizes) == 1
    assert state.planner.pod_decisions[(NS, "web-0")].level is Level.PEAK


async def test_status_is_written_once_and_a_restart_rewrites_nothing() -> None:
    clock = Clock()
    _state, esc, api = world(clock, {"web": 1})
    esc.plan_once()
    await esc.reporter.flush()
    written = [s for p, n, s in api.statuses if p == "headyservices"]
    assert len(written) == 1
    await esc.reporter.flush()
    assert len([1 for p, *_ in api.statuses if p == "headyservices"]) == 1
    # A new process reads the same objects, their status included.
    clock2 = Clock()
    state2, esc2, api2 = world(clock2, {})
    container = {"name": "app", "resources": objects.resources(BASE, LIMITS)}
    state2.on_workload("ADDED", "Deployment", objects.deployment(NS, "web", [container]))
    state2.on_replica_set("ADDED", objects.replica_set(NS, "web"))
    body = objects.headyservice(
        NS,
        "web",
        {
            "workload": {"name": "web"},
            "priority": "medium",
            "cooldownSeconds": 0,
            "maxPeakSeconds": 600,
            "containers": [{"name": "app", "peak": LIMITS}],
        },
    )
    body["status"] = written[0]
    state2.on_service("ADDED", body)
    state2.on_pod("ADDED", objects.pod(NS, "web-0", "web", [container], qos="Burstable"))
    esc2.plan_once()
    await esc2.reporter.flush()
    assert [s for p, n, s in api2.statuses if p == "headyservices"] == []


async def test_expired_signals_kept_across_a_restart_are_not_rewritten() -> None:
    clock = Clock()
    state, esc, api = world(clock, {"web": 1}, expired_signal_retention_seconds=3600)
    raw = msgspec.to_builtins(
        objects.signal(NS, "old", {"services": ["web"], "ttlSeconds": 1}, T0 - timedelta(minutes=5))
    )
    raw["status"] = {
        "expired": True,
        "conditions": [{"type": "Ready", "status": "False", "reason": "Expired"}],
    }
    state.on_signal("ADDED", msgspec.convert(raw, k.CustomObject))
    esc.plan_once()
    await esc.reporter.flush()
    assert [n for p, n, _ in api.statuses if p == "attentionsignals"] == []


async def test_restart_keeps_an_escalation_until_max_peak() -> None:
    clock = Clock()
    state, esc, _api = world(clock, {})
    container = {"name": "app", "resources": objects.resources({"cpu": "999m", "memory": "1Gi"}, LIMITS)}
    state.on_workload("ADDED", "Deployment", objects.deployment(NS, "web", [container]))
    state.on_replica_set("ADDED", objects.replica_set(NS, "web"))
    body = objects.headyservice(
        NS,
        "web",
        {
            "workload": {"name": "web"},
            "cooldownSeconds": 60,
            "maxPeakSeconds": 600,
            "containers": [{"name": "app", "peak": LIMITS}],
        },
    )
    body["status"] = {"escalatedSince": "2026-11-29T11:59:00Z", "attentionUntil": "2026-11-29T11:59:50Z"}
    state.on_service("ADDED", body)
    state.on_pod("ADDED", objects.pod(NS, "web-0", "web", [container], qos="Burstable"))
    esc.plan_once()
    assert state.planner.service_decisions[(NS, "web")].granted, "cooldown read back from status"
    assert not esc.unsettled, "nothing is relaxed early"


async def test_pods_belong_to_the_workload_that_owns_them_not_to_matching_labels() -> None:
    clock = Clock()
    state, esc, _api = world(clock, {"redis-leader": 1, "redis-follower": 2})
    # Both Deployments' pods carry app=redis in the guestbook example; the owner chain decides.
    assert state.pods_of((NS, "redis-leader")) == [(NS, "redis-leader-0")]
    assert state.pods_of((NS, "redis-follower")) == [(NS, "redis-follower-0"), (NS, "redis-follower-1")]
    attention(state, clock, "look", "redis-follower")
    esc.plan_once()
    assert esc.queue.depth(Lane.ESCALATION) == 2
    assert state.planner.service_decisions[(NS, "redis-follower")].pods_total == 2


async def test_a_second_headyservice_for_the_same_workload_is_refused_readably() -> None:
    clock = Clock()
    state, esc, api = world(clock, {"web": 1})
    state.on_service("ADDED", objects.headyservice(NS, "zz-dup", {"workload": {"name": "web"}}))
    esc.plan_once()
    await esc.reporter.flush()
    dup = [s for p, n, s in api.statuses if n == "zz-dup"][-1]
    ready = next(c for c in dup["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False" and "already managed by HeadyService web" in ready["message"]


async def test_another_actor_resizing_a_pod_is_not_fought() -> None:
    clock = Clock()
    state, esc, api = world(clock, {"web": 1})
    attention(state, clock, "look", "web", 300)
    esc.plan_once()
    await drain(esc, lambda: len(api.resizes) == 1, "escalated")
    # A VPA (say) sets its own values through the resize subresource.
    foreign = msgspec.to_builtins(
        api.pod_with(
            NS,
            "web-0",
            [{"name": "app", "resources": objects.resources({"cpu": "500m", "memory": "600Mi"}, LIMITS)}],
            900,
        )
    )
    foreign["metadata"]["managedFields"] = [
        {
            "manager": "vpa-updater",
            "operation": "Update",
            "subresource": "resize",
            "time": "2026-11-29T12:00:01Z",
        }
    ]
    state.on_pod("MODIFIED", msgspec.convert(foreign, k.Pod))
    esc.plan_once()
    await idle(esc)
    assert len(api.resizes) == 1, "heady does not put its value straight back"
    await esc.reporter.flush()
    await asyncio.sleep(0)
    assert any(r == "ForeignResize" and "vpa-updater" in m for _, r, m in api.events)
    status = [s for p, n, s in api.statuses if n == "web"][-1]
    conflict = next(c for c in status["conditions"] if c["type"] == "Conflict")
    assert conflict["status"] == "True" and "vpa-updater" in conflict["message"]


async def test_a_never_ending_signal_is_clamped_not_fatal() -> None:
    clock = Clock()
    state, esc, api = world(clock, {"web": 1, "api": 1})
    state.on_signal(
        "ADDED",
        objects.signal(NS, "never", {"services": ["web"], "expiresAt": "9999-12-31T23:59:59Z"}, clock.now),
    )
    attention(state, clock, "other", "api")
    esc.plan_once()
    await drain(esc, lambda: len(api.resizes) == 2, "both services raised")
    assert state.signals[(NS, "never")].signal is not None
    assert state.planner.next_deadline() is not None


@pytest.mark.parametrize("ttl", [1, 2])
async def test_ttl_counts_from_when_the_signal_was_seen_within_its_creation_second(ttl: int) -> None:
    clock = Clock()
    clock.now = T0 + timedelta(milliseconds=700)
    state, _esc, _api = world(clock, {"web": 1})
    state.on_signal("ADDED", objects.signal(NS, "s", {"services": ["web"], "ttlSeconds": ttl}, T0))
    sig = state.signals[(NS, "s")].signal
    assert sig is not None and sig.end == clock.now + timedelta(seconds=ttl)


async def test_a_brief_escalation_changes_no_status_and_a_lasting_one_one_write() -> None:
    clock = Clock()
    state, esc, api = world(clock, {"web": 1})
    esc.reporter.settings = esc.settings.model_copy(
        update={"status_settle_seconds": 1.0, "status_min_interval_seconds": 2.0}
    )
    esc.plan_once()
    await esc.reporter.flush()
    first = len([1 for p, n, _ in api.statuses if n == "web"])
    assert first == 1
    clock.advance(3)
    attention(state, clock, "blip", "web", 1)
    esc.plan_once()
    await drain(esc, lambda: len(api.resizes) == 1, "up")
    await esc.reporter.flush()  # the change is younger than the settle time
    clock.advance(1.1)
    esc.plan_once()
    await drain(esc, lambda: len(api.resizes) == 2, "down again")
    esc.plan_once()  # the loop plans on the resize response
    clock.advance(1.0)
    await esc.reporter.flush()
    assert len([1 for p, n, _ in api.statuses if n == "web"]) == first, "nothing to say about a blip"
    assert not any(r in ("Escalated", "Relaxed") for _, r, _ in api.events)
    attention(state, clock, "stay", "web", 60)
    esc.plan_once()
    await drain(esc, lambda: len(api.resizes) == 3, "up for a while")
    esc.plan_once()
    await esc.reporter.flush()
    clock.advance(1.1)
    await esc.reporter.flush()
    clock.advance(1.1)
    await esc.reporter.flush()
    web = [s for p, n, s in api.statuses if n == "web"]
    assert len(web) == first + 1 and web[-1]["level"] == "Peak"
    assert [r for _, r, _ in api.events if r == "Escalated"] == ["Escalated"]


def test_the_watchdog_names_the_loop_that_stopped() -> None:
    clock = Clock()
    _, esc, _ = world(clock, {})
    dog = Watchdog(esc, None, 5.0)
    assert dog.problems() == []
    clock.advance(6)
    problems = dog.problems()
    assert any(p.startswith("planner made no progress") for p in problems)
    assert any(p.startswith("reporter made no progress") for p in problems)


async def test_relaxations_leave_slots_for_escalations_and_the_newest_escalation_goes_first() -> None:
    release = asyncio.Event()
    sent: list[str] = []

    async def act(key: tuple[str, str], target: Any, lane: Lane) -> Outcome:
        sent.append(key[1])
        await release.wait()
        return Outcome.DONE

    queue = ResizeQueue(act, concurrency=3, reserved_for_escalations=2)
    for i in range(5):
        queue.put((NS, f"down-{i}"), "base", Lane.BACKGROUND)  # type: ignore[arg-type]
    task = asyncio.create_task(queue.run())
    for _ in range(20):
        await asyncio.sleep(0.001)
    assert sent == ["down-0"], "relaxations use one slot; two stay free"
    queue.put((NS, "old"), "peak", Lane.ESCALATION)  # type: ignore[arg-type]
    queue.put((NS, "new"), "peak", Lane.ESCALATION)  # type: ignore[arg-type]
    for _ in range(20):
        await asyncio.sleep(0.001)
    assert sent == ["down-0", "new", "old"]
    release.set()
    for _ in range(200):
        if len(sent) == 7:
            break
        await asyncio.sleep(0.001)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert len(sent) == 7


async def test_the_kubelets_resize_error_and_a_restart_are_reported_not_retried() -> None:
    clock = Clock()
    state, esc, api = world(clock, {"web": 1})
    attention(state, clock, "look", "web", 300)
    esc.plan_once()
    await drain(esc, lambda: len(api.resizes) == 1, "sent")
    at_peak = [{"name": "app", "resources": objects.resources({"cpu": "999m", "memory": "1Gi"}, LIMITS)}]
    raw = msgspec.to_builtins(api.pod_with(NS, "web-0", at_peak, 600))
    raw["status"]["conditions"] = [
        {"type": "PodResizeInProgress", "status": "True", "reason": "Error", "message": "memory below usage"}
    ]
    raw["status"]["containerStatuses"] = [{"name": "app", "restartCount": 1}]
    state.on_pod("MODIFIED", msgspec.convert(raw, k.Pod))
    esc.plan_once()
    await idle(esc)
    assert len(api.resizes) == 1, "no retry while the kubelet reports its error"
    await esc.reporter.flush()
    status = [s for p, n, s in api.statuses if n == "web"][-1]
    degraded = next(c for c in status["conditions"] if c["type"] == "Degraded")
    assert (
        degraded["status"] == "True"
        and "web-0" in degraded["message"]
        and "memory below usage" in degraded["message"]
    )
    assert any(r == "ContainerRestarted" and "restart" in m for _, r, m in api.events)
    raw["metadata"]["resourceVersion"] = "601"
    raw["status"]["conditions"] = []
    state.on_pod("MODIFIED", msgspec.convert(raw, k.Pod))
    esc.plan_once()
    await esc.reporter.flush()
    status = [s for p, n, s in api.statuses if n == "web"][-1]
    assert next(c for c in status["conditions"] if c["type"] == "Degraded")["status"] == "False"


async def test_status_carries_the_recommendation_and_precision_without_extra_writes() -> None:
    clock = Clock()
    state, esc, api = world(clock, {"web": 1})
    for i in range(12):  # a minute of attention every 100 s, for 20 minutes
        attention(state, clock, f"a{i}", "web", seconds=60)
        esc.plan_once()
        clock.advance(100)
        state.expire(clock.now)
        esc.plan_once()
    state.model.recent["shop/web"] = [1, 9]  # predictions of web: 1 hit in 10
    await esc.reporter.flush()
    status = [s for p, n, s in api.statuses if p == "headyservices" and n == "web"][-1]
    rec = status["recommendation"]
    assert rec["dutyCycle"] == pytest.approx(0.6, abs=0.05) and rec["revisits"] == 11
    assert rec["summary"].startswith(f"ratio {rec['baselineRatio']:g}, cooldown {rec['cooldownSeconds']}s")
    assert status["prediction"]["precision"] == 0.1 and status["prediction"]["throttled"] is True
    writes = len(api.statuses)
    clock.advance(30)  # the duty cycle drifts; nothing else changed
    state.dirty_services.add((NS, "web"))
    await esc.reporter.flush()
    assert len(api.statuses) == writes, "a drifting estimate alone writes no status"


class Switch:
    """The leadership gate (the elector in the operator), flipped by the test."""

    def __init__(self, leading: bool) -> None:
        self.leading = leading

    def may_write(self) -> bool:
        return self.leading


async def test_a_standby_plans_but_writes_nothing_and_acts_at_once_when_elected() -> None:
    clock = Clock()
    cfg = Settings(prediction_enabled=False, status_min_interval_seconds=0, status_settle_seconds=0)
    gate = Switch(False)
    state = ClusterState(cfg, IncrementalPlanner(), clock, monotonic=clock.monotonic)
    api = FakeApi(state)
    esc = Escalation(cfg, state, api, clock, clock.monotonic, gate=gate)
    state.on_node("ADDED", objects.node("n1"))
    container = {"name": "app", "resources": objects.resources(BASE, LIMITS)}
    state.on_workload("ADDED", "Deployment", objects.deployment(NS, "web", [container]))
    state.on_replica_set("ADDED", objects.replica_set(NS, "web"))
    spec = {"workload": {"name": "web"}, "cooldownSeconds": 0, "maxPeakSeconds": 600}
    spec["containers"] = [{"name": "app", "peak": LIMITS}]
    state.on_service("ADDED", objects.headyservice(NS, "web", spec))
    for i in range(2):
        state.on_pod("ADDED", objects.pod(NS, f"web-{i}", "web", [container], qos="Burstable"))
    esc.mark_synced()
    attention(state, clock, "look", "web")
    esc.plan_once()
    assert state.planner.service_decisions[(NS, "web")].granted, "the standby plans from its watches"
    await idle(esc)
    reporter = asyncio.create_task(esc.reporter.run())  # the loop skips flushing while standing by
    await asyncio.sleep(0.6)
    reporter.cancel()
    await asyncio.gather(reporter, return_exceptions=True)
    assert api.resizes == [] and api.statuses == [] and api.events == []
    # Elected: what the standby planned goes out, and every status is compared afresh.
    gate.leading = True
    esc.take_over()
    await drain(esc, lambda: len(api.resizes) == 2, "both pods raised by the new leader")
    await esc.reporter.flush()
    assert any(name == "web" for _, name, _ in api.statuses)
    # Fenced: nothing more goes out, whatever the plan says.
    gate.leading = False
    clock.advance(31)
    esc.plan_once()
    await idle(esc)
    assert len(api.resizes) == 2
