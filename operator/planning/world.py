"""From a HeadyService spec and its workload's pod template to the planner's Service. Pure."""

from __future__ import annotations

from collections.abc import Mapping

from heady_operator.models.common import PRIORITY_VALUES
from heady_operator.models.headyservice import HeadyServiceSpec
from heady_operator.models.quantity import QuantityError, cpu_millis, memory_bytes
from heady_operator.planning.levels import POD_LEVEL, Amount, ContainerResources, Service, ServiceKey

UTILIZATION_ANNOTATION = "heady.io/utilization"


def default_peak(template: ContainerResources) -> Amount:
    """A container's peak when the HeadyService names none: what its owner asked for.

    The template's requests (its limits where it has no request): baseline is then a share of
    what the workload asked for and never more, and peak gives back exactly that. Reserving
    more than the owner's requests takes `containers[].peak` in the HeadyService.
    """
    return Amount(
        template.requests.cpu if template.requests.cpu is not None else template.limits.cpu,
        template.requests.memory if template.requests.memory is not None else template.limits.memory,
    )


def explicit_peak(cpu: str | int | None, memory: str | int | None, fallback: Amount) -> Amount:
    try:
        return Amount(
            cpu_millis(cpu) if cpu is not None else fallback.cpu,
            memory_bytes(memory) if memory is not None else fallback.memory,
        )
    except QuantityError:
        return fallback  # the model validated these already; an unparsable one keeps the default


def utilization(annotations: Mapping[str, str]) -> float | None:
    raw = annotations.get(UTILIZATION_ANNOTATION)
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if 0.0 <= value <= 10.0 else None  # nan, inf and nonsense read as "unknown"


def explicit_peaks(spec: HeadyServiceSpec) -> dict[str, Amount]:
    """containers[].peak as amounts (what is unset stays None): peaks, or caps with peakFrom."""
    return {c.name: explicit_peak(c.peak.cpu, c.peak.memory, Amount()) for c in spec.containers}


def template_peaks(spec: HeadyServiceSpec, template: tuple[ContainerResources, ...]) -> dict[str, Amount]:
    """Peaks without peakFrom: containers[].peak where named, else the template's requests."""
    explicit = {c.name: c.peak for c in spec.containers}
    peak: dict[str, Amount] = {}
    for c in template:
        value = default_peak(c)
        if c.name in explicit:
            p = explicit[c.name]
            value = explicit_peak(p.cpu, p.memory, value)
        if value != Amount():
            peak[c.name] = value
    return peak


def template_error(spec: HeadyServiceSpec, template: tuple[ContainerResources, ...]) -> str | None:
    names = {c.name for c in template}
    explicit = {c.name for c in spec.containers}
    if POD_LEVEL in names:
        if explicit:
            return (
                f"the {spec.workload.kind}'s pods declare pod-level resources (spec.resources): heady "
                "resizes them at the pod level with the template's pod-level requests as peak, so "
                "containers[].peak does not apply; remove it"
            )
        return None
    missing = sorted(explicit - names)
    if missing:
        return f"containers {', '.join(missing)} are not in the {spec.workload.kind}'s pod template"
    return None


def service_model(
    key: ServiceKey,
    spec: HeadyServiceSpec,
    template: tuple[ContainerResources, ...] | None,
    annotations: Mapping[str, str],
    peak: Mapping[str, Amount] | None = None,
) -> tuple[Service | None, str | None]:
    """The planner's view of one service, or why it cannot be planned (shown in its status).

    `peak` replaces the template's and containers[].peak (from a VPA's recommendation)."""
    if template is None:
        return None, f"{spec.workload.kind} {spec.workload.name} not found in namespace {key[0]}"
    error = template_error(spec, template)
    if error is not None:
        return None, error
    if peak is None:
        peak = template_peaks(spec, template)
    peak = {k: v for k, v in peak.items() if v != Amount()}
    if not peak:
        return None, "no container has requests, limits or an explicit peak to resize to"
    return (
        Service(
            key,
            PRIORITY_VALUES[spec.priority],
            peak,
            spec.baseline_ratio,
            spec.cooldown_seconds,
            spec.max_peak_seconds,
            utilization(annotations),
        ),
        None,
    )
