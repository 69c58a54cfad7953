"""Every Prometheus metric heady exports, named once (the dashboard reads these names)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

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
    "Predictive pre-escalations by outcome (issued, hit, miss).",
    ["outcome"],
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
    "duplicate, expired, invalid, trimmed, queued, unauthorized, overloaded, unavailable; failed: an "
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
