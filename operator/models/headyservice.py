"""HeadyService: mirrors crds/heady.io_headyservices.yaml."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from heady_operator.models.common import CamelModel, PriorityLevel
from heady_operator.models.quantity import QuantityError, cpu_millis, memory_bytes

HOSTNAME_PATTERN = r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?\.)+[a-z]{2,63}$"
VPA_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"


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


class PeakFrom(CamelModel):
    """Where peaks come from instead of the pod template: a VerticalPodAutoscaler's recommendation
    (its `target` per container, bounded by its `upperBound` and by `containers[].peak` as caps).
    The VPA should run with `updateMode: Off` (or `Initial`): it recommends, heady applies."""

    vertical_pod_autoscaler: str = Field(min_length=1, max_length=253, pattern=VPA_NAME_PATTERN)


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
    # A fraction of peak, or "auto": status.recommendation's ratio, within the operator's bounds.
    baseline_ratio: float | Literal["auto"] = 0.9
    priority: PriorityLevel = PriorityLevel.MEDIUM
    hostname: str | None = Field(default=None, max_length=253, pattern=HOSTNAME_PATTERN)
    port: int = Field(default=80, ge=1, le=65535)
    max_peak_seconds: int = Field(default=900, ge=1, le=86400)
    cooldown_seconds: int = Field(default=30, ge=0, le=3600)
    health_check: HealthCheck | None = None
    peak_from: PeakFrom | None = None

    @field_validator("baseline_ratio", mode="before")
    @classmethod
    def _ratio(cls, value: Any) -> Any:
        # One clear message instead of one per member of the union (the CRD's CEL rule says the same).
        if value == "auto" and isinstance(value, str):
            return value
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 < value <= 1.0:
            raise ValueError('must be a number in (0, 1] or "auto"')
        return float(value)

    @model_validator(mode="after")
    def _cooldown_within_peak(self) -> HeadyServiceSpec:
        if self.cooldown_seconds > self.max_peak_seconds:
            raise ValueError("cooldownSeconds must not exceed maxPeakSeconds")
        names = [c.name for c in self.containers]
        if len(names) != len(set(names)):
            raise ValueError("containers must have unique names")
        return self
