"""The simulator's multi-day profiles and time-of-day recurrence run through them (issue 16)."""

from __future__ import annotations

from benchmarks.simulation import (
    InvocationShape,
    WeekShape,
    account,
    attention_by_service,
    generate_invocation_trace,
    generate_week_trace,
    run_heady,
    transitions,
)


def test_the_week_repeats_users_habits_day_after_day() -> None:
    shape = WeekShape(days=3, hours=1.0, users=4, spikes=0, habits=1, skip_probability=0.0, jitter_s=0.0)
    trace = generate_week_trace(shape)
    assert trace.duration == 2 * 86_400 + 3600
    assert generate_week_trace(shape) == trace, "seeded"
    per_day = [
        {(e.user, e.service) for e in trace.events if d * 86_400 <= e.start < (d + 1) * 86_400}
        for d in range(3)
    ]
    assert per_day[0] & per_day[1] & per_day[2], "the habits come back every day"


def test_the_invocation_trace_has_no_users_and_scheduled_apps_recur() -> None:
    trace = generate_invocation_trace(InvocationShape(days=3, apps=4, scheduled=2, run_probability=1.0))
    assert transitions(trace) == 0 and all(not e.user for e in trace.events)
    starts = {s: [a for a, _ in ivs] for s, ivs in attention_by_service(trace).items()}
    first = starts["app-00"][0] % 86_400
    assert any(abs(t % 86_400 - first) <= 240 for t in starts["app-00"][1:]), "same time, another day"


def test_recurrence_pre_escalates_habits_and_costs_no_sla() -> None:
    trace = generate_week_trace(WeekShape(days=4, hours=1.0, users=6, spikes=1))
    markov = run_heady(trace, True, prediction_recurrence=False)
    both = run_heady(trace, True, prediction_recurrence=True)
    a, b = account(trace, markov), account(trace, both)
    assert b["predictions"]["hits"] > a["predictions"]["hits"], "the habits were foreseen"
    assert b["sla_violation_pct"] <= a["sla_violation_pct"]
    assert b["cpu_core_seconds"] >= a["cpu_core_seconds"], "pre-escalation is not free"
