"""Quota admission of arena sessions (heady_operator.planning.arena.plan_admission)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from heady_operator.models.common import PRIORITY_VALUES, PriorityLevel
from heady_operator.planning.arena import (
    AdmissionPlan,
    AdmissionReason,
    AdmissionState,
    Quota,
    SessionDemand,
    Usage,
    plan_admission,
)

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
GI = 2**30
QUOTA = Quota.of(cpu=32, memory_gib=64)

VERY_HIGH = PRIORITY_VALUES[PriorityLevel.VERY_HIGH]
HIGH = PRIORITY_VALUES[PriorityLevel.HIGH]
MEDIUM = PRIORITY_VALUES[PriorityLevel.MEDIUM]
LOW = PRIORITY_VALUES[PriorityLevel.LOW]
VERY_LOW = PRIORITY_VALUES[PriorityLevel.VERY_LOW]


def s(
    key: str,
    priority: int,
    cpu: float,
    mem: float = 1,
    *,
    age: int = 0,
    admitted: bool = False,
    admitted_age: int | None = None,
    finished: bool = False,
) -> SessionDemand:
    """A session queued `age` minutes ago needing `cpu` cores and `mem` GiB."""
    queued = NOW - timedelta(minutes=age)
    return SessionDemand(
        key=key,
        priority=priority,
        queued_at=queued,
        cpu_millis=round(cpu * 1000),
        memory_bytes=round(mem * GI),
        admitted=admitted,
        admitted_at=(NOW - timedelta(minutes=admitted_age)) if admitted_age is not None else None,
        finished=finished,
    )


def test_nothing_to_admit() -> None:
    plan = plan_admission([], QUOTA, NOW)
    assert plan.admitted == ()
    assert plan.pending == ()
    assert plan.used == Usage()


def test_sessions_that_fit_are_admitted_in_priority_then_age_order() -> None:
    plan = plan_admission([s("b", MEDIUM, 4, age=1), s("a", HIGH, 4), s("c", MEDIUM, 4, age=5)], QUOTA, NOW)
    assert plan.admitted == ("a", "c", "b")
    assert plan.newly_admitted == ("a", "c", "b")
    assert plan.used == Usage(12_000, 3 * GI)
    d = plan.decision("a")
    assert d.state is AdmissionState.ADMITTED
    assert d.reason is AdmissionReason.QUOTA_RESERVED
    assert d.message == "admitted with 4.0 CPU, 1.0 GiB memory of 32 CPU, 64 GiB memory; value 0.25"
    assert d.changed


def test_already_admitted_sessions_are_not_changes() -> None:
    plan = plan_admission([s("a", HIGH, 4, admitted=True)], QUOTA, NOW)
    assert plan.admitted == ("a",)
    assert plan.newly_admitted == ()


def test_waiting_message_says_what_is_missing() -> None:
    plan = plan_admission([s("run", MEDIUM, 28, admitted=True), s("wait", MEDIUM, 9.6, age=3)], QUOTA, NOW)
    d = plan.decision("wait")
    assert d.state is AdmissionState.PENDING
    assert d.reason is AdmissionReason.WAITING_FOR_QUOTA
    assert d.message == "waiting for quota: needs 9.6 CPU, 4.0 free of 32; value 0.25"
    assert d.queue_position == 1
    assert d.waiting_seconds == 180.0
    assert not d.changed
    assert plan.preemptions == ()  # equal priority never preempts


def test_memory_shortfall_is_reported_too() -> None:
    plan = plan_admission([s("run", HIGH, 20, 60, admitted=True), s("wait", LOW, 20, 8)], QUOTA, NOW)
    assert plan.decision("wait").message == (
        "waiting for quota: needs 20.0 CPU, 12.0 free of 32; needs 8.0 GiB memory, 4.0 free of 64; value 0.25"
    )


def test_a_session_larger_than_the_quota_can_never_be_admitted_and_preempts_nobody() -> None:
    plan = plan_admission([s("small", LOW, 2, admitted=True), s("huge", VERY_HIGH, 40)], QUOTA, NOW)
    d = plan.decision("huge")
    assert d.reason is AdmissionReason.EXCEEDS_QUOTA
    assert d.message == "can never be admitted: needs 40.0 CPU, the quota is 32; value 0.25"
    assert plan.admitted == ("small",)
    assert plan.preemptions == ()


def test_higher_priority_preempts_the_lowest_priority_most_recent() -> None:
    sessions = [
        s("low-old", LOW, 8, admitted=True, admitted_age=60),
        s("low-new", LOW, 8, admitted=True, admitted_age=5),
        s("medium", MEDIUM, 8, admitted=True, admitted_age=1),
        s("vlow", VERY_LOW, 8, admitted=True, admitted_age=90),
        s("high", HIGH, 12),
    ]
    plan = plan_admission(sessions, QUOTA, NOW)
    # 32 used, high needs 12: very_low first (frees 8), then the most recently admitted low.
    # (Listed in queue order.)
    assert plan.preempted == ("low-new", "vlow")
    assert set(plan.admitted) == {"high", "low-old", "medium"}
    assert plan.newly_admitted == ("high",)
    vlow = plan.decision("vlow")
    assert vlow.state is AdmissionState.PENDING
    assert vlow.reason is AdmissionReason.PREEMPTED
    assert vlow.changed
    assert vlow.message == (
        "preempted by high (priority 125 > 25) to make room for 12.0 CPU, 1.0 GiB memory; "
        "waiting for quota: needs 8.0 CPU, 4.0 free of 32; value 0.25"
    )
    assert [p.by for p in plan.preemptions] == ["high", "high"]
    # Preempted sessions keep their age, so they rejoin the queue by it.
    assert [d.key for d in plan.pending] == ["low-new", "vlow"]


def test_preemption_only_if_it_makes_room() -> None:
    sessions = [
        s("medium", MEDIUM, 24, admitted=True),
        s("low", LOW, 6, admitted=True),
        s("high", HIGH, 12),
    ]
    # free 2 + low's 6 = 8 < 12, so medium (24) goes as well; then low is not needed after
    # all (2 + 24 >= 12) and stays. medium cannot win its place back from low (14 + 6 < 24).
    plan = plan_admission(sessions, QUOTA, NOW)
    assert plan.preempted == ("medium",)
    assert set(plan.admitted) == {"high", "low"}
    # Without a lower-priority session big enough, nobody is preempted.
    sessions = [s("peer", HIGH, 24, admitted=True), s("low", LOW, 6, admitted=True), s("high", HIGH, 12)]
    plan = plan_admission(sessions, QUOTA, NOW)
    assert plan.preemptions == ()
    assert plan.decision("high").reason is AdmissionReason.WAITING_FOR_QUOTA


def test_only_the_victims_that_are_needed_are_preempted() -> None:
    sessions = [
        s("vlow-small", VERY_LOW, 2, admitted=True, admitted_age=1),
        s("low-big", LOW, 20, admitted=True, admitted_age=2),
        s("medium", MEDIUM, 10, admitted=True),
        s("high", HIGH, 12),
    ]
    # Greedy takes vlow-small (2) then low-big (20); low-big alone frees enough, so
    # vlow-small is given back.
    plan = plan_admission(sessions, QUOTA, NOW)
    assert plan.preempted == ("low-big",)
    assert "vlow-small" in plan.admitted


def test_victims_are_taken_lowest_priority_first() -> None:
    sessions = [
        s("medium", MEDIUM, 16, admitted=True),
        s("low", LOW, 16, admitted=True),
        s("very-high", VERY_HIGH, 16),
    ]
    plan = plan_admission(sessions, QUOTA, NOW)
    assert plan.preempted == ("low",)
    sessions = [
        s("medium", MEDIUM, 16, admitted=True),
        s("low", LOW, 8, admitted=True),
        s("vlow", VERY_LOW, 8, admitted=True),
        s("very-high", VERY_HIGH, 24),
    ]
    # very-high needs 24 of a full quota: vlow + low (16) are not enough, so medium is added
    # (32); giving back, latest picked first, medium is needed, low is not, vlow is.
    plan = plan_admission(sessions, QUOTA, NOW)
    assert set(plan.admitted) == {"very-high", "low"}
    assert plan.preempted == ("medium", "vlow")
    # medium, back in the queue, cannot preempt low: 0 free + 8 < 16.
    assert plan.decision("medium").reason is AdmissionReason.PREEMPTED


def test_preemption_weighs_memory_as_well_as_cpu() -> None:
    sessions = [
        s("medium", MEDIUM, 8, 40, admitted=True),
        s("low", LOW, 16, 4, admitted=True),
        s("high", HIGH, 4, 50),
    ]
    # 20 GiB free; low frees only 4 GiB, medium's 40 GiB is what makes room.
    plan = plan_admission(sessions, QUOTA, NOW)
    assert plan.preempted == ("medium",)
    assert set(plan.admitted) == {"high", "low"}
    assert plan.decision("medium").message.endswith("needs 40.0 GiB memory, 10.0 free of 64; value 0.25")


def test_best_effort_a_small_session_passes_a_big_one_that_does_not_fit() -> None:
    sessions = [s("peer", HIGH, 24, admitted=True), s("big", HIGH, 12, age=10), s("small", LOW, 4)]
    plan = plan_admission(sessions, QUOTA, NOW)
    assert plan.newly_admitted == ("small",)
    assert plan.decision("big").queue_position == 1


def test_within_a_priority_the_queue_is_strict() -> None:
    sessions = [
        s("peer", MEDIUM, 24, 30, admitted=True),
        s("big", MEDIUM, 12, age=10),
        s("small", MEDIUM, 4, age=5),
        s("smaller", MEDIUM, 2, 40, age=1),
        s("low", LOW, 4),
    ]
    plan = plan_admission(sessions, QUOTA, NOW)
    # small would fit, but big of the same priority came first; low may pass (best effort).
    assert plan.newly_admitted == ("low",)
    small = plan.decision("small")
    assert (small.behind, small.queue_position) == ("big", 2)
    assert (
        small.message
        == "waiting behind big, ahead in the same priority's queue (value, then age); value 0.25"
    )
    # Held and short of quota anyway: the shortfall is the more useful message.
    smaller = plan.decision("smaller")
    assert smaller.behind == "big"
    assert smaller.message == "waiting for quota: needs 40.0 GiB memory, 33.0 free of 64; value 0.25"
    assert plan.decision("big").behind is None


def test_a_session_that_can_never_fit_blocks_nobody() -> None:
    plan = plan_admission([s("huge", MEDIUM, 40, age=10), s("small", MEDIUM, 4)], QUOTA, NOW)
    assert plan.newly_admitted == ("small",)


def test_keys_must_be_unique() -> None:
    with pytest.raises(ValueError, match="unique"):
        plan_admission([s("a", LOW, 1), s("a", HIGH, 1)], QUOTA, NOW)


def test_finished_sessions_release_their_quota() -> None:
    sessions = [s("done", HIGH, 30, admitted=True, finished=True), s("next", LOW, 30)]
    plan = plan_admission(sessions, QUOTA, NOW)
    assert plan.released == ("done",)
    assert plan.newly_admitted == ("next",)
    done = plan.decision("done")
    assert done.state is AdmissionState.FINISHED
    assert done.message == "finished; quota released"
    # A finished session that never ran has nothing to release.
    plan = plan_admission([s("never", LOW, 1, finished=True)], QUOTA, NOW)
    assert plan.released == ()
    assert plan.admitted == ()


def test_a_lowered_quota_pushes_out_the_lowest_priority_most_recent() -> None:
    sessions = [
        s("high", HIGH, 12, admitted=True, admitted_age=30),
        s("low-old", LOW, 8, admitted=True, admitted_age=20),
        s("low-new", LOW, 8, admitted=True, admitted_age=10),
    ]
    plan = plan_admission(sessions, Quota.of(cpu=20, memory_gib=64), NOW)
    assert plan.preempted == ("low-new",)
    p = plan.preemptions[0]
    assert p.by is None
    assert p.reason is AdmissionReason.QUOTA_REDUCED
    assert (
        p.message == "quota lowered to 20 CPU, 64 GiB memory; admitted sessions held 28.0 CPU, 3.0 GiB memory"
    )
    assert plan.decision("low-new").reason is AdmissionReason.QUOTA_REDUCED


def test_queue_positions_follow_priority_then_age() -> None:
    sessions = [
        s("full", VERY_HIGH, 32, admitted=True),
        s("m-new", MEDIUM, 4, age=1),
        s("h", HIGH, 4, age=0),
        s("m-old", MEDIUM, 4, age=9),
        s("l", LOW, 4, age=30),
    ]
    plan = plan_admission(sessions, QUOTA, NOW)
    assert [(d.key, d.queue_position) for d in plan.pending] == [
        ("h", 1),
        ("m-old", 2),
        ("m-new", 3),
        ("l", 4),
    ]


def test_unknown_key() -> None:
    with pytest.raises(KeyError):
        plan_admission([], QUOTA, NOW).decision("nope")


# --- properties --------------------------------------------------------------------------------


@st.composite
def worlds(draw: st.DrawFn) -> tuple[list[SessionDemand], Quota]:
    n = draw(st.integers(0, 10))
    sessions = []
    for i in range(n):
        admitted = draw(st.booleans())
        sessions.append(
            SessionDemand(
                key=f"s{i:02d}",
                priority=draw(st.sampled_from(sorted(PRIORITY_VALUES.values()))),
                queued_at=NOW - timedelta(seconds=draw(st.integers(0, 3600))),
                cpu_millis=draw(st.integers(1, 24)) * 500,
                memory_bytes=draw(st.integers(1, 48)) * GI,
                admitted=admitted,
                admitted_at=NOW - timedelta(seconds=draw(st.integers(0, 3600))) if admitted else None,
                finished=draw(st.booleans()) if draw(st.booleans()) else False,
            )
        )
    quota = Quota(draw(st.integers(1, 64)) * 1000, draw(st.integers(1, 128)) * GI)
    return sessions, quota


def _usage(plan: AdmissionPlan, sessions: list[SessionDemand]) -> Usage:
    by_key = {x.key: x for x in sessions}
    return sum((by_key[k].usage for k in plan.admitted), Usage())


@settings(max_examples=400, deadline=None)
@given(worlds())
def test_admission_never_exceeds_the_quota(world: tuple[list[SessionDemand], Quota]) -> None:
    sessions, quota = world
    plan = plan_admission(sessions, quota, NOW)
    used = _usage(plan, sessions)
    assert used == plan.used
    assert Usage(quota.cpu_millis, quota.memory_bytes).covers(used)
    assert not any(x.finished for x in sessions if x.key in plan.admitted)


@settings(max_examples=400, deadline=None)
@given(worlds())
def test_preemption_is_only_of_strictly_lower_priority(world: tuple[list[SessionDemand], Quota]) -> None:
    sessions, quota = world
    by_key = {x.key: x for x in sessions}
    plan = plan_admission(sessions, quota, NOW)
    for p in plan.preemptions:
        victim = by_key[p.key]
        assert victim.admitted and not victim.finished
        assert p.key not in plan.admitted
        if p.by is not None:
            assert by_key[p.by].priority > victim.priority
            assert p.by in plan.admitted


@settings(max_examples=400, deadline=None)
@given(worlds())
def test_nobody_waits_who_could_be_admitted(world: tuple[list[SessionDemand], Quota]) -> None:
    sessions, quota = world
    by_key = {x.key: x for x in sessions}
    plan = plan_admission(sessions, quota, NOW)
    free = Usage(quota.cpu_millis, quota.memory_bytes) - plan.used
    for d in plan.pending:
        waiting = by_key[d.key]
        if d.behind is not None:
            # Held behind an older session of its priority that is itself still waiting.
            ahead = by_key[d.behind]
            assert ahead.priority == waiting.priority
            assert (-ahead.value, ahead.queued_at, ahead.key) < (
                -waiting.value,
                waiting.queued_at,
                waiting.key,
            )
            assert ahead.key not in plan.admitted
            assert plan.decision(ahead.key).behind is None
            continue
        if d.reason is AdmissionReason.EXCEEDS_QUOTA:
            continue
        # It does not fit in what is left...
        assert not free.covers(waiting.usage)
        # ...and preempting everything below it would not make room either.
        below = sum(
            (by_key[k].usage for k in plan.admitted if by_key[k].priority < waiting.priority), Usage()
        )
        assert not (free + below).covers(waiting.usage)


@settings(max_examples=200, deadline=None)
@given(worlds(), st.integers(0, 2**32))
def test_the_plan_does_not_depend_on_input_order(world: tuple[list[SessionDemand], Quota], seed: int) -> None:
    sessions, quota = world
    shuffled = list(sessions)
    random.Random(seed).shuffle(shuffled)
    a, b = plan_admission(sessions, quota, NOW), plan_admission(shuffled, quota, NOW)
    assert sorted(a.decisions, key=lambda d: d.key) == sorted(b.decisions, key=lambda d: d.key)
    assert a.preemptions == b.preemptions
