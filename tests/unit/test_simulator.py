"""The allocation simulator (benchmarks/simulation.py): its accounting by hand, and policy sanity."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# Appended, never prepended: the repo's operator/ directory must not shadow the stdlib `operator`.
sys.path.append(str(Path(__file__).resolve().parents[2]))

from benchmarks.simulation import (
    ACTUATING,
    GIB,
    Attention,
    Knobs,
    Run,
    SimService,
    Step,
    Trace,
    TraceShape,
    account,
    always_peak,
    generate_trace,
    integrate,
    intersect,
    keda_like,
    load_trace_csv,
    merge,
    run_all,
    run_heady,
    static_baseline,
    transitions,
    vpa_like,
    where,
    write_trace_csv,
)

SVC = SimService("a", 1000, GIB)  # peak 1 CPU / 1 GiB; baseline 900m / 921Mi
BASE_MEM_GIB = 921 / 1024
# One 60 s attention window (100-160 s) in a 600 s trace.
TINY = Trace((SVC,), (Attention(100.0, "a", 1.0, 60.0, "u"),), 600.0)


# ---------------------------------------------------------------- interval arithmetic


@pytest.mark.parametrize(
    ("intervals", "merged"),
    [
        ([], []),
        ([(5, 6), (1, 2)], [(1, 2), (5, 6)]),
        ([(1, 3), (2, 5), (5, 6)], [(1, 6)]),  # overlapping and touching join
        ([(1, 1), (2, 3)], [(2, 3)]),  # empty ones vanish
    ],
)
def test_merge(intervals: list[tuple[float, float]], merged: list[tuple[float, float]]) -> None:
    assert merge(intervals) == merged


def test_intersect() -> None:
    assert intersect([(0, 10), (20, 30)], [(5, 25)]) == [(5, 10), (20, 25)]
    assert intersect([(0, 1)], [(1, 2)]) == []


def test_integrate_and_where_clip_to_the_trace() -> None:
    steps = [Step(0, 900, 0, False), Step(101, 1000, 0, True), Step(700, 900, 0, False)]
    assert integrate(steps, 600, lambda s: s.cpu_m / 1000) == pytest.approx(0.9 * 101 + 1.0 * 499)
    assert where(steps, 600, lambda s: s.peak) == [(101, 600)]


def test_transitions_count_moves_to_another_service_per_user() -> None:
    events = (
        Attention(0, "a", 1, 5, "u"),
        Attention(5, "a", 1, 5, "u"),  # a heartbeat on the same service: no move
        Attention(6, "b", 1, 5, "v"),  # v's first attention: nothing to move from
        Attention(10, "b", 1, 5, "u"),
        Attention(20, "a", 1, 5, "u"),
    )
    assert transitions(Trace((SVC,), events, 30)) == 2


# ---------------------------------------------------------------- accounting on the tiny trace


def test_always_peak_reserves_everything_and_never_violates() -> None:
    r = account(TINY, always_peak(TINY))
    assert r["cpu_core_seconds"] == pytest.approx(600)
    assert r["memory_gib_seconds"] == pytest.approx(600)
    assert r["attention_seconds"] == pytest.approx(60)
    assert r["sla_violation_seconds"] == 0
    assert r["resizes"] == 0


def test_static_baseline_reserves_90_percent_and_misses_all_attention() -> None:
    r = account(TINY, static_baseline(TINY))
    assert r["cpu_core_seconds"] == pytest.approx(540)
    assert r["memory_gib_seconds"] == pytest.approx(600 * BASE_MEM_GIB)
    assert r["sla_violation_seconds"] == pytest.approx(60)
    assert r["served_at_peak_seconds"] == 0


def test_heady_reactive_by_hand() -> None:
    # Signal at 100 -> resize planned at 100, in effect at 101 (1 s actuation). Attention ends
    # at 160, cooldown 30 s: relaxed at 190 exactly (the planner's deadline heap), back at
    # baseline 1 s later. Extra over baseline: 0.1 core x (191 - 101) s.
    run = run_heady(TINY, prediction=False, delay=1.0)
    r = account(TINY, run)
    assert r["cpu_core_seconds"] == pytest.approx(540 + 0.1 * 90.0, abs=1e-3)
    assert r["sla_violation_seconds"] == pytest.approx(1.0, abs=1e-3)
    assert r["violation_seconds_by_cause"] == {ACTUATING: pytest.approx(1.0, abs=1e-3)}
    assert r["resizes"] == 2
    assert [(s.t, s.peak) for s in run.steps["a-0"]] == [
        (0.0, False),
        (101.0, True),
        (pytest.approx(191.0, abs=1e-3), False),
    ]


def test_vpa_like_by_hand() -> None:
    # Ticks every 60 s: the one at 120 sees the attention (started 100) -> peak at 121. Every tick
    # whose 300 s window reaches back before 160 keeps peak: the last is 420; 480 relaxes at 481.
    r = account(TINY, vpa_like(TINY, period=60, window=300, delay=1))
    assert r["cpu_core_seconds"] == pytest.approx(540 + 0.1 * (481 - 121))
    assert r["sla_violation_seconds"] == pytest.approx(21)
    assert r["resizes"] == 2


def test_keda_like_by_hand() -> None:
    # Polls every 30 s: 120 sees demand -> capacity at 130 (10 s to start). Demand last seen at
    # the 180 poll; 300 s later (480) it scales down, in effect at 490.
    r = account(TINY, keda_like(TINY, poll=30, cooldown=300, delay=10))
    assert r["cpu_core_seconds"] == pytest.approx(540 + 0.1 * (490 - 130))
    assert r["sla_violation_seconds"] == pytest.approx(30)


def test_a_service_is_served_only_while_every_pod_is_at_peak() -> None:
    svc = SimService("a", 1000, GIB, replicas=2)
    trace = Trace((svc,), (Attention(0, "a", 1, 100, "u"),), 100)
    base, peak = svc.baseline, svc.peak
    run = Run(
        "manual",
        {
            "a-0": [Step(0, peak.cpu or 0, peak.memory or 0, True)],
            "a-1": [
                Step(0, base.cpu or 0, base.memory or 0, False),
                Step(40, peak.cpu or 0, peak.memory or 0, True),
            ],
        },
        {"a-0": "a", "a-1": "a"},
        1,
    )
    r = account(trace, run)
    assert r["served_at_peak_seconds"] == pytest.approx(60)
    assert r["sla_violation_seconds"] == pytest.approx(40)
    assert r["cpu_core_seconds"] == pytest.approx(100 + 0.9 * 40 + 60)


# ---------------------------------------------------------------- prediction through the controller


def test_prediction_learns_a_workflow_and_pre_escalates_its_next_step() -> None:
    # The user goes a -> b every 200 s. After three a->b moves the model predicts b when
    # attention lands on a, so b is already at peak when the user arrives 12 s later.
    a, b = SimService("a", 1000, GIB), SimService("b", 1000, GIB)
    events = []
    for k in range(6):
        events.append(Attention(k * 200.0, "a", 1.0, 10.0, "u"))
        events.append(Attention(k * 200.0 + 12, "b", 1.0, 10.0, "u"))
    trace = Trace((a, b), tuple(events), 1200.0)
    reactive = run_heady(trace, prediction=False)
    predictive = run_heady(trace, prediction=True)
    assert predictive.predictions is not None
    assert predictive.predictions["hits"] >= 2
    r_react, r_pred = account(trace, reactive), account(trace, predictive)
    assert r_pred["sla_violation_seconds"] < r_react["sla_violation_seconds"]
    assert r_pred["prediction_recall"] > 0
    # Pre-escalation is not free: b is held at peak ahead of the user.
    assert r_pred["cpu_core_seconds"] > r_react["cpu_core_seconds"]


# ---------------------------------------------------------------- ordering on a generated day


def test_policy_ordering_on_a_generated_trace() -> None:
    trace = generate_trace(TraceShape(seed=3, hours=0.5, users=5, spikes=1))
    _, results = run_all(trace, Knobs())
    r = {x["policy"]: x for x in results}
    assert r["always-peak"]["sla_violation_seconds"] == 0
    cpu = {k: v["cpu_core_seconds"] for k, v in r.items()}
    assert max(cpu, key=lambda k: cpu[k]) == "always-peak"
    assert min(cpu, key=lambda k: cpu[k]) == "static-baseline"
    assert r["static-baseline"]["cpu_vs_always_peak_pct"] == pytest.approx(90, abs=0.1)
    heady = r["heady-reactive"]["sla_violation_seconds"]
    assert heady < 0.25 * r["vpa-like"]["sla_violation_seconds"]
    assert heady < 0.25 * r["keda-like"]["sla_violation_seconds"]
    assert r["heady-reactive"]["cpu_core_seconds"] < r["vpa-like"]["cpu_core_seconds"]


def test_generated_traces_are_seeded() -> None:
    shape = TraceShape(seed=11, hours=0.25, users=3)
    assert generate_trace(shape) == generate_trace(shape)
    assert generate_trace(shape).events != generate_trace(TraceShape(seed=12, hours=0.25, users=3)).events


def test_csv_round_trip(tmp_path: Path) -> None:
    trace = generate_trace(TraceShape(seed=5, hours=0.5, users=2, spikes=0))
    assert trace.events  # (a file of no rows is refused: nothing to replay)
    path = tmp_path / "trace.csv"
    write_trace_csv(trace, path)
    again = load_trace_csv(path, services=trace.services, duration=trace.duration)
    assert again.events == trace.events
    # Services only named in the CSV get the default size.
    path.write_text("time,service,intensity,duration\n5,new,0.5,10\n")
    loaded = load_trace_csv(path)
    assert loaded.service("new").peak_cpu_m == 1000
    assert loaded.duration == 15
