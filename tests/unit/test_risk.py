"""HeadyRisk scoring and mitigations (heady_operator.planning.risk)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from heady_operator.models.arena import RiskInputs
from heady_operator.planning.risk import (
    ENHANCED_MONITORING,
    INCREMENTAL_DEPLOYMENT,
    STAKEHOLDER_REVIEW,
    RiskLevel,
    assess_risk,
    risk_level,
)


def inputs(
    technical: tuple[float, float, float, float] = (0, 0, 0, 0),
    operational: tuple[float, float, float, float] = (0, 0, 0, 0),
    strategic: tuple[float, float, float] = (0, 0, 0),
) -> RiskInputs:
    c, d, sc, se = technical
    ru, er, la, th = operational
    al, no, re = strategic
    return RiskInputs.model_validate(
        {
            "technical": {"complexity": c, "dependencies": d, "scalability": sc, "security": se},
            "operational": {"resourceUtilization": ru, "errorRate": er, "latency": la, "throughput": th},
            "strategic": {"alignment": al, "novelty": no, "reversibility": re},
        }
    )


def test_no_inputs_no_risk() -> None:
    risk = assess_risk(RiskInputs())
    assert (risk.technical, risk.operational, risk.strategic, risk.overall) == (0, 0, 0, 0)
    assert risk.level is RiskLevel.LOW
    assert risk.mitigations == ()


@pytest.mark.parametrize(
    ("technical", "expected"),
    [
        ((1, 0, 0, 0), 0.3),
        ((0, 1, 0, 0), 0.3),
        ((0, 0, 1, 0), 0.2),
        ((0, 0, 0, 1), 0.2),
        ((0.8, 0.6, 0.5, 0.2), 0.56),  # .24 + .18 + .10 + .04
        ((1, 1, 1, 1), 1.0),
    ],
)
def test_technical_uses_the_seed_weights(
    technical: tuple[float, float, float, float], expected: float
) -> None:
    assert assess_risk(inputs(technical=technical)).technical == pytest.approx(expected)


@pytest.mark.parametrize(
    ("operational", "expected"),
    [
        ((1, 0, 0, 0), 0.3),
        ((0, 1, 0, 0), 0.3),
        ((0, 0, 1, 0), 0.2),
        ((0, 0, 0, 1), 0.2),
        ((0.5, 0.2, 0.4, 0.1), 0.31),  # .15 + .06 + .08 + .02
    ],
)
def test_operational_weights(operational: tuple[float, float, float, float], expected: float) -> None:
    assert assess_risk(inputs(operational=operational)).operational == pytest.approx(expected)


@pytest.mark.parametrize(
    ("strategic", "precedent", "expected"),
    [
        ((1, 0, 0), None, 0.4),  # alignment (misalignment) weighs 0.4
        ((0, 0, 1), None, 0.35),  # reversibility (irreversibility) 0.35
        ((0, 1, 0), None, 0.25),  # novelty 0.25
        ((0, 1, 0), 1.0, 0.0),  # done before: no novelty left
        ((1, 1, 1), 0.5, 0.875),  # .4 + .35 + .25 x 0.5
        ((1, 1, 1), None, 1.0),
    ],
)
def test_strategic_with_precedent(
    strategic: tuple[float, float, float], precedent: float | None, expected: float
) -> None:
    risk = assess_risk(inputs(strategic=strategic), precedent=precedent)
    assert risk.strategic == pytest.approx(expected)
    assert risk.precedent == precedent


def test_overall_is_the_weighted_mean() -> None:
    risk = assess_risk(
        inputs(technical=(0.8, 0.6, 0.5, 0.2), operational=(1, 1, 0.1, 0), strategic=(1, 1, 1)),
        precedent=0.5,
    )
    # technical .56, operational .62, strategic .875: .4 x .56 + .35 x .62 + .25 x .875 = 0.65975
    assert risk.overall == pytest.approx(0.65975)
    assert risk.level is RiskLevel.HIGH
    assert risk.mitigations == (ENHANCED_MONITORING, STAKEHOLDER_REVIEW)


@pytest.mark.parametrize(
    ("technical", "operational", "strategic", "mitigations"),
    [
        # Exactly at a threshold is not above it (the seed compares with >).
        ((1, 1, 0.5, 0), (0, 0, 0, 0), (0, 0, 0), ()),  # technical 0.7
        ((1, 1, 0.6, 0), (0, 0, 0, 0), (0, 0, 0), (INCREMENTAL_DEPLOYMENT,)),  # 0.72
        ((0, 0, 0, 0), (1, 1, 0, 0), (0, 0, 0), ()),  # operational 0.6
        ((0, 0, 0, 0), (1, 1, 0.1, 0), (0, 0, 0), (ENHANCED_MONITORING,)),  # 0.62
        # strategic (alignment, novelty, reversibility): .4 + .25 x .8 + .35 = 0.95
        ((0, 0, 0, 0), (0, 0, 0, 0), (1, 0.8, 1), (STAKEHOLDER_REVIEW,)),
        (
            (1, 1, 1, 1),
            (1, 1, 1, 1),
            (1, 1, 1),
            (INCREMENTAL_DEPLOYMENT, ENHANCED_MONITORING, STAKEHOLDER_REVIEW),
        ),
    ],
)
def test_mitigation_thresholds(
    technical: tuple[float, float, float, float],
    operational: tuple[float, float, float, float],
    strategic: tuple[float, float, float],
    mitigations: tuple[object, ...],
) -> None:
    assert assess_risk(inputs(technical, operational, strategic)).mitigations == mitigations


def test_strategic_threshold_is_strict() -> None:
    # (alignment, novelty, reversibility): .4 + .25 x .8 = 0.6; reversibility 4/7 adds .2 -> 0.8
    risk = assess_risk(inputs(strategic=(1, 0.8, 0)))
    assert risk.strategic == pytest.approx(0.6)
    risk = assess_risk(inputs(strategic=(1, 0.8, 4 / 7)))
    assert risk.strategic == pytest.approx(0.8)
    assert risk.mitigations == ()
    risk = assess_risk(inputs(strategic=(1, 0.84, 4 / 7)))
    assert risk.mitigations == (STAKEHOLDER_REVIEW,)


def test_mitigation_texts_are_the_seeds() -> None:
    assert INCREMENTAL_DEPLOYMENT.to_status() == {
        "type": "technical",
        "action": "incremental_deployment",
        "description": "Deploy operation incrementally with canary releases",
        "priority": "high",
    }
    assert (ENHANCED_MONITORING.action, ENHANCED_MONITORING.priority) == ("enhanced_monitoring", "medium")
    assert ENHANCED_MONITORING.description == "Increase monitoring frequency and alert thresholds"
    assert (STAKEHOLDER_REVIEW.action, STAKEHOLDER_REVIEW.priority) == ("stakeholder_review", "high")
    assert STAKEHOLDER_REVIEW.description == "Require additional stakeholder review before proceeding"


@pytest.mark.parametrize(
    ("score", "level"),
    [
        (0.0, RiskLevel.LOW),
        (0.2999, RiskLevel.LOW),
        (0.3, RiskLevel.MEDIUM),
        (0.6, RiskLevel.HIGH),
        (0.8, RiskLevel.CRITICAL),
        (1.0, RiskLevel.CRITICAL),
    ],
)
def test_levels(score: float, level: RiskLevel) -> None:
    assert risk_level(score) is level


def test_status() -> None:
    status = assess_risk(inputs(technical=(1, 1, 1, 1)), precedent=0.25).to_status()
    assert status["technical"] == 1.0
    assert status["overall"] == 0.4
    assert status["level"] == "medium"
    assert status["precedent"] == 0.25
    assert status["mitigations"] == [INCREMENTAL_DEPLOYMENT.to_status()]
    assert status["factors"] == {
        "technical": {"complexity": 0.3, "dependencies": 0.3, "scalability": 0.2, "security": 0.2},
        "operational": {"resourceUtilization": 0.0, "errorRate": 0.0, "latency": 0.0, "throughput": 0.0},
        "strategic": {"alignment": 0.0, "reversibility": 0.0, "novelty": 0.0},
    }
    assert "precedent" not in assess_risk(RiskInputs()).to_status()


def test_highest_dimension() -> None:
    assert assess_risk(inputs(operational=(1, 0, 0, 0))).highest == ("operational", 0.3)
    # Ties go to technical, the dimension the operator acts on most directly.
    assert assess_risk(inputs(technical=(1, 0, 0, 0), operational=(1, 0, 0, 0))).highest[0] == "technical"


@pytest.mark.parametrize("precedent", [-0.01, 1.01])
def test_precedent_out_of_range(precedent: float) -> None:
    with pytest.raises(ValueError, match="precedent"):
        assess_risk(RiskInputs(), precedent=precedent)


unit = st.floats(0, 1)


@given(st.lists(unit, min_size=11, max_size=11), st.integers(0, 10), unit, st.none() | unit)
def test_scores_stay_in_range_and_grow_with_any_input(
    values: list[float], bump_index: int, bump: float, precedent: float | None
) -> None:
    def build(v: list[float]) -> RiskInputs:
        return inputs((v[0], v[1], v[2], v[3]), (v[4], v[5], v[6], v[7]), (v[8], v[9], v[10]))

    risk = assess_risk(build(values), precedent)
    raised = list(values)
    raised[bump_index] = max(raised[bump_index], bump)
    higher = assess_risk(build(raised), precedent)
    for r in (risk, higher):
        for score in (r.technical, r.operational, r.strategic, r.overall):
            assert 0.0 <= score <= 1.0
    assert higher.overall >= risk.overall - 1e-12
    assert len(higher.mitigations) >= len(risk.mitigations)
