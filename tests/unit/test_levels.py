"""Table-driven and property tests for the level planner (heady_operator.planning.levels)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from heady_operator.planning.levels import (
    Amount,
    ContainerResources,
    Level,
    Memory,
    Node,
    Pod,
    QoS,
    Reason,
    Service,
    Signal,
    World,
    baseline_of,
    plan_levels,
    pod_requests,
    qos_of,
    target_resources,
)

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
GI = 2**30
BIG_NODE = Node("n1", Amount(64_000, 256 * GI))


def svc(name: str, priority: int = 80, cpu: int = 1000, mem: int = GI, **kw: object) -> Service:
    return Service(("ns", name), priority, {"app": Amount(cpu, mem)}, **kw)  # type: ignore[arg-type]


def pod(
    name: str, service: str, node: str = "n1", qos: QoS = QoS.BURSTABLE, cpu: int = 900, mem: int = 0
) -> Pod:
    mem = mem or int(GI * 0.9)
    if qos is QoS.GUARANTEED:
        c = ContainerResources("app", Amount(cpu, mem), Amount(cpu, mem))
    else:
        c = ContainerResources("app", Amount(cpu, mem), Amount(1000, GI))
    return Pod(("ns", name), ("ns", service), node, qos, (c,))


def signal(name: str, *services: str, intensity: float = 1.0, start: datetime = NOW, ttl: int = 60) -> Signal:
    return Signal(
        name,
        tuple(("ns", s) for s in services),
        intensity,
        "test",
        start - timedelta(seconds=1),
        start + timedelta(seconds=ttl),
    )


def world(
    services: list[Service],
    pods: list[Pod],
    signals: list[Signal] = (),
    nodes: list[Node] = (BIG_NODE,),
    memory=None,
) -> World:  # type: ignore[assignment]
    return World({s.key: s for s in services}, pods, {n.name: n for n in nodes}, signals, memory or {})


# ------------------------------------------------------------------ resources and QoS


def test_baseline_is_ratio_of_peak_rounded_down() -> None:
    assert baseline_of(Amount(1000, GI), 0.9) == Amount(900, 921 * 2**20)
    assert baseline_of(Amount(333, 1000), 0.5) == Amount(166, 500)
    assert baseline_of(Amount(None, GI), 1.0) == Amount(None, GI)


@pytest.mark.parametrize(
    ("containers", "expected"),
    [
        ([ContainerResources("a")], QoS.BEST_EFFORT),
        ([ContainerResources("a", Amount(1, 1), Amount(1, 1))], QoS.GUARANTEED),
        ([ContainerResources("a", Amount(None, None), Amount(1, 1))], QoS.GUARANTEED),
        ([ContainerResources("a", Amount(1, 1), Amount(2, 1))], QoS.BURSTABLE),
        ([ContainerResources("a", Amount(1, None))], QoS.BURSTABLE),
        (
            [ContainerResources("a", Amount(1, 1), Amount(1, 1)), ContainerResources("b", Amount(1, 1))],
            QoS.BURSTABLE,
        ),
    ],
)
def test_qos_of(containers: list[ContainerResources], expected: QoS) -> None:
    assert qos_of(containers) is expected


def test_guaranteed_moves_requests_and_limits_together() -> None:
    p = pod("p", "a", qos=QoS.GUARANTEED)
    peak = target_resources(p, svc("a"), Level.PEAK)
    assert peak[0].requests == peak[0].limits == Amount(1000, GI)
    base = target_resources(p, svc("a"), Level.BASELINE)
    assert base[0].requests == base[0].limits == Amount(900, 921 * 2**20)


def test_burstable_moves_requests_only_and_never_becomes_guaranteed() -> None:
    p = pod("p", "a")  # limits 1000m/1Gi == peak: plain peak requests would equal limits
    peak = target_resources(p, svc("a"), Level.PEAK)
    assert peak[0].limits == Amount(1000, GI)
    assert peak[0].requests == Amount(999, GI)
    assert qos_of(peak) is QoS.BURSTABLE


def test_burstable_peak_is_capped_by_limits() -> None:
    p = pod("p", "a")
    peak = target_resources(p, svc("a", cpu=4000, mem=8 * GI), Level.PEAK)
    assert peak[0].requests.cpu is not None and peak[0].requests.cpu <= 1000
    assert qos_of(peak) is QoS.BURSTABLE


def test_containers_without_peak_are_left_alone() -> None:
    side = ContainerResources("sidecar", Amount(100, GI), Amount(200, 2 * GI))
    p = Pod(("ns", "p"), ("ns", "a"), "n1", QoS.BURSTABLE, (side,))
    assert target_resources(p, svc("a"), Level.PEAK) == (side,)


# ------------------------------------------------------------------ rules, one table row each


def test_no_attention_settles_at_baseline() -> None:
    plan = plan_levels(world([svc("a")], [pod("p", "a", cpu=1000, mem=GI)]), NOW)
    d = plan.pods[("ns", "p")]
    assert d.level is Level.BASELINE and d.needs_resize and d.reason is Reason.IDLE
    assert plan.services[("ns", "a")].level == "Baseline"


def test_attention_escalates_every_pod_to_peak() -> None:
    pods = [pod(f"p{i}", "a") for i in range(3)]
    plan = plan_levels(world([svc("a")], pods, [signal("s1", "a")]), NOW)
    assert {d.level for d in plan.pods.values()} == {Level.PEAK}
    s = plan.services[("ns", "a")]
    assert s.granted and s.reason is Reason.ATTENTION and s.level == "Peak" and s.pods_at_peak == 3
    assert s.memory.escalated_since == NOW
    assert "signal s1" in s.message


def test_weak_attention_below_threshold_is_ignored() -> None:
    plan = plan_levels(world([svc("a")], [pod("p", "a")], [signal("s", "a", intensity=0.05)]), NOW)
    assert plan.pods[("ns", "p")].level is Level.BASELINE


def test_expired_signal_is_ignored() -> None:
    old = signal("s", "a", start=NOW - timedelta(seconds=120), ttl=60)
    plan = plan_levels(world([svc("a")], [pod("p", "a")], [old]), NOW)
    assert plan.pods[("ns", "p")].level is Level.BASELINE


def test_at_most_two_high_priority_escalations_third_waits_with_reason() -> None:
    services = [svc(n, priority=125) for n in ("a", "b", "c")]
    pods = [pod(f"p-{n}", n) for n in ("a", "b", "c")]
    sigs = [
        signal("s-a", "a", intensity=0.9),
        signal("s-b", "b", intensity=0.8),
        signal("s-c", "c", intensity=0.7),
    ]
    plan = plan_levels(world(services, pods, sigs), NOW)
    assert plan.services[("ns", "a")].granted and plan.services[("ns", "b")].granted
    waiting = plan.services[("ns", "c")]
    assert not waiting.granted and waiting.reason is Reason.HIGH_PRIORITY_LIMIT
    assert "2 high-priority escalations in flight (a, b)" in waiting.message
    assert plan.pods[("ns", "p-c")].level is Level.BASELINE
    assert plan.pods[("ns", "p-c")].reason is Reason.HIGH_PRIORITY_LIMIT


def test_high_priority_cap_does_not_limit_lower_priorities() -> None:
    services = [svc(n, priority=90) for n in "abcd"]
    pods = [pod(f"p-{n}", n) for n in "abcd"]
    plan = plan_levels(world(services, pods, [signal("s", *"abcd")]), NOW)
    assert all(d.granted for d in plan.services.values())


def test_very_high_preempts_a_high_escalation() -> None:
    services = [svc("a", priority=125), svc("b", priority=125), svc("v", priority=150)]
    pods = [pod("p-a", "a"), pod("p-b", "b"), pod("p-v", "v")]
    memory = {("ns", "a"): Memory(escalated_since=NOW), ("ns", "b"): Memory(escalated_since=NOW)}
    plan = plan_levels(world(services, pods, [signal("s", "a", "b", "v")], memory=memory), NOW)
    assert plan.services[("ns", "v")].granted
    assert sum(plan.services[k].granted for k in [("ns", "a"), ("ns", "b")]) == 1


def test_incumbent_keeps_its_slot_against_equal_priority_newcomer() -> None:
    services = [svc(n, priority=125) for n in ("a", "b", "c")]
    pods = [pod(f"p-{n}", n) for n in ("a", "b", "c")]
    memory = {
        ("ns", "c"): Memory(escalated_since=NOW - timedelta(seconds=5)),
        ("ns", "b"): Memory(escalated_since=NOW),
    }
    plan = plan_levels(world(services, pods, [signal("s", "a", "b", "c")], memory=memory), NOW)
    assert plan.services[("ns", "c")].granted and plan.services[("ns", "b")].granted
    assert not plan.services[("ns", "a")].granted


def test_higher_priority_wins_node_capacity() -> None:
    node = Node("n1", Amount(1900, 64 * GI))  # baseline 2 x 900m; room for only one 99m step up
    services = [svc("lo", priority=40), svc("hi", priority=90)]
    pods = [pod("p-lo", "lo"), pod("p-hi", "hi")]
    plan = plan_levels(world(services, pods, [signal("s", "lo", "hi")], nodes=[node]), NOW)
    assert plan.pods[("ns", "p-hi")].level is Level.PEAK
    assert plan.pods[("ns", "p-lo")].level is Level.BASELINE
    assert plan.pods[("ns", "p-lo")].reason is Reason.NODE_CAPACITY
    assert "held at baseline: NodeCapacity" in plan.services[("ns", "lo")].message


def test_priority_beats_utilization() -> None:
    node = Node("n1", Amount(1900, 64 * GI))
    services = [svc("busy", priority=150, utilization=0.95), svc("focused", priority=25)]
    pods = [pod("p-busy", "busy", cpu=900), pod("p-f", "focused", cpu=900)]
    plan = plan_levels(world(services, pods, [signal("s", "focused")], nodes=[node]), NOW)
    assert plan.pods[("ns", "p-f")].level is Level.PEAK
    assert plan.pods[("ns", "p-busy")].reason is Reason.NODE_CAPACITY


def test_utilization_escalates_when_there_is_room() -> None:
    plan = plan_levels(world([svc("a", utilization=0.85)], [pod("p", "a")]), NOW)
    assert plan.pods[("ns", "p")].level is Level.PEAK
    assert plan.services[("ns", "a")].reason is Reason.UTILIZATION


def test_reserved_requests_of_other_pods_count_against_the_node() -> None:
    node = Node("n1", Amount(1000, 64 * GI), reserved=Amount(50, 0))
    plan = plan_levels(world([svc("a")], [pod("p", "a")], [signal("s", "a")], nodes=[node]), NOW)
    assert plan.pods[("ns", "p")].reason is Reason.NODE_CAPACITY


def test_cooldown_keeps_peak_after_attention_ends_then_relaxes() -> None:
    memory = {
        ("ns", "a"): Memory(
            escalated_since=NOW - timedelta(seconds=40), attention_until=NOW - timedelta(seconds=10)
        )
    }
    plan = plan_levels(world([svc("a", cooldown_seconds=30)], [pod("p", "a")], memory=memory), NOW)
    assert plan.pods[("ns", "p")].level is Level.PEAK
    assert plan.services[("ns", "a")].reason is Reason.COOLDOWN
    later = plan_levels(
        world([svc("a", cooldown_seconds=30)], [pod("p", "a")], memory=memory), NOW + timedelta(seconds=21)
    )
    assert later.pods[("ns", "p")].level is Level.BASELINE
    assert later.services[("ns", "a")].memory.escalated_since is None


def test_flapping_signal_does_not_thrash() -> None:
    """On/off every second for a minute: the pod is resized up once and stays up."""
    s = svc("a", cooldown_seconds=30)
    current = pod("p", "a")
    memory: dict[tuple[str, str], Memory] = {}
    resizes = 0
    for second in range(60):
        now = NOW + timedelta(seconds=second)
        sigs = [signal(f"s{second}", "a", start=now, ttl=1)] if second % 2 == 0 else []
        plan = plan_levels(world([s], [current], sigs, memory=memory), now)
        d = plan.pods[current.key]
        if d.needs_resize:
            resizes += 1
            current = Pod(current.key, current.service, current.node, current.qos, d.target)
        memory = {k: v.memory for k, v in plan.services.items()}
    assert resizes == 1


# ------------------------------------------------------------------ rests after maxPeakSeconds

OVERDUE = Memory(escalated_since=NOW - timedelta(seconds=100))  # at peak for maxPeakSeconds (100)
SMALL_NODE = Node("n1", Amount(1900, 256 * GI))  # room for one pod's extra 100m, not two


def guess(name: str, *services: str, intensity: float = 1.0) -> Signal:
    return Signal(
        name,
        tuple(("ns", s) for s in services),
        intensity,
        "predictor",
        NOW - timedelta(seconds=1),
        NOW + timedelta(seconds=20),
    )


def long(name: str, priority: int = 125) -> Service:
    return svc(name, priority=priority, max_peak_seconds=100, cooldown_seconds=10)


REST_CASES = {
    # name: (services, pods, signals, memory, nodes, expected (granted, reason) of service "a")
    "user alone past maxPeakSeconds keeps peak": (
        [long("a")],
        [pod("pa", "a")],
        [signal("x", "a")],
        {("ns", "a"): OVERDUE},
        [BIG_NODE],
        (True, Reason.ATTENTION),
    ),
    "user past maxPeakSeconds keeps peak while the other slot holder is no contender": (
        [long("a"), long("b")],
        [pod("pa", "a"), pod("pb", "b")],
        [signal("x", "a"), signal("y", "b")],
        {("ns", "a"): OVERDUE},
        [BIG_NODE],
        (True, Reason.ATTENTION),
    ),
    "user past maxPeakSeconds rests when a third high-priority service waits": (
        [long("a"), long("b"), long("c")],
        [pod("pa", "a"), pod("pb", "b"), pod("pc", "c")],
        [signal("x", "a"), signal("y", "b"), signal("z", "c")],
        {("ns", "a"): OVERDUE, ("ns", "b"): Memory(escalated_since=NOW - timedelta(seconds=5))},
        [BIG_NODE],
        (False, Reason.MAX_PEAK_TIME),
    ),
    "a very_high user past maxPeakSeconds yields to a waiting high one too": (
        [long("a", 150), long("b", 150), long("c")],
        [pod("pa", "a"), pod("pb", "b"), pod("pc", "c")],
        [signal("x", "a"), signal("y", "b"), signal("z", "c")],
        {("ns", "a"): OVERDUE},
        [BIG_NODE],
        (False, Reason.MAX_PEAK_TIME),
    ),
    "a resting user comes back at once when nothing waits": (
        [long("a")],
        [pod("pa", "a")],
        [signal("x", "a")],
        {("ns", "a"): Memory(resting_until=NOW + timedelta(seconds=5))},
        [BIG_NODE],
        (True, Reason.ATTENTION),
    ),
    "a prediction past maxPeakSeconds rests with nothing waiting": (
        [long("a")],
        [pod("pa", "a")],
        [guess("g", "a")],
        {("ns", "a"): OVERDUE},
        [BIG_NODE],
        (False, Reason.MAX_PEAK_TIME),
    ),
    "utilization past maxPeakSeconds rests with nothing waiting": (
        [replace(long("a"), utilization=0.95)],
        [pod("pa", "a")],
        [],
        {("ns", "a"): OVERDUE},
        [BIG_NODE],
        (False, Reason.MAX_PEAK_TIME),
    ),
    "a cooldown past maxPeakSeconds rests with nothing waiting": (
        [long("a")],
        [pod("pa", "a")],
        [],
        {("ns", "a"): replace(OVERDUE, attention_until=NOW - timedelta(seconds=2))},
        [BIG_NODE],
        (False, Reason.MAX_PEAK_TIME),
    ),
    "a prediction resting stays at baseline": (
        [long("a")],
        [pod("pa", "a")],
        [guess("g", "a")],
        {("ns", "a"): Memory(resting_until=NOW + timedelta(seconds=5))},
        [BIG_NODE],
        (False, Reason.MAX_PEAK_TIME),
    ),
}


@pytest.mark.parametrize("case", list(REST_CASES), ids=list(REST_CASES))
def test_rests_only_share_capacity(case: str) -> None:
    services, pods, signals, memory, nodes, expected = REST_CASES[case]
    plan = plan_levels(world(services, pods, signals, nodes, memory), NOW)
    d = plan.services[("ns", "a")]
    assert (d.granted, d.reason) == expected, d.message
    if (
        expected[1] is Reason.MAX_PEAK_TIME
        and ("ns", "a") in memory
        and memory[("ns", "a")].resting_until is None
    ):
        assert d.memory.resting_until == NOW + timedelta(seconds=10), "a rest lasts one cooldown from now"
        assert d.memory.escalated_since is None
    if expected[0]:
        assert plan.pods[("ns", "pa")].level is Level.PEAK


def test_a_rest_gives_the_slot_to_the_waiting_service_and_ends_after_a_cooldown() -> None:
    services = [long("a"), long("b"), long("c")]
    pods = [pod("pa", "a"), pod("pb", "b"), pod("pc", "c")]
    sigs = [signal("x", "a", ttl=600), signal("y", "b", ttl=600), signal("z", "c", ttl=600)]
    memory = {("ns", "a"): OVERDUE, ("ns", "b"): Memory(escalated_since=NOW - timedelta(seconds=5))}
    plan = plan_levels(world(services, pods, sigs, memory=memory), NOW)
    assert plan.services[("ns", "c")].granted and not plan.services[("ns", "a")].granted
    assert plan.pods[("ns", "pa")].reason is Reason.MAX_PEAK_TIME
    memory = {k: v.memory for k, v in plan.services.items()}
    resting = plan_levels(world(services, pods, sigs, memory=memory), NOW + timedelta(seconds=5))
    assert not resting.services[("ns", "a")].granted, "still resting while c and b hold the slots"
    memory = {k: v.memory for k, v in resting.services.items()}
    after = plan_levels(world(services, pods, sigs, memory=memory), NOW + timedelta(seconds=11))
    # The rest is over: a (equal priority, live user) waits its turn as any newcomer would.
    assert after.services[("ns", "a")].reason is Reason.HIGH_PRIORITY_LIMIT
    assert after.services[("ns", "a")].memory.resting_until is None


def test_a_resting_user_takes_a_slot_back_as_soon_as_it_frees() -> None:
    services = [long("a"), long("b"), long("c")]
    pods = [pod("pa", "a"), pod("pb", "b"), pod("pc", "c")]
    memory = {("ns", "a"): Memory(resting_until=NOW + timedelta(seconds=8))}
    plan = plan_levels(world(services, pods, [signal("x", "a"), signal("z", "c")], memory=memory), NOW)
    assert plan.services[("ns", "a")].granted, "b left: a slot is free, the rest costs nothing"


def test_a_user_past_max_peak_yields_node_room_but_keeps_its_slot() -> None:
    services = [long("a", 80), svc("b", priority=40)]
    pods = [pod("pa", "a"), pod("pb", "b")]
    plan = plan_levels(
        world(services, pods, [signal("x", "a"), signal("y", "b")], [SMALL_NODE], {("ns", "a"): OVERDUE}),
        NOW,
    )
    assert plan.pods[("ns", "pb")].level is Level.PEAK, "the other user gets the room"
    assert plan.pods[("ns", "pa")].reason is Reason.NODE_CAPACITY
    assert plan.services[("ns", "a")].granted
    alone = plan_levels(world(services, pods, [signal("x", "a")], [SMALL_NODE], {("ns", "a"): OVERDUE}), NOW)
    assert alone.pods[("ns", "pa")].level is Level.PEAK, "nobody else wants the room: no rest"


@pytest.mark.parametrize("guessed_priority", [125, 150])
def test_real_attention_preempts_a_prediction_holding_a_slot_at_once(guessed_priority: int) -> None:
    services = [svc("a", priority=guessed_priority), svc("b", priority=150), svc("c", priority=125)]
    pods = [pod(f"p-{n}", n) for n in ("a", "b", "c")]
    memory = {("ns", "a"): Memory(escalated_since=NOW - timedelta(seconds=3))}  # the guess holds a slot
    plan = plan_levels(
        world(
            services,
            pods,
            [guess("g", "a"), signal("sb", "b"), signal("sc", "c", intensity=0.2)],
            memory=memory,
        ),
        NOW,
    )
    assert plan.services[("ns", "c")].granted and plan.services[("ns", "b")].granted
    assert not plan.services[("ns", "a")].granted
    assert plan.services[("ns", "a")].reason is Reason.HIGH_PRIORITY_LIMIT


def test_a_prediction_never_holds_node_room_a_user_needs() -> None:
    services = [svc("a", priority=150), svc("b", priority=25)]
    pods = [pod("pa", "a"), pod("pb", "b")]
    memory = {("ns", "a"): Memory(escalated_since=NOW - timedelta(seconds=3))}
    plan = plan_levels(world(services, pods, [guess("g", "a"), signal("y", "b")], [SMALL_NODE], memory), NOW)
    assert plan.pods[("ns", "pb")].level is Level.PEAK
    assert plan.pods[("ns", "pa")].reason is Reason.NODE_CAPACITY


def test_infeasible_pod_falls_back_to_baseline_others_still_escalate() -> None:
    bad = Pod(
        ("ns", "bad"), ("ns", "a"), "n1", QoS.BURSTABLE, pod("x", "a").containers, infeasible_at_peak=True
    )
    plan = plan_levels(world([svc("a")], [bad, pod("ok", "a")], [signal("s", "a")]), NOW)
    assert plan.pods[("ns", "bad")].level is Level.BASELINE
    assert plan.pods[("ns", "bad")].reason is Reason.INFEASIBLE
    assert plan.pods[("ns", "ok")].level is Level.PEAK
    assert plan.services[("ns", "a")].level == "Mixed"


def test_best_effort_and_pending_pods_are_never_resized() -> None:
    be = Pod(("ns", "be"), ("ns", "a"), "n1", QoS.BEST_EFFORT, (ContainerResources("app"),))
    pending = Pod(("ns", "pe"), ("ns", "a"), None, QoS.BURSTABLE, pod("x", "a").containers, running=False)
    plan = plan_levels(world([svc("a")], [be, pending], [signal("s", "a")]), NOW)
    assert not plan.pods[("ns", "be")].needs_resize
    assert not plan.pods[("ns", "pe")].needs_resize


def test_pod_already_at_target_needs_no_resize() -> None:
    s = svc("a")
    p = pod("p", "a")
    at_peak = Pod(p.key, p.service, p.node, p.qos, target_resources(p, s, Level.PEAK))
    plan = plan_levels(world([s], [at_peak], [signal("x", "a")]), NOW)
    assert not plan.pods[p.key].needs_resize


def test_signal_for_several_services_escalates_each() -> None:
    plan = plan_levels(
        world([svc("a"), svc("b")], [pod("pa", "a"), pod("pb", "b")], [signal("s", "a", "b")]), NOW
    )
    assert plan.pods[("ns", "pa")].level is plan.pods[("ns", "pb")].level is Level.PEAK


# ------------------------------------------------------------------ properties

CPU = st.integers(min_value=100, max_value=4000)
MEM = st.integers(min_value=64, max_value=4096).map(lambda m: m * 2**20)


@st.composite
def worlds(draw: st.DrawFn) -> tuple[World, datetime]:
    nodes = [
        Node(f"n{i}", Amount(draw(st.integers(4000, 16000)), draw(st.integers(8, 32)) * GI))
        for i in range(draw(st.integers(1, 3)))
    ]
    services = []
    pods = []
    for i in range(draw(st.integers(1, 6))):
        cpu, mem = draw(CPU), draw(MEM)
        s = Service(
            ("ns", f"s{i}"),
            draw(st.sampled_from([25, 40, 65, 80, 90, 125, 150])),
            {"app": Amount(cpu, mem)},
            baseline_ratio=draw(st.floats(0.5, 1.0)),
            utilization=draw(st.none() | st.floats(0, 1)),
        )
        services.append(s)
        for j in range(draw(st.integers(0, 3))):
            qos = draw(st.sampled_from([QoS.GUARANTEED, QoS.BURSTABLE]))
            start_cpu = draw(st.integers(50, cpu))
            start_mem = draw(st.integers(32, mem // 2**20)) * 2**20
            if qos is QoS.GUARANTEED:
                c = ContainerResources("app", Amount(start_cpu, start_mem), Amount(start_cpu, start_mem))
            else:
                lim = draw(st.sampled_from([None, cpu, cpu * 2]))
                c = ContainerResources(
                    "app", Amount(start_cpu, start_mem), Amount(lim, None if lim is None else mem)
                )
            node = draw(st.sampled_from(nodes)).name
            pods.append(Pod(("ns", f"s{i}-{j}"), s.key, node, qos, (c,)))
    sigs = [
        Signal(
            f"g{k}",
            tuple(draw(st.sets(st.sampled_from([s.key for s in services]), min_size=1))),
            draw(st.floats(0, 1)),
            "t",
            NOW - timedelta(seconds=1),
            NOW + timedelta(seconds=30),
        )
        for k in range(draw(st.integers(0, 5)))
    ]
    return World({s.key: s for s in services}, pods, {n.name: n for n in nodes}, sigs), NOW


@given(worlds())
@settings(max_examples=300, deadline=None)
def test_properties_capacity_qos_and_high_cap(case: tuple[World, datetime]) -> None:
    w, now = case
    plan = plan_levels(w, now)
    pods = {p.key: p for p in w.pods}
    # QoS never changes.
    for key, d in plan.pods.items():
        assert qos_of(d.target) is pods[key].qos
    # At most two high-priority services escalated.
    assert sum(1 for k, d in plan.services.items() if d.granted and w.services[k].priority >= 125) <= 2
    # Escalations never push a node over allocatable (beyond what baseline alone already needs).
    for name, node in w.nodes.items():
        on_node = [p for p in w.pods if p.node == name]
        planned = [pod_requests(plan.pods[p.key].target) for p in on_node]
        base = [pod_requests(target_resources(p, w.services[p.service], Level.BASELINE)) for p in on_node]
        cpu = sum(a.cpu or 0 for a in planned)
        mem = sum(a.memory or 0 for a in planned)
        base_cpu = sum(a.cpu or 0 for a in base)
        base_mem = sum(a.memory or 0 for a in base)
        assert cpu <= max(node.allocatable.cpu or 0, base_cpu)
        assert mem <= max(node.allocatable.memory or 0, base_mem)
    # A pod at peak belongs to a granted service.
    for key, d in plan.pods.items():
        if d.level is Level.PEAK:
            assert plan.services[pods[key].service].granted


def test_predicted_attention_never_takes_a_high_priority_slot_from_a_user() -> None:
    services = [svc(n, priority=125) for n in ("a", "b", "c")]
    pods = [pod(f"p-{n}", n) for n in ("a", "b", "c")]
    guess = Signal(
        "guess", (("ns", "a"),), 1.0, "predictor", NOW - timedelta(seconds=1), NOW + timedelta(seconds=20)
    )
    plan = plan_levels(
        world(services, pods, [guess, signal("sb", "b", intensity=0.5), signal("sc", "c", intensity=0.5)]),
        NOW,
    )
    assert plan.services[("ns", "b")].granted and plan.services[("ns", "c")].granted
    assert not plan.services[("ns", "a")].granted


T0 = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def test_a_withdrawn_signal_starts_the_cooldown_now_not_at_its_planned_end() -> None:
    from heady_operator.planning.incremental import IncrementalPlanner

    svc = Service(("ns", "w"), 80, {"app": Amount(1000, None)}, 0.9, 10, 900)
    inc = IncrementalPlanner()
    inc.set_service(svc.key, svc)
    sig = Signal("s", (svc.key,), 1.0, "ui", T0, T0 + timedelta(seconds=300))
    inc.set_signal("s", sig)
    inc.plan(T0)
    inc.plan(T0 + timedelta(seconds=1))
    assert inc.service_decisions[svc.key].granted
    inc.set_signal("s", None)  # deleted at t=5 s
    inc.plan(T0 + timedelta(seconds=5))
    assert inc.memory[svc.key].attention_until == T0 + timedelta(seconds=5)
    inc.plan(T0 + timedelta(seconds=14))
    assert inc.service_decisions[svc.key].granted, "cooldown of 10 s from the deletion"
    inc.plan(T0 + timedelta(seconds=15))
    assert not inc.service_decisions[svc.key].granted, "relaxed 10 s after the deletion, not after 310 s"
