"""Utilization-driven rebalancing of admitted sessions (heady_operator.planning.arena.plan_rebalance)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from heady_operator.models.common import PRIORITY_VALUES, PriorityLevel
from heady_operator.planning.arena import (
    MAX_SCALE_PERCENT,
    MIN_SCALE_PERCENT,
    Allocation,
    Quota,
    Usage,
    plan_rebalance,
    resource_plan,
)

HIGH = PRIORITY_VALUES[PriorityLevel.HIGH]
LOW = PRIORITY_VALUES[PriorityLevel.LOW]
# 12 CPU (12000m), 24 GiB (24576 MiB)
PLAN = resource_plan(PriorityLevel.HIGH, 0.4, False)
ROOMY = Quota.of(cpu=64, memory_gib=128)


def alloc(key: str, percent: int = 100, priority: int = HIGH) -> Allocation:
    return Allocation(key, priority, PLAN, percent)


@pytest.mark.parametrize(
    ("percent", "util", "new_percent", "cpu", "memory", "reason"),
    [
        # target = round(percent x util / 0.55), kept within 25..100
        (100, 0.22, 40, "4800m", "9830Mi", "ScaledDown"),  # 24576 MiB x 0.40 = 9830.4
        (100, 0.11, 25, "3", "6Gi", "ScaledDown"),  # 20 -> floor of 25
        (100, 0.0, 25, "3", "6Gi", "ScaledDown"),
        (50, 0.9, 82, "9840m", "20152Mi", "ScaledUp"),  # 81.8 -> 82
        (60, 1.0, 100, "12", "24Gi", "ScaledUp"),  # 109 -> plan maximum
        (30, 0.29, 25, "3", "6Gi", "ScaledDown"),  # a step of exactly 5 is made
    ],
)
def test_scale_to_the_middle_of_the_band(
    percent: int, util: float, new_percent: int, cpu: str, memory: str, reason: str
) -> None:
    (change,) = plan_rebalance([alloc("a", percent)], {"a": util}, ROOMY)
    assert change.new_scale_percent == new_percent
    assert change.to_status() == {"cpu": cpu, "memory": memory, "scale": new_percent / 100}
    assert change.reason == reason


@pytest.mark.parametrize(
    ("percent", "util"),
    [
        (100, 0.5),
        (100, 0.3),  # the seed's thresholds are strict
        (100, 0.8),
        (25, 0.1),  # already at the floor
        (100, 0.95),  # already at the plan
        (28, 0.29),  # 28 -> 25 is a step below 5
        (97, 0.81),  # 97 -> 100 likewise
    ],
)
def test_no_change(percent: int, util: float) -> None:
    assert plan_rebalance([alloc("a", percent)], {"a": util}, ROOMY) == []


def test_sessions_without_a_figure_are_left_alone() -> None:
    assert plan_rebalance([alloc("a")], {}, ROOMY) == []


def test_messages_explain_the_change() -> None:
    (down,) = plan_rebalance([alloc("a")], {"a": 0.22}, ROOMY)
    assert (
        down.message
        == "utilization 0.22 below 0.3: scale 1.00 -> 0.40 (cpu 12 -> 4800m, memory 24Gi -> 9830Mi)"
    )
    (up,) = plan_rebalance([alloc("a", 60)], {"a": 1.0}, ROOMY)
    assert up.message == (
        "utilization 1.00 above 0.8; capped at the resource plan: scale 0.60 -> 1.00 "
        "(cpu 7200m -> 12, memory 14745Mi -> 24Gi)"
    )


def test_scale_up_is_bounded_by_the_free_quota() -> None:
    # a at 50 % holds 6 CPU; b holds 12: 18 of 20 used, 2 CPU free.
    quota = Quota.of(cpu=20, memory_gib=64)
    (change,) = plan_rebalance([alloc("a", 50), alloc("b", 100)], {"a": 0.95, "b": 0.5}, quota)
    # 12000 x 66 % = 7920m is the most within 6000 + 2000.
    assert change.new_scale_percent == 66
    assert change.cpu_millis == 7_920
    assert "limited by free quota (2.0 CPU, 28.0 GiB)" in change.message


def test_scale_ups_do_not_spend_what_this_rounds_scale_downs_free() -> None:
    # idle holds 12 CPU, busy 6: 18 of 20 used. idle drops to 25 % (freeing 9 CPU), yet busy
    # may only take the 2 CPU that were free before: the scale-down may not land.
    quota = Quota.of(cpu=20, memory_gib=64)
    changes = plan_rebalance([alloc("idle"), alloc("busy", 50)], {"idle": 0.1, "busy": 1.0}, quota)
    by_key = {c.key: c for c in changes}
    assert by_key["idle"].new_scale_percent == MIN_SCALE_PERCENT
    assert by_key["busy"].new_scale_percent == 66
    assert by_key["busy"].cpu_millis == 7_920


def test_higher_priority_scales_up_first() -> None:
    quota = Quota.of(cpu=15, memory_gib=64)
    allocations = [alloc("low", 50, LOW), alloc("high", 50, HIGH)]
    changes = plan_rebalance(allocations, {"low": 1.0, "high": 0.9}, quota)
    # 12 of 15 used; high (125) takes all 3 free CPU, low (40) gets nothing.
    assert [(c.key, c.cpu_millis) for c in changes] == [("high", 9_000)]


def test_jitter_is_reproducible_from_the_seed() -> None:
    allocations = [alloc(f"s{i}") for i in range(6)]
    utilization = {f"s{i}": 0.05 * (i + 1) for i in range(6)}  # all below 0.3
    a = plan_rebalance(allocations, utilization, ROOMY, jitter=0.3, rng_seed=7)
    b = plan_rebalance(allocations, utilization, ROOMY, jitter=0.3, rng_seed=7)
    c = plan_rebalance(allocations, utilization, ROOMY, jitter=0.3, rng_seed=8)
    plain = plan_rebalance(allocations, utilization, ROOMY)
    assert a == b
    assert [x.new_scale_percent for x in a] != [x.new_scale_percent for x in c]
    for jittered, exact in zip(a, plain, strict=True):
        step, exact_step = 100 - jittered.new_scale_percent, 100 - exact.new_scale_percent
        # Each move is within +-30 % of the unjittered one (before the floor of 25 %).
        assert step <= round(exact_step * 1.3) + 1
        assert "jitter" in jittered.message


def test_input_order_does_not_matter() -> None:
    allocations = [alloc(f"s{i}", 50) for i in range(5)]
    utilization = {f"s{i}": 0.9 for i in range(5)}
    quota = Quota.of(cpu=40, memory_gib=128)
    a = plan_rebalance(allocations, utilization, quota, jitter=0.2, rng_seed=1)
    b = plan_rebalance(list(reversed(allocations)), utilization, quota, jitter=0.2, rng_seed=1)
    assert a == b


@pytest.mark.parametrize(("utilization", "jitter"), [(-0.1, 0.0), (0.5, 0.31), (0.5, -0.1)])
def test_bad_inputs_are_refused(utilization: float, jitter: float) -> None:
    with pytest.raises(ValueError, match=r"must be|negative"):
        plan_rebalance([alloc("a")], {"a": utilization}, ROOMY, jitter=jitter)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(MIN_SCALE_PERCENT, MAX_SCALE_PERCENT), st.floats(0, 1.5), st.sampled_from([LOW, HIGH])
        ),
        max_size=6,
    ),
    st.floats(0, 0.3),
    st.integers(0, 1000),
)
def test_rebalancing_keeps_within_plan_and_quota(
    rows: list[tuple[int, float, int]], jitter: float, seed: int
) -> None:
    allocations = [alloc(f"s{i}", percent, priority) for i, (percent, _, priority) in enumerate(rows)]
    utilization = {f"s{i}": util for i, (_, util, _) in enumerate(rows)}
    before = sum((a.usage for a in allocations), Usage())
    quota = Quota(before.cpu_millis + 5_000, before.memory_bytes + 10 * 2**30)
    changes = plan_rebalance(allocations, utilization, quota, jitter=jitter, rng_seed=seed)
    after = {a.key: a.usage for a in allocations} | {
        c.key: Usage(c.cpu_millis, c.memory_bytes) for c in changes
    }
    assert Usage(quota.cpu_millis, quota.memory_bytes).covers(sum(after.values(), Usage()))
    for c in changes:
        assert MIN_SCALE_PERCENT <= c.new_scale_percent <= MAX_SCALE_PERCENT
        util = utilization[c.key]
        assert (util < 0.3 and c.reason == "ScaledDown") or (util > 0.8 and c.reason == "ScaledUp")
        assert abs(c.new_scale_percent - c.old_scale_percent) >= 5
