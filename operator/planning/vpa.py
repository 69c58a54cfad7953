"""Peaks from a VerticalPodAutoscaler's recommendation, and when a VPA and heady would fight. Pure.

A VPA in `updateMode: Off` (or `Initial`) only recommends; heady can take its `target` per
container as the peak (`HeadyService.spec.peakFrom.verticalPodAutoscaler`), bounded by the VPA's
`upperBound` and by `containers[].peak` (caps). Recommendations move every minute or so; pods
follow them at most once per settle window, and only when the change is significant, so a
recommender's jitter never turns into a stream of resizes.

A VPA in any other mode (`Recreate`, `Auto`, `InPlaceOrRecreate`, `InPlace`) resizes or evicts
the same pods itself: two controllers writing the same requests undo each other. heady then
reports `Conflict` and leaves those pods alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from heady_operator.models.common import parse_time, rfc3339
from heady_operator.models.quantity import QuantityError, cpu_millis, format_cpu, format_memory, memory_bytes
from heady_operator.planning.levels import Amount, ContainerResources
from heady_operator.planning.world import default_peak

RECOMMENDING_ONLY = frozenset({"Off", "Initial"})
DEFAULT_MODE = "Recreate"  # what the VPA does when spec.updatePolicy.updateMode is unset
TEMPLATE = "PodTemplate"


@dataclass(frozen=True)
class ContainerRecommendation:
    target: Amount
    upper_bound: Amount


@dataclass(frozen=True)
class Vpa:
    namespace: str
    name: str
    target_kind: str
    target_name: str
    mode: str = DEFAULT_MODE
    recommendation: Mapping[str, ContainerRecommendation] = field(default_factory=dict)

    @property
    def source(self) -> str:
        return f"VerticalPodAutoscaler/{self.name}"


def acts_itself(vpa: Vpa) -> bool:
    """Whether the VPA changes pods' resources itself (evicting or resizing), not just recommending."""
    return vpa.mode not in RECOMMENDING_ONLY


def targets(vpa: Vpa, namespace: str, kind: str, name: str) -> bool:
    return vpa.namespace == namespace and vpa.target_kind == kind and vpa.target_name == name


def conflict_message(vpa: Vpa, kind: str, name: str, service: str, follows: bool = False) -> str:
    """`follows`: the HeadyService already takes its peaks from this VPA (spec.peakFrom)."""
    advice = (
        "set the VPA's spec.updatePolicy.updateMode to Off (or Initial): HeadyService "
        f"{service} already takes its peaks from it (spec.peakFrom)"
        if follows
        else "set the VPA's spec.updatePolicy.updateMode to Off (or Initial) and add "
        f"spec.peakFrom.verticalPodAutoscaler: {vpa.name} to HeadyService {service}"
    )
    return (
        f"VerticalPodAutoscaler {vpa.name} (updateMode {vpa.mode}) resizes the pods of {kind} {name} "
        f"itself, so heady leaves them alone. To combine the two, {advice}: the VPA then "
        "recommends and heady applies its target as the peak"
    )


def _least(*values: int | None) -> int | None:
    present = [v for v in values if v is not None]
    return min(present) if present else None


def recommended_peak(
    template: tuple[ContainerResources, ...],
    caps: Mapping[str, Amount],
    recommendation: Mapping[str, ContainerRecommendation],
) -> dict[str, Amount]:
    """Each container's peak: the VPA's target, at most its upperBound and the HeadyService's cap.

    A container (or a resource) the VPA says nothing about keeps its default peak (the
    template's requests), still under the cap.
    """
    out: dict[str, Amount] = {}
    for c in template:
        default = default_peak(c)
        rec = recommendation.get(c.name)
        cap = caps.get(c.name, Amount())
        cpu = default.cpu
        memory = default.memory
        if rec is not None:
            if rec.target.cpu is not None:
                cpu = _least(rec.target.cpu, rec.upper_bound.cpu)
            if rec.target.memory is not None:
                memory = _least(rec.target.memory, rec.upper_bound.memory)
        value = Amount(
            _least(cpu, cap.cpu) if cpu is not None else None,
            _least(memory, cap.memory) if memory is not None else None,
        )
        if value != Amount():
            out[c.name] = value
    return out


def significant(old: Mapping[str, Amount], new: Mapping[str, Amount], min_change: float) -> bool:
    """A change worth moving pods for: a resource appears or goes, or moves by >= min_change of its value."""
    for name in old.keys() | new.keys():
        a, b = old.get(name, Amount()), new.get(name, Amount())
        for x, y in ((a.cpu, b.cpu), (a.memory, b.memory)):
            if x == y:
                continue
            if x is None or y is None or x == 0:
                return True
            if abs(y - x) / x >= min_change:
                return True
    return False


@dataclass(frozen=True)
class FollowedPeak:
    """The peak in use for a service, where it came from and since when."""

    source: str
    peak: Mapping[str, Amount]
    since: datetime


def follow(
    current: FollowedPeak | None,
    source: str,
    proposed: Mapping[str, Amount],
    now: datetime,
    settle_seconds: float,
    min_change: float,
) -> tuple[FollowedPeak, datetime | None]:
    """The peak to use now, and when to look again (a significant change waiting out the settle window).

    A new source (the first recommendation, or the VPA gone) or the template is taken at once; a changed
    recommendation is taken only if significant, and not before `settle_seconds` after the last
    change taken. Small changes are ignored until they add up to a significant one.
    """
    if current is not None and current.source == source and dict(current.peak) == dict(proposed):
        return current, None
    if current is None or current.source != source or source == TEMPLATE:
        # The template changes only by a rollout, which replaces the pods anyway.
        return FollowedPeak(source, dict(proposed), now), None
    if not significant(current.peak, proposed, min_change):
        return current, None
    due = current.since + timedelta(seconds=settle_seconds)
    if now < due:
        return current, due
    return FollowedPeak(source, dict(proposed), now), None


def peak_status(followed: FollowedPeak) -> dict[str, Any]:
    """status.peak of a HeadyService with peakFrom: the source and the peaks in use."""
    containers = []
    for name, a in sorted(followed.peak.items()):
        item: dict[str, Any] = {"name": name}
        if a.cpu is not None:
            item["cpu"] = format_cpu(a.cpu)
        if a.memory is not None:
            item["memory"] = format_memory(a.memory)
        containers.append(item)
    return {"source": followed.source, "updatedAt": rfc3339(followed.since), "containers": containers}


def followed_from_status(peak: Mapping[str, Any] | None) -> FollowedPeak | None:
    """The followed peak a HeadyService's status.peak records: a restart resumes it (same settle
    window, no pod moved for a drift that was not significant before the restart)."""
    if not isinstance(peak, Mapping):
        return None
    since = parse_time(peak.get("updatedAt"))
    source = peak.get("source")
    if since is None or not isinstance(source, str):
        return None
    out: dict[str, Amount] = {}
    try:
        for item in peak.get("containers") or []:
            cpu, memory = item.get("cpu"), item.get("memory")
            out[str(item["name"])] = Amount(
                cpu_millis(cpu) if cpu is not None else None,
                memory_bytes(memory) if memory is not None else None,
            )
    except (QuantityError, KeyError, TypeError, AttributeError):
        return None
    return FollowedPeak(source, out, since)


__all__ = [
    "DEFAULT_MODE",
    "TEMPLATE",
    "ContainerRecommendation",
    "FollowedPeak",
    "Vpa",
    "acts_itself",
    "conflict_message",
    "follow",
    "followed_from_status",
    "peak_status",
    "recommended_peak",
    "significant",
    "targets",
]
