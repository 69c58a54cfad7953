"""ArenaSession: the spec as the CRD defines it, and the status the operator writes.

Bounds, defaults and the CEL rules repeat the CRD (crds/heady.io_arenasessions.yaml) so a body
that the apiserver accepted parses here, and a body that it would have refused (an old object,
a disabled validation) becomes a readable error instead of a crash deeper down.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from heady_operator.models.common import CamelModel, Condition, PriorityLevel

KIND = "ArenaSession"
PLURAL = "arenasessions"

MAX_BATTLE_DEPTH = 7


# The CRD's rules for a repo that is cloned (it has a url), repeated with the same messages.
# Its name becomes a directory of the workspace and `branch` a git ref, so both are restricted
# to what cannot climb out of the workspace or confuse git's option parsing.
REPO_DIR_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
BRANCH_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._/-]*$"
URL_PATTERN = r"^((https?|git|ssh)://[^\s]+|[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^\s]+)$"
URL_MESSAGE = "url must be an http(s)://, git://, ssh:// or user@host:path git URL"
DIR_MESSAGE = "a repo with a url needs a name usable as a directory (letters, digits, '.', '_', '-')"
BRANCH_MESSAGE = (
    "a repo with a url needs a branch name git accepts (letters, digits, '.', '_', '-', '/', no '..')"
)
CREDENTIALS_MESSAGE = "credentialsSecret needs a url"


class RepoRef(CamelModel):
    name: str = Field(min_length=1, max_length=253)
    branch: str = Field(default="main", min_length=1, max_length=253)
    # Where the workspace clones it from; without a url the repo is only a name (risk, memory).
    url: str | None = Field(default=None, min_length=1, max_length=2048)
    # A Secret in the session's namespace: keys username + password (HTTPS), or ssh-privatekey
    # (+ known_hosts) for ssh URLs.
    credentials_secret: str | None = Field(default=None, min_length=1, max_length=253)

    @model_validator(mode="after")
    def _cel_rules(self) -> RepoRef:
        if self.url is None:
            if self.credentials_secret is not None:
                raise ValueError(CREDENTIALS_MESSAGE)
            return self
        if not re.fullmatch(URL_PATTERN, self.url):
            raise ValueError(URL_MESSAGE)
        if not re.fullmatch(REPO_DIR_PATTERN, self.name) or self.name in (".", ".."):
            raise ValueError(DIR_MESSAGE)
        if not re.fullmatch(BRANCH_PATTERN, self.branch) or ".." in self.branch:
            raise ValueError(BRANCH_MESSAGE)
        return self


def _score(description: str) -> Any:
    return Field(default=0.0, ge=0.0, le=1.0, description=description)


class TechnicalRiskInputs(CamelModel):
    """Each input is a risk contribution: 0 means no known risk, 1 the worst case."""

    complexity: float = _score("How intricate the change is.")
    dependencies: float = _score("How many and how fragile the things it depends on are.")
    scalability: float = _score("How likely it is to break under load.")
    security: float = _score("How much attack surface it adds.")


class OperationalRiskInputs(CamelModel):
    resource_utilization: float = _score("Saturation of the resources it runs on.")
    error_rate: float = _score("Observed or expected error rate, scaled to 0..1.")
    latency: float = _score("Latency pressure against objectives.")
    throughput: float = _score("Shortfall of throughput against demand.")


class StrategicRiskInputs(CamelModel):
    """Risk-oriented like the others, so the CRD default of 0 means "no known risk".

    alignment is the misalignment with current goals, reversibility how hard the outcome is
    to undo, novelty how little precedent there is.
    """

    alignment: float = _score("Misalignment with current goals.")
    novelty: float = _score("How unprecedented the work is.")
    reversibility: float = _score("How hard the outcome is to undo.")


class RiskInputs(CamelModel):
    technical: TechnicalRiskInputs = Field(default_factory=TechnicalRiskInputs)
    operational: OperationalRiskInputs = Field(default_factory=OperationalRiskInputs)
    strategic: StrategicRiskInputs = Field(default_factory=StrategicRiskInputs)


class SessionValue(CamelModel):
    """What the session is worth (the seeds' ROITaskAllocator): within one priority, admission
    orders by expectedROI x strategicAlignment before age. A factor left out counts as 0.5."""

    # The CRD spells the acronym in capitals, which to_camel would turn into "expectedRoi".
    expected_roi: float | None = Field(default=None, ge=0.0, le=1.0, alias="expectedROI")
    strategic_alignment: float | None = Field(default=None, ge=0.0, le=1.0)


class ChaosKind(StrEnum):
    POD_TERMINATION = "pod_termination"
    NETWORK_PARTITION = "network_partition"
    API_FAILURE = "api_failure"
    ZONE_OUTAGE = "zone_outage"


class ChaosMode(StrEnum):
    ONE = "one"
    ALL = "all"
    FIXED = "fixed"
    PERCENT = "percent"


_DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


class ChaosExperiment(CamelModel):
    name: str = Field(min_length=1, max_length=63, pattern=_DNS_LABEL)
    kind: ChaosKind
    service: str | None = None
    selector: dict[str, str] | None = None
    zone: str | None = None
    mode: ChaosMode = ChaosMode.ONE
    value: int | None = Field(default=None, ge=1)
    duration_seconds: int = Field(default=30, ge=1, le=3600)
    start_after_seconds: int = Field(default=0, ge=0)
    jitter_percent: int = Field(default=0, ge=0, le=100)
    recovery_objective_seconds: int = Field(default=120, ge=1)

    @model_validator(mode="after")
    def _cel_rules(self) -> ChaosExperiment:
        # The three x-kubernetes-validations of the CRD, with the same messages.
        if self.mode in (ChaosMode.FIXED, ChaosMode.PERCENT) and self.value is None:
            raise ValueError("mode fixed and percent need a value")
        if self.mode is ChaosMode.PERCENT and self.value is not None and self.value > 100:
            raise ValueError("a percent value must be at most 100")
        if self.kind is ChaosKind.ZONE_OUTAGE and self.zone is None:
            raise ValueError("zone_outage needs a zone")
        return self


class ChaosSpec(CamelModel):
    dry_run: bool = False
    experiments: list[ChaosExperiment] = Field(default_factory=list, max_length=16)

    @field_validator("experiments")
    @classmethod
    def _names_unique(cls, experiments: list[ChaosExperiment]) -> list[ChaosExperiment]:
        _refuse_duplicates([e.name for e in experiments], "experiment name")
        return experiments


ServiceName = Annotated[str, Field(min_length=1, max_length=253)]


class ArenaSessionSpec(CamelModel):
    repos: list[RepoRef] = Field(min_length=1, max_length=64)
    services: list[ServiceName] = Field(default_factory=list, max_length=64)
    priority: PriorityLevel = PriorityLevel.MEDIUM
    duration_seconds: int = Field(default=3600, ge=1, le=604800)
    battle_depth: int = Field(default=3, ge=1, le=MAX_BATTLE_DEPTH)
    # The CRD spells it with a capitalised acronym, which to_camel would turn into "requiresGpu".
    requires_gpu: bool = Field(default=False, alias="requiresGPU")
    risk: RiskInputs = Field(default_factory=RiskInputs)
    value: SessionValue | None = None
    chaos: ChaosSpec | None = None
    # Keep the workspace (the PVC with the clones) when the session finishes or is deleted.
    retain_workspace: bool = False

    @field_validator("repos")
    @classmethod
    def _repo_names_unique(cls, repos: list[RepoRef]) -> list[RepoRef]:
        _refuse_duplicates([r.name for r in repos], "repo name")
        return repos

    @field_validator("services")
    @classmethod
    def _services_unique(cls, services: list[str]) -> list[str]:
        _refuse_duplicates(services, "service")
        return services

    @property
    def repo_names(self) -> list[str]:
        return [r.name for r in self.repos]

    @property
    def cloned_repos(self) -> list[RepoRef]:
        """The repos the session's workspace holds: those with a url."""
        return [r for r in self.repos if r.url is not None]


def _refuse_duplicates(values: list[str], what: str) -> None:
    # The CRD declares these lists as list-type map/set, which the apiserver enforces.
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise ValueError(f"duplicate {what} {value!r}")
        seen.add(value)


class ArenaAllocation(CamelModel):
    cpu: str | None = None
    memory: str | None = None
    scale: float | None = None


class ArenaSessionStatus(BaseModel):
    """What the operator reads back from its own status; unknown keys are kept (the CRD
    preserves them) so a newer operator's fields survive a round trip through an older one."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")

    observed_generation: int | None = None
    priority_value: int | None = None
    queued_at: datetime | None = None
    admitted_at: datetime | None = None
    finished_at: datetime | None = None
    resource_plan: dict[str, Any] | None = None
    allocation: ArenaAllocation | None = None
    risk: dict[str, Any] | None = None
    battle: dict[str, Any] | None = None
    chaos: dict[str, Any] | None = None
    workspace: dict[str, Any] | None = None
    repos: list[dict[str, Any]] | None = None
    conditions: list[Condition] = Field(default_factory=list)

    def condition(self, type_: str) -> Condition | None:
        return next((c for c in self.conditions if c.type == type_), None)
