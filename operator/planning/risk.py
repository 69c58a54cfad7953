"""HeadyRisk: technical, operational and strategic risk of an arena session, and what to do about it.

Every input is a risk contribution in 0..1 (0 = no known risk), so an ArenaSession that says
nothing about risk scores 0 rather than looking dangerous by default.

Formulas (each result is in 0..1 because the weights of each sum to 1):

- technical   = 0.3 complexity + 0.3 dependencies + 0.2 scalability + 0.2 security   (the seed's weights)
- operational = 0.3 resourceUtilization + 0.3 errorRate + 0.2 latency + 0.2 throughput
    Saturation and errors come first: they are what turns into an outage (the seed alerts on
    error rate 5 % and memory/CPU 85-90 %); latency and throughput shortfall are mostly their
    symptoms, so counting them as heavily would count the same trouble twice.
- strategic   = 0.4 alignment + 0.35 reversibility + 0.25 novelty'
    novelty'  = novelty x (1 - precedent), where precedent is the best similarity (0..1) of this
    session to past sessions found in memory; work that has been done before is less novel.
    Without memory (precedent unknown) novelty counts in full. Misalignment weighs most because
    it wastes the whole session; irreversibility next because it removes the way back.
- overall     = 0.4 technical + 0.35 operational + 0.25 strategic
    Technical and operational risk are what the operator can act on (resources, chaos,
    canaries); strategic risk is advisory, so it weighs least.

Mitigations fire above the seed's thresholds: technical > 0.7, operational > 0.6, strategic > 0.8.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from heady_operator.models.arena import RiskInputs

TECHNICAL_WEIGHTS: dict[str, float] = {
    "complexity": 0.3,
    "dependencies": 0.3,
    "scalability": 0.2,
    "security": 0.2,
}
OPERATIONAL_WEIGHTS: dict[str, float] = {
    "resourceUtilization": 0.3,
    "errorRate": 0.3,
    "latency": 0.2,
    "throughput": 0.2,
}
STRATEGIC_WEIGHTS: dict[str, float] = {
    "alignment": 0.4,
    "reversibility": 0.35,
    "novelty": 0.25,
}
OVERALL_WEIGHTS: dict[str, float] = {
    "technical": 0.4,
    "operational": 0.35,
    "strategic": 0.25,
}

# The seeds' assessStrategicRisk: similar past operations at similarity 0.8 or more.
PRECEDENT_THRESHOLD = 0.8

TECHNICAL_THRESHOLD = 0.7
OPERATIONAL_THRESHOLD = 0.6
STRATEGIC_THRESHOLD = 0.8


class RiskLevel(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


# Upper bounds (exclusive) of each level; critical is everything from 0.8 up.
_LEVEL_BOUNDS: tuple[tuple[float, RiskLevel], ...] = (
    (0.3, RiskLevel.LOW),
    (0.6, RiskLevel.MEDIUM),
    (0.8, RiskLevel.HIGH),
)


def risk_level(score: float) -> RiskLevel:
    for bound, level in _LEVEL_BOUNDS:
        if score < bound:
            return level
    return RiskLevel.CRITICAL


@dataclass(frozen=True)
class Mitigation:
    type: str
    action: str
    description: str
    priority: str

    def to_status(self) -> dict[str, str]:
        return {
            "type": self.type,
            "action": self.action,
            "description": self.description,
            "priority": self.priority,
        }


INCREMENTAL_DEPLOYMENT = Mitigation(
    type="technical",
    action="incremental_deployment",
    description="Deploy operation incrementally with canary releases",
    priority="high",
)
ENHANCED_MONITORING = Mitigation(
    type="operational",
    action="enhanced_monitoring",
    description="Increase monitoring frequency and alert thresholds",
    priority="medium",
)
STAKEHOLDER_REVIEW = Mitigation(
    type="strategic",
    action="stakeholder_review",
    description="Require additional stakeholder review before proceeding",
    priority="high",
)


@dataclass(frozen=True)
class RiskAssessment:
    technical: float
    operational: float
    strategic: float
    overall: float
    level: RiskLevel
    mitigations: tuple[Mitigation, ...]
    # Per-input contributions (weight x input) so a reader can see what drove each score.
    factors: dict[str, dict[str, float]] = field(default_factory=dict)
    precedent: float | None = None

    @property
    def highest(self) -> tuple[str, float]:
        """The dimension with the highest score (technical wins ties, then operational)."""
        scores = {"technical": self.technical, "operational": self.operational, "strategic": self.strategic}
        name = max(scores, key=lambda k: scores[k])
        return name, scores[name]

    def score(self, dimension: str) -> float:
        scores = {
            "technical": self.technical,
            "operational": self.operational,
            "strategic": self.strategic,
            "overall": self.overall,
        }
        return scores[dimension]

    def to_status(self) -> dict[str, object]:
        status: dict[str, object] = {
            "technical": _round(self.technical),
            "operational": _round(self.operational),
            "strategic": _round(self.strategic),
            "overall": _round(self.overall),
            "level": self.level.value,
            "mitigations": [m.to_status() for m in self.mitigations],
            "factors": {dim: {k: _round(v) for k, v in parts.items()} for dim, parts in self.factors.items()},
        }
        if self.precedent is not None:
            status["precedent"] = _round(self.precedent)
        return status


def _round(value: float) -> float:
    return round(value, 4)


def _weighted(values: dict[str, float], weights: dict[str, float]) -> tuple[float, dict[str, float]]:
    parts = {name: weights[name] * values[name] for name in weights}
    # Rounded so that 0.3 + 0.3 + 0.1 compares as 0.7 against a "> 0.7" threshold, and clamped
    # because weights that add up to 1 can still sum a hair above it in binary floating point.
    return min(max(round(sum(parts.values()), 12), 0.0), 1.0), parts


def assess_risk(inputs: RiskInputs, precedent: float | None = None) -> RiskAssessment:
    """Score a session's risk; precedent is the best similarity to past sessions, if known."""
    if precedent is not None and not 0.0 <= precedent <= 1.0:
        raise ValueError(f"precedent must be within 0..1, got {precedent}")
    t, o, s = inputs.technical, inputs.operational, inputs.strategic
    technical, t_parts = _weighted(
        {
            "complexity": t.complexity,
            "dependencies": t.dependencies,
            "scalability": t.scalability,
            "security": t.security,
        },
        TECHNICAL_WEIGHTS,
    )
    operational, o_parts = _weighted(
        {
            "resourceUtilization": o.resource_utilization,
            "errorRate": o.error_rate,
            "latency": o.latency,
            "throughput": o.throughput,
        },
        OPERATIONAL_WEIGHTS,
    )
    novelty = s.novelty * (1.0 - precedent) if precedent is not None else s.novelty
    strategic, s_parts = _weighted(
        {"alignment": s.alignment, "reversibility": s.reversibility, "novelty": novelty},
        STRATEGIC_WEIGHTS,
    )
    overall, _ = _weighted(
        {"technical": technical, "operational": operational, "strategic": strategic},
        OVERALL_WEIGHTS,
    )
    return RiskAssessment(
        technical=technical,
        operational=operational,
        strategic=strategic,
        overall=overall,
        level=risk_level(overall),
        mitigations=mitigations_for(technical, operational, strategic),
        factors={"technical": t_parts, "operational": o_parts, "strategic": s_parts},
        precedent=precedent,
    )


def mitigations_for(technical: float, operational: float, strategic: float) -> tuple[Mitigation, ...]:
    """The seed's safeguards; strictly above each threshold, as the seed compares."""
    out: list[Mitigation] = []
    if technical > TECHNICAL_THRESHOLD:
        out.append(INCREMENTAL_DEPLOYMENT)
    if operational > OPERATIONAL_THRESHOLD:
        out.append(ENHANCED_MONITORING)
    if strategic > STRATEGIC_THRESHOLD:
        out.append(STAKEHOLDER_REVIEW)
    return tuple(out)
