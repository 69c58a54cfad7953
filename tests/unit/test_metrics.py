"""The metrics the operator serves: its own process, and no series of objects that are gone."""

from __future__ import annotations

from datetime import UTC, datetime

from prometheus_client import generate_latest

from heady_operator import metrics as m
from heady_operator.arena import ArenaController
from heady_operator.config import Settings

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def served() -> str:
    return generate_latest(m.REGISTRY).decode()


def test_process_and_python_collectors_are_served() -> None:
    text = served()
    for name in (
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "python_info",
        "python_gc_objects_collected_total",
    ):
        assert f"\n{name}" in text, name


def test_forget_service_drops_every_series_of_it() -> None:
    m.PODS_AT_PEAK.labels("gone-ns", "gone").set(1)
    m.PODS_MANAGED.labels("gone-ns", "gone").set(2)
    m.set_service_capacity(
        "gone-ns", "gone", cpu_cores=1, memory_bytes=1, peak_cpu_cores=2, peak_memory_bytes=2
    )
    m.SERVICE_UP.labels("gone-ns", "gone").set(1)
    m.HEALTH_PROBE_SECONDS.labels("gone-ns", "gone", "success").observe(0.1)
    m.PODS_AT_PEAK.labels("gone-ns", "kept").set(1)
    assert served().count('service="gone"') > 5
    m.forget_service("gone-ns", "gone")
    text = served()
    assert 'service="gone"' not in text
    assert 'heady_pods_at_peak{namespace="gone-ns",service="kept"} 1.0' in text
    m.forget_service("gone-ns", "gone")  # twice, or never set: no error
    m.forget_service("gone-ns", "kept")


def test_active_faults_are_forgotten_per_experiment_and_per_session() -> None:
    m.fault_active("chaos-ns", "s", "kill", "pod_termination")
    m.fault_active("chaos-ns", "s", "cut", "network_partition")
    m.fault_active("chaos-ns", "t", "kill", "pod_termination")
    m.forget_faults("chaos-ns", "s", "kill")
    text = served()
    assert 'experiment="cut"' in text
    assert (
        'heady_chaos_active_faults{experiment="kill",kind="pod_termination",namespace="chaos-ns",session="t"}'
        in text
    )
    assert 'session="s",' not in text.replace(
        'experiment="cut",kind="network_partition",namespace="chaos-ns",session="s"', ""
    )
    m.forget_session("chaos-ns", "s")
    m.forget_faults("chaos-ns", "t")
    assert 'namespace="chaos-ns"' not in served()


def session(name: str, cpu_hungry: bool = True) -> dict[str, object]:
    return {
        "metadata": {
            "name": name,
            "namespace": "metrics",
            "generation": 1,
            "creationTimestamp": "2026-11-29T11:00:00Z",
        },
        "spec": {"repos": [{"name": "r"}], "priority": "medium"},
    }


async def test_arena_queue_gauges_and_deleted_sessions() -> None:
    # Medium sessions plan 6.4 CPU each: a 10-CPU quota admits one, the other waits.
    arena = ArenaController(Settings(arena_quota_cpu=10), None, clock=lambda: NOW)
    arena.on_session("ADDED", session("a"))
    arena.on_session("ADDED", session("b"))
    await arena.reconcile()
    assert m.REGISTRY.get_sample_value("heady_arena_queued", {"priority": "80"}) == 1
    assert m.REGISTRY.get_sample_value("heady_arena_queued", {"priority": "125"}) == 0
    assert (
        m.REGISTRY.get_sample_value(
            "heady_arena_risk", {"namespace": "metrics", "session": "b", "kind": "overall"}
        )
        == 0
    )
    arena.on_session("DELETED", session("a"))
    await arena.reconcile()
    assert m.REGISTRY.get_sample_value("heady_arena_queued", {"priority": "80"}) == 0
    assert 'namespace="metrics",session="a"' not in served()
    arena.on_session("DELETED", session("b"))
    assert 'namespace="metrics"' not in served()
