"""What `kubectl heady` shows, computed from API bodies (plain dicts) and a clock. Pure.

Every view is built twice over the same data: a dict (what -o json/yaml print) and the text
drawn from that dict, so the table and the machine-readable output can never disagree.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from heady_operator.cli.render import Cell, human_duration, paint, percent, table
from heady_operator.models.common import HIGH_PRIORITY_THRESHOLD, PRIORITY_VALUES, PriorityLevel, parse_time
from heady_operator.models.quantity import QuantityError, cpu_millis, format_cpu, format_memory, memory_bytes
from heady_operator.planning.levels import Amount, ContainerResources
from heady_operator.planning.world import default_peak, explicit_peak

Body = Mapping[str, Any]
Key = tuple[str, str]
CAPACITY_METRIC = "heady_capacity_saved_ratio"
VERDICT_STYLE = {
    "unmanaged": "red",
    "waiting": "yellow",
    "resting": "yellow",
    "degraded": "red",
    "peak": "yellow+bold",
    "signalled": "cyan",
    "baseline": "green",
}
LEVEL_STYLE = {"Peak": "yellow+bold", "Mixed": "cyan", "Baseline": "green", "Unknown": "red"}


def _meta(body: Body) -> Mapping[str, Any]:
    return body.get("metadata") or {}


def key_of(body: Body) -> Key:
    return (str(_meta(body).get("namespace", "")), str(_meta(body).get("name", "")))


def condition(body: Body, type_: str) -> Mapping[str, Any] | None:
    for c in (body.get("status") or {}).get("conditions") or []:
        if c.get("type") == type_:
            return dict(c)
    return None


def _ago(now: datetime, ts: datetime | None) -> str:
    return "-" if ts is None else human_duration((now - ts).total_seconds())


def _until(now: datetime, ts: datetime | None) -> str:
    if ts is None:
        return "-"
    delta = (ts - now).total_seconds()
    return f"in {human_duration(delta)}" if delta > 0 else f"{human_duration(-delta)} ago"


# ---------------------------------------------------------------- resources


@dataclass(frozen=True)
class Resources:
    cpu: int = 0  # millicores
    memory: int = 0  # bytes

    def __add__(self, other: Resources) -> Resources:
        return Resources(self.cpu + other.cpu, self.memory + other.memory)

    def __sub__(self, other: Resources) -> Resources:
        return Resources(self.cpu - other.cpu, self.memory - other.memory)

    def text(self) -> str:
        return f"{format_cpu(max(self.cpu, 0))}/{format_memory(max(self.memory, 0))}"


def _cpu(value: Any) -> int | None:
    try:
        return None if value is None else cpu_millis(value)
    except QuantityError:
        return None


def _mem(value: Any) -> int | None:
    try:
        return None if value is None else memory_bytes(value)
    except QuantityError:
        return None


def _first(*values: int | None) -> int | None:
    return next((v for v in values if v is not None), None)


def container_requests(container: Body) -> Resources:
    """Effective requests: a missing request is the limit, as the API server defaults it."""
    res = container.get("resources") or {}
    req, lim = res.get("requests") or {}, res.get("limits") or {}
    return Resources(
        _first(_cpu(req.get("cpu")), _cpu(lim.get("cpu"))) or 0,
        _first(_mem(req.get("memory")), _mem(lim.get("memory"))) or 0,
    )


def pod_requests(pod: Body) -> Resources:
    total = Resources()
    for c in (pod.get("spec") or {}).get("containers") or []:
        total += container_requests(c)
    return total


def pod_active(pod: Body) -> bool:
    phase = (pod.get("status") or {}).get("phase")
    return phase not in ("Succeeded", "Failed") and not _meta(pod).get("deletionTimestamp")


def container_peaks(service: Body, workload: Body | None) -> dict[str, tuple[int | None, int | None]]:
    """Peak per container by the operator's own rule (planning/world.py): the HeadyService's
    explicit peak, else the template's requests (its limits where it has no request)."""
    template = ((workload or {}).get("spec") or {}).get("template", {}).get("spec", {}).get(
        "containers"
    ) or []
    explicit = {
        c.get("name"): c.get("peak") or {} for c in (service.get("spec") or {}).get("containers") or []
    }
    peaks: dict[str, tuple[int | None, int | None]] = {}
    for c in template:
        name = str(c.get("name"))
        res = c.get("resources") or {}
        req, lim = res.get("requests") or {}, res.get("limits") or {}
        value = default_peak(
            ContainerResources(
                name,
                Amount(_cpu(req.get("cpu")), _mem(req.get("memory"))),
                Amount(_cpu(lim.get("cpu")), _mem(lim.get("memory"))),
            )
        )
        if name in explicit:
            value = explicit_peak(explicit[name].get("cpu"), explicit[name].get("memory"), value)
        if value != Amount():
            peaks[name] = (value.cpu, value.memory)
    return peaks


def pod_peak(pod: Body, peaks: Mapping[str, tuple[int | None, int | None]]) -> Resources:
    """The pod's requests at peak, as the operator sets them (planning/levels.py) keeping QoS:
    Guaranteed pods move limits with requests; otherwise limits cap the peak, and when that
    would make requests equal limits everywhere (Guaranteed), the first CPU request stops 1m short."""
    guaranteed = (pod.get("status") or {}).get("qosClass") == "Guaranteed"
    targets: list[tuple[int, int, int | None, int | None]] = []
    for c in (pod.get("spec") or {}).get("containers") or []:
        now = container_requests(c)
        cpu, mem = peaks.get(str(c.get("name")), (None, None))
        lim = (c.get("resources") or {}).get("limits") or {}
        lim_cpu, lim_mem = _cpu(lim.get("cpu")), _mem(lim.get("memory"))
        cpu = now.cpu if cpu is None else cpu
        mem = now.memory if mem is None else mem
        if not guaranteed:
            cpu = cpu if lim_cpu is None else min(cpu, lim_cpu)
            mem = mem if lim_mem is None else min(mem, lim_mem)
        targets.append((cpu, mem, lim_cpu, lim_mem))
    if not guaranteed and targets and all(t[0] == t[2] and t[1] == t[3] for t in targets):
        cpu, mem, lim_cpu, lim_mem = targets[0]
        targets[0] = (max(1, cpu - 1), mem, lim_cpu, lim_mem)
    total = Resources()
    for cpu, mem, _, _ in targets:
        total += Resources(cpu, mem)
    return total


@dataclass(frozen=True)
class Capacity:
    now: Resources = Resources()
    peak: Resources = Resources()

    @property
    def cpu_saved(self) -> float | None:
        return None if self.peak.cpu <= 0 else max(0.0, 1 - self.now.cpu / self.peak.cpu)

    @property
    def memory_saved(self) -> float | None:
        return None if self.peak.memory <= 0 else max(0.0, 1 - self.now.memory / self.peak.memory)


def capacity(service: Body, workload: Body | None, pods: Iterable[Body]) -> Capacity:
    peaks = container_peaks(service, workload)
    now = peak = Resources()
    for pod in pods:
        if pod_active(pod) and pod_requests(pod) != Resources():
            now += pod_requests(pod)
            peak += pod_peak(pod, peaks)
    return Capacity(now, peak)


# ---------------------------------------------------------------- workloads and their pods


def selector_matches(selector: Body | None, labels: Mapping[str, str]) -> bool:
    """A LabelSelector (matchLabels and matchExpressions); an empty selector matches nothing,
    as a workload without a selector owns no pods."""
    if not selector:
        return False
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for expr in selector.get("matchExpressions") or []:
        k, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In" and labels.get(k) not in values:
            return False
        if op == "NotIn" and k in labels and labels[k] in values:
            return False
        if op == "Exists" and k not in labels:
            return False
        if op == "DoesNotExist" and k in labels:
            return False
    return bool(selector.get("matchLabels") or selector.get("matchExpressions"))


def workload_of(service: Body, workloads: Mapping[tuple[str, str, str], Body]) -> Body | None:
    ref = (service.get("spec") or {}).get("workload") or {}
    return workloads.get((key_of(service)[0], ref.get("kind", "Deployment"), ref.get("name", "")))


def pods_of(workload: Body | None, pods: Iterable[Body]) -> list[Body]:
    if workload is None:
        return []
    ns = _meta(workload).get("namespace")
    selector = (workload.get("spec") or {}).get("selector")
    return [
        p
        for p in pods
        if _meta(p).get("namespace") == ns and selector_matches(selector, _meta(p).get("labels") or {})
    ]


# ---------------------------------------------------------------- the operator's capacity metric


@dataclass(frozen=True)
class SavedMetric:
    """heady_capacity_saved_ratio as the operator exports it, or why it is not there."""

    by_service: Mapping[Key, float] = field(default_factory=dict)
    total: float | None = None
    source: str | None = None
    reason: str | None = None

    @property
    def available(self) -> bool:
        return self.reason is None

    def of(self, key: Key) -> float | None:
        return self.by_service.get(key)


def parse_saved_metric(text: str, source: str) -> SavedMetric:
    """Read the ratio from Prometheus text. Labels namespace+service give one service; a sample
    without them is the whole operator's. With a `resource` label, cpu is the one shown."""
    by_service: dict[Key, float] = {}
    total: float | None = None
    found = False
    try:
        families = list(text_string_to_metric_families(text))
    except ValueError as exc:
        return SavedMetric(reason=f"{source} is not Prometheus text ({exc})")
    for family in families:
        if family.name != CAPACITY_METRIC:
            continue
        for sample in family.samples:
            if sample.name != CAPACITY_METRIC:
                continue
            labels = sample.labels
            if labels.get("resource", "cpu") != "cpu":
                continue
            found = True
            ns, svc = labels.get("namespace"), labels.get("service")
            if ns and svc:
                by_service[(ns, svc)] = float(sample.value)
            elif total is None:
                total = float(sample.value)
    if not found:
        names = {f.name for f in families}
        hint = "this operator version does not export it"
        if {"heady_capacity_requests", "heady_capacity_peak_requests"} <= names:
            # Those two are gauges of now; an hour needs Prometheus' history, not one scrape.
            hint += (
                "; it has heady_capacity_requests and heady_capacity_peak_requests, so Prometheus can answer: "
                "1 - sum(avg_over_time(heady_capacity_requests[1h])) / sum(avg_over_time(heady_capacity_peak_requests[1h]))"
            )
        return SavedMetric(
            source=source, reason=f"the operator's metrics at {source} have no {CAPACITY_METRIC} ({hint})"
        )
    return SavedMetric(by_service=by_service, total=total, source=source)


# ---------------------------------------------------------------- top


def _priority(service: Body) -> tuple[str, int | None]:
    name = str((service.get("spec") or {}).get("priority") or PriorityLevel.MEDIUM.value)
    value = (service.get("status") or {}).get("priorityValue")
    if value is None and name in {p.value for p in PriorityLevel}:
        value = PRIORITY_VALUES[PriorityLevel(name)]
    return name, value


def top_items(
    services: Sequence[Body],
    workloads: Mapping[tuple[str, str, str], Body],
    pods: Sequence[Body],
    metric: SavedMetric,
    now: datetime,
) -> list[dict[str, Any]]:
    items = []
    for svc in sorted(services, key=key_of):
        ns, name = key_of(svc)
        st = svc.get("status") or {}
        workload = workload_of(svc, workloads)
        cap = capacity(svc, workload, pods_of(workload, pods))
        ready = condition(svc, "Ready") or {}
        degraded = condition(svc, "Degraded") or {}
        prio, value = _priority(svc)
        items.append(
            {
                "namespace": ns,
                "name": name,
                "level": st.get("level") or "Unknown",
                "priority": prio,
                "priorityValue": value,
                "podsAtPeak": st.get("podsAtPeak", 0),
                "podsTotal": st.get("podsTotal", 0),
                "waitingReason": st.get("waitingReason"),
                "ready": ready.get("status", "Unknown"),
                "reason": ready.get("reason"),
                "degraded": degraded.get("status") == "True",
                "degradedMessage": degraded.get("message") if degraded.get("status") == "True" else None,
                "escalatedSince": st.get("escalatedSince"),
                "restingUntil": st.get("restingUntil"),
                "requests": {"cpu": format_cpu(cap.now.cpu), "memory": format_memory(cap.now.memory)},
                "peakRequests": {"cpu": format_cpu(cap.peak.cpu), "memory": format_memory(cap.peak.memory)},
                "capacitySavedNow": {"cpu": _round(cap.cpu_saved), "memory": _round(cap.memory_saved)},
                "capacitySavedLastHour": _round(metric.of((ns, name))),
                "age": _ago(now, parse_time(_meta(svc).get("creationTimestamp"))),
            }
        )
    return items


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def top_data(items: list[dict[str, Any]], metric: SavedMetric) -> dict[str, Any]:
    return {
        "kind": "HeadyTop",
        "items": items,
        "capacitySavedLastHour": {
            "available": metric.available,
            "total": metric.total,
            "source": metric.source,
            "reason": metric.reason,
        },
    }


def render_top(data: Mapping[str, Any], wide: bool, all_namespaces: bool, colour: bool) -> str:
    items = data["items"]
    if not items:
        return ""
    headers = ["NAMESPACE"] if all_namespaces else []
    headers += ["NAME", "LEVEL", "PRIORITY", "AT-PEAK", "CPU-SAVED", "SAVED-1H"]
    if wide:
        headers += ["VALUE", "READY", "REASON", "MEM-SAVED", "REQUESTS", "PEAK", "ESCALATED", "AGE"]
    headers += ["WAITING"]
    rows = []
    for it in items:
        saved = it["capacitySavedNow"]
        row: list[Cell | str] = [it["namespace"]] if all_namespaces else []
        row += [
            Cell(it["name"], "bold"),
            Cell(it["level"], LEVEL_STYLE.get(it["level"])),
            Cell(
                it["priority"], "magenta" if (it["priorityValue"] or 0) >= HIGH_PRIORITY_THRESHOLD else None
            ),
            f"{it['podsAtPeak']}/{it['podsTotal']}",
            percent(saved["cpu"]),
            percent(it["capacitySavedLastHour"]),
        ]
        if wide:
            row += [
                str(it["priorityValue"] if it["priorityValue"] is not None else "-"),
                Cell(it["ready"], "green" if it["ready"] == "True" else "red"),
                it["reason"] or "-",
                percent(saved["memory"]),
                f"{it['requests']['cpu']}/{it['requests']['memory']}",
                f"{it['peakRequests']['cpu']}/{it['peakRequests']['memory']}",
                it["escalatedSince"] or "-",
                it["age"],
            ]
        waiting = it["waitingReason"]
        if it["degraded"]:
            row.append(Cell(f"Degraded: {it['degradedMessage']}", "red"))
        else:
            row.append(Cell(waiting, "yellow") if waiting else "-")
        rows.append(row)
    return table(headers, rows, colour)


def top_note(data: Mapping[str, Any]) -> str | None:
    """Why SAVED-1H is n/a, for -o wide (on stderr, so the table stays parseable)."""
    info = data["capacitySavedLastHour"]
    if info["available"]:
        return None
    return f"SAVED-1H is n/a: {info['reason']}. CPU-SAVED is now, from pods' requests vs peak."


# ---------------------------------------------------------------- explain


@dataclass(frozen=True)
class ExplainInput:
    service: Body
    workload: Body | None
    pods: Sequence[Body]
    signals: Sequence[Body]
    # Cluster-wide HeadyServices for the high-priority slots; None with the reason when unreadable.
    all_services: Sequence[Body] | None
    nodes: Mapping[str, Body]
    node_pods: Mapping[str, Sequence[Body]]
    metric: SavedMetric
    now: datetime
    max_high: int = 2
    threshold: float = 0.1
    default_ttl_seconds: int = 60
    unreadable: Mapping[str, str] = field(default_factory=dict)


def signal_window(signal: Body, default_ttl_seconds: int) -> tuple[datetime | None, datetime | None]:
    spec, st = signal.get("spec") or {}, signal.get("status") or {}
    start = parse_time(spec.get("startTime")) or parse_time(_meta(signal).get("creationTimestamp"))
    end = parse_time(st.get("expiresAt")) or parse_time(spec.get("expiresAt"))
    if end is None and start is not None:
        end = start + timedelta(seconds=int(spec.get("ttlSeconds") or default_ttl_seconds))
    return start, end


def _signals(inp: ExplainInput) -> list[dict[str, Any]]:
    name = key_of(inp.service)[1]
    out = []
    for sig in inp.signals:
        spec = sig.get("spec") or {}
        if name not in (spec.get("services") or []):
            continue
        start, end = signal_window(sig, inp.default_ttl_seconds)
        expired = bool((sig.get("status") or {}).get("expired")) or (end is not None and end <= inp.now)
        intensity = float(spec.get("intensity", 1.0))
        if expired:
            state = "expired"
        elif start is not None and start > inp.now:
            state = "scheduled"
        elif intensity < inp.threshold:
            state = "below threshold"
        else:
            state = "live"
        out.append(
            {
                "name": _meta(sig).get("name"),
                "intensity": intensity,
                "source": spec.get("source", "api"),
                "user": spec.get("user"),
                "start": start.isoformat() if start else None,
                "expiresAt": end.isoformat() if end else None,
                "expires": _until(inp.now, end),
                "state": state,
            }
        )
    out.sort(key=lambda s: (s["state"] == "expired", s["expiresAt"] or ""), reverse=False)
    return out


def _slots(inp: ExplainInput) -> dict[str, Any]:
    _, value = _priority(inp.service)
    mine = (value or 0) >= HIGH_PRIORITY_THRESHOLD
    if inp.all_services is None:
        return {
            "applies": mine,
            "max": inp.max_high,
            "holders": None,
            "reason": inp.unreadable.get("services", "cluster-wide HeadyServices unreadable"),
        }
    holders = []
    for svc in sorted(inp.all_services, key=key_of):
        _, v = _priority(svc)
        since = parse_time((svc.get("status") or {}).get("escalatedSince"))
        if (v or 0) >= HIGH_PRIORITY_THRESHOLD and since is not None:
            ns, name = key_of(svc)
            holders.append(
                {
                    "namespace": ns,
                    "name": name,
                    "priority": _priority(svc)[0],
                    "since": since.isoformat(),
                    "for": _ago(inp.now, since),
                }
            )
    return {"applies": mine, "max": inp.max_high, "holders": holders, "reason": None}


def _node_room(inp: ExplainInput) -> list[dict[str, Any]]:
    peaks = container_peaks(inp.service, inp.workload)
    by_node: dict[str, list[Body]] = {}
    for pod in inp.pods:
        node = (pod.get("spec") or {}).get("nodeName")
        if node and pod_active(pod):
            by_node.setdefault(node, []).append(pod)
    rows = []
    for node, mine in sorted(by_node.items()):
        body = inp.nodes.get(node)
        if body is None:
            rows.append(
                {"node": node, "pods": len(mine), "error": inp.unreadable.get(f"node/{node}", "unreadable")}
            )
            continue
        alloc = (body.get("status") or {}).get("allocatable") or {}
        allocatable = Resources(_cpu(alloc.get("cpu")) or 0, _mem(alloc.get("memory")) or 0)
        requested = Resources()
        for p in inp.node_pods.get(node, ()):
            if pod_active(p):
                requested += pod_requests(p)
        need = Resources()
        for p in mine:
            d = pod_peak(p, peaks) - pod_requests(p)
            need += Resources(max(d.cpu, 0), max(d.memory, 0))
        free = allocatable - requested
        rows.append(
            {
                "node": node,
                "pods": len(mine),
                "allocatable": allocatable.text(),
                "requested": requested.text(),
                "free": free.text(),
                "neededForPeak": need.text(),
                "fits": need.cpu <= free.cpu and need.memory <= free.memory,
            }
        )
    return rows


def _verdict(inp: ExplainInput, signals: list[dict[str, Any]]) -> tuple[str, str]:
    """One line: why the service is (not) at peak, and what kind of answer it is."""
    st = inp.service.get("status") or {}
    level = st.get("level") or "Unknown"
    ready = condition(inp.service, "Ready") or {}
    degraded = condition(inp.service, "Degraded") or {}
    resting = parse_time(st.get("restingUntil"))
    if not st:
        return "no status yet: the operator has not seen this HeadyService (is it running?)", "unmanaged"
    if level == "Unknown":
        return f"not managed: {ready.get('message') or ready.get('reason') or 'unknown'}", "unmanaged"
    if st.get("waitingReason"):
        why = str(st["waitingReason"]).removeprefix("waiting: ")
        return f"wants peak but waits: {why}", "waiting"
    if resting is not None and resting > inp.now and not st.get("escalatedSince"):
        # (A resting service a user brought back to peak, nothing else waiting, is at peak.)
        return (
            f"resting after maxPeakSeconds until {resting.isoformat()} ({_until(inp.now, resting)})",
            "resting",
        )
    if degraded.get("status") == "True":
        return f"degraded: {degraded.get('message')}", "degraded"
    if st.get("escalatedSince"):
        verb = "at peak" if level == "Peak" else f"escalated, {st.get('podsAtPeakSummary', '?')} pods at peak"
        return f"{verb}: {ready.get('message', '')}".rstrip(": "), "peak"
    live = [s for s in signals if s["state"] == "live"]
    if live:
        return f"at {level.lower()} with {len(live)} live signal(s): {ready.get('message', '')}", "signalled"
    return f"at {level.lower()}: {ready.get('message', 'no attention')}", "baseline"


def explain_data(inp: ExplainInput) -> dict[str, Any]:
    svc = inp.service
    ns, name = key_of(svc)
    st, spec = svc.get("status") or {}, svc.get("spec") or {}
    prio, value = _priority(svc)
    signals = _signals(inp)
    verdict, verdict_kind = _verdict(inp, signals)
    cap = capacity(svc, inp.workload, inp.pods)
    attention_until = parse_time(st.get("attentionUntil"))
    cooldown = int(spec.get("cooldownSeconds", 30))
    cooldown_end = attention_until + timedelta(seconds=cooldown) if attention_until else None
    conflicts = [
        {
            "type": c.get("type"),
            "status": c.get("status"),
            "reason": c.get("reason"),
            "message": c.get("message"),
        }
        for c in st.get("conditions") or []
        if "Conflict" in str(c.get("type"))
    ]
    return {
        "kind": "HeadyExplain",
        "namespace": ns,
        "name": name,
        "level": st.get("level") or "Unknown",
        "priority": prio,
        "priorityValue": value,
        "podsAtPeak": st.get("podsAtPeak", 0),
        "podsTotal": st.get("podsTotal", 0),
        "verdict": verdict,
        "verdictKind": verdict_kind,
        "signals": signals,
        "threshold": inp.threshold,
        "cooldown": {
            "cooldownSeconds": cooldown,
            "maxPeakSeconds": int(spec.get("maxPeakSeconds", 900)),
            "attentionUntil": st.get("attentionUntil"),
            "cooldownUntil": cooldown_end.isoformat() if cooldown_end else None,
            "inCooldown": bool(
                cooldown_end and attention_until and attention_until <= inp.now < cooldown_end
            ),
            "escalatedSince": st.get("escalatedSince"),
            "restingUntil": st.get("restingUntil"),
        },
        "highPrioritySlots": _slots(inp),
        "nodes": _node_room(inp),
        "conflicts": conflicts,
        "conditions": {
            t: {k: (condition(svc, t) or {}).get(k) for k in ("status", "reason", "message")}
            for t in ("Ready", "Progressing", "Degraded")
        },
        "capacitySaved": {
            "now": {"cpu": _round(cap.cpu_saved), "memory": _round(cap.memory_saved)},
            "lastHour": _round(inp.metric.of((ns, name))),
            "lastHourReason": inp.metric.reason,
        },
        "now": inp.now.isoformat(),
    }


def _status_style(status: str | None, good: str) -> str:
    return "green" if status == good else ("red" if status in ("True", "False") else "yellow")


def render_explain(data: Mapping[str, Any], colour: bool, now: datetime) -> str:
    def c(text: str, style: str | None) -> str:
        return paint(text, style, colour)

    out: list[str] = []
    level = data["level"]
    out.append(
        f"{c('HeadyService', 'bold')} {data['namespace']}/{c(data['name'], 'bold')}   "
        f"level {c(level, LEVEL_STYLE.get(level))}   priority {data['priority']} ({data['priorityValue']})   "
        f"pods at peak {data['podsAtPeak']}/{data['podsTotal']}"
    )
    style = VERDICT_STYLE.get(data["verdictKind"])
    out.append(f"{c('Why:', 'bold')} {c(data['verdict'], style)}")

    sigs = data["signals"]
    live = [s for s in sigs if s["state"] != "expired"]
    expired = [s for s in sigs if s["state"] == "expired"]
    out.append(
        f"{c('Signals:', 'bold')} {len(live)} not expired, {len(expired)} expired "
        f"(escalation threshold {data['threshold']})"
    )
    for s in live[:5]:
        user = f" user {s['user']}" if s["user"] else ""
        sstyle = "green" if s["state"] == "live" else "yellow"
        out.append(
            f"  {s['name']}  {c(s['state'], sstyle)}  intensity {s['intensity']:.2f}  source {s['source']}{user}  "
            f"expires {s['expires']}"
        )
    if len(live) > 5:
        out.append(f"  ... and {len(live) - 5} more")
    if expired:
        last = max(expired, key=lambda s: s["expiresAt"] or "")
        out.append(c(f"  last expired: {last['name']} ({last['expires']})", "dim"))

    cd = data["cooldown"]
    parts = [f"cooldown {cd['cooldownSeconds']}s, max at peak {cd['maxPeakSeconds']}s"]
    if cd["inCooldown"]:
        parts.append(c(f"in cooldown until {cd['cooldownUntil']}", "yellow"))
    elif cd["cooldownUntil"]:
        parts.append(f"attention ended {cd['attentionUntil']}, cooldown until {cd['cooldownUntil']}")
    parts.append(f"escalated since {cd['escalatedSince'] or '-'}")
    rest = parse_time(cd["restingUntil"])
    if rest is not None and rest > now:
        parts.append(c(f"resting until {cd['restingUntil']}", "yellow"))
    else:
        parts.append("not resting")
    out.append(f"{c('Cooldown:', 'bold')} " + "; ".join(parts))

    slots = data["highPrioritySlots"]
    applies = "" if slots["applies"] else f" (not subject to them: priority {data['priority']})"
    if slots["holders"] is None:
        out.append(f"{c('High-priority slots:', 'bold')} unknown: {slots['reason']}{applies}")
    else:
        held = len(slots["holders"])
        who = ", ".join(
            f"{h['namespace']}/{h['name']} ({h['priority']}, {h['for']})" for h in slots["holders"]
        )
        cap_text = f"{held}/{slots['max']} held"
        full = held >= slots["max"] and slots["applies"]
        out.append(
            f"{c('High-priority slots:', 'bold')} {c(cap_text, 'red' if full else None)}"
            f"{': ' + who if who else ''}{applies}"
        )

    out.append(f"{c('Node room:', 'bold')}" + ("" if data["nodes"] else " no running pods on nodes"))
    if data["nodes"]:
        rows: list[list[Cell | str]] = []
        for n in data["nodes"]:
            if "error" in n:
                rows.append([n["node"], str(n["pods"]), "?", "?", "?", "?", Cell(n["error"], "red")])
                continue
            rows.append(
                [
                    n["node"],
                    str(n["pods"]),
                    n["allocatable"],
                    n["requested"],
                    n["free"],
                    n["neededForPeak"],
                    Cell("fits", "green") if n["fits"] else Cell("no room", "red"),
                ]
            )
        tbl = table(["node", "pods", "allocatable", "requested", "free", "peak needs", "room"], rows, colour)
        out.extend("  " + line for line in tbl.rstrip("\n").split("\n"))

    if data["conflicts"]:
        for cf in data["conflicts"]:
            out.append(
                f"{c('Conflict:', 'bold')} {c(str(cf['status']), 'red' if cf['status'] == 'True' else 'green')} "
                f"{cf['reason'] or ''}: {cf['message'] or ''}"
            )
    else:
        out.append(f"{c('Conflicts:', 'bold')} none")
    for t, good in (("Degraded", "False"), ("Progressing", "False"), ("Ready", "True")):
        cond = data["conditions"][t]
        if cond["status"] is None:
            out.append(f"{c(t + ':', 'bold')} -")
            continue
        out.append(
            f"{c(t + ':', 'bold')} {c(cond['status'], _status_style(cond['status'], good))} "
            f"{cond['reason'] or ''}: {cond['message'] or ''}"
        )
    cap = data["capacitySaved"]
    last = percent(cap["lastHour"]) if cap["lastHour"] is not None else "n/a"
    why = f" ({cap['lastHourReason']})" if cap["lastHourReason"] else ""
    out.append(
        f"{c('Capacity saved:', 'bold')} now cpu {percent(cap['now']['cpu'])}, memory {percent(cap['now']['memory'])} "
        f"of peak requests; last hour {last}{why}"
    )
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------- arenas


def _arena_state(session: Body) -> str:
    def true(t: str) -> bool:
        return (condition(session, t) or {}).get("status") == "True"

    if (condition(session, "Degraded") or {}).get("reason") == "InvalidSpec" and true("Degraded"):
        return "Invalid"
    if true("Finished"):
        return "Finished"
    if true("Admitted"):
        return "Running"
    if true("Preempted"):
        return "Preempted"
    if condition(session, "Admitted") is not None:
        return "Queued"
    return "Pending"


ARENA_STYLE = {
    "Running": "green",
    "Queued": "yellow",
    "Preempted": "magenta",
    "Invalid": "red",
    "Finished": "dim",
}
_ARENA_ORDER = {"Queued": 0, "Preempted": 0, "Pending": 1, "Running": 2, "Invalid": 3, "Finished": 4}


def arena_items(sessions: Sequence[Body], now: datetime) -> list[dict[str, Any]]:
    items = []
    for s in sessions:
        ns, name = key_of(s)
        st, spec = s.get("status") or {}, s.get("spec") or {}
        state = _arena_state(s)
        admitted = condition(s, "Admitted") or {}
        preempted = condition(s, "Preempted") or {}
        compute = ((st.get("resourcePlan") or {}).get("compute")) or {}
        queued = parse_time(st.get("queuedAt"))
        message = admitted.get("message") or (condition(s, "Degraded") or {}).get("message")
        reason = admitted.get("reason")
        if state == "Preempted":
            reason = preempted.get("reason") or reason
        items.append(
            {
                "namespace": ns,
                "name": name,
                "position": st.get("queuePosition") if state in ("Queued", "Preempted") else None,
                "state": state,
                "priority": spec.get("priority", PriorityLevel.MEDIUM.value),
                "priorityValue": st.get("priorityValue"),
                "cpu": compute.get("cpu"),
                "memory": compute.get("memory"),
                "allocation": st.get("allocation"),
                "queuedAt": st.get("queuedAt"),
                "admittedAt": st.get("admittedAt"),
                "waiting": _ago(now, queued) if state in ("Queued", "Preempted", "Pending") else "-",
                "reason": reason,
                "message": message,
                "risk": (st.get("risk") or {}).get("overall"),
            }
        )

    def order(it: dict[str, Any]) -> tuple[int, int, str, str, str]:
        return (
            _ARENA_ORDER[it["state"]],
            it["position"] if it["position"] is not None else 1 << 30,
            it["admittedAt"] or it["queuedAt"] or "",
            it["namespace"],
            it["name"],
        )

    return sorted(items, key=order)


def render_arenas(items: Sequence[Mapping[str, Any]], wide: bool, all_namespaces: bool, colour: bool) -> str:
    if not items:
        return ""
    headers = (
        ["POS"] + (["NAMESPACE"] if all_namespaces else []) + ["NAME", "STATE", "PRIORITY", "CPU", "MEMORY"]
    )
    headers += ["WAITING", "REASON"]
    if wide:
        headers += ["PRIO-VALUE", "RISK", "ALLOCATION", "ADMITTED"]  # not spec.value (ROI)
    headers += ["MESSAGE"]
    rows = []
    for it in items:
        row: list[Cell | str] = [str(it["position"]) if it["position"] is not None else "-"]
        if all_namespaces:
            row.append(it["namespace"])
        row += [
            Cell(it["name"], "bold"),
            Cell(it["state"], ARENA_STYLE.get(it["state"])),
            it["priority"],
            it["cpu"] or "-",
            it["memory"] or "-",
            it["waiting"],
            it["reason"] or "-",
        ]
        if wide:
            alloc = it["allocation"] or {}
            row += [
                str(it["priorityValue"] if it["priorityValue"] is not None else "-"),
                f"{it['risk']:.2f}" if isinstance(it["risk"], (int, float)) else "-",
                f"{alloc.get('cpu', '-')}/{alloc.get('memory', '-')}" if alloc else "-",
                it["admittedAt"] or "-",
            ]
        row.append(it["message"] or "-")
        rows.append(row)
    return table(headers, rows, colour)


# ---------------------------------------------------------------- focus


def focus_signal(
    namespace: str,
    services: Sequence[str],
    intensity: float,
    ttl_seconds: int,
    user: str | None,
    source: str,
) -> dict[str, Any]:
    """The AttentionSignal `kubectl heady focus` creates; the apiserver picks the name suffix."""
    spec: dict[str, Any] = {
        "services": list(services),
        "intensity": intensity,
        "source": source,
        "ttlSeconds": ttl_seconds,
    }
    if user:
        spec["user"] = user
    # generateName's prefix is cut to fit; a 40-character stem keeps the name readable.
    stem = f"focus-{services[0]}"[:40].rstrip("-.")
    return {
        "apiVersion": "heady.io/v1alpha1",
        "kind": "AttentionSignal",
        "metadata": {
            "generateName": f"{stem}-",
            "namespace": namespace,
            "labels": {"app.kubernetes.io/managed-by": "kubectl-heady"},
        },
        "spec": spec,
    }
