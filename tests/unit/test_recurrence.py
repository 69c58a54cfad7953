"""Time-of-day recurrence (planning/recurrence.py) and its wiring in the cluster state (issue 16)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from heady_operator.config import Settings
from heady_operator.planning.levels import Level
from heady_operator.planning.prediction import TransitionModel
from heady_operator.planning.recurrence import MAX_ENTRIES, Judge, Recurrence
from tests import objects
from tests.unit.test_prediction import Clock, _state

MIDNIGHT = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)  # a Monday
A = "ns/a"
JUDGE = Judge(3, 5, 0)  # k=3 of n=5 observed days, no spread


def at(day: int, hour: float) -> datetime:
    return MIDNIGHT + timedelta(days=day, hours=hour)


def visit(rec: Recurrence, service: str, start: datetime, minutes: float = 5) -> bool:
    return rec.observe(service, start, start + timedelta(minutes=minutes))


def habit(days: int, hour: float = 9.0, skip: tuple[int, ...] = ()) -> Recurrence:
    rec = Recurrence()
    for d in range(days):
        if d not in skip:
            visit(rec, A, at(d, hour))
        visit(rec, A, at(d, 15.0))  # the service is in use every day, not only at the habit
    return rec


# ------------------------------------------------------------------ learning and judging


def test_episodes_not_heartbeats_are_starts() -> None:
    rec = Recurrence()
    assert visit(rec, A, at(0, 9.0), 1)
    assert not rec.observe(A, at(0, 9.0) + timedelta(minutes=1), at(0, 9.0) + timedelta(minutes=2))
    assert visit(rec, A, at(0, 9.5), 1), "back after a gap: a new episode"
    assert rec.habits[A].starts == {108: 1, 114: 1}  # 09:00 and 09:30 in 5-minute buckets


def test_a_bucket_qualifies_on_k_of_the_last_n_observed_days() -> None:
    rec = habit(4)  # days 0..3 at 09:00
    assert rec.due(at(4, 9.0) - timedelta(seconds=30), 30, JUDGE)[0].service == A
    assert rec.due(at(4, 9.0) - timedelta(seconds=31), 30, JUDGE) == [], "not yet within the lead"
    due = rec.due(at(4, 9.0), 30, JUDGE)
    assert len(due) == 1 and due[0].until == at(4, 9.0) + timedelta(minutes=5) and due[0].share == 1.0
    assert rec.due(at(4, 10.0), 30, JUDGE) == []
    assert habit(2).due(at(2, 9.0), 30, JUDGE) == [], "2 days are fewer than k = 3"
    # Skipped days count against it: 2 of the last 5 observed days is not enough.
    assert habit(6, skip=(1, 3, 4)).due(at(6, 9.0), 30, JUDGE) == []
    assert habit(6, skip=(1, 4)).due(at(6, 9.0), 30, JUDGE)[0].share == 0.6


def test_days_without_any_attention_do_not_count() -> None:
    rec = Recurrence()
    for d in (0, 1, 4, 7, 8):  # weekends and an outage in between: 5 observed days of 9
        visit(rec, A, at(d, 9.0))
    assert rec.due(at(9, 9.0), 30, Judge(5, 5, 0))[0].share == 1.0


def test_jitter_within_the_spread_still_counts() -> None:
    rec = Recurrence()
    for d, minute in enumerate((0, 6, -4, 3)):
        visit(rec, A, at(d, 9.0) + timedelta(minutes=minute))
    assert rec.due(at(4, 9.0), 30, Judge(3, 5, 0)) == []
    assert [d.service for d in rec.due(at(4, 9.0), 30, Judge(3, 5, 1))] == [A]


def test_next_due_is_the_next_window_or_the_next_day() -> None:
    rec = habit(4)
    assert rec.next_due(at(4, 8.0), 30, JUDGE) == at(4, 9.0) - timedelta(seconds=30)
    after = rec.next_due(at(4, 9.5), 30, JUDGE)
    assert after == at(4, 15.0) - timedelta(seconds=30)  # 15:00 recurs too
    assert rec.next_due(at(4, 16.0), 30, JUDGE) == at(5, 0.0) - timedelta(seconds=30), "judged again tomorrow"
    assert Recurrence().next_due(at(0, 1.0), 30, JUDGE) == at(1, 0.0) - timedelta(seconds=30)


def test_outcomes_one_per_habit_however_many_buckets() -> None:
    rec = Recurrence()
    assert rec.expect(A, at(0, 9.0), at(0, 9.1), shadow=False)
    assert not rec.expect(A, at(0, 9.05), at(0, 9.2), shadow=False), "an extension, not a second guess"
    assert rec.expire(at(0, 9.15)) == []
    assert rec.confirm(A, at(0, 9.15)) is not None
    assert rec.confirm(A, at(0, 9.15)) is None, "confirmed once"
    rec.expect(A, at(0, 10.0), at(0, 10.1), shadow=True)
    assert rec.confirm(A, at(0, 9.99)) is None, "before the window"
    missed = rec.expire(at(0, 10.2))
    assert [(s, e.shadow) for s, e in missed] == [(A, True)]


# ------------------------------------------------------------------ the ConfigMap


def test_round_trips_inside_the_transition_model() -> None:
    m = TransitionModel()
    m.recurrence = habit(3)
    text = m.to_json()
    again = TransitionModel.from_json(text)
    assert again.recurrence.habits == m.recurrence.habits and not again.dirty
    assert json.loads(text)["recurrence"]["bucketSeconds"] == 300


def test_a_model_from_before_recurrence_loads_unchanged() -> None:
    old = TransitionModel()
    old.observe("u", ("ns", "a"), MIDNIGHT)
    old.observe("u", ("ns", "b"), MIDNIGHT)
    text = old.to_json()
    assert "recurrence" not in json.loads(text)
    again = TransitionModel.from_json(text)
    assert again.counts == old.counts and again.recurrence.habits == {} and not again.dirty


@pytest.mark.parametrize(
    "bad",
    [
        "nonsense",
        [],
        {"bucketSeconds": 7, "maxDays": 14, "services": {}},
        {"bucketSeconds": 300, "maxDays": 99, "services": {}},
        {"bucketSeconds": 300, "maxDays": 14, "services": {"no-slash": {"day": 1, "seen": 1, "starts": {}}}},
        {"bucketSeconds": 300, "maxDays": 14, "services": {A: {"day": -1, "seen": 1, "starts": {}}}},
        {"bucketSeconds": 300, "maxDays": 14, "services": {A: {"day": 1, "seen": 2**20, "starts": {}}}},
        {"bucketSeconds": 300, "maxDays": 14, "services": {A: {"day": 1, "seen": 1, "starts": {"999": 1}}}},
        {"bucketSeconds": 300, "maxDays": 14, "services": {A: {"day": 1, "seen": 1, "starts": {"08": 1}}}},
        {"bucketSeconds": 300, "maxDays": 14, "services": {A: {"day": 1, "seen": 1, "starts": {"8": 1.5}}}},
        {"bucketSeconds": 300, "maxDays": 14, "services": {A: {"day": 1, "seen": 1, "starts": []}}},
    ],
)
def test_bad_recurrence_data_is_dropped_never_raised(bad: Any) -> None:
    text = json.dumps({"version": 2, "recurrence": bad})
    model = TransitionModel.from_json(text)
    assert model.dirty, "saved again without what was dropped"
    for name, h in model.recurrence.habits.items():
        assert "/" in name and all(0 <= b < 288 for b in h.starts)


def test_the_saved_size_is_bounded() -> None:
    rec = Recurrence(max_entries=1000)
    for i in range(20):
        for b in range(0, 288):
            visit(rec, f"ns/s{i}", MIDNIGHT + timedelta(minutes=5 * b), 1)
    data = rec.to_data()
    assert sum(len(s["starts"]) for s in data["services"].values()) <= 1000
    assert MAX_ENTRIES * 16 < 1_048_576 // 2, "at most half the ConfigMap"


def test_a_new_bucket_size_forgets_what_cannot_be_mapped() -> None:
    rec = habit(3)
    rec.configure(300, 28)
    assert rec.habits
    rec.configure(600, 28)
    assert rec.habits == {} and rec.dirty
    with pytest.raises(ValueError, match="divide"):
        rec.configure(700, 28)


def test_the_bucket_setting_must_divide_a_day() -> None:
    assert Settings(recurrence_bucket_seconds=900).recurrence_bucket_seconds == 900
    with pytest.raises(ValueError, match="divide a day"):
        Settings(recurrence_bucket_seconds=700)


# ------------------------------------------------------------------ through the cluster state


def _signal(name: str, svc: str, user: str | None, when: datetime, ttl: int) -> Any:
    spec: dict[str, Any] = {"services": [svc], "ttlSeconds": ttl, "source": "ui"}
    if user:
        spec["user"] = user
    return objects.signal("ns", name, spec, when)


def _days_of_habit(state: Any, clock: Clock, days: int) -> None:
    """Someone opens b every day at 09:00 for five minutes (no user: an anonymous trace)."""
    for d in range(days):
        clock.now = at(d, 9.0)
        state.on_signal("ADDED", _signal(f"b{d}", "b", None, clock.now, ttl=300))
        state.expire(clock.now)
        clock.now = at(d, 12.0)
        state.expire(clock.now)


def _settings(**extra: Any) -> Settings:
    base: dict[str, Any] = {
        "prediction_recurrence": True,
        "recurrence_min_days": 3,
        "recurrence_days": 5,
        "recurrence_spread_buckets": 0,
    }
    return Settings(**{**base, **extra})


def test_the_cluster_state_pre_escalates_a_habit_and_wakes_for_it() -> None:
    clock = Clock()
    state = _state(_settings(), clock)
    _days_of_habit(state, clock, 3)
    # The planner is told when the next window opens: the loop (and the simulator) wake then.
    clock.now = at(3, 8.0)
    state.expire(clock.now)
    state.planner.plan(clock.now)
    assert state.planner.next_deadline() == at(3, 9.0) - timedelta(seconds=30)
    clock.now = at(3, 9.0) - timedelta(seconds=30)
    state.expire(clock.now)
    state.planner.plan(clock.now)
    assert state.planner.pod_decisions[("ns", "b-0")].level is Level.PEAK
    sig = next(e.signal for e in state.signals.values() if e.path == "predictor")
    assert sig is not None and sig.end == at(3, 9.0) + timedelta(minutes=5) and sig.user is None
    # The attention comes: a hit, in the same precision as the transition model's.
    clock.now = at(3, 9.0) + timedelta(seconds=20)
    state.on_signal("ADDED", _signal("b3", "b", None, clock.now, ttl=300))
    assert state.model.hits.get("ns/b") == 1 and state.model.recent["ns/b"] == [1, 0]


def test_a_habit_that_stops_is_scored_as_misses_and_throttled() -> None:
    clock = Clock()
    state = _state(_settings(prediction_min_outcomes=2, prediction_min_precision=0.5), clock)
    _days_of_habit(state, clock, 3)
    for d in (3, 4, 5):  # b is used at 15:00 instead
        clock.now = at(d, 8.0)
        state.expire(clock.now)
        clock.now = at(d, 9.0) - timedelta(seconds=30)
        state.expire(clock.now)
        clock.now = at(d, 10.0)
        state.expire(clock.now)
        clock.now = at(d, 15.0)
        state.on_signal("ADDED", _signal(f"late{d}", "b", None, clock.now, ttl=300))
        state.expire(clock.now)
    assert state.model.misses.get("ns/b", 0) >= 2
    assert state.model.throttled(("ns", "b"), 0.5, 2)
    issued = {k for k, e in state.signals.items() if e.path == "predictor"}
    clock.now = at(6, 9.0) - timedelta(seconds=30)
    state.expire(clock.now)
    assert {k for k, e in state.signals.items() if e.path == "predictor"} <= issued, "throttled: nothing new"


def test_nothing_is_predicted_for_an_attended_service_or_when_switched_off() -> None:
    clock = Clock()
    state = _state(_settings(), clock)
    _days_of_habit(state, clock, 3)
    clock.now = at(3, 8.9)
    state.on_signal("ADDED", _signal("early", "b", "u", clock.now, ttl=600))  # someone is on it already
    clock.now = at(3, 9.0) - timedelta(seconds=30)
    state.expire(clock.now)
    assert not any(e.path == "predictor" for e in state.signals.values())
    off = _state(_settings(prediction_recurrence=False), clock := Clock())
    _days_of_habit(off, clock, 3)
    clock.now = at(3, 9.0) - timedelta(seconds=30)
    off.expire(clock.now)
    assert not any(e.path == "predictor" for e in off.signals.values())
    assert off.model.recurrence.habits, "it still learns, so switching it on predicts at once"


def test_a_service_busy_all_day_has_no_time_of_day_habit() -> None:
    rec = Recurrence()
    visits = []
    for d in range(5):
        visits += [(at(d, hour), A, 10) for hour in range(8, 18)]  # an episode every office hour
        visits += [(at(d, 0) + timedelta(minutes=m), "ns/c", 3) for m in range(0, 24 * 60, 5)]  # all day
        visits.append((at(d, 9.0), "ns/b", 5))
    for start, service, minutes in sorted(visits):
        visit(rec, service, start, minutes)
    lax, strict = Judge(3, 5, 0, lift=1.0), Judge(3, 5, 0, lift=2.0)
    assert {d.service for d in rec.due(at(5, 9.0), 30, lax)} == {A, "ns/b", "ns/c"}
    assert {d.service for d in rec.due(at(5, 9.0), 30, strict)} == {A, "ns/b"}, (
        "10 of 288 buckets: still rare"
    )
    assert [d.service for d in rec.due(at(5, 9.0), 30, Judge(3, 5, 0, lift=40.0))] == ["ns/b"]


def test_habits_per_user_are_saved_without_the_user_id() -> None:
    clock = Clock()
    state = _state(_settings(recurrence_by="user"), clock)
    for d in range(3):
        clock.now = at(d, 9.0)
        state.on_signal("ADDED", _signal(f"u{d}", "b", "alice@example.com", clock.now, ttl=300))
        clock.now = at(d, 9.0) + timedelta(minutes=30)  # someone else, another time: no habit of theirs
        state.on_signal("ADDED", _signal(f"o{d}", "b", f"other-{d}", clock.now, ttl=300))
        clock.now = at(d, 12.0)
        state.expire(clock.now)
    text = state.model.to_json()
    assert "alice" not in text and "other-" not in text
    assert any(k.startswith("ns/b@") for k in json.loads(text)["recurrence"]["services"])
    clock.now = at(3, 9.0) - timedelta(seconds=30)
    state.expire(clock.now)
    predicted = [e.signal for e in state.signals.values() if e.path == "predictor" and e.signal]
    assert [(s.services, s.user) for s in predicted] == [((("ns", "b"),), None)]
    clock.now = at(3, 9.5) - timedelta(seconds=30)
    state.expire(clock.now)
    # b is opened at 09:30 every day too, but each time by someone else: no user's habit.
    assert not [e for e in state.signals.values() if e.path == "predictor"]
