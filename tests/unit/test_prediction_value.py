"""Prediction that earns its place, cooldowns from revisits, and recommendations (issue 16)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from heady_operator.config import Settings
from heady_operator.planning.levels import Level
from heady_operator.planning.prediction import History, TransitionModel, cooldown_from_revisits
from heady_operator.planning.recommend import Tuning, learned_cooldown, recommend
from heady_operator.planning.status import recommendation_status
from tests import objects
from tests.unit.test_prediction import T0, B, Clock, _signal, _state

A = ("ns", "a")

# ------------------------------------------------------------------ online precision


def test_shadow_predictions_are_counted_apart_from_issued_ones() -> None:
    m = TransitionModel()
    m.expect("u", B, T0 + timedelta(seconds=20), shadow=True)
    assert m.observe("u", B, T0 + timedelta(seconds=5)) == "shadow_hit"
    m.expect("v", B, T0 + timedelta(seconds=20), shadow=True)
    assert m.expire(T0 + timedelta(seconds=30)) == ["shadow_miss"]
    m.expect("u", B, T0 + timedelta(seconds=60))
    assert m.observe("u", B, T0 + timedelta(seconds=40)) == "hit"
    assert (m.hits, m.misses) == ({"ns/b": 1}, {})
    assert (m.shadow_hits, m.shadow_misses) == ({"ns/b": 1}, {"ns/b": 1})
    # Both count for the online precision: the shadow score is what lifts a throttle.
    assert m.precision(B) == (2 / 3, 3)
    stats = m.stats_for(B)
    assert (stats["hits"], stats["misses"], stats["shadowHits"], stats["shadowMisses"]) == (1, 0, 1, 1)
    again = TransitionModel.from_json(m.to_json())
    assert (again.shadow_hits, again.shadow_misses, again.hits) == (m.shadow_hits, m.shadow_misses, m.hits)
    # A shadow prediction issued later (the throttle lifted) counts as issued.
    m.expect("w", B, T0 + timedelta(seconds=90), shadow=True)
    m.expect("w", B, T0 + timedelta(seconds=90))
    assert m.observe("w", B, T0 + timedelta(seconds=80)) == "hit"


def test_precision_is_hits_over_outcomes_and_old_outcomes_fade() -> None:
    m = TransitionModel(window=10)
    for i in range(8):
        m.expect("u", B, T0 + timedelta(seconds=20))
        m.expire(T0 + timedelta(seconds=30 + i))  # misses
    assert m.precision(B) == (0.0, 8)
    assert m.throttled(B, min_precision=0.5, min_outcomes=5)
    assert not m.throttled(B, min_precision=0.5, min_outcomes=10), "too few outcomes to judge"
    for _ in range(12):
        m.expect("u", B, T0 + timedelta(seconds=100))
        assert m.observe("u", B, T0 + timedelta(seconds=50)) == "hit"
    precision, total = m.precision(B)
    assert precision is not None and precision > 0.5 and total <= 10, "misses halved away as hits came"
    assert not m.throttled(B, 0.5, 5)
    stats = m.stats_for(B, 0.5, 5)
    assert stats["throttled"] is False and stats["precision"] == round(precision, 3)


def _walk(state: Any, clock: Clock, rounds: int, *, goes_to_b: bool, start: int = 0) -> None:
    """A user goes to a, then (or not) to b, once every 30 s (a prediction's TTL is 20 s)."""
    for i in range(start, start + rounds):
        clock.now = T0 + timedelta(seconds=30 * i)
        state.on_signal("ADDED", _signal(f"sa{i}", "a", "u", clock.now))
        clock.now += timedelta(seconds=1)
        state.on_signal(
            "ADDED", _signal(f"sb{i}" if goes_to_b else f"sc{i}", "b" if goes_to_b else "c", "u", clock.now)
        )
        clock.now += timedelta(seconds=25)
        state.expire(clock.now)


def test_predictions_that_do_not_pay_are_throttled_then_resumed_when_they_would() -> None:
    clock = Clock()
    cfg = Settings(prediction_min_observations=3, prediction_min_outcomes=4, prediction_min_precision=0.5)
    state = _state(cfg, clock)
    _walk(state, clock, 6, goes_to_b=True)  # a -> b learned, predictions of b hit
    assert not state.model.throttled(B, 0.5, 4)
    # The habit changes: the user goes a -> c, but a -> b is still the likeliest for a while.
    state.model.counts["ns/a"] = {"ns/b": 50}
    _walk(state, clock, 12, goes_to_b=False, start=6)
    assert state.model.throttled(B, 0.5, 4), state.model.recent
    # Throttled: attention on a makes no predictor signal, yet the guess is still scored.
    before = {k: list(v) for k, v in state.model.recent.items()}
    clock.now += timedelta(seconds=5)
    state.on_signal("ADDED", _signal("sa-x", "a", "u", clock.now))
    assert not any(
        e.path == "predictor" and e.signal and e.signal.end > clock.now for e in state.signals.values()
    )
    state.planner.plan(clock.now)
    assert state.planner.pod_decisions[("ns", "b-0")].level is Level.BASELINE
    clock.now += timedelta(seconds=1)
    state.on_signal("ADDED", _signal("sb-x", "b", "u", clock.now))  # the shadow guess was right
    assert state.model.recent["ns/b"][0] == before["ns/b"][0] + 1
    # Back to a -> b: shadow hits lift the precision and predictions resume.
    _walk(state, clock, 12, goes_to_b=True, start=40)
    assert not state.model.throttled(B, 0.5, 4)
    clock.now += timedelta(seconds=5)
    state.on_signal("ADDED", _signal("sa-y", "a", "u", clock.now))
    assert any(
        e.path == "predictor" and e.signal and e.signal.end > clock.now for e in state.signals.values()
    )


# ------------------------------------------------------------------ revisits and cooldowns


def test_attention_episodes_revisits_and_duty_cycle() -> None:
    m = TransitionModel()
    assert m.attend(A, T0, T0 + timedelta(seconds=10)) is None  # the first visit
    assert m.attend(A, T0 + timedelta(seconds=5), T0 + timedelta(seconds=15)) is None  # a heartbeat
    assert m.attend(A, T0 + timedelta(seconds=45), T0 + timedelta(seconds=55)) == 30.0  # back after 30 s
    h = m.history(A, T0 + timedelta(seconds=100))
    assert h.revisits == (30.0,) and h.episodes == 2 and h.attended_seconds == 25.0
    assert h.duty_cycle == 0.25
    assert m.history(A, T0 + timedelta(seconds=50)).attended_seconds == 20.0, "the future is not observed"
    again = TransitionModel.from_json(m.to_json())
    assert again.revisits == m.revisits and again.attended == m.attended and not again.dirty


@pytest.mark.parametrize(
    ("gaps", "wait_cost", "expected"),
    [
        ([], 60.0, 5),  # nothing learned: the lower bound
        ([10.0] * 100, 60.0, 10),  # users come back within 10 s: hold through it
        ([10.0] * 100, 5.0, 5),  # ... unless a wait costs less than the hold
        ([1000.0] * 100, 60.0, 5),  # long absences: relax at once
        ([20.0] * 50 + [1000.0] * 50, 60.0, 20),  # cover the short returns, let the long ones go
        ([20.0] * 10 + [1000.0] * 90, 60.0, 5),  # ... unless holding in vain for the rest costs more
        ([500.0] * 100, 1000.0, 5),  # beyond the upper bound: holding 300 s in vain does not pay
    ],
)
def test_cooldown_costs_least_over_the_revisits(gaps: list[float], wait_cost: float, expected: int) -> None:
    assert cooldown_from_revisits(gaps, wait_cost, 5, 300) == expected


def test_a_learned_cooldown_needs_enough_revisits_and_stays_within_max_peak() -> None:
    tuning = Tuning(min_revisits=3)
    few = History((40.0, 50.0), 3, 100.0, 1000.0)
    assert learned_cooldown(few, tuning, 30, 900) == 30
    many = History((40.0, 50.0, 60.0), 4, 100.0, 1000.0)
    assert learned_cooldown(many, tuning, 30, 900) == 60
    assert learned_cooldown(many, tuning, 30, 45) == 45
    assert learned_cooldown(many, Tuning(learn_cooldown=False, min_revisits=3), 30, 900) == 30


def test_the_cluster_state_applies_the_learned_cooldown() -> None:
    clock = Clock()
    state = _state(Settings(cooldown_min_revisits=3, cooldown_min_seconds=1, prediction_enabled=False), clock)
    assert state.planner.services[A].cooldown_seconds == 30
    for i in range(5):  # 5 s visits, back after 45 s each time
        clock.now = T0 + timedelta(seconds=50 * i)
        state.on_signal("ADDED", _signal(f"v{i}", "a", "u", clock.now))
    assert state.model.revisits["ns/a"] == [45.0] * 4
    assert state.planner.services[A].cooldown_seconds == 45


# ------------------------------------------------------------------ recommendations


TUNING = Tuning(min_revisits=3, min_observed_seconds=600)


def test_no_recommendation_before_enough_was_seen() -> None:
    assert recommend(History((), 0, 0.0, 0.0), TUNING, 0.9, 30, 900) is None
    assert recommend(History((), 1, 10.0, 60.0), TUNING, 0.9, 30, 900) is None


def test_short_frequent_visits_that_would_each_wait_for_a_resize_stop_resizing() -> None:
    # 3 s visits every ~100 s: no cooldown worth holding covers the 97 s gaps, so every visit waits
    # for a resize: 0.5 s of each 3 s below peak, far over the 1% budget.
    rec = recommend(History((97.0,) * 20, 21, 63.0, 2_100.0), TUNING, 0.9, 30, 900)
    assert rec is not None
    assert rec.baseline_ratio == 1.0 and rec.expected_saving == 0.0 and rec.expected_violation == 0.0
    assert "budget 1%" in rec.basis
    # Two returns are too few to judge a service by: it keeps its ratio until there are enough.
    early = recommend(History((97.0, 97.0), 3, 9.0, 700.0), TUNING, 0.9, 30, 900)
    assert early is not None and early.baseline_ratio == 0.9 and early.expected_violation > 0.01


def test_a_busy_service_keeps_resizing_when_its_returns_are_covered() -> None:
    # At peak 95% of the time, but the 5 s absences are held through: resizing costs one wait,
    # and the quiet 5% still saves.
    rec = recommend(History((5.0, 5.0, 5.0), 4, 9_500.0, 10_000.0), TUNING, 0.9, 30, 900)
    assert rec is not None
    assert rec.baseline_ratio == 0.9 and rec.expected_violation < TUNING.sla_budget
    assert rec.expected_saving > 0


def test_a_rarely_attended_service_keeps_its_ratio_without_usage_and_follows_usage_with_it() -> None:
    history = History((600.0, 1200.0, 900.0, 3000.0), 5, 500.0, 36_000.0)
    rec = recommend(history, TUNING, 0.9, 30, 900)
    assert rec is not None and rec.baseline_ratio == 0.9
    assert rec.duty_cycle == round(500 / 36_000, 4)
    # Every revisit is longer than any cooldown the target allows: one actuation delay per arrival.
    assert rec.expected_violation == round(5 * TUNING.actuation_delay_seconds / 500.0, 4)
    assert rec.expected_saving == pytest.approx(
        0.1 * (1 - 500 / 36_000 - 4 * rec.cooldown_seconds / 36_000), abs=1e-3
    )
    used = recommend(history, TUNING, 0.9, 30, 900, utilization=0.4)  # 36% of peak in use
    assert used is not None and used.baseline_ratio == 0.5, "0.36 x 1.25 = 0.45, within the 0.5 floor"
    assert used.expected_saving > rec.expected_saving
    busy = recommend(history, TUNING, 0.9, 30, 900, utilization=0.7)
    assert busy is not None and busy.baseline_ratio == 0.8  # 0.63 x 1.25 = 0.79, up to a 0.05 step


def test_recommendation_status_has_a_one_line_summary() -> None:
    rec = recommend(History((600.0, 1200.0, 900.0), 4, 500.0, 36_000.0), TUNING, 0.9, 30, 900)
    status = recommendation_status(rec)
    assert status is not None
    assert status["baselineRatio"] == 0.9 and status["summary"].startswith("ratio 0.9, cooldown ")
    assert recommendation_status(None) is None


def test_baseline_ratio_mode_auto_applies_the_recommendation_within_bounds() -> None:
    clock = Clock()
    state = _state(Settings(prediction_enabled=False), clock)
    spec = {"workload": {"name": "a"}, "baselineRatio": 0.8, "baselineRatioMode": "Auto"}
    state.on_service("MODIFIED", objects.headyservice("ns", "a", spec))
    assert state.planner.services[A].baseline_ratio == 0.8, "no data yet: baselineRatio"
    for i in range(30):  # 3 s visits every 100 s for 50 min: each would wait for a resize
        clock.now = T0 + timedelta(seconds=100 * i)
        state.on_signal(
            "ADDED", objects.signal("ns", f"v{i}", {"services": ["a"], "ttlSeconds": 3}, clock.now)
        )
    assert state.planner.services[A].baseline_ratio == 1.0, "resizing would break the SLA budget"
    rec = state.recommendation(A)
    assert rec is not None and rec.baseline_ratio == 1.0
    # Bounded by the settings.
    capped = _state(Settings(prediction_enabled=False, auto_baseline_min_ratio=0.85), Clock())
    capped.on_service("MODIFIED", objects.headyservice("ns", "a", spec))
    assert capped.planner.services[A].baseline_ratio == 0.85


def test_history_ignores_predictions_and_weak_attention() -> None:
    clock = Clock()
    state = _state(Settings(prediction_enabled=False), clock)
    weak = {"services": ["a"], "ttlSeconds": 10, "intensity": 0.05}
    state.on_signal("ADDED", objects.signal("ns", "weak", weak, clock.now))
    assert "ns/a" not in state.model.episodes
    state.on_signal("ADDED", objects.signal("ns", "real", {"services": ["a"], "ttlSeconds": 10}, clock.now))
    assert state.model.episodes["ns/a"] == 1


def test_outcomes_scored_from_elsewhere_keep_shadow_apart() -> None:
    m = TransitionModel()
    m.score(B, hit=True)
    m.score(B, hit=False, shadow=True)
    m.score(B, hit=True, shadow=True)
    assert (m.hits, m.misses) == ({"ns/b": 1}, {})
    assert (m.shadow_hits, m.shadow_misses) == ({"ns/b": 1}, {"ns/b": 1})
    assert m.precision(B) == (2 / 3, 3)
