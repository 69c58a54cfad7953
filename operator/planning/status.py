"""Status bodies and conditions of HeadyServices and AttentionSignals, from decisions. Pure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from heady_operator.models.common import rfc3339, set_condition
from heady_operator.planning.levels import Level, PodDecision, Reason, ServiceDecision, Signal
from heady_operator.planning.recommend import Recommendation


@dataclass(frozen=True)
class ServiceFacts:
    """What the status of one HeadyService is made of, besides its decision."""

    generation: int | None
    priority_value: int | None
    error: str | None  # why it cannot be planned (invalid spec, workload missing)
    invalid_spec: bool
    pods: Sequence[PodDecision]
    failed: Sequence[str]  # pods whose resize keeps failing
    conflicts: Mapping[str, str]  # pod -> the other actor resizing it
    tunnel: tuple[bool, str, str] | None
    prediction: Mapping[str, Any]
    cooldown_seconds: int = 0
    kubelet_errors: Mapping[str, str] = field(default_factory=dict)  # pod -> the kubelet's message
    vpa_conflict: str | None = None  # a VPA resizes these pods itself: heady leaves them alone
    # With spec.peakFrom: status.peak and the PeakSource condition (ok, reason, message).
    peak: tuple[Mapping[str, Any], tuple[bool, str, str]] | None = None
    unsupported: Mapping[str, str] = field(default_factory=dict)  # pod -> why the cluster cannot resize it
    recommendation: Recommendation | None = None


def service_status(
    facts: ServiceFacts, decision: ServiceDecision | None, prev: Mapping[str, Any], now: datetime
) -> dict[str, Any]:
    generation = facts.generation
    conditions: list[dict[str, Any]] = list(prev.get("conditions") or [])
    status: dict[str, Any] = {"observedGeneration": generation}
    if facts.priority_value is not None:
        status["priorityValue"] = facts.priority_value
    conditions = _peak_condition(conditions, facts, now)
    status["peak"] = dict(facts.peak[0]) if facts.peak is not None else None
    if decision is None:
        reason = "InvalidSpec" if facts.invalid_spec else "WorkloadNotFound"
        if facts.vpa_conflict is not None:
            reason = "VPAConflict"
        error = facts.error or ""
        for type_, value in (("Ready", False), ("Progressing", False), ("Degraded", True)):
            conditions = set_condition(conditions, type_, value, reason, error, now, generation)
        conditions = _tunnel_condition(conditions, facts, now)
        conditions = _conflict_condition(conditions, facts, now)
        status.update(level="Unknown", conditions=conditions)
        return _stable(status, prev)
    pending = [d for d in facts.pods if d.needs_resize]
    at_peak = sum(1 for d in facts.pods if d.level is Level.PEAK and not d.needs_resize)
    total = decision.pods_total
    infeasible = sorted(d.pod[1] for d in facts.pods if d.reason is Reason.INFEASIBLE)
    level = "Peak" if total and at_peak == total else ("Mixed" if at_peak else "Baseline")
    memory = decision.memory
    status.update(
        level=level,
        podsTotal=total,
        podsAtPeak=at_peak,
        podsAtPeakSummary=f"{at_peak}/{total}",
        escalatedSince=rfc3339(memory.escalated_since) if memory.escalated_since else None,
        # Kept while it still decides something (the cooldown), so a restart resumes it; a past
        # attention is no news and rewrites no status.
        attentionUntil=rfc3339(memory.attention_until)
        if memory.attention_until and memory.attention_until + timedelta(seconds=facts.cooldown_seconds) > now
        else None,
        restingUntil=rfc3339(memory.resting_until) if memory.resting_until else None,
        waitingReason=decision.message if decision.wants_peak and not decision.granted else None,
        prediction=dict(facts.prediction),
        recommendation=recommendation_status(facts.recommendation),
    )
    if decision.signal is not None:
        status["lastAttention"] = last_attention(decision.signal)
    elif prev.get("lastAttention"):
        status["lastAttention"] = prev["lastAttention"]
    target = "Peak" if decision.granted else "Baseline"
    if pending:
        conditions = set_condition(
            conditions,
            "Progressing",
            True,
            "Resizing",
            f"{len(pending)} pod(s) resizing toward {target}: {decision.message}",
            now,
            generation,
        )
    else:
        conditions = set_condition(
            conditions, "Progressing", False, "Settled", f"{level}: {decision.message}", now, generation
        )
    if infeasible or facts.failed or facts.kubelet_errors or facts.unsupported:
        msg = []
        for why in sorted(set(facts.unsupported.values())):
            pods = sorted(p for p, w in facts.unsupported.items() if w == why)
            msg.append(f"cannot resize {', '.join(pods[:5])}{' ...' if len(pods) > 5 else ''}: {why}")
        if infeasible:
            msg.append(f"resize to peak infeasible on its node for {', '.join(infeasible)}; held at baseline")
        if facts.failed:
            msg.append(f"resize failing for {', '.join(sorted(facts.failed))}; retrying")
        for pod, why in sorted(facts.kubelet_errors.items()):
            msg.append(f"the kubelet cannot finish the resize of {pod}: {why}; not retried while it says so")
        conditions = set_condition(
            conditions,
            "Degraded",
            True,
            "PodLevelResizeUnsupported"
            if facts.unsupported
            else "Infeasible"
            if infeasible
            else ("ResizeFailed" if facts.failed else "KubeletResizeError"),
            "; ".join(msg),
            now,
            generation,
        )
    else:
        conditions = set_condition(
            conditions, "Degraded", False, "AsPlanned", "no resize failures", now, generation
        )
    ready_reason = {"Peak": "AtPeak", "Baseline": "AtBaseline", "Mixed": "Mixed"}[level]
    if decision.wants_peak and not decision.granted:
        ready_reason = str(decision.reason)
    conditions = _tunnel_condition(conditions, facts, now)
    conditions = _conflict_condition(conditions, facts, now)
    conditions = set_condition(
        conditions,
        "Ready",
        True,
        ready_reason,
        f"{at_peak}/{total} pods at peak; {decision.message}",
        now,
        generation,
    )
    status["conditions"] = conditions
    return _stable(status, prev)


def recommendation_status(rec: Recommendation | None) -> dict[str, Any] | None:
    """status.recommendation: what the service should run with, and its price (planning/recommend.py)."""
    if rec is None:
        return None
    return {
        "baselineRatio": rec.baseline_ratio,
        "cooldownSeconds": rec.cooldown_seconds,
        "expectedSaving": rec.expected_saving,
        "expectedSLAViolation": rec.expected_violation,
        "dutyCycle": rec.duty_cycle,
        "revisits": rec.revisits,
        "basis": rec.basis,
        # One line for `kubectl get hsvc -o wide`.
        "summary": (
            f"ratio {rec.baseline_ratio:g}, cooldown {rec.cooldown_seconds}s: saves "
            f"{rec.expected_saving:.1%}, SLA {rec.expected_violation:.2%}"
        ),
    }


def last_attention(signal: Signal) -> dict[str, Any]:
    return {
        "source": signal.source,
        "signal": signal.name,
        "intensity": signal.intensity,
        "at": rfc3339(signal.start),
    }


def _tunnel_condition(
    conditions: list[dict[str, Any]], facts: ServiceFacts, now: datetime
) -> list[dict[str, Any]]:
    if facts.tunnel is None:
        return [c for c in conditions if c.get("type") != "TunnelRouted"]
    ok, reason, message = facts.tunnel
    return set_condition(conditions, "TunnelRouted", ok, reason, message, now, facts.generation)


def _peak_condition(
    conditions: list[dict[str, Any]], facts: ServiceFacts, now: datetime
) -> list[dict[str, Any]]:
    if facts.peak is None:
        return [c for c in conditions if c.get("type") != "PeakSource"]
    ok, reason, message = facts.peak[1]
    return set_condition(conditions, "PeakSource", ok, reason, message, now, facts.generation)


def _conflict_condition(
    conditions: list[dict[str, Any]], facts: ServiceFacts, now: datetime
) -> list[dict[str, Any]]:
    if facts.vpa_conflict is not None:
        return set_condition(
            conditions, "Conflict", True, "VerticalPodAutoscaler", facts.vpa_conflict, now, facts.generation
        )
    if not facts.conflicts:
        if any(c.get("type") == "Conflict" for c in conditions):
            return set_condition(
                conditions,
                "Conflict",
                False,
                "NoConflict",
                "no other actor resizes these pods",
                now,
                facts.generation,
            )
        return conditions
    actors = sorted(set(facts.conflicts.values()))
    pods = sorted(facts.conflicts)
    message = (
        f"{', '.join(actors)} also resized {', '.join(pods[:5])}{' ...' if len(pods) > 5 else ''}; "
        "heady backs off on those pods (see docs/reliability.md)"
    )
    return set_condition(conditions, "Conflict", True, "ForeignResize", message, now, facts.generation)


def _stable(status: dict[str, Any], prev: Mapping[str, Any]) -> dict[str, Any]:
    """Drop None values but keep them as explicit nulls when they were set before (merge-patch removes them)."""
    out: dict[str, Any] = {}
    for k, v in status.items():
        if v is None:
            if prev.get(k) is not None:
                out[k] = None
            continue
        out[k] = v
    return out


# ---------------------------------------------------------------- AttentionSignals


@dataclass(frozen=True)
class SignalReport:
    state: str  # "applied", "expired", "invalid", "missing:<message>": written once per state
    status: dict[str, Any]
    event: tuple[str, str, str] | None = None  # reason, message, type


def signal_status(
    signal: Signal | None,
    error: str | None,
    missing: Sequence[str],
    namespace: str,
    generation: int | None,
    conditions: list[dict[str, Any]],
    now: datetime,
) -> SignalReport:
    if signal is None:
        message = error or "invalid"
        conds = set_condition(conditions, "Ready", False, "InvalidSpec", message, now, generation)
        return SignalReport(
            "invalid",
            {"observedGeneration": generation, "conditions": conds},
            ("InvalidSpec", message, "Warning"),
        )
    if signal.end <= now:
        conds = set_condition(
            conditions, "Ready", False, "Expired", f"expired at {rfc3339(signal.end)}", now, generation
        )
        event = None
        if not any(
            c.get("type") == "Ready" and c.get("reason") in ("Applied", "ServiceNotFound") for c in conditions
        ):
            # It ended before anyone saw it applied: say so, or it just vanishes.
            event = ("Expired", f"expired at {rfc3339(signal.end)} before it was applied", "Warning")
        return SignalReport(
            "expired",
            {
                "observedGeneration": generation,
                "expired": True,
                "expiresAt": rfc3339(signal.end),
                "conditions": conds,
            },
            event,
        )
    if missing:
        message = f"no HeadyService named {', '.join(missing)} in namespace {namespace}"
        conds = set_condition(conditions, "Ready", False, "ServiceNotFound", message, now, generation)
        state, event = "missing:" + message, ("ServiceNotFound", message, "Warning")
    else:
        message = f"attention {signal.intensity:g} on {', '.join(s[1] for s in signal.services)}"
        conds = set_condition(conditions, "Ready", True, "Applied", message, now, generation)
        state, event = "applied", None
    return SignalReport(
        state,
        {
            "observedGeneration": generation,
            "expired": False,
            "expiresAt": rfc3339(signal.end),
            "appliedAt": rfc3339(now),
            "conditions": conds,
        },
        event,
    )


def expired_long_ago(signal: Signal | None, now: datetime, retention_seconds: int) -> bool:
    return signal is not None and signal.end + timedelta(seconds=retention_seconds) <= now
