"""Status, Events and the tunnel config: written behind resizes, coalesced, and only when they change.

- A HeadyService's status is patched at most once per `status_min_interval_seconds` (the
  first one at once), with what a person or dashboard reads, once a change has lasted
  `status_settle_seconds`: an escalation that is over within that time changes no status and
  posts no Event (the metrics count every one). Nothing is written when the body is what the
  object already says (a restart rewrites nothing).
- An AttentionSignal's status is written once per state (applied, expired, invalid, missing
  service) that lasted `status_settle_seconds`, compared with what its status already says.
- Reporting waits while escalations are queued or in flight (up to a second): a user's
  resize never queues behind paperwork.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Protocol

from heady_operator import metrics
from heady_operator.config import Settings
from heady_operator.models.common import PRIORITY_VALUES
from heady_operator.planning.incremental import IncrementalPlanner
from heady_operator.planning.leadership import ALWAYS, Gate
from heady_operator.planning.levels import PodKey, ServiceDecision, ServiceKey
from heady_operator.planning.status import ServiceFacts, expired_long_ago, service_status, signal_status
from heady_operator.planning.tunnel import EdgeAccess, Route, TunnelConfig, tunnel_config
from heady_operator.reconcile.queue import ResizeQueue
from heady_operator.reconcile.timing import wake_or_timeout
from heady_operator.state.cluster import ClusterState, SignalKey

log = logging.getLogger(__name__)


class ReportApi(Protocol):
    async def patch_status(self, plural: str, namespace: str, name: str, status: dict[str, Any]) -> bool: ...

    async def post_event(
        self, obj: Mapping[str, Any], reason: str, message: str, type_: str = "Normal"
    ) -> None: ...

    async def delete_signal(self, namespace: str, name: str) -> None: ...

    async def write_tunnel(self, config: TunnelConfig) -> bool: ...


class Reporter:
    def __init__(
        self,
        settings: Settings,
        state: ClusterState,
        planner: IncrementalPlanner,
        queue: ResizeQueue,
        api: ReportApi,
        clock: Callable[[], datetime],
        monotonic: Callable[[], float] = time.monotonic,
        gate: Gate = ALWAYS,
    ) -> None:
        self.settings = settings
        self.gate = gate
        self.state = state
        self.planner = planner
        self.queue = queue
        self.api = api
        self.clock = clock
        self.monotonic = monotonic
        self.failed: dict[PodKey, str] = {}  # pods whose resize keeps failing (set by the loop)
        self.conflicts: dict[PodKey, str] = {}  # pods another actor resizes, and who
        self.tunnel_state: dict[ServiceKey, tuple[bool, str, str]] = {}
        self._tunnel_digest = ""
        self._written_at: dict[ServiceKey, float] = {}
        self._dirty_since: dict[tuple[str, str], float] = {}
        self._decisions: dict[ServiceKey, ServiceDecision] = {}
        self._errors: dict[ServiceKey, str | None] = {}
        self._tunnel_reported: dict[ServiceKey, str] = {}
        self._signals_scanned = 0.0
        self.last_progress = monotonic()
        self._wake = asyncio.Event()

    def kick(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        while True:
            self.last_progress = self.monotonic()
            await wake_or_timeout(self._wake, self.settings.report_interval_seconds)
            self._wake.clear()
            await asyncio.sleep(self.settings.report_interval_seconds)  # let a burst settle first
            if not self.gate.may_write():
                continue  # a standby keeps what is dirty, for the moment it leads
            try:
                await self.flush()
            except Exception:  # reporting must never take the planner down with it
                metrics.LOOP_ERRORS.labels("reporter").inc()
                log.exception("status report failed")

    async def flush(self) -> None:
        waited = 0.0
        while self.queue.busy() and waited < 1.0:
            await asyncio.sleep(0.02)
            waited += 0.02
        now = self.clock()
        mono = self.monotonic()
        state = self.state
        if state.topology_changed:
            state.topology_changed = False
            await self._tunnel(now)
        for key in list(state.deleted_services):
            state.deleted_services.discard(key)
            metrics.forget_service(*key)
            for cache in (
                self._written_at,
                self._decisions,
                self._errors,
                self._tunnel_reported,
                self._dirty_since,
            ):
                cache.pop(key, None)
        gap = self.settings.status_min_interval_seconds
        settle = self.settings.status_settle_seconds
        due = []
        for key in state.dirty_services:
            since = self._dirty_since.setdefault(key, mono)
            written = self._written_at.get(key)
            # A first status goes out at once; later ones wait until the change has lasted
            # `settle` (a blip that reverts writes nothing) and `gap` after the last write.
            if written is None or (mono - since >= settle and mono - written >= gap):
                due.append(key)
        for key in due:
            state.dirty_services.discard(key)
            self._dirty_since.pop(key, None)
            try:
                await self._service(key, now)
            except Exception:  # one object's bad luck must not hold up the others' status
                metrics.LOOP_ERRORS.labels("reporter").inc()
                log.exception("status of HeadyService %s/%s failed", *key)
            self.last_progress = self.monotonic()
        if mono - self._signals_scanned >= 1.0:
            self._signals_scanned = mono
            state.dirty_signals.update(
                k
                for k, e in state.signals.items()
                if e.ref is not None
                and e.signal is not None
                and e.signal.end <= now
                and e.reported != "expired"
            )
            await self._expire_objects(now)
        events, state.events = state.events, []
        for service_key, reason, message, type_ in events:
            entry = state.services.get(service_key)
            if entry is not None:
                await self.api.post_event(entry.ref.body(), reason, message, type_)
        for skey in list(state.dirty_signals):
            if mono - self._dirty_since.setdefault(skey, mono) < settle:
                continue  # a short signal then gets one status (expired), not two
            self._dirty_since.pop(skey, None)
            state.dirty_signals.discard(skey)
            try:
                await self._signal(skey, now)
            except Exception:
                metrics.LOOP_ERRORS.labels("reporter").inc()
                log.exception("status of AttentionSignal %s/%s failed", *skey)
        self._aggregate()

    # ------------------------------------------------------------------ services

    async def _service(self, key: ServiceKey, now: datetime) -> None:
        entry = self.state.services.get(key)
        if entry is None:
            return
        decision = self.planner.service_decisions.get(key)
        pods = self.state.pods_of(key)
        pod_decisions = [self.planner.pod_decisions[p] for p in pods if p in self.planner.pod_decisions]
        service = self.planner.services.get(key)
        cfg = self.settings
        prediction = self.state.model.stats_for(
            key, cfg.prediction_min_precision, cfg.prediction_min_outcomes
        )
        recommendation = self.state.recommendation(key)
        facts = ServiceFacts(
            generation=entry.ref.generation,
            priority_value=PRIORITY_VALUES[entry.spec.priority] if entry.spec is not None else None,
            error=entry.error,
            invalid_spec=entry.spec is None,
            pods=pod_decisions,
            failed=[p[1] for p in pods if p in self.failed],
            kubelet_errors={
                p[1]: self.state.kubelet_errors[p] for p in pods if p in self.state.kubelet_errors
            },
            conflicts={p[1]: self.conflicts[p] for p in pods if p in self.conflicts},
            tunnel=self.tunnel_state.get(key),
            prediction=prediction,
            # The cooldown in effect (learned from revisits, or the spec's).
            cooldown_seconds=service.cooldown_seconds if service is not None else 0,
            recommendation=recommendation,
            vpa_conflict=entry.conflict,
            peak=entry.peak_report,
            unsupported={p[1]: self.state.unsupported[p] for p in pods if p in self.state.unsupported},
        )
        if "precision" in prediction:
            metrics.PREDICTION_PRECISION.labels(*key).set(prediction["precision"])
            metrics.PREDICTION_THROTTLED.labels(*key).set(1 if prediction["throttled"] else 0)
        if service is not None:
            metrics.COOLDOWN_SECONDS.labels(*key).set(service.cooldown_seconds)
        if recommendation is not None:
            metrics.RECOMMENDED_BASELINE_RATIO.labels(*key).set(recommendation.baseline_ratio)
        status = service_status(facts, decision, entry.status, now)
        body = entry.ref.body()
        if decision is not None:
            await self._transition_events(key, body, entry.status, decision)
            metrics.PODS_AT_PEAK.labels(*key).set(status.get("podsAtPeak", 0))
            metrics.PODS_MANAGED.labels(*key).set(status.get("podsTotal", 0))
            self._capacity(key, pods)
        elif entry.error and self._errors.get(key) != entry.error:
            reason = (
                "InvalidSpec"
                if entry.spec is None
                else "VPAConflict"
                if entry.conflict is not None
                else "WorkloadNotReady"
            )
            await self.api.post_event(body, reason, entry.error, "Warning")
        self._errors[key] = entry.error
        tunnel = self.tunnel_state.get(key)
        reported = tunnel[1] if tunnel is not None else ""
        if tunnel is not None and not tunnel[0] and self._tunnel_reported.get(key) != reported:
            await self.api.post_event(body, tunnel[1], tunnel[2], "Warning")
        self._tunnel_reported[key] = reported
        if status != {k: v for k, v in entry.status.items() if k in status} and _news(status, entry.status):
            if await self.api.patch_status("headyservices", key[0], key[1], status):
                self._written_at[key] = self.monotonic()
            merged = {**entry.status, **status}
            entry.status = {k: v for k, v in merged.items() if v is not None}

    def _capacity(self, key: ServiceKey, pods: list[PodKey]) -> None:
        """What the service's running pods request now, beside what always-peak would."""
        service = self.planner.services.get(key)
        if service is None:
            return
        cpu = mem = peak_cpu = peak_mem = 0
        for pkey in pods:
            record = self.planner.pods.get(pkey)
            if record is None or not record.running:
                continue
            for c in record.containers:
                cpu += (c.requests.cpu if c.requests.cpu is not None else c.limits.cpu) or 0
                mem += (c.requests.memory if c.requests.memory is not None else c.limits.memory) or 0
                peak = service.peak.get(c.name)
                peak_cpu += (peak.cpu if peak and peak.cpu is not None else c.requests.cpu) or 0
                peak_mem += (peak.memory if peak and peak.memory is not None else c.requests.memory) or 0
        metrics.set_service_capacity(
            *key,
            cpu_cores=cpu / 1000,
            memory_bytes=mem,
            peak_cpu_cores=peak_cpu / 1000,
            peak_memory_bytes=peak_mem,
        )

    async def _transition_events(
        self, key: ServiceKey, body: dict[str, Any], status: Mapping[str, Any], now_: ServiceDecision
    ) -> None:
        prev = self._decisions.get(key)
        was = prev.granted if prev is not None else bool(status.get("escalatedSince"))
        if now_.granted and not was:
            await self.api.post_event(body, "Escalated", f"to peak: {now_.message}")
        elif was and not now_.granted:
            await self.api.post_event(body, "Relaxed", f"to baseline: {now_.message}")
        waiting_before = prev is not None and prev.wants_peak and not prev.granted
        if now_.wants_peak and not now_.granted and not waiting_before:
            await self.api.post_event(body, "EscalationWaiting", now_.message, "Warning")
        self._decisions[key] = now_

    async def _tunnel(self, now: datetime) -> None:
        routes = []
        audiences = self.state.access_audiences
        for (ns, name), entry in self.state.services.items():
            spec = entry.spec
            if spec is not None and spec.hostname:
                created = entry.created or now
                access = spec.access
                protection = audience = None
                if access is not None:
                    protection = "edge" if access.bypass else "token"
                    audience = access.aud_tag or audiences.get((ns, name))
                routes.append(Route(ns, name, spec.hostname, spec.port, created, protection, audience))
        edge = EdgeAccess(self.settings.access_team_name, self.settings.access_allow_public_services)
        config = tunnel_config(routes, self.settings.tunnel_id, self.settings.forbidden_suffixes, edge)
        state: dict[ServiceKey, tuple[bool, str, str]] = {}
        for r in config.routed:
            state[(r.namespace, r.name)] = (
                True,
                "Routed",
                f"{r.hostname} -> {r.name}.{r.namespace}:{r.port}",
            )
        for rej in config.rejected:
            state[(rej.namespace, rej.name)] = (False, rej.reason, rej.message)
        for key in self.tunnel_state.keys() | state.keys():
            if self.tunnel_state.get(key) != state.get(key):
                self.state.dirty_services.add(key)
        self.tunnel_state = state
        if config.digest != self._tunnel_digest and await self.api.write_tunnel(config):
            self._tunnel_digest = config.digest

    # ------------------------------------------------------------------ signals

    async def _signal(self, key: SignalKey, now: datetime) -> None:
        entry = self.state.signals.get(key)
        if entry is None or entry.ref is None or entry.reported == "deleting":
            return
        missing = (
            [s[1] for s in entry.signal.services if s not in self.state.services]
            if entry.signal is not None
            else []
        )
        report = signal_status(
            entry.signal, entry.error, missing, key[0], entry.ref.generation, entry.conditions, now
        )
        if report.state == entry.reported:
            return
        entry.reported = report.state
        entry.conditions = report.status.get("conditions", entry.conditions)
        await self.api.patch_status("attentionsignals", key[0], key[1], report.status)
        if report.event is not None:
            await self.api.post_event(entry.ref.body(), *report.event)

    async def _expire_objects(self, now: datetime) -> None:
        retention = self.settings.expired_signal_retention_seconds
        for key, entry in list(self.state.signals.items()):
            if (
                entry.ref is not None
                and entry.reported == "expired"
                and expired_long_ago(entry.signal, now, retention)
            ):
                entry.reported = "deleting"
                await self.api.delete_signal(*key)

    def _aggregate(self) -> None:
        waiting = 0
        in_flight = {"high": 0, "normal": 0}
        high = self.planner.policy.high_priority
        for key, decision in self.planner.service_decisions.items():
            if decision.wants_peak and not decision.granted:
                waiting += 1
            if decision.granted:
                service = self.planner.services.get(key)
                in_flight["high" if service is not None and service.priority >= high else "normal"] += 1
        metrics.ESCALATIONS_WAITING.set(waiting)
        for prio, count in in_flight.items():
            metrics.ESCALATIONS_IN_FLIGHT.labels(prio).set(count)
        self.queue.publish()


def _news(status: Mapping[str, Any], prev: Mapping[str, Any]) -> bool:
    """Whether a status says something new: a recommendation drifting by its estimates alone
    (a duty cycle a little higher after a blip) rides along with the next write, it makes none."""
    if any(status.get(k) != prev.get(k) for k in status if k != "recommendation"):
        return True
    new, old = status.get("recommendation"), prev.get("recommendation")
    if new is None or old is None:
        return new != old
    return any(new.get(k) != old.get(k) for k in ("baselineRatio", "cooldownSeconds"))
