"""The seed's resource formula (heady_operator.planning.arena.resource_plan), with hand-computed values."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from heady_operator.models.arena import ArenaSessionSpec
from heady_operator.models.common import PRIORITY_VALUES, PriorityLevel
from heady_operator.planning.arena import CPU_MAX_CORES, MEMORY_MAX_GIB, resource_plan
from heady_operator.planning.risk import assess_risk

# cpu = min(8 p/100 (1 + r/2), 16), memory GiB = min(16 p/100 (1 + r/2), 32), gpu = min(2 p/100, 4),
# vector = min(10 p/100, 50), cache = min(5 p/100, 20), persistent = min(20 p/100, 100),
# bandwidth = min(1000 p/100, 10000), connections = min(100 p/100, 1000).
PLANS = [
    # priority, risk, gpu, cpu, memory GiB, gpu, vector, cache, persistent, bandwidth, connections
    (PriorityLevel.HIGH, 0.4, True, 12.0, 24.0, 2.5, 12.5, 6.25, 25.0, 1250.0, 125),
    (PriorityLevel.HIGH, 0.4, False, 12.0, 24.0, 0.0, 12.5, 6.25, 25.0, 1250.0, 125),
    (PriorityLevel.VERY_HIGH, 1.0, True, 16.0, 32.0, 3.0, 15.0, 7.5, 30.0, 1500.0, 150),  # 18 -> 16, 36 -> 32
    (PriorityLevel.VERY_LOW, 0.0, False, 2.0, 4.0, 0.0, 2.5, 1.25, 5.0, 250.0, 25),
    (PriorityLevel.MEDIUM, 0.5, False, 8.0, 16.0, 0.0, 8.0, 4.0, 16.0, 800.0, 80),
    (PriorityLevel.MEDIUM_LOW, 0.2, False, 5.72, 11.44, 0.0, 6.5, 3.25, 13.0, 650.0, 65),
    (PriorityLevel.LOW, 0.0, True, 3.2, 6.4, 0.8, 4.0, 2.0, 8.0, 400.0, 40),
    # A raw priority number far above the levels hits every cap except memory/cpu at risk 0.
    (400, 0.0, True, 16.0, 32.0, 4.0, 40.0, 20.0, 80.0, 4000.0, 400),
    (2000, 0.0, False, 16.0, 32.0, 0.0, 50.0, 20.0, 100.0, 10000.0, 1000),
]


@pytest.mark.parametrize(
    (
        "priority",
        "risk",
        "gpu",
        "cpu",
        "memory",
        "gpus",
        "vector",
        "cache",
        "persistent",
        "bandwidth",
        "conns",
    ),
    PLANS,
)
def test_resource_plan_matches_the_seed_formula(
    priority: PriorityLevel | int,
    risk: float,
    gpu: bool,
    cpu: float,
    memory: float,
    gpus: float,
    vector: float,
    cache: float,
    persistent: float,
    bandwidth: float,
    conns: int,
) -> None:
    plan = resource_plan(priority, risk, gpu)
    assert plan.cpu == pytest.approx(cpu)
    assert plan.memory_gib == pytest.approx(memory)
    assert plan.gpu == pytest.approx(gpus)
    assert plan.storage_vector_gb == pytest.approx(vector)
    assert plan.storage_cache_gb == pytest.approx(cache)
    assert plan.storage_persistent_gb == pytest.approx(persistent)
    assert plan.network_bandwidth_mbps == pytest.approx(bandwidth)
    assert plan.network_connections == conns


@pytest.mark.parametrize(
    ("priority", "risk", "cpu_millis", "memory_mib", "cpu_text", "memory_text"),
    [
        # 8 x 1.25 x 1.2 is 12.000000000000002 in floating point; it must stay 12 cores.
        (PriorityLevel.HIGH, 0.4, 12_000, 24_576, "12", "24Gi"),
        # 16 x 0.65 x 1.1 = 11.44 GiB = 11714.56 MiB, rounded up to whole MiB.
        (PriorityLevel.MEDIUM_LOW, 0.2, 5_720, 11_715, "5720m", "11715Mi"),
        (PriorityLevel.VERY_LOW, 0.0, 2_000, 4_096, "2", "4Gi"),
    ],
)
def test_quantities_are_whole_millicores_and_mebibytes(
    priority: PriorityLevel, risk: float, cpu_millis: int, memory_mib: int, cpu_text: str, memory_text: str
) -> None:
    plan = resource_plan(priority, risk, False)
    assert plan.cpu_millis == cpu_millis
    assert plan.memory_bytes == memory_mib * 2**20
    compute = plan.to_status()["compute"]
    assert compute == {"cpu": cpu_text, "memory": memory_text, "gpu": 0}


def test_status_of_a_high_priority_gpu_session() -> None:
    assert resource_plan(PriorityLevel.HIGH, 0.4, True).to_status() == {
        "priorityValue": 125,
        "overallRisk": 0.4,
        "compute": {"cpu": "12", "memory": "24Gi", "gpu": 3},  # 2.5 GPUs need 3 devices
        "storage": {"vectorGB": 12.5, "cacheGB": 6.25, "persistentGB": 25.0},
        "network": {"bandwidthMbps": 1250.0, "connections": 125},
    }


def test_level_and_number_give_the_same_plan() -> None:
    for level, number in PRIORITY_VALUES.items():
        assert resource_plan(level, 0.3, True) == resource_plan(number, 0.3, True)


@pytest.mark.parametrize(
    ("priority", "risk"), [(PriorityLevel.HIGH, -0.1), (PriorityLevel.HIGH, 1.01), (0, 0.5)]
)
def test_out_of_range_inputs_are_refused(priority: PriorityLevel | int, risk: float) -> None:
    with pytest.raises(ValueError, match="must be"):
        resource_plan(priority, risk, False)


@given(
    priority=st.sampled_from(list(PriorityLevel)),
    low=st.floats(0, 1),
    high=st.floats(0, 1),
)
def test_more_risk_never_means_fewer_resources(priority: PriorityLevel, low: float, high: float) -> None:
    low, high = sorted((low, high))
    a, b = resource_plan(priority, low, True), resource_plan(priority, high, True)
    assert a.cpu <= b.cpu <= CPU_MAX_CORES
    assert a.memory_gib <= b.memory_gib <= MEMORY_MAX_GIB
    assert a.gpu == b.gpu  # priority alone sizes GPUs and storage


def test_from_spec_through_risk_to_plan() -> None:
    spec = ArenaSessionSpec.model_validate(
        {
            "repos": [{"name": "HeadySystems"}, {"name": "HeadyConnection"}, {"name": "HeadyMe"}],
            "priority": "high",
            "requiresGPU": True,
            "risk": {
                # technical 0.3 + 0.3 + 0.2 + 0.2 = 1.0; operational 0.3 + 0.3 = 0.6; strategic 0
                "technical": {"complexity": 1, "dependencies": 1, "scalability": 1, "security": 1},
                "operational": {"resourceUtilization": 1, "errorRate": 1},
            },
        }
    )
    risk = assess_risk(spec.risk)
    # overall = 0.4 x 1.0 + 0.35 x 0.6 + 0.25 x 0 = 0.61
    assert risk.overall == pytest.approx(0.61)
    plan = resource_plan(spec.priority, risk.overall, spec.requires_gpu)
    # cpu = 8 x 1.25 x 1.305 = 13.05, memory = 16 x 1.25 x 1.305 = 26.1 GiB
    assert plan.cpu == pytest.approx(13.05)
    assert plan.memory_gib == pytest.approx(26.1)
    assert plan.to_status()["compute"] == {"cpu": "13050m", "memory": "26727Mi", "gpu": 3}
