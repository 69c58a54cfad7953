"""Operator settings: every knob in one object, read from HEADY_* environment variables."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HEADY_", extra="ignore")

    # Scope: empty means every namespace (cluster-wide); otherwise a comma-separated list.
    namespaces: str = ""
    # HTTP server for /healthz, /metrics and the attention ingest endpoint.
    http_host: str = "0.0.0.0"
    http_port: int = Field(default=8080, ge=1, le=65535)
    log_level: str = "INFO"

    # Attention and levels.
    attention_threshold: float = Field(default=0.1, ge=0.0, le=1.0)
    default_signal_ttl_seconds: int = Field(default=60, ge=1)
    max_high_priority_escalations: int = Field(default=2, ge=0)
    utilization_escalation_threshold: float = Field(default=0.8, gt=0.0, le=1.0)
    resize_retry_base_seconds: float = Field(default=0.5, gt=0.0)
    resize_retry_max_seconds: float = Field(default=30.0, gt=0.0)
    expired_signal_retention_seconds: int = Field(default=300, ge=0)
    resync_seconds: float = Field(default=10.0, gt=0.0)
    plan_coalesce_seconds: float = Field(default=0.005, ge=0.0, le=1.0)
    report_interval_seconds: float = Field(default=0.25, ge=0.0, le=10.0)
    # A HeadyService's status is patched at most this often (the first time at once).
    status_min_interval_seconds: float = Field(default=2.0, ge=0.0, le=60.0)
    # ... and only once a change has lasted this long (a brief escalation writes nothing).
    status_settle_seconds: float = Field(default=1.0, ge=0.0, le=60.0)
    # Resize PATCHes in flight at once (near the apiserver's knee; more only adds latency) and the
    # rate of relaxations/settling, which never take the whole control plane from escalations.
    resize_concurrency: int = Field(default=12, ge=1, le=256)
    resize_background_per_second: float = Field(default=500.0, gt=0.0)
    # In-flight slots relaxations never take: an escalation never waits for a free slot.
    resize_reserved_for_escalations: int = Field(default=2, ge=0, le=64)
    # How often the incremental planner is checked against the full planner (0: never).
    plan_check_interval_seconds: float = Field(default=300.0, ge=0.0)
    # /healthz fails when a loop (planner, reporter, resize queue, ingest) made no progress this long.
    watchdog_stall_seconds: float = Field(default=5.0, gt=0.0)
    # Another actor resized a pod heady manages: "yield" leaves the pod alone for a backoff
    # (doubling up to 10 min) and says so; "insist" puts heady's level back, also with backoff.
    conflict_policy: Literal["yield", "insist"] = "yield"
    # spec.peakFrom (a VerticalPodAutoscaler's recommendation as peak): a changed recommendation is
    # taken at most once per settle window, and only when some container's cpu or memory moved by
    # at least this fraction (0.1: 10%); smaller changes wait until they add up.
    vpa_settle_seconds: float = Field(default=300.0, ge=0.0, le=86400.0)
    vpa_min_change: float = Field(default=0.1, ge=0.0, le=10.0)
    # How often the operator looks whether the VPA CRD is served (installed or removed since).
    vpa_discovery_seconds: float = Field(default=30.0, gt=0.0, le=3600.0)

    # Predictive pre-escalation.
    prediction_enabled: bool = True
    prediction_threshold: float = Field(default=0.6, gt=0.0, le=1.0)
    prediction_min_observations: int = Field(default=3, ge=1)
    prediction_ttl_seconds: int = Field(default=20, ge=1)
    # Predictions of a service whose recent precision (hits / (hits + misses)) is below this,
    # after this many outcomes, are throttled: still scored in the shadow, never escalating,
    # until the shadow score says they would pay again.
    prediction_min_precision: float = Field(default=0.5, ge=0.0, le=1.0)
    prediction_min_outcomes: int = Field(default=10, ge=1)
    # Time-of-day recurrence (planning/recurrence.py): a service whose attention started within
    # recurrence_spread_buckets buckets (recurrence_bucket_seconds long, UTC) of the same time of
    # day on at least recurrence_min_days of its last recurrence_days observed days (days it had
    # any attention) is pre-escalated recurrence_lead_seconds before that bucket and through it,
    # when nobody attends it then. Needs prediction_enabled; scored and throttled like the
    # transition model's predictions (prediction_min_precision, prediction_min_outcomes).
    prediction_recurrence: bool = False
    recurrence_bucket_seconds: int = Field(default=300, ge=60, le=3600)
    recurrence_days: int = Field(default=14, ge=1, le=60)
    recurrence_min_days: int = Field(default=3, ge=1, le=60)
    recurrence_spread_buckets: int = Field(default=1, ge=0, le=12)
    # ... and at this many times the share of days of the service's average bucket (1: off).
    recurrence_min_lift: float = Field(default=2.0, ge=1.0, le=100.0)
    recurrence_lead_seconds: float = Field(default=30.0, ge=0.0, le=3600.0)
    # Whose habits: a service's (anyone's attention), each user's on each service (attention with a
    # user; users are saved only as a hash), or both.
    recurrence_by: Literal["service", "user", "both"] = "service"
    # Cooldowns sized from each service's revisit intervals once it has this many: the one that
    # costs least, holding peak through short absences (their length) against a user's wait on
    # every longer one (worth cooldown_wait_cost_seconds at peak), within
    # [cooldown_min_seconds, cooldown_max_seconds] and maxPeakSeconds. Off: spec.cooldownSeconds.
    cooldown_learning: bool = True
    cooldown_min_revisits: int = Field(default=20, ge=1)
    cooldown_min_seconds: int = Field(default=1, ge=0, le=3600)
    cooldown_max_seconds: int = Field(default=300, ge=0, le=3600)
    cooldown_wait_cost_seconds: float = Field(default=60.0, ge=0.0, le=86400.0)
    # A resize's time from decision to effect: the wait a user has on a relaxed service
    # (status.recommendation's expected SLA cost, so an expected value: between the means measured
    # from an AttentionSignal to the changed cgroup on a real kubelet, 0.12 s and 0.30 s on two
    # runs, benchmarks/results/realnode_resize.json; loaded clusters are slower).
    actuation_delay_seconds: float = Field(default=0.25, gt=0.0, le=60.0)
    # The expected share of a service's attention below peak that resizing may cost it; over it,
    # status.recommendation (and baselineRatioMode: Auto) stops resizing the service (ratio 1).
    recommendation_sla_budget: float = Field(default=0.01, gt=0.0, le=1.0)
    # status.recommendation and spec.baselineRatioMode: Auto stay within these ratios.
    auto_baseline_min_ratio: float = Field(default=0.5, gt=0.0, le=1.0)
    auto_baseline_max_ratio: float = Field(default=1.0, gt=0.0, le=1.0)
    prediction_configmap: str = "heady-attention-model"
    operator_namespace: str = "heady-system"

    # Arena sessions.
    arena_quota_cpu: float = Field(default=32.0, gt=0.0)
    arena_quota_memory_gib: float = Field(default=64.0, gt=0.0)
    # Whole GPU devices all admitted sessions may use together (an extended-resource quota);
    # 0: sessions with requiresGPU wait as ExceedsQuota.
    arena_quota_gpu: int = Field(default=0, ge=0)
    # Storage (GB, vector + cache + persistent), bandwidth (Mbps) and connections of all admitted
    # sessions together; unset: not limited.
    arena_quota_storage_gb: float | None = Field(default=None, gt=0.0)
    arena_quota_bandwidth_mbps: float | None = Field(default=None, gt=0.0)
    arena_quota_connections: int | None = Field(default=None, gt=0)
    arena_quota_configmap: str = "heady-arena-quota"
    rebalance_interval_seconds: float = Field(default=30.0, gt=0.0)
    rebalance_jitter: float = Field(default=0.0, ge=0.0, le=0.3)
    rebalance_seed: int = 0
    # Arena workspaces: repos with a url are cloned into a PVC per session by a Job running
    # this image (git + sh; hack/images.py builds localhost/heady/git from Debian's git).
    arena_git_image: str = "heady-git:latest"
    arena_workspace_size: str = "1Gi"
    # Empty: the cluster's default StorageClass.
    arena_workspace_storage_class: str = ""
    arena_workspace_access_mode: Literal["ReadWriteOnce", "ReadWriteMany", "ReadWriteOncePod"] = (
        "ReadWriteOnce"
    )
    # The clone Job: its deadline (a missing credentials Secret or an unreachable host ends there),
    # and how often a failed clone is retried (git's message of the last try goes to status).
    arena_clone_deadline_seconds: int = Field(default=600, ge=10)
    arena_clone_retries: int = Field(default=1, ge=0, le=10)

    # Memory (Postgres + pgvector) and ingest (Redis).
    postgres_dsn: str = ""
    embedding_dimensions: int = Field(default=1536, ge=1, le=2000)  # pgvector HNSW indexes at most 2000 dims
    redis_url: str = ""
    attention_stream: str = "heady:attention"
    ingest_token: str = ""
    # The attention ingest (Redis stream consumer and POST /v1/attention); see docs/attention-ingest.md.
    ingest_group: str = "heady-operator"
    # This replica's consumer name in the group; empty: pod_name, else the hostname. A stable name
    # lets a restarted operator finish the entries it had read but not acknowledged.
    ingest_consumer: str = ""
    ingest_dead_letter_stream: str = "heady:attention:dead"
    # Namespace of events that do not name one.
    ingest_default_namespace: str = "default"
    ingest_batch: int = Field(default=100, ge=1, le=10_000)
    ingest_block_ms: int = Field(default=1000, ge=1, le=60_000)
    # Entries another consumer read but left unacknowledged this long are taken over (XAUTOCLAIM).
    ingest_claim_idle_seconds: float = Field(default=30.0, gt=0.0)
    ingest_reconnect_max_seconds: float = Field(default=30.0, gt=0.0)
    # A standby (leader election) follows the stream from this far back at start-up: every signal
    # still live when it takes over must be in its state.
    ingest_replay_seconds: float = Field(default=3600.0, ge=0.0)
    # Stream entries remembered as applied, so a re-delivery within one process is acknowledged only.
    ingest_dedup_window: int = Field(default=10_000, ge=1)
    # Producers trim the stream to about this many entries (XADD MAXLEN ~).
    ingest_stream_maxlen: int = Field(default=100_000, ge=1000)
    # POST /v1/attention answers 429 above this backlog (entries not yet read by the group) ...
    ingest_max_lag: int = Field(default=10_000, ge=0)
    # ... or with this many requests already in flight, or (without Redis) this many live ingest signals.
    ingest_http_max_inflight: int = Field(default=256, ge=0)
    ingest_max_live_signals: int = Field(default=100_000, ge=0)
    ingest_http_max_events: int = Field(default=100, ge=1, le=1000)

    # Tunnel (cloudflared ingress rules generated from HeadyService hostnames).
    tunnel_configmap: str = "heady-cloudflared"
    tunnel_id: str = "heady"
    # The cloudflared Deployment restarted (pod-template annotation) when the rules change; empty: none.
    tunnel_deployment: str = ""
    # This replica's pod name (downward API): its identity in leader election, its ingest consumer
    # name, and the pod leadership Events are posted on.
    pod_name: str = ""

    # High availability (docs/high-availability.md): replicas elect a leader on a
    # coordination.k8s.io/v1 Lease in operator_namespace; only the leader writes, the others keep
    # their caches warm. Off: this process acts alone (one replica only).
    leader_election: bool = False
    # The Lease's name; each shard needs its own (the chart names it after the shard).
    leader_election_lease: str = "heady-operator"
    # client-go's settings and defaults: a standby takes an unrenewed Lease after lease_duration;
    # the leader stops writing when it could not renew for renew_deadline; both retry this often.
    leader_election_lease_duration_seconds: float = Field(default=15.0, gt=0.0, le=600.0)
    leader_election_renew_deadline_seconds: float = Field(default=10.0, gt=0.0, le=600.0)
    leader_election_retry_period_seconds: float = Field(default=2.0, gt=0.0, le=60.0)
    # A shard: only namespaces with these labels (a label selector, e.g. heady.io/shard=a) are
    # this operator's. Nodes and the pods on them are still seen cluster-wide, so node capacity
    # counts every shard's pods. Empty: every namespace (or HEADY_NAMESPACES).
    shard_selector: str = ""
    forbidden_hostname_suffixes: str = "onrender.com"

    # Zero-trust access per hostname (Cloudflare Access; HeadyService.spec.access).
    # A hostname without spec.access is routed only when this is true (chart access.allowPublicServices).
    access_allow_public_services: bool = False
    # The Zero Trust team (<team>.cloudflareaccess.com): cloudflared checks Access tokens against it.
    access_team_name: str = ""
    # Cloudflare account and API token ("Access: Apps and Policies Write"); without both, the
    # Access applications are only rendered (ConfigMap access_configmap, status.access).
    access_account_id: str = ""
    access_api_token: str = ""
    access_api_url: str = "https://api.cloudflare.com/client/v4"
    # Applications and policies heady owns are named <prefix>/<namespace>/<service>[/<policy>];
    # one prefix per cluster sharing an account, or they would delete each other's.
    access_name_prefix: str = Field(
        default="heady", min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_.-]+$"
    )
    access_configmap: str = "heady-access"
    # How often the API is listed for drift (someone edited or deleted an application by hand).
    access_sync_interval_seconds: float = Field(default=60.0, ge=1.0, le=3600.0)

    # Chaos.
    chaos_enabled: bool = True
    chaos_image: str = "heady-operator:latest"
    chaos_service_account: str = "heady-chaos"
    # Kill switch besides chaos_enabled: data `enabled: "false"` in this ConfigMap of
    # operator_namespace restores every active fault and stops new ones, without a restart.
    chaos_killswitch_configmap: str = "heady-chaos"
    # No fault outlasts this, whatever an experiment's durationSeconds asks for.
    chaos_max_duration_seconds: int = Field(default=600, ge=1, le=3600)
    # "job": inject/recover in Jobs (the chaos ServiceAccount, never the operator's rights).
    # "inline": the same command functions in the operator process, for clusters that cannot run
    # the Jobs' containers (kwok e2e tests); the operator then needs the chaos RBAC itself.
    chaos_executor: Literal["job", "inline"] = "job"
    # How often each session's chaos is reconciled (also the reaction time of the kill switch).
    chaos_interval_seconds: float = Field(default=2.0, gt=0.0, le=60.0)
    # Jobs: hard deadline, how long finished ones stay for `kubectl logs`, and how late a recover
    # Job may be before the operator restores the fault itself.
    chaos_job_deadline_seconds: int = Field(default=300, ge=10)
    chaos_job_ttl_seconds: int = Field(default=3600, ge=0)
    chaos_recover_grace_seconds: float = Field(default=30.0, gt=0.0)
    # Which sessions' chaos this operator runs: those whose label heady.io/chaos-instance equals
    # this (the empty default: sessions without the label). A second operator (a canary, an e2e
    # test's) can so own the chaos of chosen sessions without two operators injecting at once.
    chaos_instance: str = ""

    @field_validator("recurrence_bucket_seconds")
    @classmethod
    def _whole_day(cls, value: int) -> int:
        if 86_400 % value:
            raise ValueError("must divide a day (86400 s) evenly, e.g. 60, 300, 600, 900, 1800 or 3600")
        return value

    @property
    def namespace_list(self) -> list[str]:
        return [n.strip() for n in self.namespaces.split(",") if n.strip()]

    @property
    def forbidden_suffixes(self) -> list[str]:
        return [s.strip().lstrip(".") for s in self.forbidden_hostname_suffixes.split(",") if s.strip()]
