"""The level planner for the hot path: the decisions of `plan_levels`, recomputed only where something changed.

`plan_levels` (levels.py) looks at the whole world on every call; at 10,000 pods that is
100-300 ms, and a signal storm asks for a plan every few milliseconds. This planner keeps the
world and every decision between calls, is told of each change as it happens (a pod, a node,
a service, a signal), and on `plan(now)` redoes only:

- the demand of services an event or a deadline touched (signal start/end, cooldown end,
  maxPeakSeconds, end of a rest: one heap holds them all);
- the ranking and the high-priority cap over the short list of services that want peak;
- node room only on nodes whose pods, allocatable or granted services (or their order) changed;
- the decisions of the pods and services those touched.

It stays pure: no I/O and no clock (the caller passes `now`). `plan_levels` is its oracle: a
property test drives both through random event sequences and requires identical plans, and
the operator re-checks the two against each other periodically (`check`).
"""

from __future__ import annotations

import heapq
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from heady_operator.planning.levels import (
    Amount,
    ContainerResources,
    Demand,
    Level,
    Memory,
    Node,
    Plan,
    Pod,
    PodDecision,
    PodKey,
    Policy,
    QoS,
    Rank,
    Reason,
    Service,
    ServiceDecision,
    ServiceKey,
    Signal,
    World,
    demand_of,
    plan_levels,
    pod_requests,
    rank_of,
    rest_of,
    target_resources,
)


@dataclass
class Delta:
    """What one `plan` changed: new or different decisions, and decisions that no longer exist."""

    pods: dict[PodKey, PodDecision] = field(default_factory=dict)
    services: dict[ServiceKey, ServiceDecision] = field(default_factory=dict)
    removed_pods: set[PodKey] = field(default_factory=set)
    removed_services: set[ServiceKey] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(self.pods or self.services or self.removed_pods or self.removed_services)


class IncrementalPlanner:
    def __init__(self, policy: Policy | None = None) -> None:
        self.policy = policy or Policy()
        # The world, as told.
        self.services: dict[ServiceKey, Service] = {}
        self.pods: dict[PodKey, Pod] = {}
        self.nodes: dict[str, Node] = {}
        self.signals: dict[Hashable, Signal] = {}
        self.memory: dict[ServiceKey, Memory] = {}
        # Indexes kept by delta.
        self._pods_of: dict[ServiceKey, set[PodKey]] = {}
        self._pods_on: dict[str, set[PodKey]] = {}
        self._signals_of: dict[ServiceKey, dict[Hashable, Signal]] = {}
        self._contrib: dict[PodKey, tuple[str, int, int]] = {}  # node, cpu, memory counted at baseline
        self._base_used: dict[str, list[int]] = {}
        # Pods that may go to peak (their service is granted; running, fitting QoS, feasible), by
        # node, with the sum of what peak adds: room is then checked in O(1) when all fit.
        self._cands_on: dict[str, set[PodKey]] = {}
        self._cand_sum: dict[str, list[int]] = {}  # node -> [cpu, memory, pods whose extra < 0]
        self._cand_of: dict[PodKey, tuple[str, int, int]] = {}
        # Decisions.
        self._demand: dict[ServiceKey, Demand] = {}
        self._rank: dict[ServiceKey, Rank] = {}
        self._wanting: set[ServiceKey] = set()
        self._wanting_high: set[ServiceKey] = set()  # of them, high priorities (the capped ones)
        self._granted: set[ServiceKey] = set()
        self._high_granted: list[ServiceKey] = []
        self._extra: dict[PodKey, tuple[int, int]] = {}  # what going to peak adds to a pod's requests
        self._peak_on: dict[str, set[PodKey]] = {}
        self._blocked_on: dict[str, set[PodKey]] = {}
        self._waiting: dict[ServiceKey, str] = {}  # service -> waiting message
        self._at_peak: set[PodKey] = set()
        self._capacity_blocked: set[PodKey] = set()
        self.pod_decisions: dict[PodKey, PodDecision] = {}
        self.service_decisions: dict[ServiceKey, ServiceDecision] = {}
        self._deadlines: list[tuple[datetime, ServiceKey]] = []
        self._deadline_of: dict[ServiceKey, datetime] = {}
        # Times a caller asked to be woken at (time-based changes outside this world: the
        # recurrence's next prediction); a plan at or after one drops it.
        self._wakeups: list[datetime] = []
        # What the next plan must look at.
        self._dirty_demand: set[ServiceKey] = set()
        self._dirty_nodes: set[str] = set()
        self._dirty_pods: set[PodKey] = set()
        self._dirty_decisions: set[ServiceKey] = set()
        self._rank_dirty = False

    # ------------------------------------------------------------------ changes in

    def set_service(self, key: ServiceKey, service: Service | None) -> None:
        """A service appeared, changed, or (None) stopped being plannable (invalid, workload gone)."""
        old = self.services.get(key)
        if old == service:
            return
        if service is None:
            self.services.pop(key, None)
        else:
            self.services[key] = service
        for pkey in self._pods_of.get(key, ()):
            self._recount(pkey)
            self._dirty_pods.add(pkey)
        self._dirty_demand.add(key)
        self._dirty_decisions.add(key)
        self._rank_dirty = True
        if key in self._granted:
            self._mark_nodes_of(key)

    def forget_service(self, key: ServiceKey) -> None:
        """The HeadyService was deleted: its memory goes too."""
        self.set_service(key, None)
        self.memory.pop(key, None)

    def restore_memory(self, key: ServiceKey, memory: Memory) -> None:
        """What a previous run decided (read back from status after a restart)."""
        if self.memory.get(key) != memory:
            self.memory[key] = memory
            self._dirty_demand.add(key)

    def set_pod(self, key: PodKey, pod: Pod | None) -> None:
        old = self.pods.get(key)
        if old == pod:
            return
        if old is not None:
            if pod is None or old.node != pod.node:
                self._at_peak.discard(key)  # its new node (if any) decides again
                self._capacity_blocked.discard(key)
                if old.node is not None:
                    self._peak_on.get(old.node, set()).discard(key)
                    self._blocked_on.get(old.node, set()).discard(key)
            self._pods_of.get(old.service, set()).discard(key)
            if old.node is not None:
                self._pods_on.get(old.node, set()).discard(key)
                self._dirty_nodes.add(old.node)
            self._dirty_decisions.add(old.service)
        if pod is None:
            self.pods.pop(key, None)
            self._uncount(key)
            self._sync_candidate(key)
            self._dirty_pods.add(key)
            return
        self.pods[key] = pod
        self._pods_of.setdefault(pod.service, set()).add(key)
        if pod.node is not None:
            self._pods_on.setdefault(pod.node, set()).add(key)
            self._dirty_nodes.add(pod.node)
        self._recount(key)
        self._dirty_pods.add(key)
        self._dirty_decisions.add(pod.service)

    def set_node(self, name: str, node: Node | None) -> None:
        if self.nodes.get(name) == node:
            return
        known = name in self.nodes
        if node is None:
            self.nodes.pop(name, None)
        else:
            self.nodes[name] = node
        if known != (node is not None):
            for pkey in self._pods_on.get(name, ()):
                self._sync_candidate(pkey)  # a pod on an unknown node cannot go to peak
        self._dirty_nodes.add(name)

    def set_signal(self, key: Hashable, signal: Signal | None) -> None:
        old = self.signals.get(key)
        if old == signal:
            return
        if old is not None:
            for svc in old.services:
                self._signals_of.get(svc, {}).pop(key, None)
                self._dirty_demand.add(svc)
        if signal is None:
            self.signals.pop(key, None)
            return
        self.signals[key] = signal
        for svc in signal.services:
            self._signals_of.setdefault(svc, {})[key] = signal
            self._dirty_demand.add(svc)

    # ------------------------------------------------------------------ node accounting

    def _count_of(self, pod: Pod) -> tuple[int, int]:
        service = self.services.get(pod.service)
        if service is None or pod.qos is QoS.BEST_EFFORT:
            req = pod_requests(pod.containers)
        else:
            req = pod_requests(target_resources(pod, service, Level.BASELINE))
        return req.cpu or 0, req.memory or 0

    def _recount(self, key: PodKey) -> None:
        self._uncount(key)
        pod = self.pods.get(key)
        self._extra.pop(key, None)
        if pod is None:
            return
        service = self.services.get(pod.service)
        if service is not None and pod.qos is not QoS.BEST_EFFORT:
            base = pod_requests(target_resources(pod, service, Level.BASELINE))
            top = pod_requests(target_resources(pod, service, Level.PEAK))
            self._extra[key] = ((top.cpu or 0) - (base.cpu or 0), (top.memory or 0) - (base.memory or 0))
        self._sync_candidate(key)
        if not pod.running or pod.node is None:
            return
        cpu, mem = self._count_of(pod)
        self._contrib[key] = (pod.node, cpu, mem)
        used = self._base_used.setdefault(pod.node, [0, 0])
        used[0] += cpu
        used[1] += mem
        self._dirty_nodes.add(pod.node)

    def _sync_candidate(self, key: PodKey) -> None:
        held = self._cand_of.pop(key, None)
        if held is not None:
            node, cpu, mem = held
            self._cands_on[node].discard(key)
            acc = self._cand_sum[node]
            acc[0] -= cpu
            acc[1] -= mem
            acc[2] -= cpu < 0 or mem < 0
            self._dirty_nodes.add(node)
        pod = self.pods.get(key)
        if (
            pod is None
            or pod.node is None
            or pod.service not in self._granted
            or self._eligible(pod) is not None
        ):
            return
        cpu, mem = self._extra.get(key, (0, 0))
        self._cand_of[key] = (pod.node, cpu, mem)
        self._cands_on.setdefault(pod.node, set()).add(key)
        acc = self._cand_sum.setdefault(pod.node, [0, 0, 0])
        acc[0] += cpu
        acc[1] += mem
        acc[2] += cpu < 0 or mem < 0
        self._dirty_nodes.add(pod.node)

    def _uncount(self, key: PodKey) -> None:
        held = self._contrib.pop(key, None)
        if held is None:
            return
        node, cpu, mem = held
        used = self._base_used[node]
        used[0] -= cpu
        used[1] -= mem
        self._dirty_nodes.add(node)

    def _mark_nodes_of(self, key: ServiceKey) -> None:
        for pkey in self._pods_of.get(key, ()):
            pod = self.pods[pkey]
            if pod.node is not None:
                self._dirty_nodes.add(pod.node)

    # ------------------------------------------------------------------ the plan

    def plan(self, now: datetime) -> Delta:
        while self._wakeups and self._wakeups[0] <= now:
            heapq.heappop(self._wakeups)
        while self._deadlines and self._deadlines[0][0] <= now:
            at, key = heapq.heappop(self._deadlines)
            if self._deadline_of.get(key) == at:
                del self._deadline_of[key]
                self._dirty_demand.add(key)
        self._plan_demands(now)
        if self._rank_dirty:
            self._plan_ranking()
        for name in self._dirty_nodes:
            self._allocate(name)
        self._dirty_nodes.clear()
        delta = Delta()
        for pkey in self._dirty_pods:
            self._decide_pod(pkey, delta)
        self._dirty_pods.clear()
        for skey in self._dirty_decisions:
            self._decide_service(skey, now, delta)
        self._dirty_decisions.clear()
        return delta

    def _plan_demands(self, now: datetime) -> None:
        dirty, self._dirty_demand = self._dirty_demand, set()
        for key in dirty:
            service = self.services.get(key)
            if service is None:
                if self._demand.pop(key, None) is not None:
                    self._rank.pop(key, None)
                    self._wanting.discard(key)
                    self._wanting_high.discard(key)
                    self._rank_dirty = True
                continue
            signals = list(self._signals_of.get(key, {}).values())
            d = demand_of(service, signals, self.memory.get(key, Memory()), now, self.policy)
            old = self._demand.get(key)
            self._demand[key] = d
            rank = rank_of(d)
            if old is None or old.wants != d.wants or self._rank.get(key) != rank:
                self._rank_dirty = True
                if key in self._granted:
                    self._mark_nodes_of(key)  # its place among the services sharing a node moved
            self._rank[key] = rank
            self._wanting_high.discard(key)
            if d.wants:
                self._wanting.add(key)
                if service.priority >= self.policy.high_priority:
                    self._wanting_high.add(key)
            else:
                self._wanting.discard(key)
            if old is None or old.reason != d.reason or old.message != d.message or old.signal != d.signal:
                self._dirty_pods.update(self._pods_of.get(key, ()))
            self._dirty_decisions.add(key)
            self._schedule(key, service, d, signals, now)

    def _schedule(
        self, key: ServiceKey, service: Service, d: Demand, signals: list[Signal], now: datetime
    ) -> None:
        """The next moment this service's demand can change by time alone (early is harmless)."""
        times: list[datetime] = []
        for s in signals:
            if s.start > now:
                times.append(s.start)
            elif s.end > now:
                times.append(s.end)
        mem = d.memory
        if mem.attention_until is not None:
            times.append(mem.attention_until + timedelta(seconds=service.cooldown_seconds))
        prev = self.memory.get(key, Memory())
        since = prev.escalated_since
        if since is not None:
            times.append(since + timedelta(seconds=service.max_peak_seconds))
        if mem.resting_until is not None:
            times.append(mem.resting_until)
        self._set_deadline(key, min((t for t in times if t > now), default=None))

    def _set_deadline(self, key: ServiceKey, at: datetime | None) -> None:
        if at is None:
            self._deadline_of.pop(key, None)
            return
        current = self._deadline_of.get(key)
        if current is not None and current <= at:
            return
        self._deadline_of[key] = at
        heapq.heappush(self._deadlines, (at, key))

    def next_deadline(self) -> datetime | None:
        while self._deadlines and self._deadline_of.get(self._deadlines[0][1]) != self._deadlines[0][0]:
            heapq.heappop(self._deadlines)
        own = self._deadlines[0][0] if self._deadlines else None
        if self._wakeups and (own is None or self._wakeups[0] < own):
            return self._wakeups[0]
        return own

    def wake_at(self, at: datetime) -> None:
        """Make `next_deadline` return `at` (or earlier) until a plan at or after it."""
        if at not in self._wakeups:
            heapq.heappush(self._wakeups, at)

    def _plan_ranking(self) -> None:
        """Every service that wants peak gets it, except high priorities past the cap (ranked)."""
        self._rank_dirty = False
        high = sorted(self._wanting_high, key=self._rank.__getitem__)
        cap = max(0, self.policy.max_high_escalations)
        top, waiting = high[:cap], high[cap:]
        granted = (self._wanting - self._wanting_high) | set(top)
        changed = self._granted ^ granted
        self._granted = granted
        for key in changed:
            self._regrant(key)
        # The messages only (the memory of a rest starts at the plan's `now`: _decide_service).
        new_waiting = {key: rest_of(self._demand[key], top, _EPOCH)[1] for key in waiting}
        for key in self._waiting.keys() | new_waiting.keys():
            if self._waiting.get(key) != new_waiting.get(key):
                self._dirty_decisions.add(key)
                self._dirty_pods.update(self._pods_of.get(key, ()))
        self._high_granted, self._waiting = top, new_waiting

    def _regrant(self, key: ServiceKey) -> None:
        for pkey in self._pods_of.get(key, ()):
            self._dirty_pods.add(pkey)
            self._sync_candidate(pkey)
            node = self.pods[pkey].node
            if node is not None:
                self._dirty_nodes.add(node)
        self._dirty_decisions.add(key)

    def _eligible(self, pod: Pod) -> Reason | None:
        """Why a pod of a granted service cannot go to peak whatever the room (None: it can)."""
        if pod.qos is QoS.BEST_EFFORT:
            return Reason.BEST_EFFORT
        if not pod.running or pod.node is None:
            return Reason.NOT_RUNNING
        if pod.infeasible_at_peak:
            return Reason.INFEASIBLE
        if pod.node not in self.nodes:
            return Reason.NOT_RUNNING
        return None

    def _allocate(self, name: str) -> None:
        """Room on one node, granted pods in rank order (then by name), as plan_levels does it."""
        node = self.nodes.get(name)
        cands = self._cands_on.get(name)
        peak: set[PodKey] = set()
        blocked: set[PodKey] = set()
        if node is not None and cands:
            held = self._base_used.get(name, (0, 0))
            used = [held[0] + (node.reserved.cpu or 0), held[1] + (node.reserved.memory or 0)]
            cap_cpu, cap_mem = node.allocatable.cpu, node.allocatable.memory
            extra = self._cand_sum[name]
            if (
                (cap_cpu is None or used[0] + extra[0] <= cap_cpu)
                and (cap_mem is None or used[1] + extra[1] <= cap_mem)
                and extra[2] == 0
            ):
                peak = set(cands)  # room for all of them: the order cannot matter
            else:
                rank, pods, cand_of = self._rank, self.pods, self._cand_of
                for pkey in sorted(cands, key=lambda k: (rank[pods[k].service], k)):
                    _, extra_cpu, extra_mem = cand_of[pkey]
                    cpu_ok = cap_cpu is None or used[0] + extra_cpu <= cap_cpu
                    mem_ok = cap_mem is None or used[1] + extra_mem <= cap_mem
                    if cpu_ok and mem_ok:
                        used[0] += extra_cpu
                        used[1] += extra_mem
                        peak.add(pkey)
                    else:
                        blocked.add(pkey)
        old_peak = self._peak_on.get(name, set())
        old_blocked = self._blocked_on.get(name, set())
        for pkey in (peak ^ old_peak) | (blocked ^ old_blocked):
            self._dirty_pods.add(pkey)
            pod = self.pods.get(pkey)
            if pod is not None:
                self._dirty_decisions.add(pod.service)
            if pkey in peak:
                self._at_peak.add(pkey)
            else:
                self._at_peak.discard(pkey)
            if pkey in blocked:
                self._capacity_blocked.add(pkey)
            else:
                self._capacity_blocked.discard(pkey)
        self._peak_on[name] = peak
        self._blocked_on[name] = blocked

    def _pod_reason(self, pod: Pod) -> Reason | None:
        """plan_levels' per-pod reason for a granted service's pod held at baseline."""
        if pod.service not in self._granted:
            return None
        reason = self._eligible(pod)
        if reason is None and pod.key in self._capacity_blocked:
            reason = Reason.NODE_CAPACITY
        return reason

    def _decide_pod(self, key: PodKey, delta: Delta) -> None:
        pod = self.pods.get(key)
        service = self.services.get(pod.service) if pod is not None else None
        if pod is None or service is None:
            if self.pod_decisions.pop(key, None) is not None:
                delta.removed_pods.add(key)
                delta.pods.pop(key, None)
            return
        d = self._demand[pod.service]
        if key in self._at_peak and pod.service in self._granted:
            target = target_resources(pod, service, Level.PEAK)
            level, reason = Level.PEAK, d.reason
        else:
            target = (
                pod.containers
                if pod.qos is QoS.BEST_EFFORT
                else target_resources(pod, service, Level.BASELINE)
            )
            level = Level.BASELINE
            reason = self._pod_reason(pod) or (
                rest_of(d, self._high_granted, _EPOCH)[0] if pod.service in self._waiting else d.reason
            )
        needs = (
            pod.running
            and pod.node is not None
            and pod.qos is not QoS.BEST_EFFORT
            and target != pod.containers
        )
        decision = PodDecision(key, level, reason, target, needs)
        if self.pod_decisions.get(key) != decision:
            self.pod_decisions[key] = decision
            delta.pods[key] = decision
            delta.removed_pods.discard(key)
            self._dirty_decisions.add(pod.service)

    def _decide_service(self, key: ServiceKey, now: datetime, delta: Delta) -> None:
        service = self.services.get(key)
        if service is None:
            if self.service_decisions.pop(key, None) is not None:
                delta.removed_services.add(key)
            return
        d = self._demand[key]
        pods = [self.pods[p] for p in self._pods_of.get(key, ())]
        total = sum(1 for p in pods if p.running)
        at_peak = sum(1 for p in pods if p.key in self._at_peak)
        if key in self._waiting:
            reason, message, memory = rest_of(d, self._high_granted, now)
            decision = ServiceDecision(key, True, False, reason, message, memory, d.signal, total, at_peak)
        elif key in self._granted:
            prev = self.service_decisions.get(key)
            since = d.memory.escalated_since or (
                prev.memory.escalated_since if prev is not None and prev.granted else None
            )
            memory = replace(d.memory, escalated_since=since or now)
            blocked = sorted({str(r) for p in pods if (r := self._pod_reason(p)) is not None})
            count = sum(1 for p in pods if self._pod_reason(p) is not None)
            message = d.message
            if count:
                message += f"; {count} pod(s) held at baseline: " + ", ".join(blocked)
            decision = ServiceDecision(key, True, True, d.reason, message, memory, d.signal, total, at_peak)
        else:
            decision = ServiceDecision(
                key,
                False,
                False,
                d.reason,
                d.message,
                replace(d.memory, escalated_since=None),
                d.signal,
                total,
                at_peak,
            )
        if self.memory.get(key, Memory()) != decision.memory:
            # Being at peak (or not) changes the service's rank and its maxPeakSeconds clock.
            self.memory[key] = decision.memory
            self._dirty_demand.add(key)
        if self.service_decisions.get(key) != decision:
            self.service_decisions[key] = decision
            delta.services[key] = decision

    # ------------------------------------------------------------------ the oracle

    def world(self) -> World:
        """The world as plan_levels sees it (memory as of now: take it before `plan`).

        Pods of no plannable service are room taken on their node, as plan_levels expects them."""
        reserved: dict[str, list[int]] = {}
        managed: list[Pod] = []
        for key, pod in self.pods.items():
            if pod.service in self.services:
                managed.append(pod)
            elif key in self._contrib:
                node, cpu, mem = self._contrib[key]
                acc = reserved.setdefault(node, [0, 0])
                acc[0] += cpu
                acc[1] += mem
        nodes: dict[str, Node] = {}
        for name, held in self.nodes.items():
            extra = reserved.get(name, [0, 0])
            nodes[name] = replace(
                held,
                reserved=Amount((held.reserved.cpu or 0) + extra[0], (held.reserved.memory or 0) + extra[1]),
            )
        return World(dict(self.services), managed, nodes, list(self.signals.values()), dict(self.memory))

    def snapshot(self) -> Plan:
        return Plan(dict(self.service_decisions), dict(self.pod_decisions))

    def has_pending_work(self) -> bool:
        return bool(self._dirty_demand or self._dirty_nodes or self._dirty_pods or self._dirty_decisions)


_EPOCH = datetime(1970, 1, 1)  # where only rest_of's reason and message are wanted, not its memory


def mismatches(reference: Plan, incremental: Plan) -> list[str]:
    """Where two plans differ (empty when equal); what the periodic check logs."""
    out: list[str] = []
    for key in reference.services.keys() | incremental.services.keys():
        a, b = reference.services.get(key), incremental.services.get(key)
        if a != b:
            out.append(f"service {key[0]}/{key[1]}: full {a} != incremental {b}")
    for pkey in reference.pods.keys() | incremental.pods.keys():
        pa, pb = reference.pods.get(pkey), incremental.pods.get(pkey)
        if pa != pb:
            out.append(f"pod {pkey[0]}/{pkey[1]}: full {pa} != incremental {pb}")
    return out


def check(world: World, now: datetime, policy: Policy, incremental: Plan) -> list[str]:
    return mismatches(plan_levels(world, now, policy), incremental)


def interned(containers: Iterable[ContainerResources]) -> tuple[ContainerResources, ...]:
    """One shared tuple for the many pods whose containers look alike (memory at 10,000 pods)."""
    value = tuple(containers)
    if len(_INTERNED) > 100_000:
        _INTERNED.clear()  # hostile variety must not grow it without bound
    return _INTERNED.setdefault(value, value)


_INTERNED: dict[tuple[ContainerResources, ...], tuple[ContainerResources, ...]] = {}

__all__ = ["Amount", "Delta", "IncrementalPlanner", "check", "interned", "mismatches"]
