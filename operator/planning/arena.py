"""Arena sessions: how much a session gets, who is admitted against the quota, and rebalancing.

Pure functions of plain data: no Kubernetes, no database, no clock (``now`` and seeds are
parameters), so every branch is a table-driven unit test.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from heady_operator.models.common import PRIORITY_VALUES, PriorityLevel
from heady_operator.models.quantity import format_cpu, format_memory

GIB = 2**30
MIB = 2**20

# The seed's resource formula: base x (priority / 100) x (1 + risk x 0.5), capped.
RISK_FACTOR = 0.5
CPU_BASE_CORES, CPU_MAX_CORES = 8.0, 16.0
MEMORY_BASE_GIB, MEMORY_MAX_GIB = 16.0, 32.0
GPU_BASE, GPU_MAX = 2.0, 4.0
VECTOR_BASE_GB, VECTOR_MAX_GB = 10.0, 50.0
CACHE_BASE_GB, CACHE_MAX_GB = 5.0, 20.0
PERSISTENT_BASE_GB, PERSISTENT_MAX_GB = 20.0, 100.0
BANDWIDTH_BASE_MBPS, BANDWIDTH_MAX_MBPS = 1000.0, 10000.0
CONNECTIONS_BASE, CONNECTIONS_MAX = 100.0, 1000.0


def priority_number(priority: PriorityLevel | int) -> int:
    return PRIORITY_VALUES[priority] if isinstance(priority, PriorityLevel) else int(priority)


def _cores(millis: int) -> str:
    return f"{millis / 1000:.1f}"


def _gib(num_bytes: int) -> str:
    return f"{num_bytes / GIB:.1f}"


@dataclass(frozen=True)
class ResourcePlan:
    """The most a session may use; rebalancing moves its allocation between a floor and this."""

    priority_value: int
    overall_risk: float
    cpu: float
    memory_gib: float
    gpu: float
    storage_vector_gb: float
    storage_cache_gb: float
    storage_persistent_gb: float
    network_bandwidth_mbps: float
    network_connections: int

    @property
    def cpu_millis(self) -> int:
        # Rounded before the ceiling so 8 x 1.25 x 1.2 = 12.000000000000002 stays 12 cores.
        return math.ceil(round(self.cpu * 1000, 6))

    @property
    def memory_bytes(self) -> int:
        # Whole MiB: a GiB fraction in bytes would print as an unreadable quantity.
        return math.ceil(round(self.memory_gib * 1024, 6)) * MIB

    @property
    def gpu_devices(self) -> int:
        """GPUs are scheduled as whole devices: a fractional plan is rounded up (1.6 -> 2), since
        an extended resource cannot be shared and rounding down would starve the session."""
        return math.ceil(round(self.gpu, 6))

    @property
    def storage_total_gb(self) -> int:
        """Vector, cache and persistent storage together, in whole GB (rounded up)."""
        return math.ceil(
            round(self.storage_vector_gb + self.storage_cache_gb + self.storage_persistent_gb, 6)
        )

    @property
    def bandwidth_whole_mbps(self) -> int:
        return math.ceil(round(self.network_bandwidth_mbps, 6))

    def to_status(self) -> dict[str, object]:
        return {
            "priorityValue": self.priority_value,
            "overallRisk": round(self.overall_risk, 4),
            "compute": {
                "cpu": format_cpu(self.cpu_millis),
                "memory": format_memory(self.memory_bytes),
                "gpu": self.gpu_devices,
            },
            "storage": {
                "vectorGB": round(self.storage_vector_gb, 2),
                "cacheGB": round(self.storage_cache_gb, 2),
                "persistentGB": round(self.storage_persistent_gb, 2),
            },
            "network": {
                "bandwidthMbps": round(self.network_bandwidth_mbps, 1),
                "connections": self.network_connections,
            },
        }


def resource_plan(priority: PriorityLevel | int, overall_risk: float, requires_gpu: bool) -> ResourcePlan:
    """The seed's calculateResourcePlan; risk raises compute only, priority raises everything."""
    if not 0.0 <= overall_risk <= 1.0:
        raise ValueError(f"overall risk must be within 0..1, got {overall_risk}")
    p = priority_number(priority)
    if p <= 0:
        raise ValueError(f"priority value must be positive, got {p}")
    base = p / 100
    risk = 1 + overall_risk * RISK_FACTOR
    return ResourcePlan(
        priority_value=p,
        overall_risk=overall_risk,
        cpu=min(CPU_BASE_CORES * base * risk, CPU_MAX_CORES),
        memory_gib=min(MEMORY_BASE_GIB * base * risk, MEMORY_MAX_GIB),
        gpu=min(GPU_BASE * base, GPU_MAX) if requires_gpu else 0.0,
        storage_vector_gb=min(VECTOR_BASE_GB * base, VECTOR_MAX_GB),
        storage_cache_gb=min(CACHE_BASE_GB * base, CACHE_MAX_GB),
        storage_persistent_gb=min(PERSISTENT_BASE_GB * base, PERSISTENT_MAX_GB),
        network_bandwidth_mbps=min(BANDWIDTH_BASE_MBPS * base, BANDWIDTH_MAX_MBPS),
        network_connections=round(min(CONNECTIONS_BASE * base, CONNECTIONS_MAX)),
    )


# --- admission -------------------------------------------------------------------------------


# A quota dimension nobody limits (storage and network unless configured).
UNLIMITED = 2**62
# The dimensions beyond CPU and memory: (Usage field, unit in messages).
EXTRA_DIMENSIONS: tuple[tuple[str, str], ...] = (
    ("gpus", "GPU"),
    ("storage_gb", "GB storage"),
    ("bandwidth_mbps", "Mbps bandwidth"),
    ("connections", "connections"),
)


@dataclass(frozen=True)
class Quota:
    """The cluster-wide budget that admitted arena sessions share, on every dimension of the
    resource plan.

    gpus is an extended-resource quota in whole devices; 0 means sessions that need a GPU are
    never admitted (ExceedsQuota says so), which is right for a cluster without GPUs. Storage
    (GB: vector + cache + persistent), bandwidth (Mbps) and connections are unlimited unless set.
    """

    cpu_millis: int
    memory_bytes: int
    gpus: int = 0
    storage_gb: int = UNLIMITED
    bandwidth_mbps: int = UNLIMITED
    connections: int = UNLIMITED

    @classmethod
    def of(
        cls,
        cpu: float,
        memory_gib: float,
        gpus: int = 0,
        *,
        storage_gb: float | None = None,
        bandwidth_mbps: float | None = None,
        connections: int | None = None,
    ) -> Quota:
        def limit(value: float | None) -> int:
            return UNLIMITED if value is None else math.floor(value)

        return cls(
            cpu_millis=round(cpu * 1000),
            memory_bytes=round(memory_gib * GIB),
            gpus=gpus,
            storage_gb=limit(storage_gb),
            bandwidth_mbps=limit(bandwidth_mbps),
            connections=limit(connections),
        )

    @property
    def capacity(self) -> Usage:
        return Usage(
            self.cpu_millis,
            self.memory_bytes,
            self.gpus,
            self.storage_gb,
            self.bandwidth_mbps,
            self.connections,
        )

    def limits(self, field_: str) -> bool:
        """Whether the quota constrains this extra dimension (and messages should mention it)."""
        value = getattr(self, field_)
        return bool(value) and value != UNLIMITED if field_ == "gpus" else value != UNLIMITED

    def describe(self) -> str:
        text = f"{self.cpu_millis / 1000:g} CPU, {self.memory_bytes / GIB:g} GiB memory"
        for field_, unit in EXTRA_DIMENSIONS:
            if self.limits(field_):
                text += f", {getattr(self, field_)} {unit}"
        return text


@dataclass(frozen=True)
class Usage:
    cpu_millis: int = 0
    memory_bytes: int = 0
    gpus: int = 0
    storage_gb: int = 0
    bandwidth_mbps: int = 0
    connections: int = 0

    def _values(self) -> tuple[int, ...]:
        return (
            self.cpu_millis,
            self.memory_bytes,
            self.gpus,
            self.storage_gb,
            self.bandwidth_mbps,
            self.connections,
        )

    def __add__(self, other: Usage) -> Usage:
        return Usage(*(a + b for a, b in zip(self._values(), other._values(), strict=True)))

    def __sub__(self, other: Usage) -> Usage:
        return Usage(*(a - b for a, b in zip(self._values(), other._values(), strict=True)))

    def covers(self, need: Usage) -> bool:
        return all(a >= b for a, b in zip(self._values(), need._values(), strict=True))


# The seeds' ROITaskAllocator orders tasks by ROI x strategic alignment. A factor a session does
# not state counts as the middle of its range, so an unstated value is neutral: stating a high
# value moves a session up its priority's queue, stating a low one moves it down.
NEUTRAL_FACTOR = 0.5
# Values are compared rounded, so 0.3 x 0.3 and 0.09 tie (and age decides) instead of float noise.
VALUE_DIGITS = 6


def session_value(expected_roi: float | None, strategic_alignment: float | None) -> float:
    """ROI x alignment (each 0..1), the seeds' ordering key within one priority."""
    roi = NEUTRAL_FACTOR if expected_roi is None else expected_roi
    alignment = NEUTRAL_FACTOR if strategic_alignment is None else strategic_alignment
    for name, factor in (("expectedROI", roi), ("strategicAlignment", alignment)):
        if not 0.0 <= factor <= 1.0:
            raise ValueError(f"{name} must be within 0..1, got {factor}")
    return round(roi * alignment, VALUE_DIGITS)


@dataclass(frozen=True)
class SessionDemand:
    """One ArenaSession as admission sees it.

    Within one priority, `value` (ROI x alignment) orders sessions, then `queued_at`. Every
    resource dimension the plan has is a demand against the quota: CPU and memory always, GPUs
    (whole devices) when the session asks for them.
    """

    key: str
    priority: int
    queued_at: datetime
    cpu_millis: int
    memory_bytes: int
    admitted: bool = False
    admitted_at: datetime | None = None
    finished: bool = False
    value: float = NEUTRAL_FACTOR * NEUTRAL_FACTOR
    gpus: int = 0
    storage_gb: int = 0
    bandwidth_mbps: int = 0
    connections: int = 0

    @property
    def usage(self) -> Usage:
        return Usage(
            self.cpu_millis,
            self.memory_bytes,
            self.gpus,
            self.storage_gb,
            self.bandwidth_mbps,
            self.connections,
        )


class AdmissionState(StrEnum):
    ADMITTED = "admitted"
    PENDING = "pending"
    FINISHED = "finished"


class AdmissionReason(StrEnum):
    """Condition reasons (PascalCase, as Kubernetes conventions want)."""

    QUOTA_RESERVED = "QuotaReserved"
    WAITING_FOR_QUOTA = "WaitingForQuota"
    EXCEEDS_QUOTA = "ExceedsQuota"
    PREEMPTED = "Preempted"
    QUOTA_REDUCED = "QuotaReduced"
    FINISHED = "Finished"


@dataclass(frozen=True)
class Decision:
    key: str
    state: AdmissionState
    reason: AdmissionReason
    message: str
    queue_position: int | None = None
    priority: int = 0
    value: float = 0.0
    # How long a pending session has been queued (for a queue-wait metric; kept out of the
    # message so the status does not change on every pass).
    waiting_seconds: float | None = None
    # The older session of the same priority this one waits behind, if any.
    behind: str | None = None
    # True when the session's admission differs from what it was given: admitted, preempted
    # or released. The handler acts (patch, Event) only on changed decisions.
    changed: bool = False


@dataclass(frozen=True)
class Preemption:
    key: str
    by: str | None  # None when a lowered quota, not a session, pushed it out
    reason: AdmissionReason
    message: str


@dataclass(frozen=True)
class AdmissionPlan:
    quota: Quota
    used: Usage
    decisions: tuple[Decision, ...]
    preemptions: tuple[Preemption, ...]

    def decision(self, key: str) -> Decision:
        for d in self.decisions:
            if d.key == key:
                return d
        raise KeyError(key)

    @property
    def admitted(self) -> tuple[str, ...]:
        return tuple(d.key for d in self.decisions if d.state is AdmissionState.ADMITTED)

    @property
    def newly_admitted(self) -> tuple[str, ...]:
        return tuple(d.key for d in self.decisions if d.state is AdmissionState.ADMITTED and d.changed)

    @property
    def preempted(self) -> tuple[str, ...]:
        return tuple(p.key for p in self.preemptions)

    @property
    def pending(self) -> tuple[Decision, ...]:
        """Pending sessions in queue order."""
        queue = [d for d in self.decisions if d.state is AdmissionState.PENDING]
        return tuple(sorted(queue, key=lambda d: d.queue_position or 0))

    @property
    def released(self) -> tuple[str, ...]:
        return tuple(d.key for d in self.decisions if d.state is AdmissionState.FINISHED and d.changed)


def _queue_order(s: SessionDemand) -> tuple[int, float, datetime, str]:
    # Priority first, then value (ROI x alignment), then age; the key makes the order total.
    return (-s.priority, -s.value, s.queued_at, s.key)


def _victim_order(s: SessionDemand) -> tuple[int, float, str]:
    # Lowest priority first; within a priority the most recently admitted first, since it has
    # had the least time to make progress that preemption would throw away.
    admitted = s.admitted_at or s.queued_at
    return (s.priority, -admitted.timestamp(), s.key)


def _shortfall(need: Usage, free: Usage, quota: Quota) -> str:
    parts = []
    if need.cpu_millis > free.cpu_millis:
        parts.append(
            f"needs {_cores(need.cpu_millis)} CPU, {_cores(max(free.cpu_millis, 0))} free "
            f"of {quota.cpu_millis / 1000:g}"
        )
    if need.memory_bytes > free.memory_bytes:
        parts.append(
            f"needs {_gib(need.memory_bytes)} GiB memory, {_gib(max(free.memory_bytes, 0))} free "
            f"of {quota.memory_bytes / GIB:g}"
        )
    for field_, unit in EXTRA_DIMENSIONS:
        wanted, left = getattr(need, field_), getattr(free, field_)
        if wanted > left:
            parts.append(f"needs {wanted} {unit}, {max(left, 0)} free of {getattr(quota, field_)}")
    return "; ".join(parts)


def _beyond(need: Usage, quota: Quota) -> str:
    parts = []
    if need.cpu_millis > quota.cpu_millis:
        parts.append(f"needs {_cores(need.cpu_millis)} CPU, the quota is {quota.cpu_millis / 1000:g}")
    if need.memory_bytes > quota.memory_bytes:
        parts.append(f"needs {_gib(need.memory_bytes)} GiB memory, the quota is {quota.memory_bytes / GIB:g}")
    for field_, unit in EXTRA_DIMENSIONS:
        wanted, limit = getattr(need, field_), getattr(quota, field_)
        if wanted > limit:
            parts.append(f"needs {wanted} {unit}, the {unit.split()[-1]} quota is {limit}")
    return "; ".join(parts)


def _describe(usage: Usage, quota: Quota | None = None) -> str:
    """CPU and memory, plus the GPUs a session takes and any dimension the quota limits."""
    text = f"{_cores(usage.cpu_millis)} CPU, {_gib(usage.memory_bytes)} GiB memory"
    for field_, unit in EXTRA_DIMENSIONS:
        amount = getattr(usage, field_)
        if (field_ == "gpus" and amount) or (field_ != "gpus" and quota is not None and quota.limits(field_)):
            text += f", {amount} {unit}"
    return text


def _choose_victims(need: Usage, free: Usage, candidates: list[SessionDemand]) -> list[SessionDemand] | None:
    """The fewest, cheapest admitted sessions whose release makes room, or None if none can."""
    chosen: list[SessionDemand] = []
    room = free
    for victim in candidates:
        if room.covers(need):
            break
        chosen.append(victim)
        room = room + victim.usage
    if not room.covers(need):
        return None
    # Greedy picking can overshoot (a big victim picked late makes an earlier small one
    # unnecessary); give back, latest picked first, every victim the room does not need.
    for victim in reversed(list(chosen)):
        if (room - victim.usage).covers(need):
            chosen.remove(victim)
            room = room - victim.usage
    return chosen


def plan_admission(sessions: Iterable[SessionDemand], quota: Quota, now: datetime) -> AdmissionPlan:
    """Admit by priority, then value (ROI x alignment), then age within the quota, preempting
    strictly lower priorities.

    - Finished sessions release their quota.
    - If a lowered quota no longer covers the admitted sessions, the lowest-priority, most
      recently admitted are pushed back to the queue until it does (the quota is a promise).
    - Pending sessions are considered highest priority first, then highest value, then oldest.
      One that fits (CPU, memory and GPUs) is admitted. Within a priority the queue is strict:
      once one waits, the ones after it in that priority's queue wait behind it, so a stream of small sessions cannot starve a large one.
      Across priorities it is best effort: a lower-priority session that fits may pass a
      blocked higher-priority one (idle quota helps nobody), which can take the room back by
      preemption once that is enough.
    - One that does not fit may preempt admitted sessions of strictly lower priority, but only
      if releasing them makes room. Victims are taken lowest priority first, most recently
      admitted first, and any the room turns out not to need are given back. They rejoin the
      queue keeping their age.
    """
    all_sessions = sorted(sessions, key=_queue_order)
    keys = [s.key for s in all_sessions]
    if len(set(keys)) != len(keys):
        raise ValueError("session keys must be unique")
    finished = [s for s in all_sessions if s.finished]
    active = [s for s in all_sessions if not s.finished]
    capacity = quota.capacity

    admitted: dict[str, SessionDemand] = {s.key: s for s in active if s.admitted}
    used = sum((s.usage for s in admitted.values()), Usage())
    preempted: dict[str, Preemption] = {}
    queue: list[tuple[tuple[int, float, datetime, str], SessionDemand]] = [
        (_queue_order(s), s) for s in active if not s.admitted
    ]

    for victim in sorted(admitted.values(), key=_victim_order):
        if capacity.covers(used):
            break
        message = (
            f"quota lowered to {quota.describe()}; admitted sessions held "
            f"{_cores(used.cpu_millis)} CPU, {_gib(used.memory_bytes)} GiB memory"
        )
        preempted[victim.key] = Preemption(victim.key, None, AdmissionReason.QUOTA_REDUCED, message)
        del admitted[victim.key]
        used = used - victim.usage
        queue.append((_queue_order(victim), victim))

    heapq.heapify(queue)
    # Per priority, the oldest session that is waiting for quota; younger ones of the same
    # priority wait behind it even when they would fit.
    blocked: dict[int, str] = {}
    held: dict[str, str] = {}
    while queue:
        _, session = heapq.heappop(queue)
        need = session.usage
        if not capacity.covers(need):
            continue  # can never fit, so it blocks nobody
        if session.priority in blocked:
            held[session.key] = blocked[session.priority]
            continue
        free = capacity - used
        if free.covers(need):
            admitted[session.key] = session
            used = used + need
            continue
        lower = sorted((s for s in admitted.values() if s.priority < session.priority), key=_victim_order)
        victims = _choose_victims(need, free, lower)
        if victims is None:
            blocked[session.priority] = session.key
            continue
        for victim in victims:
            message = (
                f"preempted by {session.key} (priority {session.priority} > {victim.priority}) "
                f"to make room for {_describe(need, quota)}"
            )
            preempted[victim.key] = Preemption(victim.key, session.key, AdmissionReason.PREEMPTED, message)
            del admitted[victim.key]
            used = used - victim.usage
            heapq.heappush(queue, (_queue_order(victim), victim))
        admitted[session.key] = session
        used = used + need

    free = capacity - used
    decisions: list[Decision] = []
    for s in finished:
        decisions.append(
            Decision(
                s.key,
                AdmissionState.FINISHED,
                AdmissionReason.FINISHED,
                "finished; quota released" if s.admitted else "finished",
                changed=s.admitted,
            )
        )
    for s in active:
        if s.key in admitted:
            message = f"admitted with {_describe(s.usage, quota)} of {quota.describe()}; value {s.value:g}"
            decisions.append(
                Decision(
                    s.key,
                    AdmissionState.ADMITTED,
                    AdmissionReason.QUOTA_RESERVED,
                    message,
                    priority=s.priority,
                    value=s.value,
                    changed=not s.admitted,
                )
            )
    queue_order = sorted((s for s in active if s.key not in admitted), key=_queue_order)
    final_preemptions: list[Preemption] = []
    for position, s in enumerate(queue_order, start=1):
        if not capacity.covers(s.usage):
            reason = AdmissionReason.EXCEEDS_QUOTA
            message = f"can never be admitted: {_beyond(s.usage, quota)}"
        elif s.key in held and free.covers(s.usage):
            reason = AdmissionReason.WAITING_FOR_QUOTA
            message = f"waiting behind {held[s.key]}, ahead in the same priority's queue (value, then age)"
        else:
            reason = AdmissionReason.WAITING_FOR_QUOTA
            message = f"waiting for quota: {_shortfall(s.usage, free, quota)}"
        if s.key in preempted:
            preemption = preempted[s.key]
            final_preemptions.append(preemption)
            reason = preemption.reason
            message = f"{preemption.message}; {message}"
        message += f"; value {s.value:g}"
        decisions.append(
            Decision(
                s.key,
                AdmissionState.PENDING,
                reason,
                message,
                queue_position=position,
                priority=s.priority,
                value=s.value,
                waiting_seconds=max((now - s.queued_at).total_seconds(), 0.0),
                behind=held.get(s.key),
                changed=s.admitted,
            )
        )
    return AdmissionPlan(
        quota=quota,
        used=used,
        decisions=tuple(decisions),
        preemptions=tuple(final_preemptions),
    )


# --- rebalancing -----------------------------------------------------------------------------

# The seed's thresholds: below 0.3 a session is over-provisioned, above 0.8 it is starved.
LOW_UTILIZATION = 0.3
HIGH_UTILIZATION = 0.8
# Resize so that the new allocation would run at the middle of that band, far enough from both
# thresholds that the next round does not resize it straight back.
TARGET_UTILIZATION = 0.55
# Never below a quarter of the plan: a session that idles now still has to be able to start work.
MIN_SCALE_PERCENT = 25
MAX_SCALE_PERCENT = 100
# Smaller moves are not worth a pod resize.
MIN_STEP_PERCENT = 5
MAX_JITTER = 0.3


@dataclass(frozen=True)
class Allocation:
    """An admitted session's share of its resource plan, in whole percent."""

    key: str
    priority: int
    plan: ResourcePlan
    scale_percent: int = MAX_SCALE_PERCENT

    @property
    def cpu_millis(self) -> int:
        return scaled(self.plan.cpu_millis, self.scale_percent)

    @property
    def memory_bytes(self) -> int:
        return scaled(self.plan.memory_bytes, self.scale_percent, unit=MIB)

    @property
    def usage(self) -> Usage:
        return Usage(self.cpu_millis, self.memory_bytes)


def scaled(amount: int, percent: int, unit: int = 1) -> int:
    """amount x percent / 100, rounded down to a whole unit (integer maths: no float drift)."""
    return amount * percent // 100 // unit * unit


@dataclass(frozen=True)
class AllocationChange:
    key: str
    old_scale_percent: int
    new_scale_percent: int
    old_cpu_millis: int
    old_memory_bytes: int
    cpu_millis: int
    memory_bytes: int
    reason: str  # Event reason: ScaledUp / ScaledDown
    message: str

    @property
    def scale(self) -> float:
        return self.new_scale_percent / 100

    def to_status(self) -> dict[str, object]:
        """The CRD's status.allocation."""
        return {
            "cpu": format_cpu(self.cpu_millis),
            "memory": format_memory(self.memory_bytes),
            "scale": self.scale,
        }


def plan_rebalance(
    allocations: Iterable[Allocation],
    utilization: Mapping[str, float],
    quota: Quota,
    *,
    jitter: float = 0.0,
    rng_seed: int = 0,
) -> list[AllocationChange]:
    """Scale idle sessions down and starved ones up, within their plan and the free quota.

    utilization maps a session key to the fraction (0..1, may exceed 1 when bursting) of its
    current allocation in use; the caller picks the figure (e.g. the higher of CPU and memory).
    A session without a figure is left alone: no data is not evidence of idleness.

    jitter (0..0.3) randomly stretches or shrinks each move by up to that fraction so sessions
    resized in the same round drift apart instead of moving in lockstep; it is drawn from
    random.Random(rng_seed) in key order, so a seed reproduces a plan exactly.

    Scale-ups only use quota free *before* this round's scale-downs: a scale-down resize can
    fail or lag, and the capacity it frees is handed out next round instead.
    """
    if not 0.0 <= jitter <= MAX_JITTER:
        raise ValueError(f"jitter must be within 0..{MAX_JITTER}, got {jitter}")
    rng = random.Random(rng_seed)
    by_key = sorted(allocations, key=lambda a: a.key)
    used = sum((a.usage for a in by_key), Usage())
    free = Usage(quota.cpu_millis, quota.memory_bytes) - used

    proposals: list[tuple[Allocation, float, int, float]] = []
    for alloc in by_key:
        util = utilization.get(alloc.key)
        if util is None or LOW_UTILIZATION <= util <= HIGH_UTILIZATION:
            continue
        if util < 0:
            raise ValueError(f"utilization of {alloc.key} is negative: {util}")
        target = round(alloc.scale_percent * util / TARGET_UTILIZATION)
        draw = rng.uniform(-jitter, jitter) if jitter else 0.0
        step = round((target - alloc.scale_percent) * (1 + draw))
        wanted = min(max(alloc.scale_percent + step, MIN_SCALE_PERCENT), MAX_SCALE_PERCENT)
        proposals.append((alloc, util, wanted, draw))

    changes: list[AllocationChange] = []
    downs = [p for p in proposals if p[2] < p[0].scale_percent]
    ups = sorted((p for p in proposals if p[2] > p[0].scale_percent), key=lambda p: (-p[0].priority, -p[1]))
    for alloc, util, wanted, draw in downs:
        if alloc.scale_percent - wanted < MIN_STEP_PERCENT:
            continue
        note = f"utilization {util:.2f} below {LOW_UTILIZATION}"
        changes.append(_change(alloc, wanted, "ScaledDown", note, draw))
    for alloc, util, wanted, draw in ups:
        percent = wanted
        limit = ""
        while percent > alloc.scale_percent and not free.covers(
            Usage(scaled(alloc.plan.cpu_millis, percent), scaled(alloc.plan.memory_bytes, percent, MIB))
            - alloc.usage
        ):
            percent -= 1
            limit = f"; limited by free quota ({_cores(free.cpu_millis)} CPU, {_gib(free.memory_bytes)} GiB)"
        if percent - alloc.scale_percent < MIN_STEP_PERCENT:
            continue
        note = f"utilization {util:.2f} above {HIGH_UTILIZATION}"
        if percent == MAX_SCALE_PERCENT:
            note += "; capped at the resource plan"
        change = _change(alloc, percent, "ScaledUp", note + limit, draw)
        free = free - Usage(change.cpu_millis - alloc.cpu_millis, change.memory_bytes - alloc.memory_bytes)
        changes.append(change)
    return sorted(changes, key=lambda c: c.key)


def _change(alloc: Allocation, percent: int, reason: str, note: str, draw: float) -> AllocationChange:
    cpu = scaled(alloc.plan.cpu_millis, percent)
    memory = scaled(alloc.plan.memory_bytes, percent, MIB)
    message = (
        f"{note}: scale {alloc.scale_percent / 100:.2f} -> {percent / 100:.2f} "
        f"(cpu {format_cpu(alloc.cpu_millis)} -> {format_cpu(cpu)}, "
        f"memory {format_memory(alloc.memory_bytes)} -> {format_memory(memory)})"
    )
    if draw:
        message += f", jitter {draw:+.0%}"
    return AllocationChange(
        key=alloc.key,
        old_scale_percent=alloc.scale_percent,
        new_scale_percent=percent,
        old_cpu_millis=alloc.cpu_millis,
        old_memory_bytes=alloc.memory_bytes,
        cpu_millis=cpu,
        memory_bytes=memory,
        reason=reason,
        message=message,
    )
