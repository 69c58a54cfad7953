"""Per-service recommendations: a baseline ratio and a cooldown from what its attention looked like.

In the spirit of the VPA's recommender, from observations rather than a user's guess, but about
attention instead of usage: a service's duty cycle (the share of time someone attends to it), its
revisit intervals (how soon attention comes back after it ends) and, when known, its usage (the
`heady.io/utilization` annotation). One model gives the recommendation and its price:

- cooldown: the hold after attention ends that costs least over the revisits seen
  (`cooldown_from_revisits`): holding through a short absence costs its length at peak, a revisit
  longer than the cooldown costs the cooldown plus a user's wait for the resize (`wait_cost`);
- time at peak = duty cycle + the cooldown holds (sum of min(revisit, cooldown) per observed second);
- baseline ratio: 1 (do not resize) when, once enough revisits were seen to judge, resizing would
  cost the service's users more than the SLA budget (expected share of attention below peak,
  below, over `sla_budget`: short, frequent visits that each wait for a resize); else the usage with headroom when known, else the current ratio;
  always within the settings' bounds. A busy service alone is no reason to stop resizing: its
  quiet time still saves, and its users wait only on the returns its cooldown does not cover;
- expected saving = (1 - ratio) x (1 - time at peak), a share of the service's always-peak
  reservation; expected SLA cost = actuation delay x (first arrival + revisits longer than the
  cooldown) / attention-seconds.

Pure: plain numbers in, a frozen result out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from heady_operator.planning.prediction import History, cooldown_from_revisits


@dataclass(frozen=True)
class Tuning:
    """The settings recommendations and learned cooldowns are bounded by (HEADY_* in config.py)."""

    learn_cooldown: bool = True
    min_revisits: int = 20
    cooldown_min_seconds: int = 1
    cooldown_max_seconds: int = 300
    wait_cost_seconds: float = 60.0
    actuation_delay_seconds: float = 0.25
    auto_min_ratio: float = 0.5
    auto_max_ratio: float = 1.0
    usage_headroom: float = 0.25
    # Expected share of attention-seconds below peak that resizing may cost (the simulator's SLA target).
    sla_budget: float = 0.01
    ratio_step: float = 0.05
    min_observed_seconds: float = 600.0  # no recommendation from a few minutes of attention


@dataclass(frozen=True)
class Recommendation:
    baseline_ratio: float
    cooldown_seconds: int
    expected_saving: float  # share of the service's always-peak reservation
    expected_violation: float  # share of attention-seconds below peak
    duty_cycle: float
    revisits: int
    basis: str


def learned_cooldown(history: History, tuning: Tuning, spec_cooldown: int, max_peak_seconds: int) -> int:
    """The cooldown in effect: learned from revisits once there are enough, else the spec's."""
    if not tuning.learn_cooldown or len(history.revisits) < tuning.min_revisits:
        return spec_cooldown
    learned = cooldown_from_revisits(
        history.revisits, tuning.wait_cost_seconds, tuning.cooldown_min_seconds, tuning.cooldown_max_seconds
    )
    return min(learned, max_peak_seconds)


def recommend(
    history: History,
    tuning: Tuning,
    current_ratio: float,
    spec_cooldown: int,
    max_peak_seconds: int,
    utilization: float | None = None,
) -> Recommendation | None:
    """What this service should run with, or None before its attention was seen for long enough."""
    duty = history.duty_cycle
    if (
        duty is None
        or history.episodes == 0
        or history.attended_seconds <= 0
        or history.observed_seconds < tuning.min_observed_seconds
    ):
        return None
    enough = len(history.revisits) >= tuning.min_revisits
    cooldown = (
        min(
            max_peak_seconds,
            cooldown_from_revisits(
                history.revisits,
                tuning.wait_cost_seconds,
                tuning.cooldown_min_seconds,
                tuning.cooldown_max_seconds,
            ),
        )
        if enough
        else spec_cooldown
    )
    later = max(0, history.episodes - 1)  # revisits, including those older than the sample
    gaps = history.revisits
    held = 0.0
    beyond = 0.0
    if gaps:
        held = later * sum(min(g, cooldown) for g in gaps) / len(gaps) / history.observed_seconds
        beyond = sum(1 for g in gaps if g > cooldown) / len(gaps)
    at_peak = min(1.0, duty + held)
    violation = tuning.actuation_delay_seconds * (1 + later * beyond) / history.attended_seconds
    if enough and violation > tuning.sla_budget:
        ratio = 1.0
        why = (
            f"resizing would leave {violation:.1%} of attention below peak (budget {tuning.sla_budget:.0%}):"
            " visits too short and frequent to wait for a resize"
        )
    elif utilization is not None:
        ratio = utilization * current_ratio * (1 + tuning.usage_headroom)
        why = f"usage {utilization * current_ratio:.0%} of peak + {tuning.usage_headroom:.0%} headroom"
    else:
        ratio = current_ratio
        why = "no usage seen: the current ratio"
    ratio = _bounded(ratio, tuning)
    if ratio >= 1.0:
        violation = 0.0
    basis = (
        f"{why}; cooldown from {len(gaps)} revisits"
        if enough
        else f"{why}; {len(gaps)} of {tuning.min_revisits} revisits needed to size the cooldown"
    )
    return Recommendation(
        baseline_ratio=ratio,
        cooldown_seconds=cooldown,
        expected_saving=round((1.0 - ratio) * (1.0 - at_peak), 4),
        expected_violation=round(min(1.0, violation), 4),
        duty_cycle=round(duty, 4),
        revisits=later,
        basis=basis,
    )


def _bounded(ratio: float, tuning: Tuning) -> float:
    """Within the bounds, rounded up to a step (a changed ratio resizes every pod: no jitter)."""
    step = tuning.ratio_step
    stepped = min(1.0, math.ceil(round(ratio / step, 6)) * step) if step > 0 else ratio
    return round(max(tuning.auto_min_ratio, min(tuning.auto_max_ratio, stepped)), 4)
