"""The simulator tells the truth about its input and its results: CSV rows checked by the
operator's own rules, sub-threshold rows not counted as demand, no invented users, per-service
baseline ratios, the oracle, violation causes from the planner's decisions, churn, and reports
whose text follows the data."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

# Appended, never prepended: the repo's operator/ directory must not shadow the stdlib `operator`.
sys.path.append(str(Path(__file__).resolve().parents[2]))

from benchmarks.simulate import describe, markdown, measure, sweep
from benchmarks.simulation import (
    ACTUATING,
    DEMAND_THRESHOLD,
    GIB,
    PREDICTION_HELD_SLOT,
    REST_NOTHING_WAITING,
    REST_OTHERS_WAITING,
    Attention,
    BrowsingShape,
    Knobs,
    SimService,
    Trace,
    TraceShape,
    account,
    always_peak,
    attention_by_service,
    cause_label,
    causes,
    compare,
    generate_browsing_trace,
    generate_trace,
    load_trace_csv,
    oracle,
    run_all,
    run_heady,
    static_baseline,
    sweep_runs,
    transitions,
    with_baseline_ratio,
)
from heady_operator.planning.levels import (
    PREDICTOR,
    Amount,
    ContainerResources,
    Level,
    Memory,
    Plan,
    PodDecision,
    Reason,
    ServiceDecision,
    Signal,
)

SVC = SimService("a", 1000, GIB)
TINY = Trace((SVC,), (Attention(100.0, "a", 1.0, 60.0, "u"),), 600.0)


def _csv(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "trace.csv"
    path.write_text(text)
    return path


# ---------------------------------------------------------------- input


def test_rows_the_operator_would_refuse_are_counted_by_reason(tmp_path: Path) -> None:
    path = _csv(
        tmp_path,
        "time,service,intensity,duration,user,referrer\n"
        "0,web,0.5,10,u1,x\n"  # fine
        "5,web,1.5,10,u1,\n"  # intensity above 1: AttentionEvent refuses it
        "-1,web,0.5,10,u1,\n"  # before the trace starts
        "7,Web_Server,0.5,10,u1,\n"  # not a DNS label
        "8,web,nan,10,u1,\n"
        "9,web,0.05,10,u2,\n"  # fine, but below the attention threshold
        "10,api,1,100000,,\n"  # longer than a signal lasts: cut; no user
        "11,api,abc,10,u1,\n"
        "12,api,1,0,u1,\n",
    )
    trace = load_trace_csv(path)
    assert trace.load is not None
    report = trace.load.as_dict()
    assert report["rows"] == 9
    assert report["accepted"] == 3
    assert report["refused"] == 6
    reasons = report["refused_by_reason"]
    assert any(r.startswith("intensity") and "1" in r for r in reasons)
    assert "time: negative (a trace starts at 0)" in reasons
    assert any(r.startswith("service: not a DNS label") for r in reasons)
    assert "intensity: not a finite number" in reasons
    assert "intensity: not a number" in reasons
    assert "duration: not positive" in reasons
    assert report["refused_examples"][0].startswith("line 3:")
    assert report["clipped_to_max_signal_seconds"] == 1
    assert report["rows_without_user"] == 1
    assert report["ignored_columns"] == ["referrer"]
    assert trace.service("api").peak_cpu_m == 1000
    assert max(e.duration for e in trace.events) == 86_400


def test_a_file_with_nothing_usable_or_without_a_required_column_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"no usable attention rows .*time: negative"):
        load_trace_csv(_csv(tmp_path, "time,service,duration\n-5,web,10\n"))
    with pytest.raises(ValueError, match=r"missing column.*duration"):
        load_trace_csv(_csv(tmp_path, "time,service\n0,web\n"))
    with pytest.raises(ValueError, match=r"no usable attention rows \(the file has a header only\)"):
        load_trace_csv(_csv(tmp_path, "time,service,duration\n"))


def test_a_spreadsheet_byte_order_mark_and_bytes_that_are_not_utf8_are_no_crash(tmp_path: Path) -> None:
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbftime,service,duration\n0,web,10\n1,w\xffb,10\n")
    trace = load_trace_csv(path)
    assert [e.service for e in trace.events] == ["web"]
    assert trace.load is not None and trace.load.refused.total() == 1


def test_sub_threshold_rows_are_not_demand(tmp_path: Path) -> None:
    weak = DEMAND_THRESHOLD / 2
    trace = load_trace_csv(
        _csv(tmp_path, f"time,service,intensity,duration,user\n0,a,{weak},50,u\n100,a,1,10,u\n")
    )
    assert attention_by_service(trace)["a"] == [(100.0, 110.0)]
    info = describe(trace)
    assert info["not_demand_rows"] == 1
    assert info["not_demand_service_seconds"] == 50
    r = account(trace, static_baseline(trace))
    assert r["attention_seconds"] == 10  # the weak row is no demand for any policy


def test_without_a_user_column_there_are_no_transitions_and_no_prediction_input(tmp_path: Path) -> None:
    rows = "".join(f"{k * 20},{'ab'[k % 2]},1,10\n" for k in range(30))
    trace = load_trace_csv(_csv(tmp_path, "time,service,intensity,duration\n" + rows))
    assert trace.load is not None and not trace.load.user_column
    assert trace.load.without_user == 30
    assert transitions(trace) == 0  # not one anonymous user hopping a -> b -> a
    run = run_heady(trace, prediction=True)
    assert run.predictions is not None
    assert run.predictions["issued"] == 0
    assert run.predictions["transitions"] == 0


def test_per_service_baseline_ratio_and_priority_columns(tmp_path: Path) -> None:
    path = _csv(
        tmp_path,
        "time,service,duration,baseline_ratio,priority\n"
        "0,a,10,0.5,high\n"
        "1,a,10,,\n"  # blank: the service keeps what an earlier row said
        "2,b,10,,\n"  # never given: the default
        "3,a,10,0.6,\n"  # contradicts the first row: refused
        "4,c,10,1.5,\n"  # HeadyServiceSpec: baselineRatio <= 1
        "5,c,10,,urgent\n",  # not a priority
    )
    trace = load_trace_csv(path, SimService("default", 2000, GIB, baseline_ratio=0.8))
    assert trace.service("a").baseline_ratio == 0.5
    assert trace.service("a").priority == "high"
    assert trace.service("b").baseline_ratio == 0.8
    assert trace.service("b").peak_cpu_m == 2000
    assert trace.load is not None
    reasons = trace.load.refused
    assert reasons["baseline_ratio: differs from an earlier row of the same service"] == 1
    assert sum(n for r, n in reasons.items() if r.startswith("baselineRatio")) == 1
    assert sum(n for r, n in reasons.items() if r.startswith("priority")) == 1
    r = account(trace, static_baseline(trace))
    # Both 2 cores at peak over the 12 s trace: a at 0.5, b at the default 0.8.
    assert r["cpu_core_seconds"] == pytest.approx(2 * 0.5 * 12 + 2 * 0.8 * 12)


# ---------------------------------------------------------------- oracle, ratios, churn


def test_oracle_by_hand_and_shares_of_its_saving() -> None:
    runs = [
        always_peak(TINY),
        oracle(TINY),
        static_baseline(TINY),
        run_heady(TINY, prediction=False, delay=1.0),
    ]
    rows = {r["policy"]: r for r in compare([account(TINY, r) for r in runs])}
    best = rows["oracle"]
    assert best["cpu_core_seconds"] == pytest.approx(540 + 0.1 * 60)
    assert best["sla_violation_seconds"] == 0
    assert best["resizes"] == 2
    assert best["share_of_oracle_saving_pct"] == pytest.approx(100)
    # Always-peak 600 core-s, the oracle 546 (saves 54); heady 540 + 0.1 x 90 s (101..191) = 549 (saves 51).
    assert rows["heady-reactive"]["share_of_oracle_saving_pct"] == pytest.approx(100 * 51 / 54, abs=0.01)
    assert rows["static-baseline"]["cpu_saving_pct"] == pytest.approx(10)
    assert rows["always-peak"]["share_of_oracle_saving_pct"] == 0


def test_baseline_ratio_override_and_its_validation() -> None:
    half = with_baseline_ratio(TINY, 0.5)
    assert account(half, static_baseline(half))["cpu_core_seconds"] == pytest.approx(300)
    # The oracle's extra is peak - baseline while attended: 0.5 core for 60 s.
    assert account(half, oracle(half))["cpu_core_seconds"] == pytest.approx(300 + 0.5 * 60)
    with pytest.raises(ValueError, match="baselineRatio"):
        with_baseline_ratio(TINY, 0.0)


def test_churn_per_pod_hour_and_resize_cost() -> None:
    trace = Trace((SimService("a", 1000, GIB, replicas=2),), (Attention(100.0, "a", 1.0, 60.0, "u"),), 1800.0)
    rows = compare([account(trace, always_peak(trace)), account(trace, oracle(trace))], resize_cost=9.0)
    best = rows[1]
    assert best["resizes"] == 4  # two pods, up and down
    assert best["resizes_per_pod_hour"] == pytest.approx(4 / (2 * 0.5))
    assert best["resize_cost_core_seconds"] == 36
    assert best["cpu_with_resize_cost_vs_always_peak_pct"] == pytest.approx(
        100 * (best["cpu_core_seconds"] + 36) / rows[0]["cpu_core_seconds"]
    )


# ---------------------------------------------------------------- causes


T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def _decision(
    name: str, granted: bool, reason: Reason, source: str | None = None, pods: tuple[int, int] = (1, 1)
) -> ServiceDecision:
    sig = None
    if source is not None:
        sig = Signal("s-" + name, (("sim", name),), 1.0, source, T0, T0 + timedelta(seconds=10))
    return ServiceDecision(
        ("sim", name), True, granted, reason, "", Memory(), sig, pods[0], pods[1] if granted else 0
    )


SERVICES = {
    "h1": SimService("h1", 1000, GIB, priority="high"),
    "h2": SimService("h2", 1000, GIB, priority="very_high"),
    "h3": SimService("h3", 1000, GIB, priority="high"),
    "m": SimService("m", 1000, GIB, priority="medium", replicas=2),
}
PODS = {name: svc.pods() for name, svc in SERVICES.items()}


def _target(amount: Amount) -> tuple[ContainerResources, ...]:
    return (ContainerResources("app", amount, amount),)


def _plan(*decisions: ServiceDecision, pods: dict[tuple[str, str], PodDecision] | None = None) -> Plan:
    return Plan({d.key: d for d in decisions}, pods or {})


def test_causes_name_what_the_planner_decided() -> None:
    plan = _plan(
        _decision("h1", True, Reason.ATTENTION, "ui"),
        _decision("h2", True, Reason.ATTENTION, "ui"),
        _decision("h3", False, Reason.HIGH_PRIORITY_LIMIT, "ui"),
        _decision("m", False, Reason.MAX_PEAK_TIME, "ui"),
    )
    out = causes(plan, SERVICES, PODS)
    assert out["h1"] == out["h2"] == ACTUATING
    assert out["h3"] == str(Reason.HIGH_PRIORITY_LIMIT)
    # m is medium: its rest frees no high-priority slot, and the node (unknown here) is no limit.
    assert out["m"] == REST_NOTHING_WAITING


def test_a_rest_shares_a_slot_only_when_others_want_it() -> None:
    # h1 rests while h2 and h3 want peak: without it one of them would wait for a slot.
    plan = _plan(
        _decision("h1", False, Reason.MAX_PEAK_TIME, "ui"),
        _decision("h2", True, Reason.ATTENTION, "ui"),
        _decision("h3", True, Reason.ATTENTION, "ui"),
    )
    assert causes(plan, SERVICES, PODS)["h1"] == REST_OTHERS_WAITING
    alone = _plan(
        _decision("h1", False, Reason.MAX_PEAK_TIME, "ui"), _decision("h2", True, Reason.ATTENTION, "ui")
    )
    assert causes(alone, SERVICES, PODS)["h1"] == REST_NOTHING_WAITING


def test_a_rest_shares_node_room_only_when_the_node_lacks_it() -> None:
    m = SERVICES["m"]
    base = m.baseline
    pods = {
        ("sim", pod): PodDecision(("sim", pod), Level.BASELINE, Reason.MAX_PEAK_TIME, _target(base), False)
        for pod in PODS["m"]
    }
    plan = _plan(_decision("m", False, Reason.MAX_PEAK_TIME, "ui", pods=(2, 0)), pods=pods)
    used = Amount(2 * (base.cpu or 0), 2 * (base.memory or 0))
    roomy = Amount((used.cpu or 0) + 2 * m.peak_cpu_m, (used.memory or 0) + 2 * m.peak_memory)
    tight = Amount((used.cpu or 0) + 100, roomy.memory)  # 100m free: not enough for 2 x 100m extra
    assert causes(plan, SERVICES, PODS, node_room=roomy)["m"] == REST_NOTHING_WAITING
    assert causes(plan, SERVICES, PODS, node_room=tight)["m"] == REST_OTHERS_WAITING


def test_a_slot_held_by_a_prediction() -> None:
    plan = _plan(
        _decision("h1", True, Reason.ATTENTION, PREDICTOR),
        _decision("h2", True, Reason.ATTENTION, "ui"),
        _decision("h3", False, Reason.HIGH_PRIORITY_LIMIT, "ui"),
    )
    assert causes(plan, SERVICES, PODS)["h3"] == PREDICTION_HELD_SLOT


def test_node_room_is_blamed_on_a_prediction_only_where_its_room_would_have_been_enough() -> None:
    # m (2 pods, 100m extra each) waits for node room while h1 is at peak on a prediction (100m extra).
    m, h1 = SERVICES["m"], SERVICES["h1"]
    pods = {
        ("sim", pod): PodDecision(
            ("sim", pod), Level.BASELINE, Reason.NODE_CAPACITY, _target(m.baseline), False
        )
        for pod in PODS["m"]
    }
    pods[("sim", "h1-0")] = PodDecision(("sim", "h1-0"), Level.PEAK, Reason.ATTENTION, _target(h1.peak), True)
    plan = _plan(
        _decision("m", True, Reason.ATTENTION, "ui", pods=(2, 0)),
        _decision("h1", True, Reason.ATTENTION, PREDICTOR),
        pods=pods,
    )
    planned = 2 * (m.baseline.cpu or 0) + h1.peak_cpu_m
    big = 10 * GIB
    # 100m free + h1's 100m = m's 200m: the prediction's room would have served the user.
    assert causes(plan, SERVICES, PODS, node_room=Amount(planned + 100, big))["m"] == PREDICTION_HELD_SLOT
    # Nothing free: even h1's room would not have fitted m, so the node, not the guess, made it wait.
    assert causes(plan, SERVICES, PODS, node_room=Amount(planned, big))["m"] == str(Reason.NODE_CAPACITY)


def test_a_pod_held_at_baseline_names_its_pod_reason() -> None:
    held = PodDecision(("sim", "m-1"), Level.BASELINE, Reason.NODE_CAPACITY, (), False)
    plan = _plan(_decision("m", True, Reason.ATTENTION, "ui", pods=(2, 1)), pods={held.pod: held})
    assert causes(plan, SERVICES, PODS)["m"] == str(Reason.NODE_CAPACITY)
    assert cause_label(str(Reason.NODE_CAPACITY)) == "node room"


def test_an_unknown_planner_reason_is_kept_not_a_crash() -> None:
    d = _decision("m", False, Reason.IDLE)
    d = ServiceDecision(d.key, True, False, "PredictionThrottled", "", Memory())  # type: ignore[arg-type]
    assert causes(_plan(d), SERVICES, PODS)["m"] == "PredictionThrottled"
    assert cause_label("PredictionThrottled") == "other: PredictionThrottled"


def test_every_violation_second_has_a_cause_under_contention() -> None:
    # Three high-priority services attended at once (two slots) and a long stay past maxPeakSeconds.
    services = (
        SimService("x", 1000, GIB, priority="high"),
        SimService("y", 1000, GIB, priority="high"),
        SimService("z", 1000, GIB, priority="very_high"),
    )
    events = (
        Attention(0.0, "x", 1.0, 1200.0, "u1"),
        Attention(10.0, "y", 1.0, 300.0, "u2"),
        Attention(20.0, "z", 1.0, 300.0, "u3"),
    )
    trace = Trace(services, events, 1500.0)
    r = account(trace, run_heady(trace, prediction=False))
    by = r["violation_seconds_by_cause"]
    assert str(Reason.HIGH_PRIORITY_LIMIT) in by
    assert sum(by.values()) == pytest.approx(r["sla_violation_seconds"], abs=0.5)


# ---------------------------------------------------------------- generated browsing, reports, sweep


def test_browsing_profile_is_seeded_sticky_and_has_background_tabs() -> None:
    shape = BrowsingShape(seed=3, hours=2.0, hosts=80)
    trace = generate_browsing_trace(shape)
    assert trace == generate_browsing_trace(shape)
    info = describe(trace)
    assert info["users"] > 50
    assert info["busiest_service_duty_pct"] > 50  # a few sections hold attention most of the time
    assert info["longest_attention_s"] > 1800
    assert info["not_demand_rows"] > 0


def test_report_text_follows_the_baseline_ratio(tmp_path: Path) -> None:
    half = with_baseline_ratio(TINY, 0.5)
    _, result = measure(half, Knobs(), quick=True)
    text = markdown(result)
    assert "baseline = 50% of peak" in text
    assert "no policy can save more than 50.0%" in text
    assert "90%" not in text and "10%" not in text
    data = sweep(TINY, Knobs(), (0.5, 0.9), tmp_path, "tiny", quick=True, keep=(0.5,))
    assert [p["ratio"] for p in data["points"]] == [0.5, 0.9]
    savings = [p["policies"]["static-baseline"]["cpu_saving_pct"] for p in data["points"]]
    assert savings == pytest.approx([50, 10])
    for name in ("tiny-sweep.md", "tiny-sweep.png", "tiny-sweep.json", "tiny-r50.md", "tiny-r50.png"):
        assert (tmp_path / name).stat().st_size > 0


def test_run_all_measures_the_reference_and_what_was_asked() -> None:
    runs, results = run_all(TINY, Knobs(), policies=("oracle", "static-baseline"))
    assert [r.policy for r in runs] == ["always-peak", "oracle", "static-baseline"]
    assert results[1]["share_of_oracle_saving_pct"] == pytest.approx(100)


def test_a_sweep_re_prices_heady_only_where_that_is_what_a_simulation_gives() -> None:
    trace = Trace(
        (SimService("a", 1000, GIB, replicas=2), SimService("b", 2000, 2 * GIB, priority="high")),
        (
            Attention(10.0, "a", 1.0, 100.0, "u"),
            Attention(50.0, "b", 0.7, 1000.0, "v"),  # past maxPeakSeconds
            Attention(300.0, "a", 1.0, 20.0, "u"),
        ),
        1200.0,
    )
    points = sweep_runs(trace, Knobs(), (0.5, 0.7, 0.9), (0.5, 0.9))
    assert [p.heady for p in points] == [
        "simulated",
        "re-priced from 0.5 (heady-auto simulated)",  # its ratio follows the recommendation
        "simulated",
    ]
    _, direct = run_all(with_baseline_ratio(trace, 0.7), Knobs())
    repriced = {r["policy"]: r for r in points[1].results}
    for r in direct:
        got = repriced[r["policy"]]
        assert got["cpu_core_seconds"] == pytest.approx(r["cpu_core_seconds"])
        assert got["sla_violation_seconds"] == pytest.approx(r["sla_violation_seconds"])
        assert got["resizes"] == r["resizes"]
    # A node short of room lets the ratio change decisions: every ratio is simulated then.
    tight = sweep_runs(trace, Knobs(node_room=0.5), (0.5, 0.7, 0.9), (0.5, 0.9))
    assert [p.heady for p in tight] == ["simulated"] * 3


def test_the_resize_delay_is_a_measured_distribution_or_a_constant() -> None:
    import statistics

    from benchmarks.simulate import _resize_delay
    from benchmarks.simulation import MEASURED_RESIZE_DELAY, ResizeDelay

    draw = MEASURED_RESIZE_DELAY.sampler()
    xs = sorted(draw(f"pod-{i % 7}") for i in range(20_000))
    assert statistics.median(xs) == pytest.approx(MEASURED_RESIZE_DELAY.p50, rel=0.05)
    assert xs[int(0.99 * len(xs))] == pytest.approx(MEASURED_RESIZE_DELAY.p99, rel=0.1)
    assert statistics.fmean(xs) == pytest.approx(MEASURED_RESIZE_DELAY.mean, rel=0.05)
    one, other = MEASURED_RESIZE_DELAY.sampler(), MEASURED_RESIZE_DELAY.sampler()
    first = [one("a"), one("a")]
    other("b")  # another pod's resize in between does not shift pod a's delays
    assert [other("a"), other("a")] == first, "seeded per pod: runs repeat, policies compare"
    one = ResizeDelay.constant(1.0)
    assert one.sampler()("p") == 1.0 and one.mean == 1.0 and one.text() == "1 s"
    with pytest.raises(ValueError, match="p50 <= p99"):
        ResizeDelay(0.5, 0.1)
    assert _resize_delay("measured") is MEASURED_RESIZE_DELAY
    assert _resize_delay("2") == ResizeDelay.constant(2.0)
    assert (_resize_delay("0.1,0.4").p50, _resize_delay("0.1,0.4").p99) == (0.1, 0.4)


def test_heady_auto_follows_the_recommendation_and_is_simulated_not_re_priced() -> None:
    # 3 s visits every 100 s: each would wait for a resize, so Auto stops resizing the service.
    events = tuple(Attention(100.0 * i, "a", 1.0, 3.0, "u") for i in range(40))
    trace = Trace((SimService("a", 1000, GIB),), events, 4000.0)
    runs, results = run_all(trace, Knobs(), ("heady-predictive", "heady-auto"))
    by = {r["policy"]: r for r in results}
    assert by["heady-auto"]["sla_violation_seconds"] < by["heady-predictive"]["sla_violation_seconds"]
    assert by["heady-auto"]["cpu_core_seconds"] > by["heady-predictive"]["cpu_core_seconds"]
    auto = next(r for r in runs if r.policy == "heady-auto")
    assert auto.steps["a-0"][-1].cpu_m == 1000, "baseline raised to peak: ratio 1"


def test_the_suite_summary_reports_delay_sensitivity_and_the_worst_seeded_gap(tmp_path: Path) -> None:
    from benchmarks.simulate import robustness, sensitivity, suite_markdown

    trace = generate_trace(TraceShape(seed=3, hours=0.5, users=3, spikes=0))
    _, result = measure(trace, Knobs(), quick=True)
    delays = sensitivity(trace, Knobs(), (0.5, 2.0))
    assert [d["delay_s"] for d in delays] == [0.5, 2.0]
    slow = delays[1]["policies"]["heady-reactive"]["sla_violation_seconds"]
    assert slow > delays[0]["policies"]["heady-reactive"]["sla_violation_seconds"], (
        "a slower resize costs more"
    )
    spread = robustness(trace, Knobs(), (1.0, 0.6))
    assert [r["node_room"] for r in spread] == [1.0, 0.6]
    text = suite_markdown([(trace.name, 0.9, result)], "now", [(trace.name, 0.9, delays)], spread)
    assert "## Sensitivity to the actuation delay" in text and "| 2 s |" in text
    worst = max(r["gap_points"] for r in spread)
    assert f"Worst: {worst:+.3f}" in text
    assert "heady-predictive SLA % < heady-reactive's (generated workday)" in text
