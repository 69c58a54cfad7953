"""Allocation-quality simulation: the same attention trace under seven allocation policies.

A trace is a list of attention events (time, service, intensity, duration, user) over a set of
services with peak requests. Each policy turns the trace into a step timeline of the requests
every pod holds; pure accounting functions then integrate reserved CPU and memory and compare
the time each service had attention with the time all its pods were at peak.

Policies:
- always-peak: every pod at peak all the time (what you run without heady).
- oracle: peak exactly while attended, with no delay. It knows the future, so nothing real can
  match it; its saving is the most any policy can save without an SLA violation, and the report
  gives every policy's saving as a share of it.
- static-baseline: every pod at baseline (peak x baselineRatio) all the time, never raised.
- heady-reactive / heady-predictive: the operator's own ClusterState and IncrementalPlanner on a
  virtual clock, planning with the pure `plan_levels` and the TransitionModel exactly as in the
  cluster. Every resize it plans takes effect after a delay drawn for it (ResizeDelay: by default
  the distribution measured on a real kubelet, MEASURED_RESIZE_DELAY), then the simulator feeds
  the resized pod back to the controller as a pod watch event would. Reconciles run at trace
  events, at actuations and at the controller's own next deadline (signal expiry, cooldown end,
  maxPeakSeconds), which is when the operator's loop wakes as well.
  Only its status/Event/metrics reporting is skipped (output only, nothing the planner reads).
- heady-auto: heady-predictive (the operator's defaults) with `spec.baselineRatioMode: Auto` on
  every service: each service's baseline ratio follows its status.recommendation as the operator
  computes it from the attention seen so far (planning/recommend.py), within the operator's bounds.
- vpa-like: every `period` s (60) the recommendation is the maximum demand seen in the last
  `window` s (300), applied in place after `delay`. It sees usage, not attention, so it is late
  on the way up and slow on the way down (a real VPA, with its day-long decaying histogram,
  would be slower still: close to a static allocation).
- keda-like: a poll every `poll` s (30); demand seen since the last poll scales the service up
  (taking `delay` s: a new replica must start), and it scales down when no demand was seen for
  `cooldown` s (300), like KEDA's pollingInterval/cooldownPeriod or the HPA's scale-down
  stabilisation window. Replicas are modelled as the equivalent capacity: the same two levels.

Demand for the usage-driven policies is the attention itself: a service needs peak exactly while
someone attends to it, so every policy is scored against the same need. Attention below the
operator's attention threshold is no demand (heady escalates nothing for it); the report counts
it apart. heady's shortfalls are blamed on what its planner decided at the time (`causes`).
"""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import functools
import heapq
import math
import random
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

from pydantic import ValidationError

from benchmarks.traces import invocations
from heady_operator.config import Settings
from heady_operator.ingest.events import DNS_LABEL, AttentionEvent
from heady_operator.ingest.events import describe as describe_error
from heady_operator.kube import objects as kobj
from heady_operator.kube.convert import resize_patch
from heady_operator.models.common import MAX_SIGNAL_SECONDS, PriorityLevel
from heady_operator.models.headyservice import HeadyServiceSpec
from heady_operator.models.quantity import cpu_millis, format_cpu, format_memory, memory_bytes
from heady_operator.planning.incremental import IncrementalPlanner
from heady_operator.planning.levels import (
    PREDICTOR,
    Amount,
    ContainerResources,
    Plan,
    Reason,
    baseline_of,
    pod_requests,
)
from heady_operator.planning.prediction import known_user
from heady_operator.reconcile.escalation import policy_of
from heady_operator.state.cluster import ClusterState

GIB = 2**30
MIB = 2**20
# The operator's default attention threshold: weaker attention is not demand (attention_by_service).
DEMAND_THRESHOLD = float(Settings.model_fields["attention_threshold"].default)
NAMESPACE = "sim"
T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)  # the virtual day starts at 09:00 UTC

Interval = tuple[float, float]


@dataclass(frozen=True)
class ResizeDelay:
    """Time from the planner's decision to the pod's new requests in effect.

    A constant when p50 == p99; otherwise each resize draws its own delay from a log-normal with
    that median and 99th percentile (a service is at peak only once its slowest pod is), seeded so
    runs repeat."""

    p50: float
    p99: float
    source: str = ""
    seed: int = 1

    def __post_init__(self) -> None:
        if not (0 <= self.p50 <= self.p99 <= 600 and math.isfinite(self.p99)):
            raise ValueError(f"resize delay needs 0 <= p50 <= p99 <= 600 s, got {self.p50:g} / {self.p99:g}")

    @classmethod
    def constant(cls, seconds: float) -> ResizeDelay:
        return cls(seconds, seconds, f"{seconds:g} s, constant")

    @property
    def sigma(self) -> float:
        if self.p50 <= 0 or self.p99 <= self.p50:
            return 0.0
        return math.log(self.p99 / self.p50) / 2.3263478740408408  # z of the 99th percentile

    @property
    def mean(self) -> float:
        return self.p50 * math.exp(self.sigma**2 / 2)

    def sampler(self) -> Callable[[str], float]:
        """Draws the delay of a pod's next resize. Each pod has its own seeded stream, so two
        policies that resize a pod in the same order see the same delays (common random numbers:
        their difference is theirs, not the draw's)."""
        if self.sigma == 0.0:
            return lambda pod: self.p50
        streams: dict[str, random.Random] = {}
        mu, sigma = math.log(self.p50), self.sigma

        def draw(pod: str) -> float:
            rng = streams.get(pod)
            if rng is None:
                rng = streams[pod] = random.Random(f"{self.seed}/{pod}")
            # Capped far past the p99: a resize that never lands is a timeout, not a delay.
            return min(60.0, rng.lognormvariate(mu, sigma))

        return draw

    def text(self) -> str:
        if self.sigma == 0.0:
            return f"{self.p50:g} s"
        text = f"p50 {1000 * self.p50:.0f} ms / p99 {1000 * self.p99:.0f} ms per resize, log-normal"
        return f"{text}: {self.source}" if self.source else text


# Measured, not assumed: benchmarks/realnode_resize.py on a real kubelet (kind, containerd, cgroup
# files read back), from the AttentionSignal's creation to the container's cgroup changed, through
# the operator's watch, planner, resize queue and PATCH: p50 288.1 ms, p99 635.0 ms (60 resizes,
# benchmarks/results/realnode_resize.json, 2026-11-30; the run of 2026-11-29 gave 94.5 / 494.9 ms
# on a quieter machine, the raw PATCH then half as slow too: this is the more pessimistic one).
# A loaded cluster is slower still; the report's sensitivity section replays each trace at
# constant 0.5, 1 and 2 s as well.
MEASURED_RESIZE_DELAY = ResizeDelay(
    0.2881, 0.6350, "signal to cgroup changed on a real kubelet, benchmarks/results/realnode_resize.json"
)
SENSITIVITY_DELAYS_S = (0.5, 1.0, 2.0)
# Causes of attention short of peak (heady), from the planner's own decisions at that moment.
# Peak granted, the resize on its way:
ACTUATING = "ActuationDelay"
# Waiting for a high-priority slot or node room that a predicted escalation held:
PREDICTION_HELD_SLOT = "PredictionHeldSlot"
# Resting after maxPeakSeconds, split by whether anything else waited for a slot or node room then
# (a rest exists to share capacity; one while nothing waits only costs attention).
REST_NOTHING_WAITING = "RestNothingWaiting"
REST_OTHERS_WAITING = "RestOthersWaiting"
# Any other planner reason (HighPriorityLimit, NodeCapacity, or one added later) is kept as named.
CAUSE_LABELS = {
    ACTUATING: "actuation delay",
    str(Reason.HIGH_PRIORITY_LIMIT): "high-priority limit",
    PREDICTION_HELD_SLOT: "prediction held a slot",
    REST_NOTHING_WAITING: "rest, nothing waiting",
    REST_OTHERS_WAITING: "rest, others waiting",
    str(Reason.NODE_CAPACITY): "node room",
}
WAITING = (str(Reason.HIGH_PRIORITY_LIMIT), str(Reason.NODE_CAPACITY))


def cause_label(cause: str) -> str:
    return CAUSE_LABELS.get(cause, f"other: {cause}")


# Scale-out: a new replica has to be scheduled, started and pass readiness (image cached).
SCALE_OUT_DELAY_S = 10.0


# ---------------------------------------------------------------- traces


@dataclass(frozen=True)
class SimService:
    name: str
    peak_cpu_m: int
    peak_memory: int  # bytes
    replicas: int = 1
    priority: str = "medium"
    cooldown_seconds: int = 30
    max_peak_seconds: int = 900
    baseline_ratio: float = 0.9

    @property
    def peak(self) -> Amount:
        return Amount(self.peak_cpu_m, self.peak_memory)

    @property
    def baseline(self) -> Amount:
        # The planner's own rounding, so a simulated baseline is byte-for-byte the operator's.
        return baseline_of(self.peak, self.baseline_ratio)

    def pods(self) -> list[str]:
        return [f"{self.name}-{i}" for i in range(self.replicas)]


@dataclass(frozen=True)
class Attention:
    start: float  # seconds from the start of the trace
    service: str
    intensity: float
    duration: float
    user: str = ""

    @property
    def end(self) -> float:
        return self.start + self.duration


@dataclass(frozen=True)
class Trace:
    services: tuple[SimService, ...]
    events: tuple[Attention, ...]  # sorted by start
    duration: float
    name: str = "trace"
    # What the CSV loader refused or changed (None for generated traces): the report shows it.
    load: LoadReport | None = field(default=None, compare=False)

    def service(self, name: str) -> SimService:
        return next(s for s in self.services if s.name == name)


@dataclass(frozen=True)
class TraceShape:
    """Knobs of the generated working day."""

    seed: int = 7
    hours: float = 8.0
    users: int = 16
    heartbeat_s: float = 15.0  # a UI re-sends attention this often while the user stays
    chain_probability: float = 0.6  # a task follows a known workflow rather than wandering
    spikes: int = 4  # bursts where many users hit one service within a minute
    spike_users: int = 20


# Services of the generated trace: (name, priority). Sizes are drawn from the seed.
CATALOG: tuple[tuple[str, str], ...] = (
    ("web", "medium"),
    ("api", "medium_high"),
    ("search", "medium"),
    ("editor", "high"),
    ("render", "medium"),
    ("export", "medium_low"),
    ("reports", "medium"),
    ("billing", "medium"),
    ("audit", "low"),
    ("chat", "high"),
    ("lens", "medium"),
    ("vinci", "medium_low"),
    ("buddy", "very_high"),
    ("docs", "low"),
    ("share", "medium_low"),
    ("admin", "low"),
    ("auth", "medium"),
    ("notify", "low"),
    ("ingest", "medium_low"),
    ("index", "medium_low"),
    ("media", "medium"),
    ("settings", "very_low"),
    ("soul", "medium"),
    ("mcp", "medium"),
)

# Workflows users repeat: the transitions a Markov model can learn.
CHAINS: tuple[tuple[str, ...], ...] = (
    ("search", "editor", "render", "export"),
    ("reports", "billing", "audit"),
    ("chat", "lens", "vinci"),
    ("docs", "share"),
    ("ingest", "index"),
)


def _catalog(rng: random.Random) -> tuple[SimService, ...]:
    out = []
    for name, priority in CATALOG:
        cpu = rng.choice((500, 1000, 2000, 4000))
        memory = cpu * rng.choice((1, 2, 4)) * MIB  # 1-4 GiB per core
        out.append(SimService(name, cpu, memory, rng.choice((1, 2, 2, 3)), priority))
    return tuple(out)


def _visit(
    start: float, service: str, dwell: float, user: str, rng: random.Random, beat: float
) -> list[Attention]:
    """One stay on a service as a UI reports it: a signal every heartbeat until the user leaves."""
    out = []
    t = start
    end = start + dwell
    while t < end - 1e-6:
        d = min(beat, end - t)
        out.append(Attention(round(t, 3), service, round(rng.uniform(0.4, 1.0), 2), round(d, 3), user))
        t += d
    return out


def generate_trace(shape: TraceShape = TraceShape()) -> Trace:
    """A seeded working day: users in sessions of tasks (workflow chains or wandering), a lunch
    break, and a few spikes where many users land on one service at once."""
    rng = random.Random(shape.seed)
    services = _catalog(rng)
    names = [s.name for s in services]
    duration = shape.hours * 3600.0
    lunch = (3 * 3600.0, 4 * 3600.0) if shape.hours >= 5 else None
    events: list[Attention] = []
    for u in range(shape.users):
        user = f"user-{u:02d}"
        t = rng.uniform(0, 1800)  # people arrive over the first half hour
        while t < duration:
            if lunch and lunch[0] <= t < lunch[1]:
                t = lunch[1] + rng.uniform(0, 600)
                continue
            # One session: a few tasks back to back.
            for _ in range(rng.randint(1, 5)):
                if rng.random() < shape.chain_probability:
                    path = list(rng.choice(CHAINS))
                else:
                    path = rng.sample(names, rng.randint(1, 3))
                for svc in path:
                    dwell = min(600.0, max(5.0, rng.lognormvariate(math.log(45), 0.8)))
                    if t + dwell > duration:
                        break
                    events.extend(_visit(t, svc, dwell, user, rng, shape.heartbeat_s))
                    t += dwell + rng.uniform(1.0, 10.0)  # think time before the next click
                t += rng.uniform(10, 120)
            t += rng.expovariate(1 / 900)  # a break between sessions, 15 min on average
    for k in range(shape.spikes):
        at = rng.uniform(0.1 * duration, 0.9 * duration)
        svc = rng.choice(names)
        for j in range(shape.spike_users):
            start = at + rng.uniform(0, 60)
            dwell = rng.uniform(10, 90)
            if start + dwell < duration:
                events.extend(_visit(start, svc, dwell, f"spike{k}-{j}", rng, shape.heartbeat_s))
    events.sort(key=lambda e: (e.start, e.service, e.user))
    return Trace(services, tuple(events), duration, f"generated(seed={shape.seed})")


@dataclass(frozen=True)
class BrowsingShape:
    """Knobs of the generated browsing day: what public web logs look like once sessionised.

    Many hosts, each arriving a few times a day; a session stays long on one section (sticky:
    log-normal dwell with a median of minutes and a tail of hours) and moves to another section
    chosen by popularity alone, so there is no workflow chain for a transition model to learn.
    A few sections draw most of the traffic (Zipf), which keeps them attended nearly all day."""

    seed: int = 7
    hours: float = 8.0
    hosts: int = 160
    services: int = 12
    zipf: float = 1.4  # popularity of the k-th section ~ 1 / k^zipf
    dwell_median_s: float = 300.0
    dwell_sigma: float = 1.2
    dwell_max_s: float = 3 * 3600.0
    return_probability: float = 0.35  # another session later the same day
    heartbeat_s: float = 30.0
    background_probability: float = 0.1  # a tab left open in the background: below the threshold
    background_intensity: float = 0.05


def generate_browsing_trace(shape: BrowsingShape = BrowsingShape()) -> Trace:
    """A seeded browsing day (see BrowsingShape)."""
    rng = random.Random(shape.seed)
    services = _catalog(rng)[: shape.services]
    names = [s.name for s in services]
    order = names[:]
    rng.shuffle(order)  # popularity does not follow the catalog
    weights = [1 / (k + 1) ** shape.zipf for k in range(len(order))]
    duration = shape.hours * 3600.0
    events: list[Attention] = []
    for h in range(shape.hosts):
        host = f"host-{h:04d}"
        t = rng.uniform(0, duration)
        while t < duration:
            svc = ""
            for _ in range(1 + min(6, int(rng.expovariate(1 / 1.5)))):  # sections per session
                svc = rng.choices(
                    [n for n in order if n != svc],
                    [w for n, w in zip(order, weights, strict=True) if n != svc],
                )[0]
                dwell = min(
                    shape.dwell_max_s,
                    max(10.0, rng.lognormvariate(math.log(shape.dwell_median_s), shape.dwell_sigma)),
                )
                dwell = min(dwell, duration - t)
                if dwell <= 0:
                    break
                if rng.random() < shape.background_probability:
                    events.append(
                        Attention(round(t, 3), svc, shape.background_intensity, round(dwell, 3), host)
                    )
                else:
                    events.extend(_visit(t, svc, dwell, host, rng, shape.heartbeat_s))
                t += dwell + rng.uniform(1.0, 20.0)
            if rng.random() >= shape.return_probability:
                break
            t += rng.expovariate(1 / 5400)  # back after an hour and a half on average
    events.sort(key=lambda e: (e.start, e.service, e.user))
    return Trace(services, tuple(events), duration, f"browsing(seed={shape.seed})")


@dataclass(frozen=True)
class WeekShape:
    """Knobs of the generated working week: `days` working days of the generated workday (a new
    seed each day, so most activity differs day to day), 24 h apart, plus each user's daily habits:
    `habits` services they open at about the same time every day (jitter up to `jitter_s` either
    way, skipped on `skip_probability` of the days). What time-of-day recurrence could learn."""

    seed: int = 7
    days: int = 5
    hours: float = 8.0
    users: int = 16
    spikes: int = 4
    habits: int = 2
    jitter_s: float = 180.0
    skip_probability: float = 0.2
    habit_dwell_median_s: float = 300.0


def generate_week_trace(shape: WeekShape = WeekShape()) -> Trace:
    """A seeded working week (see WeekShape): day d starts d x 24 h after the first."""
    rng = random.Random(shape.seed * 7919 + 1)
    first = generate_trace(
        TraceShape(seed=shape.seed, hours=shape.hours, users=shape.users, spikes=shape.spikes)
    )
    names = [s.name for s in first.services]
    day_s = 86_400.0
    span = shape.hours * 3600.0
    lunch = (3 * 3600.0, 4 * 3600.0) if shape.hours >= 5 else (0.0, 0.0)
    habits: dict[str, list[tuple[str, float]]] = {}
    for u in range(shape.users):
        out = []
        for _ in range(shape.habits):
            at = rng.uniform(0.05 * span, 0.95 * span - 600)
            if lunch[0] <= at < lunch[1]:
                at = lunch[1] + rng.uniform(0, 1800)  # right after lunch: a habit too
            out.append((rng.choice(names), at))
        habits[f"user-{u:02d}"] = out
    events: list[Attention] = []
    for d in range(shape.days):
        day = (
            first
            if d == 0
            else generate_trace(
                TraceShape(
                    seed=shape.seed + 1000 * d, hours=shape.hours, users=shape.users, spikes=shape.spikes
                )
            )
        )
        offset = d * day_s
        events.extend(dataclasses.replace(e, start=round(e.start + offset, 3)) for e in day.events)
        for user, hs in habits.items():
            for svc, at in hs:
                if rng.random() < shape.skip_probability:
                    continue
                start = max(0.0, at + rng.uniform(-shape.jitter_s, shape.jitter_s))
                dwell = min(1800.0, max(30.0, rng.lognormvariate(math.log(shape.habit_dwell_median_s), 0.5)))
                events.extend(_visit(offset + start, svc, min(dwell, span - start), user, rng, 15.0))
    events.sort(key=lambda e: (e.start, e.service, e.user))
    duration = (shape.days - 1) * day_s + span
    return Trace(first.services, tuple(events), duration, f"week(seed={shape.seed}, days={shape.days})")


@dataclass(frozen=True)
class InvocationShape:
    """Knobs of a generated serverless trace shaped like per-minute invocation counts converted by
    benchmarks/traces/invocations.py: no users; `scheduled` apps run at fixed times of day (1-3
    times, a minute or two of jitter, for 1-5 minutes, on `run_probability` of the days), the
    others are invoked at random (bursts of 1-10 minutes, `bursts_per_hour` on average)."""

    seed: int = 7
    days: int = 7
    apps: int = 16
    scheduled: int = 6
    run_probability: float = 0.9
    bursts_per_hour: float = 1.5


def generate_invocation_trace(shape: InvocationShape = InvocationShape()) -> Trace:
    """A seeded anonymous multi-day trace (see InvocationShape), in minute rows like the converter's."""
    rng = random.Random(shape.seed * 104729 + 3)
    catalog = _catalog(random.Random(shape.seed))
    services = tuple(
        dataclasses.replace(catalog[i % len(catalog)], name=f"app-{i:02d}", replicas=1)
        for i in range(shape.apps)
    )
    minutes = shape.days * 1440
    busy: dict[str, set[int]] = {s.name: set() for s in services}
    for k, svc in enumerate(services):
        if k < shape.scheduled:
            times = [rng.randrange(0, 1440) for _ in range(rng.randint(1, 3))]
            lengths = [rng.randint(1, 5) for _ in times]
            for d in range(shape.days):
                for at, n in zip(times, lengths, strict=True):
                    if rng.random() < shape.run_probability:
                        m0 = d * 1440 + at + rng.randint(-2, 2)
                        busy[svc.name].update(range(max(0, m0), min(minutes, m0 + n)))
        else:
            m = rng.expovariate(shape.bursts_per_hour / 60)
            while m < minutes:
                n = rng.randint(1, 10)
                busy[svc.name].update(range(int(m), min(minutes, int(m) + n)))
                m += n + rng.expovariate(shape.bursts_per_hour / 60)
    # Rows exactly as the converter writes them: consecutive busy minutes make one row.
    series = {name: [1 if m in mins else 0 for m in range(minutes)] for name, mins in busy.items()}
    rows = invocations.rows_of(series, {name: name for name in series})
    events = [Attention(r.time, r.service, r.intensity, r.duration) for r in rows]
    events.sort(key=lambda e: (e.start, e.service, e.user))
    return Trace(
        services, tuple(events), minutes * 60.0, f"invocations(seed={shape.seed}, days={shape.days})"
    )


# Columns of a trace CSV (benchmarks/traces/README.md). The per-service ones may be given on
# any row of the service (blank elsewhere); two different values for one service are refused.
REQUIRED_COLUMNS = ("time", "service", "duration")
EVENT_COLUMNS = (*REQUIRED_COLUMNS, "intensity", "user")
SERVICE_COLUMNS = ("baseline_ratio", "priority")
# Far past any trace this replays; keeps the virtual clock's datetimes away from overflow.
MAX_TRACE_SECONDS = 366 * 86_400.0


@dataclass
class LoadReport:
    """What load_trace_csv made of a file: rows taken, refused (and why), changed."""

    rows: int = 0
    accepted: int = 0
    refused: Counter[str] = field(default_factory=Counter)  # why -> rows
    examples: list[str] = field(default_factory=list)  # the first few "line N: why"
    # Longer than an AttentionSignal lasts (MAX_SIGNAL_SECONDS): cut there, as the operator does.
    clipped: int = 0
    without_user: int = 0
    user_column: bool = True
    ignored_columns: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "accepted": self.accepted,
            "refused": sum(self.refused.values()),
            "refused_by_reason": dict(self.refused.most_common()),
            "refused_examples": list(self.examples),
            "clipped_to_max_signal_seconds": self.clipped,
            "rows_without_user": self.without_user,
            "user_column": self.user_column,
            "ignored_columns": list(self.ignored_columns),
        }


class RowError(ValueError):
    """A CSV row the operator would refuse; `reason` groups rows refused for the same thing."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}{': ' + detail if detail else ''}")
        self.reason = reason


def _number(row: Mapping[str, str | None], column: str, default: float | None = None) -> float:
    raw = (row.get(column) or "").strip()
    if not raw:
        if default is None:
            raise RowError(f"{column}: missing")
        return default
    try:
        value = float(raw)
    except ValueError:
        raise RowError(f"{column}: not a number", repr(raw)) from None
    if not math.isfinite(value):
        raise RowError(f"{column}: not a finite number", raw)
    return value


def parse_row(row: Mapping[str, str | None]) -> tuple[Attention, dict[str, Any]]:
    """One CSV row as an attention event and the service attributes it sets, by the operator's
    own rules: the event must pass `AttentionEvent` (what POST /v1/attention and the Redis
    stream accept: intensity 0..1, user length, expiry after start), the service name must be a
    DNS label (it names a HeadyService, a Deployment and its pods), and the service attributes
    must pass `HeadyServiceSpec` (baselineRatio in (0, 1], a known priority). Raises RowError."""
    start = _number(row, "time")
    duration = _number(row, "duration")
    intensity = _number(row, "intensity", 1.0)
    if start < 0:
        raise RowError("time: negative (a trace starts at 0)")
    if start > MAX_TRACE_SECONDS:
        raise RowError(f"time: beyond {MAX_TRACE_SECONDS:.0f} s")
    if duration <= 0:
        raise RowError("duration: not positive")
    service = (row.get("service") or "").strip()
    if not service:
        raise RowError("service: missing")
    if len(service) > 63 or not re.fullmatch(DNS_LABEL, service):
        raise RowError("service: not a DNS label (a-z, 0-9, '-', at most 63)", repr(service))
    user = (row.get("user") or "").strip()
    begins = T0 + timedelta(seconds=start)
    try:
        AttentionEvent.model_validate(
            {
                "service": service,
                "intensity": intensity,
                "user": user or None,
                "source": "ui",
                "startTime": begins,
                "expiresAt": begins + timedelta(seconds=min(duration, MAX_SIGNAL_SECONDS + 1.0)),
            }
        )
    except ValidationError as exc:
        raise RowError(describe_error(exc)) from None
    attrs: dict[str, Any] = {}
    ratio = (row.get("baseline_ratio") or "").strip()
    priority = (row.get("priority") or "").strip()
    if ratio or priority:
        spec: dict[str, Any] = {"workload": {"name": service}}
        if ratio:
            try:
                spec["baselineRatio"] = float(ratio)
            except ValueError:
                spec["baselineRatio"] = ratio  # the model says what it accepts besides a number
        if priority:
            spec["priority"] = priority
        try:
            parsed = HeadyServiceSpec.model_validate(spec)
        except ValidationError as exc:
            raise RowError(describe_error(exc)) from None
        if ratio:
            if not isinstance(parsed.baseline_ratio, float):
                raise RowError("baseline_ratio: only a number is simulated", ratio)
            attrs["baseline_ratio"] = parsed.baseline_ratio
        if priority:
            attrs["priority"] = str(parsed.priority)
    return Attention(start, service, intensity, duration, user), attrs


def load_trace_csv(
    path: Path,
    default: SimService = SimService("default", 1000, GIB),
    services: Iterable[SimService] = (),
    duration: float | None = None,
) -> Trace:
    """Columns time,service,duration[,intensity][,user][,baseline_ratio][,priority]
    (benchmarks/traces/README.md). Services not in `services` get `default`'s size, priority and
    baseline ratio unless their rows say otherwise. Rows the operator would refuse are left out
    and counted by reason in `Trace.load`; a file with no usable row is an error."""
    known = {s.name: s for s in services}
    attrs_of: dict[str, dict[str, Any]] = {}
    report = LoadReport()
    events = []
    # utf-8-sig: spreadsheets save a byte-order mark that would glue itself to the first column's
    # name; bytes that are not UTF-8 become U+FFFD, so such a row is refused by name, not a crash.
    with path.open(newline="", encoding="utf-8-sig", errors="replace") as fh:
        reader = csv.DictReader(fh)
        header = [c.strip() for c in reader.fieldnames or []]
        missing = [c for c in REQUIRED_COLUMNS if c not in header]
        if missing:
            raise ValueError(
                f"{path}: missing column(s) {', '.join(missing)}; "
                f"a trace needs {', '.join(REQUIRED_COLUMNS)} (benchmarks/traces/README.md)"
            )
        reader.fieldnames = header
        report.user_column = "user" in header
        report.ignored_columns = tuple(c for c in header if c not in (*EVENT_COLUMNS, *SERVICE_COLUMNS))
        for row in reader:
            report.rows += 1
            try:
                ev, attrs = parse_row(row)
                earlier = attrs_of.setdefault(ev.service, {})
                for k, v in attrs.items():
                    if earlier.get(k, v) != v:
                        raise RowError(f"{k}: differs from an earlier row of the same service", ev.service)
                earlier.update(attrs)
            except RowError as exc:
                report.refused[exc.reason] += 1
                if len(report.examples) < 5:
                    report.examples.append(f"line {reader.line_num}: {exc}")
                continue
            if ev.duration > MAX_SIGNAL_SECONDS:
                report.clipped += 1
                ev = dataclasses.replace(ev, duration=float(MAX_SIGNAL_SECONDS))
            if not known_user(ev.user):
                report.without_user += 1
            report.accepted += 1
            events.append(ev)
    if not events:
        why = (
            "; ".join(f"{n} x {r}" for r, n in report.refused.most_common(3)) or "the file has a header only"
        )
        raise ValueError(f"{path}: no usable attention rows ({why})")
    for name in dict.fromkeys(e.service for e in events):  # in file order
        base = known.get(name) or dataclasses.replace(default, name=name)
        known[name] = dataclasses.replace(base, **attrs_of.get(name, {}))
    events.sort(key=lambda e: (e.start, e.service, e.user))
    end = duration if duration is not None else max((e.end for e in events), default=0.0)
    return Trace(tuple(known.values()), tuple(events), end, path.name, report)


def write_trace_csv(trace: Trace, path: Path) -> None:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["time", "service", "intensity", "duration", "user"])
        for e in trace.events:
            w.writerow([e.start, e.service, e.intensity, e.duration, e.user])


# ---------------------------------------------------------------- accounting (pure)


class Step(NamedTuple):
    """From `t` on (until the next step) a pod holds these requests."""

    t: float
    cpu_m: int
    memory: int
    peak: bool


def merge(intervals: Iterable[Interval]) -> list[Interval]:
    """Union of intervals as a sorted list of disjoint ones (touching intervals join)."""
    out: list[Interval] = []
    for s, e in sorted(i for i in intervals if i[1] > i[0]):
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


def intersect(a: Sequence[Interval], b: Sequence[Interval]) -> list[Interval]:
    """Intersection of two sorted disjoint interval lists."""
    out: list[Interval] = []
    i = j = 0
    while i < len(a) and j < len(b):
        s, e = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if e > s:
            out.append((s, e))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out


def length(intervals: Iterable[Interval]) -> float:
    return sum(e - s for s, e in intervals)


def integrate(steps: Sequence[Step], end: float, value: Callable[[Step], float]) -> float:
    """The integral over [0, end) of a step function (value-seconds)."""
    total = 0.0
    for k, step in enumerate(steps):
        if step.t >= end:
            break
        until = min(end, steps[k + 1].t) if k + 1 < len(steps) else end
        total += value(step) * max(0.0, until - step.t)
    return total


def where(steps: Sequence[Step], end: float, predicate: Callable[[Step], bool]) -> list[Interval]:
    """The intervals within [0, end) where the step function satisfies `predicate`."""
    out = []
    for k, step in enumerate(steps):
        if step.t >= end:
            break
        until = min(end, steps[k + 1].t) if k + 1 < len(steps) else end
        if predicate(step) and until > step.t:
            out.append((step.t, until))
    return merge(out)


def attention_by_service(trace: Trace, threshold: float = DEMAND_THRESHOLD) -> dict[str, list[Interval]]:
    """When each service had someone's attention at or above `threshold`, clipped to the trace.

    Weaker attention escalates nothing in the operator (planning/levels.demand_of), so it is no
    demand for any policy here either; the report counts it separately ("not demand")."""
    raw: dict[str, list[Interval]] = {s.name: [] for s in trace.services}
    for e in trace.events:
        if e.intensity >= threshold:
            raw.setdefault(e.service, []).append((max(0.0, e.start), min(trace.duration, e.end)))
    return {k: merge(v) for k, v in raw.items()}


def transitions(trace: Trace) -> int:
    """Attention events that move a user to a different service: what prediction could foresee.

    Only attention with a user id counts: the operator learns from nothing else
    (planning/prediction.known_user), and rows without one are no user's moves."""
    last: dict[str, str] = {}
    count = 0
    for e in trace.events:
        if not known_user(e.user):
            continue
        prev = last.get(e.user)
        if prev is not None and prev != e.service:
            count += 1
        last[e.user] = e.service
    return count


@dataclass
class Run:
    """What a policy did: each pod's request timeline and how many resizes it took."""

    policy: str
    steps: dict[str, list[Step]]  # pod -> steps, first at t=0
    pod_service: dict[str, str]
    resizes: int
    # heady only: service -> [(t, why)], what the planner decided (for blaming violations).
    reasons: dict[str, list[tuple[float, str]]] = field(default_factory=dict)
    predictions: dict[str, float] | None = None


def account(trace: Trace, run: Run) -> dict[str, Any]:
    """Reserved resources and attention served at peak for one run (seconds and core-seconds)."""
    end = trace.duration
    cpu_s = sum(integrate(s, end, lambda x: x.cpu_m / 1000) for s in run.steps.values())
    mem_s = sum(integrate(s, end, lambda x: x.memory / GIB) for s in run.steps.values())
    attention = attention_by_service(trace)
    pods_of: dict[str, list[str]] = {}
    for pod, svc in run.pod_service.items():
        pods_of.setdefault(svc, []).append(pod)
    attended = served = 0.0
    blame: dict[str, float] = {}
    for svc, wanted in attention.items():
        if not wanted:
            continue
        # A service is served at peak only while every one of its pods is at peak.
        full: list[Interval] = [(0.0, end)]
        for pod in pods_of.get(svc, []):
            full = intersect(full, where(run.steps[pod], end, lambda x: x.peak))
        good = intersect(wanted, full)
        attended += length(wanted)
        served += length(good)
        if run.reasons.get(svc):
            short = _subtract(wanted, good)
            for why, ivs in _reason_intervals(run.reasons[svc], end).items():
                blame[why] = blame.get(why, 0.0) + length(intersect(short, ivs))
    out: dict[str, Any] = {
        "policy": run.policy,
        "cpu_core_seconds": cpu_s,
        "memory_gib_seconds": mem_s,
        "cpu_core_hours": cpu_s / 3600,
        "memory_gib_hours": mem_s / 3600,
        "attention_seconds": attended,
        "served_at_peak_seconds": served,
        "sla_violation_seconds": attended - served,
        "sla_violation_pct": 100 * (attended - served) / attended if attended else 0.0,
        "resizes": run.resizes,
        # Churn per pod and hour of trace, so traces of different sizes compare.
        "resizes_per_pod_hour": run.resizes / (len(run.steps) * end / 3600) if run.steps and end else 0.0,
    }
    if blame:
        out["violation_seconds_by_cause"] = {k: round(v, 1) for k, v in sorted(blame.items()) if v >= 0.05}
    if run.predictions is not None:
        p = run.predictions
        decided = p["hits"] + p["misses"]
        out["predictions"] = dict(p)
        out["prediction_precision"] = p["hits"] / decided if decided else None
        out["prediction_recall"] = p["hits"] / p["transitions"] if p["transitions"] else None
    return out


def compare(
    results: list[dict[str, Any]], reference: str = "always-peak", resize_cost: float = 0.0
) -> list[dict[str, Any]]:
    """Adds each policy's reservation as % of the reference policy's, its saving, that saving as a
    share of the oracle's (the most there is to save), and with a per-resize cost its CPU cost."""
    ref = next(r for r in results if r["policy"] == reference)
    best = next((r for r in results if r["policy"] == "oracle"), None)
    best_saving = ref["cpu_core_seconds"] - best["cpu_core_seconds"] if best else 0.0
    for r in results:
        r["cpu_vs_always_peak_pct"] = 100 * r["cpu_core_seconds"] / ref["cpu_core_seconds"]
        r["memory_vs_always_peak_pct"] = 100 * r["memory_gib_seconds"] / ref["memory_gib_seconds"]
        r["cpu_saving_pct"] = 100 - r["cpu_vs_always_peak_pct"]
        saving = ref["cpu_core_seconds"] - r["cpu_core_seconds"]
        r["share_of_oracle_saving_pct"] = 100 * saving / best_saving if best_saving > 0 else None
        if resize_cost > 0:
            cost = r["cpu_core_seconds"] + resize_cost * r["resizes"]
            r["resize_cost_core_seconds"] = resize_cost * r["resizes"]
            r["cpu_with_resize_cost_vs_always_peak_pct"] = 100 * cost / ref["cpu_core_seconds"]
    return results


def _subtract(a: Sequence[Interval], b: Sequence[Interval]) -> list[Interval]:
    """a minus b, for sorted disjoint lists."""
    out: list[Interval] = []
    j = 0
    for s, e in a:
        cur = s
        while j < len(b) and b[j][1] <= cur:
            j += 1
        k = j
        while k < len(b) and b[k][0] < e:
            if b[k][0] > cur:
                out.append((cur, b[k][0]))
            cur = max(cur, b[k][1])
            k += 1
        if cur < e:
            out.append((cur, e))
    return out


def _reason_intervals(timeline: Sequence[tuple[float, str]], end: float) -> dict[str, list[Interval]]:
    out: dict[str, list[Interval]] = {}
    for k, (t, why) in enumerate(timeline):
        until = timeline[k + 1][0] if k + 1 < len(timeline) else end
        if until > t:
            out.setdefault(why, []).append((t, until))
    return {k: merge(v) for k, v in out.items()}


# ---------------------------------------------------------------- level policies


def _pods(trace: Trace) -> dict[str, str]:
    return {pod: s.name for s in trace.services for pod in s.pods()}


def _from_levels(trace: Trace, policy: str, levels: Mapping[str, list[tuple[float, bool]]]) -> Run:
    """Expand per-service level timelines [(t, at_peak)] into every pod's request steps."""
    steps: dict[str, list[Step]] = {}
    resizes = 0
    for svc in trace.services:
        timeline = levels[svc.name]
        changes = sum(1 for k in range(1, len(timeline)) if timeline[k][1] != timeline[k - 1][1])
        resizes += changes * svc.replicas
        for pod in svc.pods():
            steps[pod] = [
                Step(
                    t,
                    (svc.peak if up else svc.baseline).cpu or 0,
                    (svc.peak if up else svc.baseline).memory or 0,
                    up,
                )
                for t, up in timeline
            ]
    return Run(policy, steps, _pods(trace), resizes)


def oracle(trace: Trace) -> Run:
    """Peak exactly while attended, baseline otherwise, with no delay: the most any policy can
    save without an SLA violation (it knows the future; nothing real does)."""
    demand = attention_by_service(trace)
    levels: dict[str, list[tuple[float, bool]]] = {}
    for svc in trace.services:
        timeline = [(0.0, False)]
        for s, e in demand.get(svc.name, []):
            if s <= 0.0:
                timeline = [(0.0, True)]
            else:
                timeline.append((s, True))
            if e < trace.duration:
                timeline.append((e, False))
        levels[svc.name] = timeline
    return _from_levels(trace, "oracle", levels)


def always_peak(trace: Trace) -> Run:
    return _from_levels(trace, "always-peak", {s.name: [(0.0, True)] for s in trace.services})


def static_baseline(trace: Trace) -> Run:
    return _from_levels(trace, "static-baseline", {s.name: [(0.0, False)] for s in trace.services})


def _seen(intervals: Sequence[Interval], since: float, until: float) -> bool:
    """Was there demand at some moment in (since, until]?"""
    return any(s < until and e > since for s, e in intervals)


def vpa_like(
    trace: Trace, period: float = 60.0, window: float = 300.0, delay: float = MEASURED_RESIZE_DELAY.mean
) -> Run:
    demand = attention_by_service(trace)
    levels: dict[str, list[tuple[float, bool]]] = {}
    for svc in trace.services:
        timeline = [(0.0, False)]
        t = period
        while t < trace.duration:
            want = _seen(demand[svc.name], t - window, t)
            if want != timeline[-1][1]:
                timeline.append((t + delay, want))
            t += period
        levels[svc.name] = timeline
    return _from_levels(trace, "vpa-like", levels)


def keda_like(
    trace: Trace, poll: float = 30.0, cooldown: float = 300.0, delay: float = SCALE_OUT_DELAY_S
) -> Run:
    demand = attention_by_service(trace)
    levels: dict[str, list[tuple[float, bool]]] = {}
    for svc in trace.services:
        timeline = [(0.0, False)]
        last_active: float | None = None
        t = poll
        while t < trace.duration:
            if _seen(demand[svc.name], t - poll, t):
                last_active = t
                if not timeline[-1][1]:
                    timeline.append((t + delay, True))
            elif timeline[-1][1] and last_active is not None and t - last_active >= cooldown:
                timeline.append((t + delay, False))
            t += poll
        levels[svc.name] = timeline
    return _from_levels(trace, "keda-like", levels)


# ---------------------------------------------------------------- heady: the operator's controller


class _Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def _resources(amount: Amount) -> dict[str, str]:
    return {"cpu": format_cpu(amount.cpu or 0), "memory": format_memory(amount.memory or 0)}


def _bodies(
    trace: Trace, node_room: float = 1.0, ratio_mode: str = "Fixed"
) -> tuple[dict[str, Any], list[tuple[str, dict[str, Any]]], dict[str, dict[str, Any]]]:
    """The Kubernetes objects the controller would see from its watches: one node holding every
    pod at baseline plus `node_room` of the room all of them need at peak (1: node capacity never
    decides), Deployments whose template asks for peak, HeadyServices, and Guaranteed pods
    already settled at baseline."""
    cpu = sum(
        s.baseline.cpu * s.replicas + node_room * (s.peak_cpu_m - (s.baseline.cpu or 0)) * s.replicas
        for s in trace.services
        if s.baseline.cpu is not None
    )
    mem = sum(
        s.baseline.memory * s.replicas + node_room * (s.peak_memory - (s.baseline.memory or 0)) * s.replicas
        for s in trace.services
        if s.baseline.memory is not None
    )
    cpu, mem = math.ceil(cpu), math.ceil(mem)
    node = {"metadata": {"name": "sim-node"}, "status": {"allocatable": _resources(Amount(cpu, mem))}}
    objects: list[tuple[str, dict[str, Any]]] = []
    pods: dict[str, dict[str, Any]] = {}
    for s in trace.services:
        labels = {"app": s.name}
        peak = _resources(s.peak)
        objects.append(
            (
                "workload",
                {
                    "kind": "Deployment",
                    "metadata": {"namespace": NAMESPACE, "name": s.name},
                    "spec": {
                        "selector": {"matchLabels": labels},
                        "template": {
                            "spec": {
                                "containers": [
                                    {"name": "app", "resources": {"requests": peak, "limits": peak}}
                                ]
                            }
                        },
                    },
                },
            )
        )
        objects.append(
            (
                "service",
                {
                    "metadata": {"namespace": NAMESPACE, "name": s.name, "generation": 1},
                    "spec": {
                        "workload": {"name": s.name},
                        "priority": s.priority,
                        "baselineRatio": s.baseline_ratio,
                        "baselineRatioMode": ratio_mode,
                        "cooldownSeconds": s.cooldown_seconds,
                        "maxPeakSeconds": s.max_peak_seconds,
                    },
                },
            )
        )
        base = _resources(s.baseline)
        objects.append(
            (
                "replicaset",
                {
                    "metadata": {
                        "namespace": NAMESPACE,
                        "name": f"{s.name}-sim",
                        "ownerReferences": [{"kind": "Deployment", "name": s.name, "controller": True}],
                    }
                },
            )
        )
        for name in s.pods():
            pods[name] = {
                "metadata": {
                    "namespace": NAMESPACE,
                    "name": name,
                    "labels": labels,
                    "ownerReferences": [{"kind": "ReplicaSet", "name": f"{s.name}-sim", "controller": True}],
                },
                "spec": {
                    "nodeName": "sim-node",
                    "containers": [{"name": "app", "resources": {"requests": base, "limits": base}}],
                },
                "status": {"phase": "Running", "qosClass": "Guaranteed"},
            }
    return node, objects, pods


def _signal_body(i: int, e: Attention) -> dict[str, Any]:
    start = T0 + timedelta(seconds=e.start)
    spec: dict[str, Any] = {
        "services": [e.service],
        "intensity": e.intensity,
        "source": "ui",
        "startTime": start.isoformat(),
        "expiresAt": (start + timedelta(seconds=e.duration)).isoformat(),
    }
    if e.user:
        spec["user"] = e.user
    return {
        "metadata": {"namespace": NAMESPACE, "name": f"att-{i}", "creationTimestamp": start.isoformat()},
        "spec": spec,
    }


def _apply(body: dict[str, Any], target: tuple[ContainerResources, ...]) -> None:
    """What the kubelet does with an accepted resize: the pod now holds the target."""
    patch = {c["name"]: c["resources"] for c in resize_patch(target)["spec"]["containers"]}
    for c in body["spec"]["containers"]:
        if c["name"] in patch:
            c["resources"] = patch[c["name"]]


def _step(t: float, target: tuple[ContainerResources, ...], svc: SimService) -> Step:
    cpu = sum(c.requests.cpu or 0 for c in target)
    mem = sum(c.requests.memory or 0 for c in target)
    return Step(t, cpu, mem, cpu >= svc.peak_cpu_m and mem >= svc.peak_memory)


async def simulate_heady(
    trace: Trace,
    prediction: bool,
    delay: ResizeDelay | float = MEASURED_RESIZE_DELAY,
    settings: Mapping[str, Any] | None = None,
    node_room: float = 1.0,
    auto_ratio: bool = False,
) -> Run:
    """Drive the operator's own cluster state and incremental planner through the trace on a virtual clock."""
    clock = _Clock()
    draw = (delay if isinstance(delay, ResizeDelay) else ResizeDelay.constant(delay)).sampler()
    cfg = Settings(prediction_enabled=prediction, expired_signal_retention_seconds=0, **(settings or {}))
    ctl = ClusterState(cfg, IncrementalPlanner(policy_of(cfg)), clock)
    planner = ctl.planner
    node, objects, bodies = _bodies(trace, node_room, "Auto" if auto_ratio else "Fixed")
    allocatable = node["status"]["allocatable"]
    room = Amount(cpu_millis(allocatable["cpu"]), memory_bytes(allocatable["memory"]))
    ctl.on_node("ADDED", kobj.from_dict(kobj.Node, node))
    for kind, body in objects:
        if kind == "workload":
            ctl.on_workload("ADDED", "Deployment", kobj.from_dict(kobj.Workload, body))
        elif kind == "replicaset":
            ctl.on_replica_set("ADDED", kobj.from_dict(kobj.ReplicaSet, body))
        else:
            ctl.on_service("ADDED", body)
    for body in bodies.values():
        ctl.on_pod("ADDED", kobj.from_dict(kobj.Pod, body))

    def reconcile() -> Plan:
        now = clock()
        ctl.expire(now)
        planner.plan(now)
        while planner.has_pending_work():
            planner.plan(now)
        return planner.snapshot()

    def next_deadline() -> float:
        due = planner.next_deadline()
        return 86_400.0 if due is None else max(0.0, (due - clock()).total_seconds())

    svc_of = _pods(trace)
    services = {s.name: s for s in trace.services}
    steps = {
        pod: [_step(0.0, ctl.pods[(NAMESPACE, pod)].record.containers, services[svc])]
        for pod, svc in svc_of.items()
    }
    reasons: dict[str, list[tuple[float, str]]] = {s.name: [] for s in trace.services}
    inflight: dict[str, tuple[ContainerResources, ...]] = {}
    due: list[tuple[float, int, str, tuple[ContainerResources, ...]]] = []
    resizes = 0
    seq = 0
    seen_predictions: set[tuple[str, str]] = set()
    # Service-seconds at (or on the way to) peak on a prediction alone: what prediction spends.
    predicted = {"since": 0.0, "services": 0, "seconds": 0.0}

    pods_of: dict[str, list[str]] = {}
    for pod, svc_name in svc_of.items():
        pods_of.setdefault(svc_name, []).append(pod)

    def handle(plan: Plan, t: float) -> None:
        nonlocal resizes, seq
        predicted["seconds"] += (t - predicted["since"]) * predicted["services"]
        predicted["since"] = t
        predicted["services"] = sum(
            1
            for d in plan.services.values()
            if d.granted and getattr(getattr(d, "signal", None), "source", None) == PREDICTOR
        )
        for name, why in causes(plan, services, pods_of, cfg.max_high_priority_escalations, room).items():
            if not reasons[name] or reasons[name][-1][1] != why:
                reasons[name].append((t, why))
        for d in plan.resizes:
            pod = d.pod[1]
            if inflight.get(pod) == d.target:
                continue  # already sent; the operator does not repeat an in-flight resize
            inflight[pod] = d.target
            resizes += 1
            seq += 1
            heapq.heappush(due, (t + draw(pod), seq, pod, d.target))

    t = 0.0
    handle(reconcile(), t)
    events = trace.events
    i = 0
    live: list[tuple[float, int]] = []  # (when its object is deleted, event index)
    while True:
        candidates = [trace.duration, t + next_deadline()]
        if i < len(events):
            candidates.append(events[i].start)
        if due:
            candidates.append(due[0][0])
        if live:
            candidates.append(live[0][0])
        t_next = min(candidates)
        if t_next >= trace.duration:
            break
        t = max(t, t_next)
        clock.now = T0 + timedelta(seconds=t)
        while due and due[0][0] <= t:
            _, _, pod, target = heapq.heappop(due)
            if inflight.get(pod) is not target:
                continue  # superseded by a later resize of the same pod
            del inflight[pod]
            _apply(bodies[pod], target)
            ctl.on_pod("MODIFIED", kobj.from_dict(kobj.Pod, bodies[pod]))
            steps[pod].append(_step(t, target, services[svc_of[pod]]))
        while live and live[0][0] <= t:
            # The reporter deletes an expired AttentionSignal after the retention (0 here); its
            # watch then drops it from the controller's state, as in the cluster.
            _, k = heapq.heappop(live)
            ctl.on_signal("DELETED", kobj.from_dict(kobj.CustomObject, _signal_body(k, events[k])))
        while i < len(events) and events[i].start <= t:
            ctl.on_signal("ADDED", kobj.from_dict(kobj.CustomObject, _signal_body(i, events[i])))
            heapq.heappush(live, (events[i].end + cfg.expired_signal_retention_seconds, i))
            i += 1
        for key, entry in ctl.signals.items():
            if entry.path == "predictor":
                seen_predictions.add(key)
        handle(reconcile(), t)

    predictions = None
    if prediction:
        predictions = {
            "issued": len(seen_predictions),
            "hits": sum(ctl.model.hits.values()),
            "misses": sum(ctl.model.misses.values()),
            # Made while throttled (escalating nothing): scored, so throttling can lift, but free.
            "shadow_hits": sum(ctl.model.shadow_hits.values()),
            "shadow_misses": sum(ctl.model.shadow_misses.values()),
            "transitions": transitions(trace),
            "predicted_peak_service_seconds": round(
                predicted["seconds"] + (trace.duration - predicted["since"]) * predicted["services"], 1
            ),
        }
    return Run(
        "heady-auto" if auto_ratio else "heady-predictive" if prediction else "heady-reactive",
        steps,
        svc_of,
        resizes,
        reasons,
        predictions,
    )


def run_heady(
    trace: Trace,
    prediction: bool,
    delay: ResizeDelay | float = MEASURED_RESIZE_DELAY,
    node_room: float = 1.0,
    auto_ratio: bool = False,
    **settings: Any,
) -> Run:
    return asyncio.run(simulate_heady(trace, prediction, delay, settings, node_room, auto_ratio))


@functools.cache
def _is_high(priority: str) -> bool:
    return PriorityLevel(priority).is_high


def causes(
    plan: Plan,
    services: Mapping[str, SimService],
    pods_of: Mapping[str, list[str]],
    max_high: int = 2,
    node_room: Amount | None = None,
) -> dict[str, str]:
    """Why each service of `plan` is (or may be) short of peak, as a cause key (CAUSE_LABELS).

    Derived from the planner's decisions alone: granted -> the resize is on its way, unless a pod
    was held at baseline (its pod reason, e.g. NodeCapacity); any other reason is kept as the
    planner names it, so a new one shows up as itself instead of breaking the simulator.

    A wait is blamed on prediction (PredictionHeldSlot) only where a prediction made it: waiting
    for a high-priority slot while a prediction alone holds one, or for node room (allocatable
    `node_room`) that the free room plus what predicted escalations hold would have covered.

    A rest (MaxPeakTime) is split by whether it shared anything: it did when the service is
    high-priority and, without it, `max_high` other high-priority services want peak (one waits, or
    took its slot), or when the node lacks the room for its pods' peak with everything else as
    planned. Otherwise nothing waited and the rest only cost attention."""
    out: dict[str, str] = {}
    predicted_high = False  # a prediction alone holds a high-priority slot
    predicted: set[str] = set()  # services at (or going to) peak on a prediction alone
    high_wanting: set[str] = set()
    for key, d in plan.services.items():
        svc = services.get(key[1])
        high = svc is not None and _is_high(svc.priority)
        if high and d.wants_peak:
            high_wanting.add(key[1])
        sig = getattr(d, "signal", None)
        if d.granted and sig is not None and getattr(sig, "source", None) == PREDICTOR:
            predicted.add(key[1])
            predicted_high = predicted_high or high
        if not d.granted:
            out[key[1]] = str(d.reason)
            continue
        held = set()
        if d.pods_total and d.pods_at_peak < d.pods_total:
            for pod in pods_of.get(key[1], []):
                pd = plan.pods.get((key[0], pod))
                if pd is not None and str(pd.level) != "Peak":
                    held.add(str(pd.reason))
        out[key[1]] = (
            str(Reason.NODE_CAPACITY) if str(Reason.NODE_CAPACITY) in held else min(held, default=ACTUATING)
        )
    free: tuple[int, int] | None = None
    if node_room is not None and any(
        why in (str(Reason.MAX_PEAK_TIME), str(Reason.NODE_CAPACITY)) for why in out.values()
    ):
        used = [pod_requests(pd.target) for pd in plan.pods.values()]
        free = (
            (node_room.cpu or 0) - sum(u.cpu or 0 for u in used),
            (node_room.memory or 0) - sum(u.memory or 0 for u in used),
        )

    def extra(name: str, pods: int | None = None) -> tuple[int, int]:
        svc = services[name]
        n = svc.replicas if pods is None else pods
        return (
            (svc.peak_cpu_m - (svc.baseline.cpu or 0)) * n,
            (svc.peak_memory - (svc.baseline.memory or 0)) * n,
        )

    decided = {k[1]: d for k, d in plan.services.items()}  # the simulator runs one namespace

    def at_baseline(name: str) -> int:
        d = decided.get(name)
        return d.pods_total - d.pods_at_peak if d is not None else 0

    held_by_predictions = (0, 0)
    for name in predicted:
        e = extra(name, decided[name].pods_at_peak)
        held_by_predictions = (held_by_predictions[0] + e[0], held_by_predictions[1] + e[1])
    for name, why in out.items():
        if why == str(Reason.HIGH_PRIORITY_LIMIT) and predicted_high:
            out[name] = PREDICTION_HELD_SLOT
        elif why == str(Reason.NODE_CAPACITY) and predicted and free is not None and name in services:
            need = extra(name, at_baseline(name) or services[name].replicas)
            if free[0] + held_by_predictions[0] >= need[0] and free[1] + held_by_predictions[1] >= need[1]:
                out[name] = PREDICTION_HELD_SLOT
        elif why == str(Reason.MAX_PEAK_TIME):
            svc = services.get(name)
            shared = False
            if svc is not None:
                if _is_high(svc.priority):
                    shared = len(high_wanting - {name}) >= max_high
                if free is not None and not shared:
                    e = extra(name)
                    shared = free[0] < e[0] or free[1] < e[1]
            out[name] = REST_OTHERS_WAITING if shared else REST_NOTHING_WAITING
    return out


# ---------------------------------------------------------------- all policies


@dataclass(frozen=True)
class Knobs:
    resize_delay: ResizeDelay = MEASURED_RESIZE_DELAY
    scale_out_delay: float = SCALE_OUT_DELAY_S
    vpa_period: float = 60.0
    vpa_window: float = 300.0
    keda_poll: float = 30.0
    keda_cooldown: float = 300.0
    # What one resize costs, in core-seconds (kubelet and API work, a cache-cold moment): 0 = free.
    resize_cost_core_seconds: float = 0.0
    # heady's node: room for every pod at baseline plus this share of what all need at peak.
    node_room: float = 1.0


POLICIES = (
    "always-peak",
    "oracle",
    "static-baseline",
    "heady-reactive",
    "heady-predictive",
    "heady-auto",
    "vpa-like",
    "keda-like",
)


# Policies whose decisions depend on the baseline ratio itself (not only through node room).
RATIO_DEPENDENT = ("heady-auto",)


def with_baseline_ratio(trace: Trace, ratio: float) -> Trace:
    """The same trace with every service's baseline at `ratio` x peak (validated as the CRD does)."""
    HeadyServiceSpec.model_validate({"workload": {"name": "x"}, "baselineRatio": ratio})
    services = tuple(dataclasses.replace(s, baseline_ratio=ratio) for s in trace.services)
    return dataclasses.replace(trace, services=services)


def run_all(
    trace: Trace, knobs: Knobs = Knobs(), policies: Sequence[str] = POLICIES
) -> tuple[list[Run], list[dict[str, Any]]]:
    build: dict[str, Callable[[], Run]] = {
        "always-peak": lambda: always_peak(trace),
        "oracle": lambda: oracle(trace),
        "static-baseline": lambda: static_baseline(trace),
        "heady-reactive": lambda: run_heady(trace, False, knobs.resize_delay, knobs.node_room),
        "heady-predictive": lambda: run_heady(trace, True, knobs.resize_delay, knobs.node_room),
        "heady-auto": lambda: run_heady(trace, True, knobs.resize_delay, knobs.node_room, auto_ratio=True),
        "vpa-like": lambda: vpa_like(trace, knobs.vpa_period, knobs.vpa_window, knobs.resize_delay.mean),
        "keda-like": lambda: keda_like(trace, knobs.keda_poll, knobs.keda_cooldown, knobs.scale_out_delay),
    }
    wanted = list(dict.fromkeys(["always-peak", *policies]))  # the reference is always measured
    runs = [build[name]() for name in wanted]
    return runs, compare([account(trace, r) for r in runs], resize_cost=knobs.resize_cost_core_seconds)


def reprice(run: Run, original: Trace, target: Trace) -> Run | None:
    """`run`'s level timeline (same steps, same peaks) with `target`'s baselines, or None if a
    step is neither its service's peak nor baseline in `original` (then it cannot be re-priced)."""
    before = {s.name: s for s in original.services}
    after = {s.name: s for s in target.services}
    steps: dict[str, list[Step]] = {}
    for pod, timeline in run.steps.items():
        old, new = before[run.pod_service[pod]], after[run.pod_service[pod]]
        out = []
        for step in timeline:
            was = old.peak if step.peak else old.baseline
            if (step.cpu_m, step.memory) != (was.cpu, was.memory):
                return None
            now = new.peak if step.peak else new.baseline
            out.append(Step(step.t, now.cpu or 0, now.memory or 0, step.peak))
        steps[pod] = out
    return dataclasses.replace(run, steps=steps)


def _levels(run: Run) -> dict[str, list[tuple[float, bool]]]:
    return {pod: [(s.t, s.peak) for s in steps] for pod, steps in run.steps.items()}


@dataclass
class SweepPoint:
    ratio: float
    trace: Trace
    runs: list[Run]
    results: list[dict[str, Any]]
    heady: str  # "simulated", or "re-priced from <ratio>"


def sweep_runs(
    trace: Trace, knobs: Knobs, ratios: Sequence[float], simulate_at: Sequence[float] = ()
) -> list[SweepPoint]:
    """Every policy at every baseline ratio.

    heady runs the operator's planner on the trace at each ratio in `simulate_at` (default: the
    first and last). Its decisions depend on the ratio only through node room; when the node has
    room for every pod at peak (node_room >= 1) and the simulated ratios' level timelines agree
    step for step, the other ratios re-price that timeline with their baselines instead of
    re-running it (the report says which). Otherwise heady is simulated at every ratio. The
    other policies are cheap and always run."""
    full = list(dict.fromkeys(simulate_at or (ratios[0], ratios[-1])))
    simulated: dict[float, tuple[Trace, list[Run]]] = {}
    for ratio in full:
        at = with_baseline_ratio(trace, ratio)
        simulated[ratio] = (at, run_all(at, knobs)[0])
    heady = [n for n in POLICIES if n.startswith("heady-")]
    base_ratio = full[0]
    base_trace, base_runs = simulated[base_ratio]
    same = (
        knobs.node_room >= 1
        and len(full) > 1
        and all(
            _levels(a) == _levels(b)
            for r in full[1:]
            for a, b in zip(base_runs, simulated[r][1], strict=True)
            if a.policy in heady and a.policy not in RATIO_DEPENDENT
        )
    )
    points = []
    for ratio in ratios:
        if ratio in simulated:
            at, runs = simulated[ratio]
            how = "simulated"
        else:
            at = with_baseline_ratio(trace, ratio)
            runs, _ = run_all(at, knobs, [n for n in POLICIES if n not in heady])
            # A policy whose timeline holds other levels than peak and baseline (heady-auto moves a
            # service's baseline) cannot be re-priced: it is simulated at this ratio.
            priced = {
                r.policy: reprice(r, base_trace, at) if same and r.policy not in RATIO_DEPENDENT else None
                for r in base_runs
                if r.policy in heady
            }
            again = [n for n, r in priced.items() if r is None]
            runs += [r for r in priced.values() if r is not None]
            if again:
                runs += [r for r in run_all(at, knobs, again)[0] if r.policy in again]
            how = (
                "simulated"
                if len(again) == len(priced)
                else f"re-priced from {base_ratio:g}" + (f" ({', '.join(again)} simulated)" if again else "")
            )
            order = {n: k for k, n in enumerate(POLICIES)}
            runs.sort(key=lambda r: order[r.policy])
        results = compare([account(at, r) for r in runs], resize_cost=knobs.resize_cost_core_seconds)
        points.append(SweepPoint(ratio, at, runs, results, how))
    return points


def total_cores(run: Run, end: float, resolution: float = 60.0) -> tuple[list[float], list[float]]:
    """Reserved cores summed over pods, averaged over each `resolution`-second bucket (for plots)."""
    buckets = math.ceil(end / resolution)
    sums = [0.0] * buckets
    for steps in run.steps.values():
        for k, step in enumerate(steps):
            until = min(end, steps[k + 1].t) if k + 1 < len(steps) else end
            t = step.t
            while t < until:  # spread the step's core-seconds over the buckets it spans
                b = min(buckets - 1, int(t // resolution))
                edge = min(until, (b + 1) * resolution)
                sums[b] += step.cpu_m / 1000 * (edge - t)
                t = edge
    return [b * resolution for b in range(buckets)], [s / resolution for s in sums]
