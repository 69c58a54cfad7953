"""ROI-ordered admission (the seeds' ROITaskAllocator) and GPU quota in plan_admission.

Within one priority, sessions are ordered by expectedROI x strategicAlignment, then by age;
priority always comes first and preemption still happens only across priorities.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from heady_operator.models.arena import ArenaSessionSpec
from heady_operator.models.common import PRIORITY_VALUES, PriorityLevel
from heady_operator.planning.arena import (
    UNLIMITED,
    AdmissionReason,
    AdmissionState,
    Quota,
    SessionDemand,
    Usage,
    plan_admission,
    resource_plan,
    session_value,
)

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
GI = 2**30
MEDIUM = PRIORITY_VALUES[PriorityLevel.MEDIUM]
HIGH = PRIORITY_VALUES[PriorityLevel.HIGH]
LOW = PRIORITY_VALUES[PriorityLevel.LOW]


def s(
    key: str,
    priority: int,
    cpu: float,
    *,
    value: float = 0.25,
    age: int = 0,
    gpus: int = 0,
    admitted: bool = False,
) -> SessionDemand:
    return SessionDemand(
        key=key,
        priority=priority,
        queued_at=NOW - timedelta(minutes=age),
        cpu_millis=round(cpu * 1000),
        memory_bytes=GI,
        admitted=admitted,
        admitted_at=NOW - timedelta(minutes=age) if admitted else None,
        value=value,
        gpus=gpus,
    )


# --- the value --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("roi", "alignment", "value"),
    [
        (0.9, 0.8, 0.72),  # the seeds' sort key: b.roi * b.strategicAlignment
        (0.5, 1.0, 0.5),
        (1.0, 0.0, 0.0),
        (None, 0.8, 0.4),  # an unstated factor is neutral (0.5)
        (None, None, 0.25),
    ],
)
def test_value_is_roi_times_alignment(roi: float | None, alignment: float | None, value: float) -> None:
    assert session_value(roi, alignment) == pytest.approx(value)


def test_value_outside_0_1_is_refused() -> None:
    with pytest.raises(ValueError, match="expectedROI"):
        session_value(1.5, 0.5)


def test_spec_value_parses_with_the_crd_spelling() -> None:
    spec = ArenaSessionSpec.model_validate(
        {"repos": [{"name": "a"}], "value": {"expectedROI": 0.9, "strategicAlignment": 0.8}}
    )
    assert spec.value is not None
    assert (spec.value.expected_roi, spec.value.strategic_alignment) == (0.9, 0.8)
    with pytest.raises(ValueError, match="less than or equal to 1"):
        ArenaSessionSpec.model_validate({"repos": [{"name": "a"}], "value": {"expectedROI": 1.2}})


# --- worked examples --------------------------------------------------------------------------


def test_within_a_priority_value_beats_age() -> None:
    # 10 CPU each, room for two of three: the young valuable one passes the old cheap one.
    quota = Quota.of(20, 64)
    old_cheap = s("old-cheap", MEDIUM, 10, value=0.1, age=30)
    young_valuable = s("young-valuable", MEDIUM, 10, value=0.72, age=1)
    middle = s("middle", MEDIUM, 10, value=0.25, age=10)
    plan = plan_admission([old_cheap, young_valuable, middle], quota, NOW)
    assert plan.admitted == ("young-valuable", "middle")
    waiting = plan.decision("old-cheap")
    assert waiting.queue_position == 1
    assert waiting.message.endswith("; value 0.1")
    admitted = plan.decision("young-valuable")
    assert admitted.message == "admitted with 10.0 CPU, 1.0 GiB memory of 20 CPU, 64 GiB memory; value 0.72"


def test_priority_beats_value() -> None:
    quota = Quota.of(10, 64)
    plan = plan_admission(
        [s("valuable", MEDIUM, 10, value=1.0, age=5), s("urgent", HIGH, 10, value=0.0)], quota, NOW
    )
    assert plan.admitted == ("urgent",)
    assert plan.decision("valuable").queue_position == 1


def test_equal_value_falls_back_to_age() -> None:
    quota = Quota.of(10, 64)
    plan = plan_admission(
        [s("young", MEDIUM, 10, value=0.5, age=1), s("old", MEDIUM, 10, value=0.5, age=9)], quota, NOW
    )
    assert plan.admitted == ("old",)


def test_value_never_preempts_within_a_priority() -> None:
    quota = Quota.of(10, 64)
    running = s("running", MEDIUM, 10, value=0.01, age=60, admitted=True)
    plan = plan_admission([running, s("valuable", MEDIUM, 10, value=1.0)], quota, NOW)
    assert plan.admitted == ("running",)
    assert plan.preemptions == ()


def test_gpu_is_a_quota_dimension() -> None:
    # medium (80) with a GPU: 2 x 0.8 = 1.6 GPUs, scheduled as 2 whole devices.
    plan_ = resource_plan(PriorityLevel.MEDIUM, 0.0, requires_gpu=True)
    assert plan_.gpu == pytest.approx(1.6)
    assert plan_.gpu_devices == 2
    quota = Quota.of(64, 128, gpus=3)
    plan = plan_admission(
        [s("a", MEDIUM, 4, gpus=2, age=2), s("b", MEDIUM, 4, gpus=2, age=1), s("cpu-only", LOW, 4)],
        quota,
        NOW,
    )
    # b waits for a GPU; a lower priority that needs none passes it (idle quota helps nobody).
    assert plan.admitted == ("a", "cpu-only")
    assert plan.used == Usage(8000, 2 * GI, 2)
    assert "needs 2 GPU, 1 free of 3" in plan.decision("b").message


def test_no_gpu_quota_means_gpu_sessions_never_fit() -> None:
    plan = plan_admission([s("gpu", MEDIUM, 4, gpus=1)], Quota.of(64, 128), NOW)
    d = plan.decision("gpu")
    assert d.state is AdmissionState.PENDING
    assert d.reason is AdmissionReason.EXCEEDS_QUOTA
    assert "needs 1 GPU, the GPU quota is 0" in d.message


def test_storage_and_network_are_admitted_when_the_quota_limits_them() -> None:
    # medium (80): storage 8 + 4 + 16 = 28 GB, 800 Mbps, 80 connections.
    plan_ = resource_plan(PriorityLevel.MEDIUM, 0.0, requires_gpu=False)
    assert (plan_.storage_total_gb, plan_.bandwidth_whole_mbps, plan_.network_connections) == (28, 800, 80)

    def demand(key: str, age: int) -> SessionDemand:
        return SessionDemand(
            key,
            MEDIUM,
            NOW - timedelta(minutes=age),
            1000,
            GI,
            storage_gb=28,
            bandwidth_mbps=800,
            connections=80,
        )

    # Unlimited by default: three fit.
    assert (
        len(plan_admission([demand(k, i) for i, k in enumerate("abc")], Quota.of(64, 128), NOW).admitted) == 3
    )
    quota = Quota.of(64, 128, storage_gb=60, bandwidth_mbps=10_000, connections=1000)
    plan = plan_admission([demand("a", 3), demand("b", 2), demand("c", 1)], quota, NOW)
    assert plan.admitted == ("a", "b")
    assert plan.decision("c").message == ("waiting for quota: needs 28 GB storage, 4 free of 60; value 0.25")
    assert plan.decision("a").message == (
        "admitted with 1.0 CPU, 1.0 GiB memory, 28 GB storage, 800 Mbps bandwidth, 80 connections of "
        "64 CPU, 128 GiB memory, 60 GB storage, 10000 Mbps bandwidth, 1000 connections; value 0.25"
    )
    beyond = plan_admission([demand("a", 1)], Quota.of(64, 128, connections=50), NOW).decision("a")
    assert beyond.reason is AdmissionReason.EXCEEDS_QUOTA
    assert "needs 80 connections, the connections quota is 50" in beyond.message


# --- properties -------------------------------------------------------------------------------

VALUES = [0.0, 0.1, 0.25, 0.5, 0.72, 1.0]


@st.composite
def worlds(draw: st.DrawFn) -> tuple[list[SessionDemand], Quota]:
    sessions = []
    for i in range(draw(st.integers(0, 10))):
        admitted = draw(st.booleans())
        sessions.append(
            SessionDemand(
                key=f"s{i:02d}",
                priority=draw(st.sampled_from([40, 80, 125])),
                queued_at=NOW - timedelta(seconds=draw(st.integers(0, 5)) * 60),
                cpu_millis=draw(st.integers(1, 16)) * 1000,
                memory_bytes=draw(st.integers(1, 16)) * GI,
                admitted=admitted,
                admitted_at=NOW - timedelta(seconds=draw(st.integers(0, 3600))) if admitted else None,
                value=draw(st.sampled_from(VALUES)),
                gpus=draw(st.sampled_from([0, 0, 1, 2])),
                storage_gb=draw(st.integers(0, 40)),
            )
        )
    storage = draw(st.sampled_from([UNLIMITED, 50, 100]))
    return sessions, Quota(
        draw(st.integers(1, 48)) * 1000,
        draw(st.integers(1, 48)) * GI,
        draw(st.integers(0, 4)),
        storage_gb=storage,
    )


def order(x: SessionDemand) -> tuple[int, float, datetime, str]:
    return (-x.priority, -x.value, x.queued_at, x.key)


@settings(max_examples=200, deadline=None)
@given(worlds())
def test_never_over_quota_on_any_dimension(world: tuple[list[SessionDemand], Quota]) -> None:
    sessions, quota = world
    plan = plan_admission(sessions, quota, NOW)
    by_key = {x.key: x for x in sessions}
    used = sum((by_key[k].usage for k in plan.admitted), Usage())
    assert used == plan.used
    assert quota.capacity.covers(used)


@settings(max_examples=200, deadline=None)
@given(worlds())
def test_queue_positions_follow_priority_then_value_then_age(
    world: tuple[list[SessionDemand], Quota],
) -> None:
    sessions, quota = world
    by_key = {x.key: x for x in sessions}
    pending = plan_admission(sessions, quota, NOW).pending
    assert [d.queue_position for d in pending] == list(range(1, len(pending) + 1))
    keys = [d.key for d in pending]
    assert keys == sorted(keys, key=lambda k: order(by_key[k]))


@settings(max_examples=200, deadline=None)
@given(worlds())
def test_within_a_priority_nobody_is_passed_by_a_later_one(world: tuple[list[SessionDemand], Quota]) -> None:
    """A newly admitted session never jumps a waiting one of its priority that is ahead of it by
    value, then age (unless that one can never fit, or was itself preempted)."""
    sessions, quota = world
    by_key = {x.key: x for x in sessions}
    plan = plan_admission(sessions, quota, NOW)
    newly = [by_key[k] for k in plan.newly_admitted]
    for d in plan.pending:
        if d.reason is not AdmissionReason.WAITING_FOR_QUOTA or by_key[d.key].admitted:
            continue
        waiting = by_key[d.key]
        for winner in newly:
            if winner.priority == waiting.priority:
                assert order(winner) < order(waiting)


@settings(max_examples=200, deadline=None)
@given(worlds())
def test_preemption_only_across_priorities(world: tuple[list[SessionDemand], Quota]) -> None:
    sessions, quota = world
    by_key = {x.key: x for x in sessions}
    for p in plan_admission(sessions, quota, NOW).preemptions:
        if p.by is not None:
            assert by_key[p.by].priority > by_key[p.key].priority


@settings(max_examples=200, deadline=None)
@given(worlds(), st.integers(0, 2**32))
def test_stable_whatever_the_input_order(world: tuple[list[SessionDemand], Quota], seed: int) -> None:
    sessions, quota = world
    shuffled = list(sessions)
    random.Random(seed).shuffle(shuffled)
    a, b = plan_admission(sessions, quota, NOW), plan_admission(shuffled, quota, NOW)
    assert sorted(a.decisions, key=lambda d: d.key) == sorted(b.decisions, key=lambda d: d.key)
    # Planning again from its own result changes nothing: admitted stay admitted, the queue holds.
    again = [
        SessionDemand(**{**x.__dict__, "admitted": x.key in a.admitted, "admitted_at": x.admitted_at or NOW})
        if x.key in a.admitted
        else SessionDemand(**{**x.__dict__, "admitted": False, "admitted_at": None})
        for x in sessions
    ]
    replay = plan_admission(again, quota, NOW)
    assert replay.admitted == a.admitted
    assert replay.preemptions == ()
