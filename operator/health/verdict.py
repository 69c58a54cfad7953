"""Pure: from a stream of probe results to the Healthy verdict (no I/O, no clock)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum


class Health(StrEnum):
    UNKNOWN = "Unknown"
    HEALTHY = "Healthy"
    UNHEALTHY = "Unhealthy"


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    seconds: float
    detail: str  # "HTTP 200", "connection refused", "timed out after 5 s", ...


@dataclass(frozen=True)
class HealthState:
    health: Health = Health.UNKNOWN
    failures: int = 0  # consecutive
    last: ProbeResult | None = None


@dataclass(frozen=True)
class Transition:
    health: Health
    reason: str  # condition reason and Event reason
    message: str


def observe(
    state: HealthState, result: ProbeResult, failure_threshold: int
) -> tuple[HealthState, Transition | None]:
    """One probe result. The first pass makes a service Healthy; it turns Unhealthy on exactly the
    failure_threshold-th failure in a row (the seeds: alert after 2 failures); one pass heals."""
    if failure_threshold < 1:
        raise ValueError(f"failure threshold must be at least 1, got {failure_threshold}")
    if result.ok:
        new = HealthState(Health.HEALTHY, 0, result)
        if state.health is Health.HEALTHY:
            return new, None
        return new, Transition(Health.HEALTHY, "Healthy", f"health check passed: {result.detail}")
    failures = state.failures + 1
    if failures >= failure_threshold and state.health is not Health.UNHEALTHY:
        return (
            HealthState(Health.UNHEALTHY, failures, result),
            Transition(
                Health.UNHEALTHY,
                "Unhealthy",
                f"health check failed {failures} times in a row: {result.detail}",
            ),
        )
    return replace(state, failures=failures, last=result), None
