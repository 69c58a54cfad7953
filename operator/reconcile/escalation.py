"""The escalation loop: gather (state) -> plan (incremental planner) -> apply (resize queue) -> report.

Watch events and ingested attention update `ClusterState` as they arrive and wake this loop;
each wake plans only what changed and hands the pods that must move to the resize queue.
Status and Events are the reporter's, behind the resizes. Time-based changes (a signal ends,
a cooldown runs out) come from the planner's deadline heap, not from polling.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from heady_operator import metrics
from heady_operator.config import Settings
from heady_operator.kube import convert
from heady_operator.kube.objects import Pod as PodObject
from heady_operator.kube.resize import NOT_LEADER, ResizeFailed
from heady_operator.planning.incremental import Delta, IncrementalPlanner, check
from heady_operator.planning.leadership import ALWAYS, Gate
from heady_operator.planning.levels import Level, PodKey, Policy, ServiceKey
from heady_operator.reconcile.queue import Lane, Outcome, ResizeQueue, Target, lane_of
from heady_operator.reconcile.reporter import ReportApi, Reporter
from heady_operator.reconcile.timing import wake_or_timeout
from heady_operator.state.cluster import UNOWNED, ClusterState

log = logging.getLogger(__name__)


def policy_of(cfg: Settings) -> Policy:
    return Policy(
        attention_threshold=cfg.attention_threshold,
        max_high_escalations=cfg.max_high_priority_escalations,
        utilization_threshold=cfg.utilization_escalation_threshold,
    )


class EscalationApi(ReportApi, Protocol):
    async def resize(self, namespace: str, name: str, body: dict[str, Any]) -> PodObject: ...


class Escalation:
    """The loop and its parts, built once at start-up (and in tests, with a fake API and clock)."""

    def __init__(
        self,
        settings: Settings,
        state: ClusterState,
        api: EscalationApi,
        clock: Callable[[], datetime],
        monotonic: Callable[[], float] = time.monotonic,
        gate: Gate = ALWAYS,
    ) -> None:
        self.settings = settings
        self.gate = gate
        self.state = state
        self.planner: IncrementalPlanner = state.planner
        self.api = api
        self.clock = clock
        self.monotonic = monotonic
        self.queue = ResizeQueue(
            self._act,
            concurrency=settings.resize_concurrency,
            background_per_second=settings.resize_background_per_second,
            reserved_for_escalations=settings.resize_reserved_for_escalations,
            retry_base_seconds=settings.resize_retry_base_seconds,
            retry_max_seconds=settings.resize_retry_max_seconds,
            monotonic=monotonic,
            gate=gate,
        )
        self.reporter = Reporter(settings, state, self.planner, self.queue, api, clock, monotonic, gate)
        self.unsettled: set[PodKey] = set()  # pods whose decision needs a resize
        self.held_off: dict[PodKey, tuple[float, int, str]] = {}  # pod -> (until, conflicts, actor)
        self.synced = False
        self.last_progress = monotonic()
        self._wake = state.changed
        self._next_check = monotonic() + settings.plan_check_interval_seconds
        self._next_sweep = monotonic() + 1.0
        self._granted: dict[ServiceKey, bool] = {}
        self._background: set[asyncio.Task[None]] = set()

    def kick(self) -> None:
        self._wake.set()

    def take_over(self) -> None:
        """Just elected: everything the old leader may have left half-done is looked at again.

        The plan is already current (a standby plans all along, from the same watches); what is
        re-derived here is what the old leader may not have finished: every pod that is not at its
        level goes back to the queue, and every status, signal and the tunnel are compared with
        the cluster's (the reporter writes only what differs).
        """
        state = self.state
        state.dirty_services.update(state.services)
        state.dirty_signals.update(k for k, e in state.signals.items() if e.ref is not None)
        state.topology_changed = True
        self.unsettled.update(k for k, d in self.planner.pod_decisions.items() if d.needs_resize)
        self._sweep(self.monotonic())
        self.queue.kick()
        self.reporter.kick()
        self.kick()

    def mark_synced(self) -> None:
        """Plans wait for the first listing of everything: a restart never relaxes what it has not seen."""
        self.synced = True
        gc.freeze()  # what the first listing built lives as long as the process: keep GC off it
        self.kick()

    # ------------------------------------------------------------------ the loop

    async def run(self) -> None:
        while True:
            self.last_progress = self.monotonic()
            timeout = self._timeout()
            await wake_or_timeout(self._wake, timeout)
            self._wake.clear()
            if not self.synced:
                continue
            try:
                self.plan_once()
            except Exception:  # one bad pass must not stop attention from reaching pods
                metrics.LOOP_ERRORS.labels("planner").inc()
                log.exception("planning failed")
                await asyncio.sleep(0.1)

    def _timeout(self) -> float:
        """Until the next time-based change, and at least once a second (the watchdog's heartbeat)."""
        wait = 1.0
        for due in (self.planner.next_deadline(), self.state.next_peak_review()):
            if due is not None:
                wait = min(wait, (due - self.clock()).total_seconds() + 0.001)
        if self.held_off:
            wait = min(wait, min(u for u, _, _ in self.held_off.values()) - self.monotonic())
        return max(0.0, wait)

    def plan_once(self) -> Delta:
        now = self.clock()
        started = time.perf_counter()
        mono = self.monotonic()
        world = None
        if self.settings.plan_check_interval_seconds and mono >= self._next_check:
            self._next_check = mono + self.settings.plan_check_interval_seconds
            world = self.planner.world()
        self.state.expire(now)
        self.state.review_peaks(now)
        while self.state.foreign_resizes:
            self._foreign(*self.state.foreign_resizes.popitem())
        delta = self.planner.plan(now)
        rounds = 0
        while self.planner.has_pending_work() and rounds < 3:
            # A grant changes the service's rank and its maxPeakSeconds clock: settle it now.
            more = self.planner.plan(now)
            delta.pods.update(more.pods)
            delta.services.update(more.services)
            delta.removed_pods |= more.removed_pods
            delta.removed_services |= more.removed_services
            rounds += 1
        metrics.PLAN_SECONDS.observe(time.perf_counter() - started)
        if world is not None:
            wrong = check(world, now, self.planner.policy, self.planner.snapshot())
            if wrong:
                metrics.PLAN_MISMATCH.inc()
                log.error("incremental plan differs from the full plan: %s", "; ".join(wrong[:5]))
        self._apply(delta, mono)
        return delta

    def _apply(self, delta: Delta, mono: float) -> None:
        state = self.state
        for key, decision in delta.pods.items():
            if decision.needs_resize:
                self.unsettled.add(key)
                self._put(key, decision.target, lane_of(decision.level), mono)
            else:
                self.unsettled.discard(key)
                self.queue.cancel(key)
            owner = self.planner.pods[key].service if key in self.planner.pods else UNOWNED
            if owner != UNOWNED:
                state.dirty_services.add(owner)
        for key in delta.removed_pods:
            self.unsettled.discard(key)
            self.queue.cancel(key)
            self.held_off.pop(key, None)
            self.reporter.failed.pop(key, None)
            self.reporter.conflicts.pop(key, None)
        for skey, sdecision in delta.services.items():
            state.dirty_services.add(skey)
            was = self._granted.get(skey)
            if sdecision.granted and was is False:
                metrics.ESCALATIONS.labels(str(sdecision.reason)).inc()
            elif was and not sdecision.granted:
                metrics.RELAXATIONS.labels(str(sdecision.reason)).inc()
            self._granted[skey] = sdecision.granted
            if not sdecision.granted:
                state.pending_latency.pop(skey, None)
        for skey in delta.removed_services:
            self._granted.pop(skey, None)
        if mono >= self._next_sweep:
            self._next_sweep = mono + 1.0
            self._sweep(mono)
        self.reporter.kick()

    def _sweep(self, mono: float) -> None:
        """Pods that a given-up failure, a conflict's hold or a lost response left behind."""
        queue = self.queue
        for key in list(self.unsettled):
            if key in queue.pending or key in queue.inflight or key in queue.attempts:
                continue
            held = self.planner.pod_decisions.get(key)
            if held is None or not held.needs_resize:
                self.unsettled.discard(key)
            else:
                self._put(key, held.target, lane_of(held.level), mono)

    def _put(self, key: PodKey, target: Target, lane: Lane, mono: float) -> None:
        held = self.held_off.get(key)
        if held is not None and mono < held[0]:
            return  # another actor resized it: heady waits its turn (see _foreign)
        if key in self.state.unsupported:
            return  # the cluster cannot resize this pod at all; its service says why
        self.queue.put(key, target, lane)

    # ------------------------------------------------------------------ one resize

    async def _act(self, key: PodKey, target: Target, lane: Lane) -> Outcome:
        if not self.gate.may_write():
            return Outcome.RETRY
        body = convert.resize_patch(target)
        owner = self.planner.pods[key].service if key in self.planner.pods else UNOWNED
        started = self.state.pending_latency.get(owner) if lane is Lane.ESCALATION else None
        level = Level.PEAK if lane is Lane.ESCALATION else Level.BASELINE
        written = self.state.written.get(key)
        # Set before sending: the watch event of this very write may beat the response, and
        # must not look like someone else's change.
        self.state.written[key] = target
        try:
            pod = await self.api.resize(key[0], key[1], body)
        except ResizeFailed as exc:
            if written is None:
                self.state.written.pop(key, None)
            else:
                self.state.written[key] = written
            if exc.reason == NOT_LEADER:
                return Outcome.RETRY  # not sent: the next leader resizes it
            metrics.RESIZE_FAILURES.labels(exc.reason).inc()
            log.warning("resize of pod %s/%s failed (%s): %s", key[0], key[1], exc.reason, exc.message)
            if exc.reason == "Infeasible":
                self.state.mark_infeasible(key, target)
                return Outcome.GIVE_UP
            if exc.reason == "Unsupported":
                self.state.unsupported[key] = unsupported_message(exc.message)
                if owner != UNOWNED:
                    self.state.dirty_services.add(owner)
                return Outcome.GIVE_UP
            if exc.reason == "NotFound":
                return Outcome.DONE
            self.reporter.failed[key] = exc.reason
            if owner != UNOWNED:
                self.state.dirty_services.add(owner)
            return Outcome.GIVE_UP if exc.reason == "Invalid" else Outcome.RETRY
        metrics.RESIZE_REQUESTS.labels(level.value).inc()
        if self.reporter.failed.pop(key, None) is not None and owner != UNOWNED:
            self.state.dirty_services.add(owner)
        if started is not None:
            metrics.SIGNAL_TO_RESIZE.labels(started[1]).observe(self.monotonic() - started[0])
        self.state.on_resized(pod)
        if started is not None and not any(
            (d := self.planner.pod_decisions.get(p)) is not None and d.needs_resize and d.level is Level.PEAK
            for p in self.state.pods_of(owner)
        ):
            self.state.pending_latency.pop(owner, None)
        return Outcome.DONE

    # ------------------------------------------------------------------ other actors

    def _foreign(self, key: PodKey, actor: str) -> None:
        """Someone else resized a pod heady manages: back off instead of fighting, and say so."""
        mono = self.monotonic()
        _, count, _ = self.held_off.get(key, (0.0, 0, ""))
        count += 1
        if self.settings.conflict_policy == "yield":
            delay = min(600.0, 30.0 * 2 ** (count - 1))
        else:
            delay = min(60.0, 1.0 * 2 ** (count - 1))
        self.held_off[key] = (mono + delay, count, actor)
        self.queue.cancel(key)
        self.reporter.conflicts[key] = actor
        owner = self.planner.pods[key].service if key in self.planner.pods else UNOWNED
        if owner != UNOWNED:
            self.state.dirty_services.add(owner)
            entry = self.state.services.get(owner)
            if entry is not None and count == 1:
                message = (
                    f"{actor} resized pod {key[1]} away from heady's level; heady "
                    + ("leaves it alone" if self.settings.conflict_policy == "yield" else "will put it back")
                    + f" for {delay:.0f} s (HEADY_CONFLICT_POLICY={self.settings.conflict_policy})"
                )
                task = asyncio.get_running_loop().create_task(
                    self.api.post_event(entry.ref.body(), "ForeignResize", message, "Warning")
                )
                self._keep(task)
        log.warning("pod %s/%s was resized by %s; backing off %.0f s", key[0], key[1], actor, delay)

    def _keep(self, task: asyncio.Task[None]) -> None:
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # ------------------------------------------------------------------ health

    def stalled(self, limit: float) -> list[str]:
        """Loops that made no progress for `limit` seconds (the watchdog behind /healthz)."""
        mono = self.monotonic()
        out = []
        for name, last in (
            ("planner", self.last_progress),
            ("reporter", self.reporter.last_progress),
            ("resize-queue", self.queue.last_progress),
        ):
            if mono - last > limit:
                out.append(f"{name} made no progress for {mono - last:.0f} s")
        return out


def unsupported_message(api_message: str) -> str:
    return (
        "this cluster cannot resize pod-level resources in place (needs Kubernetes 1.36+ with "
        "InPlacePodLevelResourcesVerticalScaling on the apiserver and declared by the node's kubelet); "
        f"heady leaves the pod as it is. The API server said: {api_message}"
    )


__all__ = ["Escalation", "EscalationApi", "policy_of", "unsupported_message"]
