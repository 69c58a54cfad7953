"""Which pods run at baseline and which at peak: the pure heart of heady.

`plan_levels(world, now)` takes plain data (services, their pods, nodes, attention signals and
what was decided last time) and returns the level of every pod with the reason, plus the
resizes needed to get there. No I/O and no clock: the caller passes `now`.

Rules, in the order they apply:
1. A service *wants* peak when an attention signal at or above the threshold is on it, or its
   last attention ended less than `cooldownSeconds` ago (hysteresis: flapping signals do not
   thrash pods), or (weakest) its utilization is at or above the utilization threshold.
2. Rests (after `maxPeakSeconds` at peak) exist to share capacity, so they cost nothing when
   nobody else wants it:
   - an escalation held by anything but live user attention (a prediction, a cooldown,
     utilization) is relaxed and rests for one cooldown, as before;
   - an escalation held by live user attention *yields* instead: it keeps peak, but ranks after
     every other user-attention claim (tier 1 below). Only when another service then takes its
     high-priority slot does it drop to baseline and rest for one cooldown (reason MaxPeakTime),
     during which it still yields, so it comes back at once when the slot frees. Its pods also
     yield node room to other users' services for as long as the escalation lasts.
   When nothing waits for the high-priority slots or the node's room, live attention is never
   dropped.
3. Candidates are ranked in tiers: live user attention or its cooldown (0), then user attention
   past maxPeakSeconds or resting (1), then predicted attention (2), then utilization (3).
   Within a tier: higher priority, then live attention before predicted attention before
   cooldown, then incumbents (already at peak) before newcomers, then intensity, then name.
   So a guess never holds a high-priority slot or node room that a user needs: real attention
   preempts it in the same plan, whatever the priorities.
4. At most `max_high_escalations` (2) services of priority high/very_high are escalated at once;
   the next one waits with a reason naming the two in flight.
5. A pod is raised only if its node's allocatable still holds the extra requests, counting every
   other pod on the node; otherwise it stays at baseline (reason NodeCapacity). Pods whose peak
   resize was reported Infeasible fall back to baseline (the highest level that fits).

QoS rule (the API server refuses a resize that changes a pod's QoS class):
- Guaranteed pods: requests and limits move together between baseline and peak.
- Burstable pods: only requests move; limits are never changed and cap the peak. If that would
  make requests equal limits everywhere (which is Guaranteed), the first container's CPU request
  stays 1m below its limit.
- BestEffort pods have nothing to resize and are left alone (reason BestEffort).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum

ServiceKey = tuple[str, str]  # (namespace, name)
PREDICTOR = "predictor"  # the source of pre-escalations by the transition model
PodKey = tuple[str, str]
# A pod whose spec declares pod-level resources is planned as one pseudo-container of this name
# (no real container can be called that: names are DNS labels), resized at spec.resources.
POD_LEVEL = "(pod)"


class Level(StrEnum):
    BASELINE = "Baseline"
    PEAK = "Peak"


class QoS(StrEnum):
    GUARANTEED = "Guaranteed"
    BURSTABLE = "Burstable"
    BEST_EFFORT = "BestEffort"


class Reason(StrEnum):
    ATTENTION = "Attention"
    COOLDOWN = "Cooldown"
    UTILIZATION = "Utilization"
    IDLE = "NoAttention"
    MAX_PEAK_TIME = "MaxPeakTime"
    HIGH_PRIORITY_LIMIT = "HighPriorityLimit"
    NODE_CAPACITY = "NodeCapacity"
    INFEASIBLE = "Infeasible"
    NOT_RUNNING = "NotRunning"
    BEST_EFFORT = "BestEffort"


@dataclass(frozen=True)
class Amount:
    """CPU millicores and memory bytes; None means "not set" (no request or no limit)."""

    cpu: int | None = None
    memory: int | None = None


@dataclass(frozen=True)
class ContainerResources:
    name: str
    requests: Amount = Amount()
    limits: Amount = Amount()


@dataclass(frozen=True)
class Service:
    key: ServiceKey
    priority: int
    peak: Mapping[str, Amount]  # container name -> peak requests (defaults already resolved)
    baseline_ratio: float = 0.9
    cooldown_seconds: int = 30
    max_peak_seconds: int = 900
    utilization: float | None = None


@dataclass(frozen=True)
class Pod:
    key: PodKey
    service: ServiceKey
    node: str | None
    qos: QoS
    containers: tuple[ContainerResources, ...]
    running: bool = True
    infeasible_at_peak: bool = False


@dataclass(frozen=True)
class Node:
    name: str
    allocatable: Amount
    # Requests of pods heady does not manage (they never move, but they take room).
    reserved: Amount = Amount(0, 0)


@dataclass(frozen=True)
class Signal:
    name: str
    services: tuple[ServiceKey, ...]
    intensity: float
    source: str
    start: datetime
    end: datetime
    user: str | None = None

    def active(self, now: datetime) -> bool:
        return self.start <= now < self.end


@dataclass(frozen=True)
class Memory:
    """What the planner remembers about a service between runs (persisted in its status)."""

    escalated_since: datetime | None = None
    attention_until: datetime | None = None
    resting_until: datetime | None = None


@dataclass(frozen=True)
class Policy:
    attention_threshold: float = 0.1
    max_high_escalations: int = 2
    high_priority: int = 125
    utilization_threshold: float = 0.8


@dataclass(frozen=True)
class World:
    services: Mapping[ServiceKey, Service]
    pods: Iterable[Pod]
    nodes: Mapping[str, Node]
    signals: Iterable[Signal] = ()
    memory: Mapping[ServiceKey, Memory] = field(default_factory=dict)


@dataclass(frozen=True)
class PodDecision:
    pod: PodKey
    level: Level
    reason: Reason
    target: tuple[ContainerResources, ...]
    needs_resize: bool


@dataclass(frozen=True)
class ServiceDecision:
    key: ServiceKey
    wants_peak: bool
    granted: bool
    reason: Reason
    message: str
    memory: Memory
    signal: Signal | None = None
    pods_total: int = 0
    pods_at_peak: int = 0

    @property
    def level(self) -> str:
        if self.pods_total and self.pods_at_peak == self.pods_total:
            return "Peak"
        if self.pods_at_peak:
            return "Mixed"
        return "Baseline"


@dataclass(frozen=True)
class Plan:
    services: dict[ServiceKey, ServiceDecision]
    pods: dict[PodKey, PodDecision]

    @property
    def resizes(self) -> list[PodDecision]:
        return [d for d in self.pods.values() if d.needs_resize]


# ---------------------------------------------------------------- resources and QoS


MIB = 2**20


def baseline_of(peak: Amount, ratio: float) -> Amount:
    """Baseline requests: peak x ratio, rounded down to whole millicores and (from 1Mi up) whole MiB."""
    memory: int | None = None
    if peak.memory is not None:
        memory = max(1, math.floor(peak.memory * ratio))
        if memory >= MIB:
            memory -= memory % MIB
    return Amount(cpu=None if peak.cpu is None else max(1, math.floor(peak.cpu * ratio)), memory=memory)


def qos_of(containers: Iterable[ContainerResources]) -> QoS:
    """The pod QoS class as the API server computes it (cpu and memory only)."""
    items = list(containers)
    if all(
        c.requests.cpu is None
        and c.requests.memory is None
        and c.limits.cpu is None
        and c.limits.memory is None
        for c in items
    ):
        return QoS.BEST_EFFORT
    guaranteed = all(
        c.limits.cpu is not None
        and c.limits.memory is not None
        and (c.requests.cpu is None or c.requests.cpu == c.limits.cpu)
        and (c.requests.memory is None or c.requests.memory == c.limits.memory)
        for c in items
    )
    return QoS.GUARANTEED if guaranteed else QoS.BURSTABLE


def _pick(value: int | None, fallback: int | None) -> int | None:
    return fallback if value is None else value


def target_resources(pod: Pod, service: Service, level: Level) -> tuple[ContainerResources, ...]:
    """The containers' resources for a pod at a level, keeping its QoS class."""
    return _target(
        pod.containers, pod.qos, tuple(sorted(service.peak.items())), service.baseline_ratio, level
    )


# Pure and called for every pod in every plan, with the same few inputs for all the pods of a
# workload: memoised, the planner's cost stops growing with the number of identical pods.
@functools.lru_cache(maxsize=65536)
def _target(
    containers: tuple[ContainerResources, ...],
    qos: QoS,
    peaks: tuple[tuple[str, Amount], ...],
    ratio: float,
    level: Level,
) -> tuple[ContainerResources, ...]:
    peak_of = dict(peaks)
    out: list[ContainerResources] = []
    for c in containers:
        peak = peak_of.get(c.name)
        if peak is None:
            out.append(c)
            continue
        want = peak if level is Level.PEAK else baseline_of(peak, ratio)
        if qos is QoS.GUARANTEED:
            cpu = _pick(want.cpu, c.requests.cpu)
            mem = _pick(want.memory, c.requests.memory)
            out.append(ContainerResources(c.name, Amount(cpu, mem), Amount(cpu, mem)))
        else:
            cpu = _pick(want.cpu, c.requests.cpu)
            mem = _pick(want.memory, c.requests.memory)
            if cpu is not None and c.limits.cpu is not None:
                cpu = min(cpu, c.limits.cpu)
            if mem is not None and c.limits.memory is not None:
                mem = min(mem, c.limits.memory)
            out.append(ContainerResources(c.name, Amount(cpu, mem), c.limits))
    if qos is QoS.BURSTABLE and qos_of(out) is QoS.GUARANTEED:
        first = next(i for i, c in enumerate(out) if c.limits.cpu is not None)
        c = out[first]
        assert c.limits.cpu is not None  # guaranteed implies every container has a cpu limit
        out[first] = replace(c, requests=Amount(max(1, c.limits.cpu - 1), c.requests.memory))
    return tuple(out)


@functools.lru_cache(maxsize=65536)
def pod_requests(containers: tuple[ContainerResources, ...]) -> Amount:
    """Effective pod requests for scheduling; a missing request defaults to the limit, as the API does."""
    cpu = mem = 0
    for c in containers:
        cpu += _pick(c.requests.cpu, c.limits.cpu) or 0
        mem += _pick(c.requests.memory, c.limits.memory) or 0
    return Amount(cpu, mem)


# ---------------------------------------------------------------- demand per service


@dataclass(frozen=True)
class Demand:
    service: Service
    wants: bool
    reason: Reason
    message: str
    signal: Signal | None
    memory: Memory
    incumbent: bool
    # Past maxPeakSeconds (or resting) with live user attention: kept at peak while nothing else
    # waits, but ranked after every other user's claim, and resting once it loses its slot.
    yielding: bool = False


def _strongest(signals: list[Signal]) -> Signal | None:
    if not signals:
        return None
    return max(signals, key=lambda s: (s.source != PREDICTOR, s.intensity, s.start, s.name))


def demand_of(service: Service, signals: list[Signal], prev: Memory, now: datetime, policy: Policy) -> Demand:
    live = [s for s in signals if s.active(now) and s.intensity >= policy.attention_threshold]
    strongest = _strongest(live)
    attention_until = prev.attention_until
    if live:
        latest_end = max(s.end for s in live)
        attention_until = latest_end if attention_until is None else max(attention_until, latest_end)
    elif attention_until is not None and attention_until > now:
        # The attention was withdrawn before its end (signal deleted, intensity lowered): the
        # cooldown counts from now, not from an end that will not come.
        attention_until = now
    incumbent = prev.escalated_since is not None
    memory = replace(prev, attention_until=attention_until)

    user = strongest is not None and strongest.source != PREDICTOR
    resting = prev.resting_until is not None and now < prev.resting_until
    overdue = (
        prev.escalated_since is not None
        and (now - prev.escalated_since).total_seconds() >= service.max_peak_seconds
    )
    if (resting or overdue) and not user:
        # Nothing a user is looking at holds it: a guess, a cooldown or utilization rests at once.
        if resting:
            assert prev.resting_until is not None
            until = prev.resting_until
            rest = replace(memory, escalated_since=None)
        else:
            until = now + timedelta(seconds=max(service.cooldown_seconds, 1))
            rest = replace(memory, escalated_since=None, resting_until=until)
        return Demand(
            service, False, Reason.MAX_PEAK_TIME, _resting_message(service, until), strongest, rest, False
        )
    if not resting:
        memory = replace(memory, resting_until=None)
    if strongest is not None and (resting or overdue):
        # A user is still there: it keeps peak unless someone else waits (see rank_of).
        return Demand(
            service,
            True,
            Reason.ATTENTION,
            f"attention {strongest.intensity:g} from {strongest.source} (signal {strongest.name}); "
            f"past maxPeakSeconds {service.max_peak_seconds}: yields to others waiting",
            strongest,
            memory,
            incumbent,
            True,
        )
    if strongest is not None:
        return Demand(
            service,
            True,
            Reason.ATTENTION,
            f"attention {strongest.intensity:g} from {strongest.source} (signal {strongest.name})",
            strongest,
            memory,
            incumbent,
        )
    if (
        incumbent
        and attention_until is not None
        and now < attention_until + timedelta(seconds=service.cooldown_seconds)
    ):
        return Demand(
            service,
            True,
            Reason.COOLDOWN,
            f"attention ended at {attention_until.isoformat()}; cooldown {service.cooldown_seconds}s",
            None,
            memory,
            incumbent,
        )
    if service.utilization is not None and service.utilization >= policy.utilization_threshold:
        return Demand(
            service,
            True,
            Reason.UTILIZATION,
            f"utilization {service.utilization:.2f} >= {policy.utilization_threshold:.2f}",
            None,
            memory,
            incumbent,
        )
    return Demand(service, False, Reason.IDLE, "no attention", None, memory, incumbent)


def _resting_message(service: Service, until: datetime) -> str:
    # Messages never depend on `now`: the same state gives the same decision whenever it is planned,
    # which lets the incremental planner skip services nothing happened to.
    return f"reached maxPeakSeconds {service.max_peak_seconds}; resting until {until.isoformat()}"


def rest_of(d: Demand, in_flight: list[ServiceKey], now: datetime) -> tuple[Reason, str, Memory]:
    """A service that wants peak but did not get a high-priority slot: why, and what it remembers.

    One that was yielding (past maxPeakSeconds or resting with a user on it) lost its slot to
    someone waiting: that is its rest, one cooldown from now (or the rest it is already in)."""
    names = ", ".join(k[1] for k in in_flight)
    if d.yielding:
        until = d.memory.resting_until or now + timedelta(seconds=max(d.service.cooldown_seconds, 1))
        return (
            Reason.MAX_PEAK_TIME,
            f"resting after maxPeakSeconds {d.service.max_peak_seconds}: its high-priority slot went to "
            f"others waiting ({names}); {d.message}",
            replace(d.memory, escalated_since=None, resting_until=until),
        )
    return (
        Reason.HIGH_PRIORITY_LIMIT,
        f"waiting: {len(in_flight)} high-priority escalations in flight ({names}); {d.message}",
        replace(d.memory, escalated_since=None),
    )


def _tier(d: Demand) -> int:
    if d.reason is Reason.UTILIZATION:
        return 3
    if d.reason is Reason.ATTENTION and d.signal is not None and d.signal.source == PREDICTOR:
        return 2
    return 1 if d.yielding else 0


def _attention_rank(d: Demand) -> int:
    """Real attention, then predicted attention, then cooldown: a guess never takes a slot from a user."""
    if d.reason is Reason.ATTENTION:
        return 1 if d.signal is not None and d.signal.source == PREDICTOR else 0
    return 2


Rank = tuple[int, int, int, int, float, str, str]


def rank_of(d: Demand) -> Rank:
    return (
        _tier(d),
        -d.service.priority,
        _attention_rank(d),
        0 if d.incumbent else 1,
        -(d.signal.intensity if d.signal else 0.0),
        d.service.key[0],
        d.service.key[1],
    )


# ---------------------------------------------------------------- the plan


def plan_levels(world: World, now: datetime, policy: Policy = Policy()) -> Plan:
    services = world.services
    pods_by_service: dict[ServiceKey, list[Pod]] = {k: [] for k in services}
    for pod in world.pods:
        if pod.service in pods_by_service:
            pods_by_service[pod.service].append(pod)
    for pods in pods_by_service.values():
        pods.sort(key=lambda p: p.key)  # room on a contended node goes by pod name within a service
    signals_by_service: dict[ServiceKey, list[Signal]] = {k: [] for k in services}
    for sig in world.signals:
        for key in sig.services:
            if key in signals_by_service:
                signals_by_service[key].append(sig)

    demands = {
        key: demand_of(svc, signals_by_service[key], world.memory.get(key, Memory()), now, policy)
        for key, svc in services.items()
    }

    # Every managed pod starts at baseline; escalations are then added in rank order.
    used: dict[str, list[int]] = {
        name: [n.reserved.cpu or 0, n.reserved.memory or 0] for name, n in world.nodes.items()
    }
    decisions: dict[PodKey, PodDecision] = {}
    baseline_targets: dict[PodKey, tuple[ContainerResources, ...]] = {}
    for key, pods in pods_by_service.items():
        svc = services[key]
        for pod in pods:
            target = (
                pod.containers if pod.qos is QoS.BEST_EFFORT else target_resources(pod, svc, Level.BASELINE)
            )
            baseline_targets[pod.key] = target
            if pod.node in used and pod.running:
                req = pod_requests(target)
                used[pod.node][0] += req.cpu or 0
                used[pod.node][1] += req.memory or 0

    granted: list[ServiceKey] = []
    high_granted: list[ServiceKey] = []
    service_out: dict[ServiceKey, ServiceDecision] = {}
    for d in sorted((d for d in demands.values() if d.wants), key=rank_of):
        key = d.service.key
        if d.service.priority >= policy.high_priority and len(high_granted) >= policy.max_high_escalations:
            reason, message, memory = rest_of(d, high_granted, now)
            service_out[key] = ServiceDecision(key, True, False, reason, message, memory, d.signal)
            continue
        granted.append(key)
        if d.service.priority >= policy.high_priority:
            high_granted.append(key)

    granted_set = set(granted)
    pod_reason: dict[PodKey, Reason] = {}
    at_peak: set[PodKey] = set()
    for key in granted:
        svc = services[key]
        for pod in pods_by_service[key]:
            if pod.qos is QoS.BEST_EFFORT:
                pod_reason[pod.key] = Reason.BEST_EFFORT
                continue
            if not pod.running or pod.node is None:
                pod_reason[pod.key] = Reason.NOT_RUNNING
                continue
            if pod.infeasible_at_peak:
                pod_reason[pod.key] = Reason.INFEASIBLE
                continue
            peak_target = target_resources(pod, svc, Level.PEAK)
            base = pod_requests(baseline_targets[pod.key])
            peak = pod_requests(peak_target)
            extra_cpu = (peak.cpu or 0) - (base.cpu or 0)
            extra_mem = (peak.memory or 0) - (base.memory or 0)
            node = world.nodes.get(pod.node)
            if node is None:
                pod_reason[pod.key] = Reason.NOT_RUNNING
                continue
            cpu_ok = node.allocatable.cpu is None or used[pod.node][0] + extra_cpu <= node.allocatable.cpu
            mem_ok = (
                node.allocatable.memory is None or used[pod.node][1] + extra_mem <= node.allocatable.memory
            )
            if cpu_ok and mem_ok:
                used[pod.node][0] += extra_cpu
                used[pod.node][1] += extra_mem
                at_peak.add(pod.key)
            else:
                pod_reason[pod.key] = Reason.NODE_CAPACITY

    for key, pods in pods_by_service.items():
        svc = services[key]
        d = demands[key]
        for pod in pods:
            if pod.key in at_peak:
                target = target_resources(pod, svc, Level.PEAK)
                level, reason = Level.PEAK, d.reason
            else:
                target = baseline_targets[pod.key]
                level = Level.BASELINE
                reason = pod_reason.get(pod.key) or (
                    service_out[key].reason if key in service_out else d.reason
                )
            needs = (
                pod.running
                and pod.node is not None
                and pod.qos is not QoS.BEST_EFFORT
                and target != pod.containers
            )
            decisions[pod.key] = PodDecision(pod.key, level, reason, target, needs)
        total = len([p for p in pods if p.running])
        peak_count = len([p for p in pods if p.key in at_peak])
        if key in service_out:
            service_out[key] = replace(service_out[key], pods_total=total, pods_at_peak=peak_count)
            continue
        if key in granted_set:
            since = d.memory.escalated_since or now
            memory = replace(d.memory, escalated_since=since)
            blocked = [pod_reason[p.key] for p in pods if p.key in pod_reason]
            message = d.message
            if blocked:
                message += f"; {len(blocked)} pod(s) held at baseline: " + ", ".join(
                    sorted({str(b) for b in blocked})
                )
            service_out[key] = ServiceDecision(
                key, True, True, d.reason, message, memory, d.signal, total, peak_count
            )
        else:
            memory = replace(d.memory, escalated_since=None)
            service_out[key] = ServiceDecision(
                key, False, False, d.reason, d.message, memory, d.signal, total, peak_count
            )
    return Plan(service_out, decisions)
