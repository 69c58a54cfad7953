"""Operator settings: every knob in one object, read from HEADY_* environment variables."""

from __future__ import annotations

from pydantic import Field
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

    # Predictive pre-escalation.
    prediction_enabled: bool = True
    prediction_threshold: float = Field(default=0.6, gt=0.0, le=1.0)
    prediction_min_observations: int = Field(default=3, ge=1)
    prediction_ttl_seconds: int = Field(default=20, ge=1)
    prediction_configmap: str = "heady-attention-model"
    operator_namespace: str = "heady-system"

    # Arena sessions.
    arena_quota_cpu: float = Field(default=32.0, gt=0.0)
    arena_quota_memory_gib: float = Field(default=64.0, gt=0.0)
    arena_quota_configmap: str = "heady-arena-quota"
    rebalance_interval_seconds: float = Field(default=30.0, gt=0.0)
    rebalance_jitter: float = Field(default=0.0, ge=0.0, le=0.3)
    rebalance_seed: int = 0

    # Memory (Postgres + pgvector) and ingest (Redis).
    postgres_dsn: str = ""
    embedding_dimensions: int = Field(default=1536, ge=1, le=16000)
    redis_url: str = ""
    attention_stream: str = "heady:attention"
    ingest_token: str = ""

    # Tunnel (cloudflared ingress rules generated from HeadyService hostnames).
    tunnel_configmap: str = "heady-cloudflared"
    tunnel_id: str = "heady"
    # The cloudflared Deployment restarted (pod-template annotation) when the rules change; empty: none.
    tunnel_deployment: str = ""
    # This replica's pod name: a distinct kopf peering priority per replica when a standby runs.
    pod_name: str = ""
    forbidden_hostname_suffixes: str = "onrender.com"

    # Chaos.
    chaos_enabled: bool = True
    chaos_image: str = "heady-operator:latest"
    chaos_service_account: str = "heady-chaos"

    @property
    def namespace_list(self) -> list[str]:
        return [n.strip() for n in self.namespaces.split(",") if n.strip()]

    @property
    def forbidden_suffixes(self) -> list[str]:
        return [s.strip().lstrip(".") for s in self.forbidden_hostname_suffixes.split(",") if s.strip()]
