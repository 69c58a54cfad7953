"""HeadyService: mirrors crds/heady.io_headyservices.yaml."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from heady_operator.models.common import CamelModel, PriorityLevel
from heady_operator.models.quantity import QuantityError, cpu_millis, memory_bytes

HOSTNAME_PATTERN = r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?\.)+[a-z]{2,63}$"


class WorkloadRef(CamelModel):
    kind: Literal["Deployment", "StatefulSet"] = "Deployment"
    name: str = Field(min_length=1, max_length=253)


class PeakResources(CamelModel):
    cpu: str | int | None = None
    memory: str | int | None = None

    @field_validator("cpu")
    @classmethod
    def _cpu(cls, value: str | int | None) -> str | int | None:
        if value is not None:
            try:
                cpu_millis(value)
            except QuantityError as exc:
                raise ValueError(f"peak cpu: {exc}") from exc
        return value

    @field_validator("memory")
    @classmethod
    def _memory(cls, value: str | int | None) -> str | int | None:
        if value is not None:
            try:
                memory_bytes(value)
            except QuantityError as exc:
                raise ValueError(f"peak memory: {exc}") from exc
        return value


class ContainerPeak(CamelModel):
    name: str = Field(min_length=1)
    peak: PeakResources


class HealthCheck(CamelModel):
    """How the operator checks that the service answers (the seeds' error detector): every
    intervalSeconds it connects to <service>.<namespace>.svc:port (TCP) or GETs path there (HTTP,
    2xx/3xx passes), gives up after timeoutSeconds, and calls the service unhealthy after
    failureThreshold failures in a row. The CRD's CEL rules are repeated here."""

    type: Literal["HTTP", "TCP"] = "HTTP"
    path: str | None = Field(default=None, min_length=1, max_length=1024, pattern=r"^/")
    port: int | None = Field(default=None, ge=1, le=65535)
    service: str | None = Field(default=None, min_length=1, max_length=63)
    interval_seconds: int = Field(default=30, ge=1, le=3600)
    timeout_seconds: int = Field(default=5, ge=1, le=60)
    failure_threshold: int = Field(default=2, ge=1, le=10)

    @model_validator(mode="after")
    def _cel_rules(self) -> HealthCheck:
        if self.timeout_seconds > self.interval_seconds:
            raise ValueError("timeoutSeconds must not exceed intervalSeconds")
        if self.type == "TCP" and self.path is not None:
            raise ValueError("path is only for type HTTP")
        return self

    @property
    def http_path(self) -> str:
        return self.path or "/"


class HeadyServiceSpec(CamelModel):
    workload: WorkloadRef
    containers: list[ContainerPeak] = Field(default_factory=list, max_length=32)
    baseline_ratio: float = Field(default=0.9, gt=0.0, le=1.0)
    # Auto: status.recommendation's ratio, within the operator's bounds (baselineRatio until then).
    baseline_ratio_mode: Literal["Fixed", "Auto"] = "Fixed"
    priority: PriorityLevel = PriorityLevel.MEDIUM
    hostname: str | None = Field(default=None, max_length=253, pattern=HOSTNAME_PATTERN)
    port: int = Field(default=80, ge=1, le=65535)
    max_peak_seconds: int = Field(default=900, ge=1, le=86400)
    cooldown_seconds: int = Field(default=30, ge=0, le=3600)
    health_check: HealthCheck | None = None

    @model_validator(mode="after")
    def _cooldown_within_peak(self) -> HeadyServiceSpec:
        if self.cooldown_seconds > self.max_peak_seconds:
            raise ValueError("cooldownSeconds must not exceed maxPeakSeconds")
        names = [c.name for c in self.containers]
        if len(names) != len(set(names)):
            raise ValueError("containers must have unique names")
        return self
