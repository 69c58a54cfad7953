"""Every Prometheus metric heady exports, named once (the dashboard reads these names)."""

from __future__ import annotations

import contextlib

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)

REGISTRY = CollectorRegistry(auto_describe=True)

SIGNAL_TO_RESIZE = Histogram(
    "heady_signal_to_resize_seconds",
    "Time from an attention event reaching the operator to the pod resize being accepted by the API server.",
    ["source"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)
RESIZE_REQUESTS = Counter(
    "heady_resize_requests_total", "Pod resize requests sent, by target level.", ["level"], registry=REGISTRY
)
RESIZE_FAILURES = Counter(
    "heady_resize_failures_total",
    "Pod resizes that failed or were not actuated, by reason (Infeasible, Deferred, Conflict, Invalid, Error).",
    ["reason"],
    registry=REGISTRY,
)
PODS_AT_PEAK = Gauge(
    "heady_pods_at_peak", "Managed pods currently at peak.", ["namespace", "service"], registry=REGISTRY
)
PODS_MANAGED = Gauge(
    "heady_pods_managed", "Managed running pods.", ["namespace", "service"], registry=REGISTRY
)
ESCALATIONS_IN_FLIGHT = Gauge(
    "heady_escalations_in_flight",
    "Services currently escalated to peak, by priority class.",
    ["priority"],
    registry=REGISTRY,
)
ESCALATIONS_WAITING = Gauge(
    "heady_escalations_waiting", "Services that want peak but wait (high-priority limit).", registry=REGISTRY
)
ESCALATIONS = Counter(
    "heady_escalations_total", "Escalations to peak, by reason.", ["reason"], registry=REGISTRY
)
RELAXATIONS = Counter(
    "heady_relaxations_total", "Relaxations to baseline, by reason.", ["reason"], registry=REGISTRY
)
ATTENTION_EVENTS = Counter(
    "heady_attention_events_total",
    "Attention events received, by source path and source.",
    ["path", "source"],
    registry=REGISTRY,
)
PREDICTIONS = Counter(
    "heady_prediction_total",
    "Predictive pre-escalations by outcome: issued, hit, miss; shadow (made while throttled, escalating nothing), shadow_hit, shadow_miss.",
    ["outcome"],
    registry=REGISTRY,
)
PREDICTION_PRECISION = Gauge(
    "heady_prediction_precision",
    "Recent precision (hits / (hits + misses)) of the predictions of a service.",
    ["namespace", "service"],
    registry=REGISTRY,
)
PREDICTION_THROTTLED = Gauge(
    "heady_prediction_throttled",
    "1 while predictions of a service are throttled (below the minimum precision): scored, not escalated.",
    ["namespace", "service"],
    registry=REGISTRY,
)
RECOMMENDED_BASELINE_RATIO = Gauge(
    "heady_recommended_baseline_ratio",
    "The baseline ratio status.recommendation suggests for a service.",
    ["namespace", "service"],
    registry=REGISTRY,
)
COOLDOWN_SECONDS = Gauge(
    "heady_cooldown_seconds",
    "The cooldown in effect for a service (learned from its revisit intervals, or its spec's).",
    ["namespace", "service"],
    registry=REGISTRY,
)
PLAN_SECONDS = Histogram(
    "heady_plan_seconds",
    "Time spent in one run of the level planner.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
    registry=REGISTRY,
)
ARENA_SESSIONS = Gauge(
    "heady_arena_sessions", "Arena sessions by condition that is True.", ["condition"], registry=REGISTRY
)
ARENA_RISK = Gauge(
    "heady_arena_risk", "HeadyRisk scores per session.", ["namespace", "session", "kind"], registry=REGISTRY
)
CHAOS_FAULTS = Counter(
    "heady_chaos_faults_injected_total", "Chaos faults injected.", ["kind"], registry=REGISTRY
)
CHAOS_RECOVERY = Histogram(
    "heady_chaos_recovery_seconds",
    "Time for a chaos target to be Ready again after a fault.",
    ["kind"],
    buckets=(1, 2, 5, 10, 20, 30, 60, 120, 300, 600),
    registry=REGISTRY,
)
CHAOS_VERDICTS = Counter(
    "heady_chaos_verdicts_total",
    "Chaos experiment verdicts (Pass, Fail, Skipped, Error, DryRun), by fault kind.",
    ["kind", "verdict"],
    registry=REGISTRY,
)
CHAOS_RESTORES = Counter(
    "heady_chaos_restores_total",
    "Faults undone by the operator itself, by reason (KillSwitch, Paused, Deleting, Overdue, ...).",
    ["reason"],
    registry=REGISTRY,
)
INGEST_AVAILABLE = Gauge(
    "heady_ingest_available", "1 when the Redis attention stream is being consumed.", registry=REGISTRY
)
MEMORY_AVAILABLE = Gauge(
    "heady_memory_available", "1 when Postgres arena memory is reachable.", registry=REGISTRY
)
INGEST_EVENTS = Counter(
    "heady_ingest_events_total",
    "Attention events through the ingest, by path (redis, http) and outcome (applied, replayed, "
    "duplicate, expired, invalid, trimmed, elsewhere (another shard's namespace), queued, unauthorized, overloaded, unavailable; failed: an "
    "unexpected exception isolated to that event or request; lost: a failed stream entry that could "
    "not be dead-lettered either).",
    ["path", "outcome"],
    registry=REGISTRY,
)
INGEST_DEAD_LETTERS = Counter(
    "heady_ingest_dead_letters_total",
    "Malformed attention stream entries copied to the dead-letter stream and acknowledged.",
    registry=REGISTRY,
)
INGEST_BACKLOG = Gauge(
    "heady_ingest_backlog",
    "Attention stream entries not yet read or not yet acknowledged by the operator's consumer group.",
    registry=REGISTRY,
)
RESIZE_QUEUE_DEPTH = Gauge(
    "heady_resize_queue_depth",
    "Pod resizes waiting to be sent, by lane (escalation: to peak; background: relax and settle).",
    ["lane"],
    registry=REGISTRY,
)
EVENT_LOOP_LAG = Histogram(
    "heady_event_loop_lag_seconds",
    "How late the operator's event loop runs a timer (a step that holds the loop shows here).",
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
    registry=REGISTRY,
)
PLAN_MISMATCH = Counter(
    "heady_plan_mismatch_total",
    "Periodic checks where the incremental planner disagreed with the full planner (should stay 0).",
    registry=REGISTRY,
)
LOOP_ERRORS = Counter(
    "heady_loop_errors_total",
    "Exceptions caught in the operator's loops (each isolated to one object or one pass), by loop.",
    ["loop"],
    registry=REGISTRY,
)

ARENA_QUEUED = Gauge(
    "heady_arena_queued",
    "Arena sessions waiting for admission, by priority value.",
    ["priority"],
    registry=REGISTRY,
)
ARENA_QUEUE_OLDEST = Gauge(
    "heady_arena_queue_oldest_seconds",
    "How long the longest-waiting arena session has been queued (0 when none waits).",
    registry=REGISTRY,
)
CHAOS_ACTIVE_FAULTS = Gauge(
    "heady_chaos_active_faults",
    "Chaos faults injected and not yet recovered or restored (1 per experiment).",
    ["namespace", "session", "experiment", "kind"],
    registry=REGISTRY,
)
INGEST_LAG = Gauge(
    "heady_ingest_lag_seconds",
    "Age of the oldest attention stream entry not yet acknowledged (0 when caught up).",
    registry=REGISTRY,
)
# What the managed pods reserve now against what they would reserve if they always ran at peak;
# 1 - sum(requests) / sum(peak) is the capacity heady saves. resource is cpu (cores) or memory (bytes).
CAPACITY_REQUESTS = Gauge(
    "heady_capacity_requests",
    "Requests of the managed pods now, in cores (cpu) or bytes (memory).",
    ["namespace", "service", "resource"],
    registry=REGISTRY,
)
CAPACITY_PEAK = Gauge(
    "heady_capacity_peak_requests",
    "Requests the managed pods would hold if always at peak, in cores (cpu) or bytes (memory).",
    ["namespace", "service", "resource"],
    registry=REGISTRY,
)
LEADER = Gauge(
    "heady_leader",
    "1 while this replica holds the leader lease and is not fenced, else 0.",
    registry=REGISTRY,
)
LEADER_TRANSITIONS = Counter(
    "heady_leader_transitions_total",
    "Leadership changes of this replica: acquired, fenced (could not renew in time, or saw the Lease "
    "taken), released (shutting down).",
    ["transition"],
    registry=REGISTRY,
)
API_WRITES = Counter(
    "heady_api_writes_total",
    "Write requests (POST, PUT, PATCH, DELETE) this process sent to the Kubernetes API, by resource; "
    "with leader election only the leader sends any besides its Lease.",
    ["resource"],
    registry=REGISTRY,
)
API_LAST_WRITE = Gauge(
    "heady_api_last_write_timestamp_seconds",
    "Unix time of the last write request to the Kubernetes API other than the leader Lease.",
    registry=REGISTRY,
)
INGEST_ACKNOWLEDGED = Counter(
    "heady_ingest_acknowledged_total",
    "Attention stream entries this process handled and acknowledged in the consumer group.",
    registry=REGISTRY,
)
SERVICE_UP = Gauge(
    "heady_service_up",
    "1 when the HeadyService's health check passes, 0 once it failed failureThreshold times in a row.",
    ["namespace", "service"],
    registry=REGISTRY,
)
HEALTH_PROBE_SECONDS = Histogram(
    "heady_health_probe_seconds",
    "Duration of one health-check probe of a HeadyService, by result (success, failure).",
    ["namespace", "service", "result"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10),
    registry=REGISTRY,
)

# The operator's own CPU, memory, file descriptors and GC (process_*, python_*), on the one
# registry /metrics serves.
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)

_PER_SERVICE: tuple[Gauge, ...] = (
    PODS_AT_PEAK,
    PODS_MANAGED,
    PREDICTION_PRECISION,
    PREDICTION_THROTTLED,
    RECOMMENDED_BASELINE_RATIO,
    COOLDOWN_SECONDS,
)
_PER_SERVICE_RESOURCE: tuple[Gauge, ...] = (CAPACITY_REQUESTS, CAPACITY_PEAK)
_RESOURCES = ("cpu", "memory")


def set_service_capacity(
    namespace: str,
    service: str,
    *,
    cpu_cores: float,
    memory_bytes: float,
    peak_cpu_cores: float,
    peak_memory_bytes: float,
) -> None:
    """Record what a service's managed pods request now and what always-peak would request."""
    CAPACITY_REQUESTS.labels(namespace, service, "cpu").set(cpu_cores)
    CAPACITY_REQUESTS.labels(namespace, service, "memory").set(memory_bytes)
    CAPACITY_PEAK.labels(namespace, service, "cpu").set(peak_cpu_cores)
    CAPACITY_PEAK.labels(namespace, service, "memory").set(peak_memory_bytes)


def forget_service(namespace: str, name: str) -> None:
    """Drop every series of a deleted HeadyService, so sums over services stop counting it."""
    for gauge in _PER_SERVICE:
        _remove(gauge, namespace, name)
    for gauge in _PER_SERVICE_RESOURCE:
        for resource in _RESOURCES:
            _remove(gauge, namespace, name, resource)
    forget_health(namespace, name)


def forget_health(namespace: str, name: str) -> None:
    """Drop a service's health-check series (its check was removed, or the service)."""
    _remove(SERVICE_UP, namespace, name)
    for result in ("success", "failure"):
        _remove(HEALTH_PROBE_SECONDS, namespace, name, result)


def forget_session(namespace: str, name: str) -> None:
    """Drop every series of a deleted ArenaSession."""
    for kind in ("technical", "operational", "strategic", "overall"):
        _remove(ARENA_RISK, namespace, name, kind)
    forget_faults(namespace, name)


def fault_active(namespace: str, session: str, experiment: str, kind: str) -> None:
    CHAOS_ACTIVE_FAULTS.labels(namespace, session, experiment, kind).set(1)


def forget_faults(namespace: str, session: str, experiment: str | None = None) -> None:
    """A fault recovered or restored: one experiment's series, or all of the session's."""
    for labels in _label_sets(CHAOS_ACTIVE_FAULTS):
        if labels[:2] == (namespace, session) and (experiment is None or labels[2] == experiment):
            _remove(CHAOS_ACTIVE_FAULTS, *labels)


def _label_sets(metric: Gauge) -> list[tuple[str, ...]]:
    # prometheus-client keeps children in a dict keyed by label values; collect() walks them
    # under its lock and is the public way to list them.
    out = []
    for family in metric.collect():
        for sample in family.samples:
            out.append(tuple(sample.labels[name] for name in metric._labelnames))
    return out


def _remove(metric: Gauge | Histogram, *labels: str) -> None:
    # remove() raises KeyError for a series that was never set; absent is what we want anyway.
    with contextlib.suppress(KeyError):
        metric.remove(*labels)
