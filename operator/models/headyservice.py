"""HeadyService: mirrors crds/heady.io_headyservices.yaml."""

from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic import Field, field_validator, model_validator

from heady_operator.models.common import CamelModel, PriorityLevel
from heady_operator.models.quantity import QuantityError, cpu_millis, memory_bytes

HOSTNAME_PATTERN = r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?\.)+[a-z]{2,63}$"
VPA_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
UUID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
DURATION_PATTERN = r"^([0-9]+(ns|us|ms|s|m|h))+$"
AUD_PATTERN = r"^[0-9a-f]{64}$"
# The selectors a rule may name (one per rule), as in Cloudflare's Access rules.
RULE_SELECTORS = ("email", "emailDomain", "group", "serviceToken", "ip")


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


class AccessRule(CamelModel):
    """One Cloudflare Access rule: exactly one selector. The CRD's CEL rules are repeated here."""

    email: str | None = Field(default=None, max_length=254, pattern=EMAIL_PATTERN)
    email_domain: str | None = Field(default=None, max_length=253, pattern=HOSTNAME_PATTERN)
    group: str | None = Field(default=None, pattern=UUID_PATTERN)
    service_token: str | None = Field(default=None, pattern=UUID_PATTERN)
    ip: str | None = Field(default=None, max_length=43)

    @field_validator("ip")
    @classmethod
    def _cidr(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                if "/" not in value:
                    raise ValueError(value)
                ipaddress.ip_network(value, strict=False)
            except ValueError as exc:
                raise ValueError("ip must be a CIDR range such as 172.20.0.0/16") from exc
        return value

    @model_validator(mode="after")
    def _one_selector(self) -> AccessRule:
        if len(self.selectors()) != 1:
            raise ValueError("each rule names exactly one of email, emailDomain, group, serviceToken, ip")
        return self

    def selectors(self) -> list[str]:
        return [s for s in RULE_SELECTORS if getattr(self, _snake(s)) is not None]

    @property
    def selector(self) -> str:
        return self.selectors()[0]

    @property
    def value(self) -> str:
        return str(getattr(self, _snake(self.selector)))


def _snake(name: str) -> str:
    return {"emailDomain": "email_domain", "serviceToken": "service_token"}.get(name, name)


class AccessPolicy(CamelModel):
    """A Cloudflare Access policy: include (any of), require (all of), exclude (none of)."""

    name: str = Field(min_length=1, max_length=63, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    decision: Literal["allow", "non_identity", "bypass"] = "allow"
    include: list[AccessRule] = Field(min_length=1, max_length=25)
    require: list[AccessRule] = Field(default_factory=list, max_length=25)
    exclude: list[AccessRule] = Field(default_factory=list, max_length=25)

    @model_validator(mode="after")
    def _cel_rules(self) -> AccessPolicy:
        rules = [*self.include, *self.require, *self.exclude]
        kinds = {r.selector for r in rules}
        if self.decision == "bypass" and kinds != {"ip"}:
            raise ValueError(
                "a bypass policy lets requests through without a login: its rules can only be ip ranges"
            )
        if self.decision != "non_identity" and "serviceToken" in kinds:
            raise ValueError("serviceToken rules need decision non_identity (Cloudflare's Service Auth)")
        if self.decision == "non_identity" and not kinds <= {"serviceToken", "ip"}:
            raise ValueError(
                "a non_identity policy involves no login: its rules can only be serviceToken or ip"
            )
        return self


class Access(CamelModel):
    """Who may reach spec.hostname: Cloudflare Access policies, evaluated in order."""

    policies: list[AccessPolicy] = Field(min_length=1, max_length=10)
    session_duration: str = Field(default="24h", pattern=DURATION_PATTERN, max_length=32)
    aud_tag: str | None = Field(default=None, pattern=AUD_PATTERN)

    @model_validator(mode="after")
    def _cel_rules(self) -> Access:
        names = [p.name for p in self.policies]
        if len(names) != len(set(names)):
            raise ValueError("access policies must have unique names")
        bypass = [p.decision == "bypass" for p in self.policies]
        if any(bypass) and not all(bypass):
            raise ValueError(
                "bypass policies cannot be mixed with allow/non_identity ones: "
                "cloudflared could not require an Access token for this hostname"
            )
        return self

    @property
    def bypass(self) -> bool:
        """Bypass-only: Access issues no token, so only Cloudflare's edge can enforce it."""
        return all(p.decision == "bypass" for p in self.policies)


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
    peak_from: PeakFrom | None = None
    access: Access | None = None

    @model_validator(mode="after")
    def _cooldown_within_peak(self) -> HeadyServiceSpec:
        if self.cooldown_seconds > self.max_peak_seconds:
            raise ValueError("cooldownSeconds must not exceed maxPeakSeconds")
        names = [c.name for c in self.containers]
        if len(names) != len(set(names)):
            raise ValueError("containers must have unique names")
        if self.access is not None and self.hostname is None:
            raise ValueError("access needs a hostname: it says who may reach spec.hostname")
        return self
