"""The incremental planner decides exactly what the full planner decides, whatever happens in between.

Random event sequences (services, pods, nodes and signals appearing, changing and going; pods
resized to what was decided; time moving) drive both planners: `plan_levels` with its own
memory fed back as the operator used to, and `IncrementalPlanner` told only the changes. Every
plan must be identical, decisions and memory alike. Nodes are small so room is contended and
the high-priority cap is hit.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from heady_operator.planning.incremental import IncrementalPlanner, mismatches
from heady_operator.planning.levels import (
    Amount,
    ContainerResources,
    Memory,
    Node,
    Plan,
    Pod,
    Policy,
    Service,
    Signal,
    World,
    plan_levels,
    qos_of,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SERVICES = [("ns", f"s{i}") for i in range(5)]
NODES = ["n0", "n1", "n2"]
PRIORITIES = [25, 80, 125, 150]
POLICY = Policy(max_high_escalations=2)

services_st = st.builds(
    lambda key, prio, cpu, ratio, cool, peak_s, util: (
        key,
        Service(key, prio, {"app": Amount(cpu, cpu * 1_000_000)}, ratio, cool, max(cool, peak_s), util),
    ),
    st.sampled_from(SERVICES),
    st.sampled_from(PRIORITIES),
    st.integers(100, 1500),
    st.sampled_from([0.5, 0.9, 1.0]),
    st.integers(0, 40),
    st.integers(1, 120),
    st.one_of(st.none(), st.sampled_from([0.5, 0.9])),
)


@st.composite
def pods_st(draw: Any) -> Pod:
    i = draw(st.integers(0, 9))
    cpu = draw(st.integers(50, 1500))
    kind = draw(st.sampled_from(["guaranteed", "burstable", "besteffort"]))
    if kind == "guaranteed":
        c = ContainerResources("app", Amount(cpu, cpu * 1_000_000), Amount(cpu, cpu * 1_000_000))
    elif kind == "burstable":
        c = ContainerResources("app", Amount(cpu // 2, None), Amount(cpu, None))
    else:
        c = ContainerResources("app")
    containers = (c,) if draw(st.booleans()) else (c, ContainerResources("side", Amount(10, 10), Amount()))
    service = draw(st.sampled_from([*SERVICES, ("ns", "unknown")]))
    return Pod(
        ("ns", f"p{i}"),
        service,
        draw(st.sampled_from([*NODES, "gone", None])),
        qos_of(containers),
        containers,
        draw(st.booleans()) or True,
        draw(st.integers(0, 9)) == 0,
    )


signals_st = st.builds(
    lambda i, svcs, intensity, source, start, length: (
        f"sig{i}",
        (tuple(sorted(set(svcs))), intensity, source, start, length),
    ),
    st.integers(0, 6),
    st.lists(st.sampled_from([*SERVICES, ("ns", "nosuch")]), min_size=1, max_size=2),
    st.sampled_from([0.05, 0.5, 1.0]),
    st.sampled_from(["ui", "predictor"]),
    st.integers(-5, 20),
    st.integers(1, 60),
)

ops_st = st.lists(
    st.one_of(
        st.tuples(st.just("service"), services_st),
        st.tuples(st.just("drop-service"), st.sampled_from(SERVICES)),
        st.tuples(st.just("forget-service"), st.sampled_from(SERVICES)),
        st.tuples(st.just("pod"), pods_st()),
        st.tuples(st.just("drop-pod"), st.integers(0, 9)),
        st.tuples(st.just("node"), st.tuples(st.sampled_from(NODES), st.integers(500, 4000))),
        st.tuples(st.just("drop-node"), st.sampled_from(NODES)),
        st.tuples(st.just("signal"), signals_st),
        st.tuples(st.just("drop-signal"), st.integers(0, 6)),
        st.tuples(st.just("actuate"), st.integers(0, 9)),
        st.tuples(st.just("time"), st.integers(0, 70)),
        st.tuples(st.just("plan"), st.none()),
    ),
    min_size=1,
    max_size=60,
)


class Reference:
    """The old controller's way: the whole world, planned from scratch, memory fed back."""

    def __init__(self) -> None:
        self.services: dict[tuple[str, str], Service] = {}
        self.pods: dict[tuple[str, str], Pod] = {}
        self.nodes: dict[str, Node] = {}
        self.signals: dict[str, Signal] = {}
        self.memory: dict[tuple[str, str], Memory] = {}

    def plan(self, now: datetime) -> Plan:
        reserved: dict[str, list[int]] = {}
        managed = []
        for pod in self.pods.values():
            if pod.service in self.services:
                managed.append(pod)
            elif pod.running and pod.node is not None:
                acc = reserved.setdefault(pod.node, [0, 0])
                for c in pod.containers:
                    acc[0] += (c.requests.cpu if c.requests.cpu is not None else c.limits.cpu) or 0
                    acc[1] += (c.requests.memory if c.requests.memory is not None else c.limits.memory) or 0
        nodes = {
            name: Node(name, n.allocatable, Amount(*reserved.get(name, [0, 0])))
            for name, n in self.nodes.items()
        }
        world = World(self.services, managed, nodes, list(self.signals.values()), dict(self.memory))
        plan = plan_levels(world, now, POLICY)
        for key, decision in plan.services.items():
            self.memory[key] = decision.memory
        return plan


def run(ops: list[tuple[str, Any]]) -> None:
    inc = IncrementalPlanner(POLICY)
    ref = Reference()
    now = T0
    for op, arg in [*ops, ("plan", None)]:
        if op == "service":
            key, svc = arg
            ref.services[key] = svc
            inc.set_service(key, svc)
        elif op == "drop-service":
            ref.services.pop(arg, None)
            inc.set_service(arg, None)
        elif op == "forget-service":
            ref.services.pop(arg, None)
            ref.memory.pop(arg, None)
            inc.forget_service(arg)
        elif op == "pod":
            ref.pods[arg.key] = arg
            inc.set_pod(arg.key, arg)
        elif op == "drop-pod":
            key = ("ns", f"p{arg}")
            ref.pods.pop(key, None)
            inc.set_pod(key, None)
        elif op == "node":
            name, cpu = arg
            ref.nodes[name] = Node(name, Amount(cpu, cpu * 1_000_000))
            inc.set_node(name, ref.nodes[name])
        elif op == "drop-node":
            ref.nodes.pop(arg, None)
            inc.set_node(arg, None)
        elif op == "signal":
            name, (svcs, intensity, source, start, length) = arg
            begin = now + timedelta(seconds=start)
            sig = Signal(name, svcs, intensity, source, begin, begin + timedelta(seconds=length), "u")
            ref.signals[name] = sig
            inc.set_signal(name, sig)
        elif op == "drop-signal":
            ref.signals.pop(f"sig{arg}", None)
            inc.set_signal(f"sig{arg}", None)
        elif op == "actuate":
            key = ("ns", f"p{arg}")
            decision = inc.pod_decisions.get(key)
            if decision is not None and decision.needs_resize and key in ref.pods:
                pod = Pod(**{**ref.pods[key].__dict__, "containers": decision.target})
                ref.pods[key] = pod
                inc.set_pod(key, pod)
        elif op == "time":
            now += timedelta(seconds=arg)
        else:
            expected = ref.plan(now)
            inc.plan(now)
            while inc.has_pending_work():
                # The operator plans again at once when a plan left work (a grant changes a rank).
                inc.plan(now)
                expected = ref.plan(now)
            assert mismatches(expected, inc.snapshot()) == []
            assert {k: inc.memory.get(k, Memory()) for k in inc.services} == {
                k: ref.memory.get(k, Memory()) for k in ref.services
            }


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops_st)
def test_incremental_plans_equal_full_plans(ops: list[tuple[str, Any]]) -> None:
    run(ops)


def test_contended_node_goes_by_rank_then_pod_name() -> None:
    run(
        [
            ("node", ("n0", 1000)),
            ("service", (SERVICES[0], Service(SERVICES[0], 80, {"app": Amount(600, None)}, 0.5, 10, 100))),
            ("service", (SERVICES[1], Service(SERVICES[1], 150, {"app": Amount(600, None)}, 0.5, 10, 100))),
            (
                "pod",
                Pod(
                    ("ns", "p1"),
                    SERVICES[0],
                    "n0",
                    qos_of([ContainerResources("app", Amount(300, None), Amount(600, None))]),
                    (ContainerResources("app", Amount(300, None), Amount(600, None)),),
                ),
            ),
            (
                "pod",
                Pod(
                    ("ns", "p2"),
                    SERVICES[1],
                    "n0",
                    qos_of([ContainerResources("app", Amount(300, None), Amount(600, None))]),
                    (ContainerResources("app", Amount(300, None), Amount(600, None)),),
                ),
            ),
            ("signal", ("sig0", ((SERVICES[0], SERVICES[1]), 1.0, "ui", 0, 30))),
            ("plan", None),
            ("time", 31),
            ("plan", None),
            ("time", 15),
            ("plan", None),
        ]
    )


def _pod(i: int, service: tuple[str, str]) -> Pod:
    c = ContainerResources("app", Amount(300, None), Amount(600, None))
    return Pod(("ns", f"p{i}"), service, "n0", qos_of([c]), (c,))


def test_rests_under_contention_and_predictions_preempted_plan_alike() -> None:
    """Three high-priority users past maxPeakSeconds take turns; a guess gives way at once."""
    high = [Service(SERVICES[i], 125, {"app": Amount(600, None)}, 0.5, 5, 20) for i in range(4)]
    ops: list[tuple[str, Any]] = [("node", ("n0", 4000))]
    ops += [("service", (s.key, s)) for s in high]
    ops += [("pod", _pod(i, SERVICES[i])) for i in range(4)]
    ops += [("signal", (f"sig{i}", ((SERVICES[i],), 1.0, "ui", 0, 200))) for i in range(2)]
    ops += [("signal", ("sig3", ((SERVICES[3],), 1.0, "predictor", 0, 200))), ("plan", None)]
    ops += [("time", 3), ("signal", ("sig2", ((SERVICES[2],), 1.0, "ui", 0, 200))), ("plan", None)]
    for _ in range(12):
        ops += [("actuate", i) for i in range(4)]
        ops += [("time", 4), ("plan", None)]
    run(ops)
