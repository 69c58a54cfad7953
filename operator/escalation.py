"""The escalation controller: keeps every managed pod at the level the planner decides.

Watch events (fed by thin kopf handlers, or by the Redis/HTTP ingest) update an in-memory view
of services, workloads, pods, nodes and attention signals and wake one loop. The loop runs the
pure planner over the whole view (the high-priority cap and node capacity couple services) and
applies what changed: pod resizes straight through the async client, then status, Events and
metrics. Nothing waits for kopf's change-detection: a signal reaches the pods in one plan.

State that must survive a restart lives in the cluster: escalation times in each HeadyService's
status, pod levels in the pods themselves, the transition model in a ConfigMap.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from kubernetes_asyncio.client.exceptions import ApiException
from pydantic import ValidationError

from heady_operator import metrics
from heady_operator.config import Settings
from heady_operator.kube import convert
from heady_operator.kube.client import Kube
from heady_operator.kube.events import post_event
from heady_operator.kube.status import delete_object, patch_status
from heady_operator.kube.tunnel import write_tunnel_config
from heady_operator.models.attention import AttentionSignalSpec
from heady_operator.models.common import (
    API_VERSION,
    PRIORITY_VALUES,
    parse_time,
    rfc3339,
    set_condition,
    utcnow,
)
from heady_operator.models.headyservice import HeadyServiceSpec
from heady_operator.planning.levels import (
    Amount,
    ContainerResources,
    Level,
    Memory,
    Node,
    Plan,
    Pod,
    PodDecision,
    PodKey,
    Policy,
    QoS,
    Reason,
    Service,
    ServiceDecision,
    ServiceKey,
    Signal,
    World,
    plan_levels,
    qos_of,
)
from heady_operator.planning.prediction import TransitionModel
from heady_operator.planning.tunnel import Route, TunnelConfig, tunnel_config

log = logging.getLogger(__name__)
Body = Mapping[str, Any]


@dataclass
class ServiceEntry:
    body: dict[str, Any]
    spec: HeadyServiceSpec | None
    error: str | None
    last_status: dict[str, Any] = field(default_factory=dict)


@dataclass
class SignalEntry:
    body: dict[str, Any]
    signal: Signal | None
    error: str | None
    received: float  # monotonic time the operator first saw it (latency is measured from here)
    path: str = "object"
    status_written: str = ""


@dataclass
class PodEntry:
    body: dict[str, Any]
    labels: dict[str, str]
    containers: tuple[ContainerResources, ...]
    qos: QoS
    node: str | None
    running: bool
    resize_condition: tuple[str, str] | None


@dataclass
class Inflight:
    target: tuple[ContainerResources, ...]
    started: float


class EscalationController:
    def __init__(
        self,
        settings: Settings,
        kube: Kube | None,
        clock: Callable[[], datetime] = utcnow,
        model: TransitionModel | None = None,
    ) -> None:
        self.settings = settings
        self.kube = kube
        self.clock = clock
        self.policy = Policy(
            attention_threshold=settings.attention_threshold,
            max_high_escalations=settings.max_high_priority_escalations,
            utilization_threshold=settings.utilization_escalation_threshold,
        )
        self.services: dict[ServiceKey, ServiceEntry] = {}
        self.workloads: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.pods: dict[PodKey, PodEntry] = {}
        self.nodes: dict[str, Node] = {}
        self.signals: dict[tuple[str, str], SignalEntry] = {}
        self.memory: dict[ServiceKey, Memory] = {}
        self.infeasible: dict[PodKey, tuple[ContainerResources, ...]] = {}
        self.failed: dict[PodKey, tuple[tuple[ContainerResources, ...], str, float]] = {}
        self.inflight: dict[PodKey, Inflight] = {}
        self.attempts: dict[PodKey, int] = {}
        self.model = model or TransitionModel()
        self.last_plan: Plan | None = None
        self.owners: dict[PodKey, ServiceKey] = {}
        self.pods_of: dict[ServiceKey, list[PodKey]] = {}
        self.last_loop = time.monotonic()
        self._wake = asyncio.Event()
        self._decisions: dict[ServiceKey, ServiceDecision] = {}
        self._pending_latency: dict[ServiceKey, tuple[float, str]] = {}
        self._resize_sem = asyncio.Semaphore(64)
        self._tasks: set[asyncio.Task[None]] = set()
        self._synced = False
        # Which service owns which pod changes only when services, workloads or pod labels do.
        self._topology_version = 0
        self._owner_cache_key = -1
        self._owner_cache: dict[PodKey, tuple[dict[str, str], ServiceKey | None]] = {}
        self._latest_report: tuple[Plan, dict[ServiceKey, str]] | None = None
        self.tunnel_state: dict[ServiceKey, tuple[bool, str, str]] = {}
        self._tunnel_digest = ""
        self._reporter: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ watch events in

    def kick(self) -> None:
        self._wake.set()

    def mark_synced(self) -> None:
        """Plans wait until the initial lists are in, so a restart never relaxes what it has not seen."""
        self._synced = True
        self.kick()

    def on_service(self, event: str, body: Body) -> None:
        meta = body["metadata"]
        key = (meta["namespace"], meta["name"])
        known = self.services.get(key)
        if (
            known is None
            or event == "DELETED"
            or known.body.get("spec", {}).get("workload") != (body.get("spec") or {}).get("workload")
        ):
            self._topology_version += 1
        if event == "DELETED":
            # Pods are left where they are: at peak stays at peak (safe), nothing is taken away.
            self.services.pop(key, None)
            self.memory.pop(key, None)
            self.kick()
            return
        spec: HeadyServiceSpec | None
        try:
            spec = HeadyServiceSpec.model_validate(body.get("spec") or {})
            error = None
        except ValidationError as exc:
            spec, error = None, _validation_message(exc)
        status = dict(body.get("status") or {})
        entry = self.services.get(key)
        if entry is None:
            self.memory.setdefault(key, _memory_from_status(status))
            entry = ServiceEntry(dict(body), spec, error, status)
            self.services[key] = entry
        else:
            entry.body, entry.spec, entry.error = dict(body), spec, error
        self.kick()

    def on_workload(self, event: str, body: Body) -> None:
        meta = body["metadata"]
        old = self.workloads.get((meta["namespace"], body["kind"], meta["name"]))
        if (
            old is None
            or event == "DELETED"
            or old.get("spec", {}).get("selector") != body.get("spec", {}).get("selector")
        ):
            self._topology_version += 1
        key = (meta["namespace"], body["kind"], meta["name"])
        if event == "DELETED":
            self.workloads.pop(key, None)
        else:
            self.workloads[key] = dict(body)
        self.kick()

    def on_node(self, event: str, body: Body) -> None:
        name = body["metadata"]["name"]
        if event == "DELETED":
            self.nodes.pop(name, None)
        else:
            self.nodes[name] = Node(name, convert.amount(body.get("status", {}).get("allocatable")))
        self.kick()

    def on_pod(self, event: str, body: Body) -> None:
        meta = body["metadata"]
        key = (meta["namespace"], meta["name"])
        if event == "DELETED" or meta.get("deletionTimestamp"):
            self.pods.pop(key, None)
            self.infeasible.pop(key, None)
            self.failed.pop(key, None)
            self.kick()
            return
        prev = self.pods.get(key)
        if prev is not None and _older(
            meta.get("resourceVersion"), prev.body.get("metadata", {}).get("resourceVersion")
        ):
            # A watch event can arrive after the resize response that already told us more:
            # going back to it would plan the same resize again.
            return
        containers = convert.pod_containers(body)
        qos = convert.pod_qos(body) or qos_of(containers)
        phase = body.get("status", {}).get("phase")
        cond = convert.resize_condition(body)
        self.pods[key] = PodEntry(
            dict(body),
            dict(meta.get("labels") or {}),
            containers,
            qos,
            body.get("spec", {}).get("nodeName"),
            phase == "Running",
            cond,
        )
        if cond and cond[0] == "PodResizePending" and cond[1] == "Infeasible":
            if key not in self.infeasible:
                metrics.RESIZE_FAILURES.labels("Infeasible").inc()
            self.infeasible[key] = containers
        elif cond and cond[1] == "Deferred" and (prev is None or prev.resize_condition != cond):
            metrics.RESIZE_FAILURES.labels("Deferred").inc()
        self.kick()

    def on_signal(self, event: str, body: Body, path: str = "object") -> None:
        meta = body["metadata"]
        key = (meta["namespace"], meta["name"])
        if event == "DELETED":
            self.signals.pop(key, None)
            self.kick()
            return
        existing = self.signals.get(key)
        received = existing.received if existing else time.monotonic()
        try:
            spec = AttentionSignalSpec.model_validate(body.get("spec") or {})
            created = parse_time(meta.get("creationTimestamp")) or self.clock()
            start, end = spec.window(created, self.settings.default_signal_ttl_seconds)
            sig = Signal(
                meta["name"],
                tuple((meta["namespace"], s) for s in spec.services),
                spec.intensity,
                spec.source,
                start,
                end,
                spec.user,
            )
            entry = SignalEntry(dict(body), sig, None, received, path)
        except ValidationError as exc:
            entry = SignalEntry(dict(body), None, _validation_message(exc), received, path)
        if existing is not None:
            entry.status_written = existing.status_written
        self.signals[key] = entry
        if existing is None and entry.signal is not None:
            metrics.ATTENTION_EVENTS.labels(path, entry.signal.source).inc()
            now = self.clock()
            if entry.signal.active(now):
                if entry.signal.intensity >= self.policy.attention_threshold:
                    # Only attention that can escalate starts the signal-to-resize clock.
                    for svc in entry.signal.services:
                        self._pending_latency[svc] = (received, entry.signal.source)
                self._observe_transition(entry.signal, now)
        self.kick()

    # ------------------------------------------------------------------ prediction

    def _observe_transition(self, sig: Signal, now: datetime) -> None:
        if sig.source == "predictor":
            return
        for svc in sig.services:
            outcome = self.model.observe(sig.user or "", svc, now)
            if outcome is not None:
                metrics.PREDICTIONS.labels(outcome).inc()
        if not self.settings.prediction_enabled:
            return
        for svc in sig.services:
            guess = self.model.predict(
                svc, self.settings.prediction_threshold, self.settings.prediction_min_observations
            )
            if guess is None or guess[0] in sig.services or guess[0] not in self.services:
                continue
            target, probability = guess
            name = f"predict-{target[1]}-{int(now.timestamp() * 1000)}"[:253]
            pred = Signal(
                name,
                (target,),
                min(1.0, probability),
                "predictor",
                now,
                now + timedelta(seconds=self.settings.prediction_ttl_seconds),
                sig.user,
            )
            self.model.expect(sig.user or "", target, pred.end)
            metrics.PREDICTIONS.labels("issued").inc()
            body = {"metadata": {"namespace": target[0], "name": name}, "spec": {}}
            self.signals[(target[0], name)] = SignalEntry(body, pred, None, time.monotonic(), "predictor")
            self._pending_latency.setdefault(target, (time.monotonic(), "predictor"))

    def cpu_requests_of(self, namespace: str, services: list[str]) -> dict[str, int]:
        """Running pods of these HeadyServices with their CPU requests (for arena utilization)."""
        out: dict[str, int] = {}
        for name in services:
            for pod_key in self.pods_of.get((namespace, name), ()):
                pod = self.pods.get(pod_key)
                if pod is not None and pod.running:
                    out[pod_key[1]] = _requests(pod.containers).cpu or 0
        return out

    # ------------------------------------------------------------------ the world

    def _service_model(self, key: ServiceKey, entry: ServiceEntry) -> tuple[Service | None, str | None]:
        spec = entry.spec
        if spec is None:
            return None, entry.error
        workload = self.workloads.get((key[0], spec.workload.kind, spec.workload.name))
        if workload is None:
            return None, f"{spec.workload.kind} {spec.workload.name} not found in namespace {key[0]}"
        template = workload.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [])
        explicit = {c.name: c.peak for c in spec.containers}
        peak: dict[str, Amount] = {}
        for c in template:
            res = c.get("resources") or {}
            default = convert.amount(res.get("limits"))
            requests = convert.amount(res.get("requests"))
            default = Amount(
                default.cpu if default.cpu is not None else requests.cpu,
                default.memory if default.memory is not None else requests.memory,
            )
            if c["name"] in explicit:
                p = explicit[c["name"]]
                override = convert.amount({"cpu": p.cpu, "memory": p.memory} if p else None)
                default = Amount(
                    override.cpu if p.cpu is not None else default.cpu,
                    override.memory if p.memory is not None else default.memory,
                )
            if default != Amount():
                peak[c["name"]] = default
        missing = sorted(set(explicit) - {c["name"] for c in template})
        if missing:
            return None, f"containers {', '.join(missing)} are not in the {spec.workload.kind}'s pod template"
        if not peak:
            return None, "no container has limits, requests or an explicit peak to resize to"
        util = entry.body.get("metadata", {}).get("annotations", {}).get("heady.io/utilization")
        utilization: float | None = None
        if util is not None:
            try:
                utilization = float(util)
            except ValueError:
                utilization = None
        return (
            Service(
                key,
                PRIORITY_VALUES[spec.priority],
                peak,
                spec.baseline_ratio,
                spec.cooldown_seconds,
                spec.max_peak_seconds,
                utilization,
            ),
            None,
        )

    def build_world(self) -> tuple[World, dict[ServiceKey, str]]:
        services: dict[ServiceKey, Service] = {}
        errors: dict[ServiceKey, str] = {}
        selectors: list[tuple[ServiceKey, dict[str, Any]]] = []
        for key, entry in self.services.items():
            svc, err = self._service_model(key, entry)
            if svc is None:
                errors[key] = err or "invalid"
                continue
            services[key] = svc
            assert entry.spec is not None
            wl = self.workloads[(key[0], entry.spec.workload.kind, entry.spec.workload.name)]
            selectors.append((key, wl.get("spec", {}).get("selector") or {}))
        pods: list[Pod] = []
        owners: dict[PodKey, ServiceKey] = {}
        pods_of: dict[ServiceKey, list[PodKey]] = {}
        reserved: dict[str, list[int]] = {}
        by_namespace: dict[str, list[tuple[ServiceKey, dict[str, Any]]]] = {}
        for skey, sel in selectors:
            by_namespace.setdefault(skey[0], []).append((skey, sel))
        if self._owner_cache_key != self._topology_version:
            self._owner_cache.clear()
            self._owner_cache_key = self._topology_version
        for pkey, p in self.pods.items():
            cached = self._owner_cache.get(pkey)
            if cached is not None and cached[0] is p.labels:
                owner = cached[1]
            else:
                owner = next(
                    (
                        skey
                        for skey, sel in by_namespace.get(pkey[0], ())
                        if convert.selector_matches(sel, p.labels)
                    ),
                    None,
                )
                self._owner_cache[pkey] = (p.labels, owner)
            if owner is None:
                if p.node and p.running:
                    req = _requests(p.containers)
                    acc = reserved.setdefault(p.node, [0, 0])
                    acc[0] += req.cpu or 0
                    acc[1] += req.memory or 0
                continue
            infeasible = pkey in self.infeasible
            owners[pkey] = owner
            pods_of.setdefault(owner, []).append(pkey)
            pods.append(Pod(pkey, owner, p.node, p.qos, p.containers, p.running, infeasible))
        nodes = {
            name: replace(n, reserved=Amount(*reserved.get(name, [0, 0]))) for name, n in self.nodes.items()
        }
        self.owners, self.pods_of = owners, pods_of
        now = self.clock()
        signals = [e.signal for e in self.signals.values() if e.signal is not None and e.signal.active(now)]
        return World(services, pods, nodes, signals, dict(self.memory)), errors

    # ------------------------------------------------------------------ the loop

    async def run(self) -> None:
        while True:
            timeout = self._next_deadline()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=timeout)
            self.last_loop = time.monotonic()
            if not self._synced:
                self._wake.clear()
                continue
            # A resize answers with watch events for several pods within milliseconds; planning
            # once for the lot keeps the loop free for the next signal.
            await asyncio.sleep(self.settings.plan_coalesce_seconds)
            self._wake.clear()
            try:
                await self.reconcile()
            except Exception:  # one bad reconcile must not stop attention from reaching pods
                log.exception("reconcile failed")
                await asyncio.sleep(0.5)

    def _next_deadline(self) -> float:
        """Seconds until something time-based changes (a signal expiry, a cooldown end)."""
        now = self.clock()
        horizon = [now + timedelta(seconds=self.settings.resync_seconds)]
        for e in self.signals.values():
            if e.signal is not None:
                if e.signal.start > now:
                    horizon.append(e.signal.start)
                if e.signal.end > now:
                    horizon.append(e.signal.end)
        for key, mem in self.memory.items():
            entry = self.services.get(key)
            if entry is None or entry.spec is None:
                continue
            if mem.attention_until is not None:
                cool = mem.attention_until + timedelta(seconds=entry.spec.cooldown_seconds)
                if cool > now:
                    horizon.append(cool)
            if mem.escalated_since is not None:
                cap = mem.escalated_since + timedelta(seconds=entry.spec.max_peak_seconds)
                if cap > now:
                    horizon.append(cap)
            if mem.resting_until is not None and mem.resting_until > now:
                horizon.append(mem.resting_until)
        for key, (_, _, failed_at) in self.failed.items():
            retry = failed_at + self._backoff(key)
            horizon.append(now + timedelta(seconds=max(0.0, retry - time.monotonic())))
        return max(0.01, (min(horizon) - now).total_seconds() + 0.005)

    async def reconcile(self) -> Plan:
        started = time.perf_counter()
        now = self.clock()
        world, errors = self.build_world()
        plan = plan_levels(world, now, self.policy)
        metrics.PLAN_SECONDS.observe(time.perf_counter() - started)
        self.last_plan = plan
        for key, decision in plan.services.items():
            self.memory[key] = decision.memory
        self._apply_resizes(plan)
        # Status, Events and signal bookkeeping are API writes: they run beside the planner, on
        # the latest plan, so a burst of signals never queues behind its own paperwork.
        self._latest_report = (plan, errors)
        if self.kube is None:
            await self._report_once()
        elif self._reporter is None or self._reporter.done():
            self._reporter = asyncio.get_running_loop().create_task(self._report_forever())
        return plan

    async def _report_once(self) -> None:
        latest = self._latest_report
        if latest is None:
            return
        self._latest_report = None
        plan, errors = latest
        now = self.clock()
        tunnel = self._tunnel_config()
        await self._report(plan, errors, now)
        await self._expire_signals(now)
        await self._write_tunnel(tunnel)

    def _tunnel_config(self) -> TunnelConfig:
        routes = []
        for (ns, name), entry in self.services.items():
            if entry.spec is not None and entry.spec.hostname:
                created = parse_time(entry.body.get("metadata", {}).get("creationTimestamp")) or self.clock()
                routes.append(Route(ns, name, entry.spec.hostname, entry.spec.port, created))
        config = tunnel_config(routes, self.settings.tunnel_id, self.settings.forbidden_suffixes)
        state: dict[ServiceKey, tuple[bool, str, str]] = {}
        for r in config.routed:
            state[(r.namespace, r.name)] = (
                True,
                "Routed",
                f"{r.hostname} -> {r.name}.{r.namespace}:{r.port}",
            )
        for rej in config.rejected:
            state[(rej.namespace, rej.name)] = (False, rej.reason, rej.message)
        self.tunnel_state = state
        return config

    async def _write_tunnel(self, config: TunnelConfig) -> None:
        if self.kube is None or config.digest == self._tunnel_digest:
            return
        try:
            await write_tunnel_config(self.kube, self.settings, config)
            self._tunnel_digest = config.digest
        except ApiException as exc:
            log.warning("could not write the cloudflared ConfigMap: %s", _api_message(exc))

    async def _report_forever(self) -> None:
        while self._latest_report is not None:
            try:
                await self._report_once()
            except Exception:  # reporting must never take the planner down with it
                log.exception("status report failed")
                await asyncio.sleep(0.5)
            # Status is for people and dashboards: a few updates a second is plenty, and each
            # pass over every service costs the planner CPU.
            await asyncio.sleep(self.settings.report_interval_seconds)

    # ------------------------------------------------------------------ resizes

    def _apply_resizes(self, plan: Plan) -> None:
        if self.kube is None:
            return  # planning only (unit tests, simulations)
        mono = time.monotonic()
        for decision in plan.resizes:
            key = decision.pod
            flight = self.inflight.get(key)
            if flight is not None and flight.target == decision.target:
                continue
            failed = self.failed.get(key)
            if (
                failed is not None
                and failed[0] == decision.target
                and (failed[1] == "Invalid" or mono - failed[2] < self._backoff(key))
            ):
                continue
            if self.infeasible.get(key) == decision.target:
                continue
            self.inflight[key] = Inflight(decision.target, mono)
            # The clock is read now: the pod's watch event may beat the PATCH response and let
            # the reporter clear the service's pending mark before the response is handled.
            owner = self.owners.get(key)
            started = (
                self._pending_latency.get(owner)
                if owner is not None and decision.level is Level.PEAK
                else None
            )
            task = asyncio.get_running_loop().create_task(
                self._resize(key, decision.target, decision.level, started)
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _backoff(self, key: PodKey) -> float:
        """Exponential per pod, so a failing pod neither hammers the API nor starves."""
        attempts = self.attempts.get(key, 0)
        delay: float = self.settings.resize_retry_base_seconds * 2.0**attempts
        return min(self.settings.resize_retry_max_seconds, delay)

    async def _resize(
        self,
        key: PodKey,
        target: tuple[ContainerResources, ...],
        level: Level,
        started: tuple[float, str] | None,
    ) -> None:
        assert self.kube is not None
        body = convert.resize_patch(target)
        async with self._resize_sem:
            try:
                resp: Any = await self.kube.core.patch_namespaced_pod_resize(
                    key[1], key[0], body, _preload_content=False
                )
                pod = json.loads(await resp.read())
                metrics.RESIZE_REQUESTS.labels(level.value).inc()
                self.failed.pop(key, None)
                self.attempts.pop(key, None)
                if started is not None:
                    metrics.SIGNAL_TO_RESIZE.labels(started[1]).observe(time.monotonic() - started[0])
                if key in self.pods:
                    self.on_pod("MODIFIED", pod)
            except ApiException as exc:
                reason = _failure_reason(exc)
                metrics.RESIZE_FAILURES.labels(reason).inc()
                log.warning("resize of pod %s/%s failed (%s): %s", key[0], key[1], reason, _api_message(exc))
                if reason == "Infeasible":
                    self.infeasible[key] = target
                elif reason != "NotFound":
                    self.failed[key] = (target, reason, time.monotonic())
                    self.attempts[key] = self.attempts.get(key, 0) + 1
            except (OSError, TimeoutError) as exc:
                metrics.RESIZE_FAILURES.labels("Error").inc()
                log.warning("resize of pod %s/%s failed: %s", key[0], key[1], exc)
                self.failed[key] = (target, "Error", time.monotonic())
                self.attempts[key] = self.attempts.get(key, 0) + 1
            finally:
                self.inflight.pop(key, None)
                self.kick()

    # ------------------------------------------------------------------ status, events, metrics

    async def _report(self, plan: Plan, errors: dict[ServiceKey, str], now: datetime) -> None:
        waiting = 0
        in_flight = {"high": 0, "normal": 0}
        for key, entry in list(self.services.items()):
            decision = plan.services.get(key)
            error = errors.get(key)
            status = self._service_status(key, entry, decision, error, now, plan)
            if decision is not None:
                prev = self._decisions.get(key)
                await self._transition_events(entry, prev, decision)
                self._decisions[key] = decision
                if decision.wants_peak and not decision.granted:
                    waiting += 1
                if decision.granted:
                    priority = PRIORITY_VALUES[entry.spec.priority] if entry.spec else 0
                    in_flight["high" if priority >= self.policy.high_priority else "normal"] += 1
                    self._clear_latency_if_settled(key, plan)
                else:
                    self._pending_latency.pop(key, None)
                metrics.PODS_AT_PEAK.labels(*key).set(status.get("podsAtPeak", 0))
                metrics.PODS_MANAGED.labels(*key).set(status.get("podsTotal", 0))
            elif error and entry.last_status.get("_error") != error:
                await self._event(
                    entry.body, "InvalidSpec" if entry.spec is None else "WorkloadNotReady", error, "Warning"
                )
            tunnel = self.tunnel_state.get(key)
            if tunnel is not None and not tunnel[0] and entry.last_status.get("_tunnel") != tunnel[1]:
                await self._event(entry.body, tunnel[1], tunnel[2], "Warning")
            status["_tunnel"] = tunnel[1] if tunnel is not None else None
            status_cmp = {k: v for k, v in status.items() if not k.startswith("_")}
            if status_cmp != {k: v for k, v in entry.last_status.items() if not k.startswith("_")}:
                await self._patch_service_status(key, status_cmp)
            entry.last_status = status
        metrics.ESCALATIONS_WAITING.set(waiting)
        for prio, count in in_flight.items():
            metrics.ESCALATIONS_IN_FLIGHT.labels(prio).set(count)

    def _clear_latency_if_settled(self, key: ServiceKey, plan: Plan) -> None:
        if not any(d.needs_resize and d.level is Level.PEAK for d in self._service_pods(key, plan)):
            self._pending_latency.pop(key, None)

    def _service_pods(self, key: ServiceKey, plan: Plan) -> list[PodDecision]:
        return [plan.pods[p] for p in self.pods_of.get(key, ()) if p in plan.pods]

    def _service_status(
        self,
        key: ServiceKey,
        entry: ServiceEntry,
        decision: ServiceDecision | None,
        error: str | None,
        now: datetime,
        plan: Plan,
    ) -> dict[str, Any]:
        body = entry.body
        generation = body.get("metadata", {}).get("generation")
        prev = entry.last_status
        conditions: list[dict[str, Any]] = list(prev.get("conditions") or [])
        status: dict[str, Any] = {"observedGeneration": generation}
        if entry.spec is not None:
            status["priorityValue"] = PRIORITY_VALUES[entry.spec.priority]
        if decision is None:
            reason = "InvalidSpec" if entry.spec is None else "WorkloadNotFound"
            conditions = set_condition(conditions, "Ready", False, reason, error or "", now, generation)
            conditions = set_condition(conditions, "Progressing", False, reason, error or "", now, generation)
            conditions = set_condition(conditions, "Degraded", True, reason, error or "", now, generation)
            conditions = self._tunnel_condition(entry, key, conditions, now, generation)
            status.update(level="Unknown", conditions=conditions, _error=error)
            return _stable(status, prev)
        pods = self._service_pods(key, plan)
        pending = [d for d in pods if d.needs_resize]
        at_peak = sum(1 for d in pods if d.level is Level.PEAK and not d.needs_resize)
        total = decision.pods_total
        infeasible = [d.pod[1] for d in pods if d.reason is Reason.INFEASIBLE]
        failed = [k[1] for k in self.failed if k in {d.pod for d in pods}]
        level = "Peak" if total and at_peak == total else ("Mixed" if at_peak else "Baseline")
        status.update(
            level=level,
            podsTotal=total,
            podsAtPeak=at_peak,
            podsAtPeakSummary=f"{at_peak}/{total}",
            escalatedSince=rfc3339(decision.memory.escalated_since)
            if decision.memory.escalated_since
            else None,
            attentionUntil=rfc3339(decision.memory.attention_until)
            if decision.memory.attention_until
            else None,
            restingUntil=rfc3339(decision.memory.resting_until) if decision.memory.resting_until else None,
            waitingReason=decision.message if decision.wants_peak and not decision.granted else None,
            prediction=self.model.stats_for(key),
        )
        if decision.signal is not None:
            status["lastAttention"] = {
                "source": decision.signal.source,
                "signal": decision.signal.name,
                "intensity": decision.signal.intensity,
                "at": rfc3339(decision.signal.start),
            }
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
        if infeasible or failed:
            msg = []
            if infeasible:
                msg.append(
                    f"resize to peak infeasible on its node for {', '.join(sorted(infeasible))}; held at baseline"
                )
            if failed:
                msg.append(f"resize failing for {', '.join(sorted(failed))}; retrying")
            conditions = set_condition(
                conditions,
                "Degraded",
                True,
                "Infeasible" if infeasible else "ResizeFailed",
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
        conditions = self._tunnel_condition(entry, key, conditions, now, generation)
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

    def _tunnel_condition(
        self,
        entry: ServiceEntry,
        key: ServiceKey,
        conditions: list[dict[str, Any]],
        now: datetime,
        generation: int | None,
    ) -> list[dict[str, Any]]:
        state = self.tunnel_state.get(key)
        if state is None:
            return [c for c in conditions if c.get("type") != "TunnelRouted"]
        return set_condition(conditions, "TunnelRouted", state[0], state[1], state[2], now, generation)

    async def _patch_service_status(self, key: ServiceKey, status: dict[str, Any]) -> None:
        if self.kube is None:
            return
        try:
            await patch_status(self.kube, "headyservices", key[0], key[1], status)
        except ApiException as exc:
            if exc.status != 404:
                log.warning("status patch of %s/%s failed: %s", key[0], key[1], _api_message(exc))

    async def _transition_events(
        self, entry: ServiceEntry, prev: ServiceDecision | None, now_: ServiceDecision
    ) -> None:
        was = prev.granted if prev is not None else bool(entry.last_status.get("escalatedSince"))
        if now_.granted and not was:
            metrics.ESCALATIONS.labels(str(now_.reason)).inc()
            await self._event(entry.body, "Escalated", f"to peak: {now_.message}")
        elif was and not now_.granted:
            metrics.RELAXATIONS.labels(str(now_.reason)).inc()
            await self._event(entry.body, "Relaxed", f"to baseline: {now_.message}")
        waiting_before = prev is not None and prev.wants_peak and not prev.granted
        if now_.wants_peak and not now_.granted and not waiting_before:
            await self._event(entry.body, "EscalationWaiting", now_.message, "Warning")

    async def _event(self, body: Body, reason: str, message: str, type_: str = "Normal") -> None:
        if self.kube is not None:
            await post_event(self.kube, body, reason, message, type_)

    # ------------------------------------------------------------------ signals' own status

    async def _expire_signals(self, now: datetime) -> None:
        retention = timedelta(seconds=self.settings.expired_signal_retention_seconds)
        for key, entry in list(self.signals.items()):
            if entry.path == "predictor":
                if entry.signal is not None and entry.signal.end <= now:
                    self.signals.pop(key, None)
                    self._expire_prediction(entry.signal, now)
                continue
            if entry.path != "object" or self.kube is None:
                # Ingested signals have no object to report on: forget them once expired, so a
                # high event rate does not make every plan walk thousands of dead signals.
                if entry.signal is None or entry.signal.end <= now:
                    self.signals.pop(key, None)
                continue
            generation = entry.body.get("metadata", {}).get("generation")
            conditions = list(entry.body.get("status", {}).get("conditions") or [])
            if entry.signal is None:
                state = "invalid"
                conditions = set_condition(
                    conditions, "Ready", False, "InvalidSpec", entry.error or "", now, generation
                )
                status: dict[str, Any] = {"observedGeneration": generation, "conditions": conditions}
            elif entry.signal.end <= now:
                if entry.signal.end + retention <= now:
                    try:
                        await delete_object(self.kube, "attentionsignals", *key)
                    except ApiException as exc:
                        if exc.status != 404:
                            log.warning("could not delete expired signal %s/%s: %s", *key, _api_message(exc))
                    self.signals.pop(key, None)
                    continue
                state = "expired"
                conditions = set_condition(
                    conditions,
                    "Ready",
                    False,
                    "Expired",
                    f"expired at {rfc3339(entry.signal.end)}",
                    now,
                    generation,
                )
                status = {
                    "observedGeneration": generation,
                    "expired": True,
                    "expiresAt": rfc3339(entry.signal.end),
                    "conditions": conditions,
                }
            else:
                missing = [s[1] for s in entry.signal.services if s not in self.services]
                state = "applied" if not missing else "missing:" + ",".join(missing)
                if missing:
                    conditions = set_condition(
                        conditions,
                        "Ready",
                        False,
                        "ServiceNotFound",
                        f"no HeadyService named {', '.join(missing)} in namespace {key[0]}",
                        now,
                        generation,
                    )
                else:
                    conditions = set_condition(
                        conditions,
                        "Ready",
                        True,
                        "Applied",
                        f"attention {entry.signal.intensity:g} on {', '.join(s[1] for s in entry.signal.services)}",
                        now,
                        generation,
                    )
                status = {
                    "observedGeneration": generation,
                    "expired": False,
                    "expiresAt": rfc3339(entry.signal.end),
                    "appliedAt": rfc3339(now),
                    "conditions": conditions,
                }
            if entry.status_written == state:
                continue
            entry.status_written = state
            try:
                await patch_status(self.kube, "attentionsignals", key[0], key[1], status)
            except ApiException as exc:
                if exc.status != 404:
                    log.warning("status patch of signal %s/%s failed: %s", *key, _api_message(exc))
            if state.startswith("missing"):
                await self._event(
                    entry.body,
                    "ServiceNotFound",
                    str(conditions[-1]["message"]) if conditions else "",
                    "Warning",
                )
            elif state == "invalid":
                await self._event(entry.body, "InvalidSpec", entry.error or "", "Warning")

    def _expire_prediction(self, sig: Signal, now: datetime) -> None:
        for outcome in self.model.expire(now):
            metrics.PREDICTIONS.labels(outcome).inc()

    # ------------------------------------------------------------------ health

    def background_tasks(self) -> list[asyncio.Task[None]]:
        """Resize and report tasks in flight (cancelled on shutdown)."""
        tasks = list(self._tasks)
        if self._reporter is not None:
            tasks.append(self._reporter)
        return tasks

    def healthy(self, max_stall_seconds: float = 60.0) -> bool:
        return time.monotonic() - self.last_loop < max(max_stall_seconds, self.settings.resync_seconds * 3)


def _older(new: str | None, held: str | None) -> bool:
    """resourceVersions are opaque, but etcd-backed ones are integers: compare when both are."""
    if not new or not held:
        return False
    try:
        return int(new) < int(held)
    except ValueError:
        return False


def _requests(containers: tuple[ContainerResources, ...]) -> Amount:
    cpu = sum((c.requests.cpu if c.requests.cpu is not None else c.limits.cpu) or 0 for c in containers)
    mem = sum(
        (c.requests.memory if c.requests.memory is not None else c.limits.memory) or 0 for c in containers
    )
    return Amount(cpu, mem)


def _memory_from_status(status: Mapping[str, Any]) -> Memory:
    return Memory(
        escalated_since=parse_time(status.get("escalatedSince")),
        attention_until=parse_time(status.get("attentionUntil")),
        resting_until=parse_time(status.get("restingUntil")),
    )


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


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in err["loc"])
        parts.append(f"spec.{loc}: {err['msg']}" if loc else err["msg"])
    return "; ".join(parts)


def _api_message(exc: ApiException) -> str:
    try:
        return str(json.loads(exc.body or b"{}").get("message", exc.reason))
    except (TypeError, ValueError):
        return str(exc.reason)


def _failure_reason(exc: ApiException) -> str:
    message = _api_message(exc)
    if exc.status == 403 and "allocatable" in message:
        return "Infeasible"  # the PodResizeValidator admission refuses what the node cannot hold
    if exc.status == 404:
        return "NotFound"
    if exc.status == 409:
        return "Conflict"
    if exc.status == 422:
        return "Invalid"
    return "Error"


__all__ = ["API_VERSION", "EscalationController"]
