"""The resize work queue: one entry per pod, the last target wins, escalations first.

- A pod has at most one pending target (a newer plan replaces it) and at most one PATCH in
  flight; a target equal to the one in flight is not sent again.
- Two lanes: raising a pod to peak (a user is waiting) goes before relaxing or settling, and
  the newest escalation first. Relaxations never use the last `reserved_for_escalations` slots
  and pass a token bucket, so a storm of them never keeps the next escalation waiting for a slot.
- Bounded concurrency on one keep-alive pool: near the knee of the apiserver's throughput
  (beyond it, more in flight only adds latency).
- Failures that may pass are retried with exponential backoff per pod (0.5 s .. 30 s);
  the outcome callback says which.
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections import deque
from collections.abc import Awaitable, Callable
from enum import IntEnum

from heady_operator import metrics
from heady_operator.planning.leadership import ALWAYS, Gate
from heady_operator.planning.levels import ContainerResources, Level, PodKey
from heady_operator.reconcile.timing import wake_or_timeout

Target = tuple[ContainerResources, ...]


class Lane(IntEnum):
    ESCALATION = 0
    BACKGROUND = 1


def lane_of(level: Level) -> Lane:
    return Lane.ESCALATION if level is Level.PEAK else Lane.BACKGROUND


class Outcome(IntEnum):
    DONE = 0  # accepted, or nothing more to do for this target
    RETRY = 1  # may pass later: try again after the pod's backoff
    GIVE_UP = 2  # will not pass as it is (invalid, infeasible): wait for a new target


Act = Callable[[PodKey, Target, Lane], Awaitable[Outcome]]


class TokenBucket:
    def __init__(self, rate: float, burst: float, monotonic: Callable[[], float]) -> None:
        self.rate, self.burst, self.monotonic = rate, burst, monotonic
        self.tokens = burst
        self.at = monotonic()

    def _refill(self) -> None:
        now = self.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now

    def take(self) -> bool:
        self._refill()
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    def wait_time(self) -> float:
        self._refill()
        return max(0.0, (1.0 - self.tokens) / self.rate) if self.rate > 0 else 1.0


class ResizeQueue:
    def __init__(
        self,
        act: Act,
        concurrency: int = 12,
        background_per_second: float = 500.0,
        background_burst: float = 50.0,
        reserved_for_escalations: int = 2,
        retry_base_seconds: float = 0.5,
        retry_max_seconds: float = 30.0,
        monotonic: Callable[[], float] = time.monotonic,
        gate: Gate = ALWAYS,
    ) -> None:
        self.act = act
        # A standby keeps the queue (one latest target per pod) and sends nothing until it leads.
        self.gate = gate
        self.concurrency = concurrency
        # Relaxing and settling never take the last slots: an escalation always finds one free.
        self.reserved = min(max(0, reserved_for_escalations), concurrency - 1)
        self.monotonic = monotonic
        self.bucket = TokenBucket(background_per_second, background_burst, monotonic)
        self.retry_base, self.retry_max = retry_base_seconds, retry_max_seconds
        self.pending: dict[PodKey, tuple[Target, Lane]] = {}
        self.inflight: dict[PodKey, Target] = {}
        self.given_up: dict[PodKey, Target] = {}
        self.attempts: dict[PodKey, int] = {}
        self._lanes: tuple[deque[PodKey], deque[PodKey]] = (deque(), deque())
        self._count = [0, 0]
        self._retries: list[tuple[float, PodKey, Target, Lane]] = []
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self.last_progress = monotonic()

    # ------------------------------------------------------------------ in

    def _pop(self, key: PodKey) -> None:
        held = self.pending.pop(key, None)
        if held is not None:
            self._count[held[1]] -= 1

    def put(self, key: PodKey, target: Target, lane: Lane, retry: bool = False) -> None:
        if not retry and (self.inflight.get(key) == target or self.given_up.get(key) == target):
            self._pop(key)
            return
        self.given_up.pop(key, None)
        prev = self.pending.get(key)
        if prev is not None:
            self._count[prev[1]] -= 1
        self._count[lane] += 1
        self.pending[key] = (target, lane)
        if prev is None or prev[1] != lane:
            # A stale entry in the other lane is skipped when reached. Escalations are served
            # newest first: in a storm, the attention that just arrived is the one a person is
            # waiting on; an older one that ended meanwhile has been replaced by a relaxation.
            if lane is Lane.ESCALATION:
                self._lanes[lane].appendleft(key)
            else:
                self._lanes[lane].append(key)
        if not retry and (prev is None or prev[0] != target):
            self.attempts.pop(key, None)
        self._wake.set()

    def cancel(self, key: PodKey) -> None:
        """The pod no longer needs a resize (it got there, or it is gone)."""
        self._pop(key)
        self.attempts.pop(key, None)
        self.given_up.pop(key, None)

    def kick(self) -> None:
        self._wake.set()

    def depth(self, lane: Lane) -> int:
        return self._count[lane]

    def busy(self) -> bool:
        """Escalations waiting or being sent: reporting waits for them."""
        return self._count[Lane.ESCALATION] > 0 or bool(self.inflight)

    # ------------------------------------------------------------------ out

    def _take(self) -> tuple[PodKey, Target, Lane] | float:
        """The next job, or how long to wait for one."""
        now = self.monotonic()
        slots_full = False
        while self._retries and self._retries[0][0] <= now:
            _, key, target, lane = heapq.heappop(self._retries)
            if key not in self.pending and key not in self.inflight and self.attempts.get(key):
                self.put(key, target, lane, retry=True)
        for lane in Lane:
            queue = self._lanes[lane]
            skipped: list[PodKey] = []
            job: tuple[PodKey, Target, Lane] | None = None
            while queue:
                key = queue.popleft()
                held = self.pending.get(key)
                if held is None or held[1] is not lane:
                    continue  # replaced, cancelled, or moved to the other lane
                if key in self.inflight:
                    skipped.append(key)  # one PATCH per pod at a time: after this one
                    continue
                if lane is Lane.BACKGROUND and len(self.inflight) >= self.concurrency - self.reserved:
                    queue.appendleft(key)  # the last slots stay free for escalations
                    slots_full = True
                    break
                if lane is Lane.BACKGROUND and not self.bucket.take():
                    queue.appendleft(key)  # over its rate
                    break
                job = (key, held[0], lane)
                self._pop(key)
                break
            queue.extendleft(reversed(skipped))
            if job is not None:
                return job
        waits = [self._retries[0][0] - now] if self._retries else []
        if self._count[Lane.BACKGROUND] and not slots_full:
            waits.append(self.bucket.wait_time())  # (a full slot set wakes us when a send ends)
        return max(0.001, min(waits, default=1.0))

    async def run(self) -> None:
        slots = asyncio.Semaphore(self.concurrency)
        try:
            while True:
                await slots.acquire()
                while True:
                    self.last_progress = self.monotonic()
                    if not self.gate.may_write():
                        self._wake.clear()
                        await wake_or_timeout(self._wake, 0.5)
                        continue
                    job = self._take()
                    if not isinstance(job, float):
                        break
                    self._wake.clear()
                    await wake_or_timeout(self._wake, min(job, 1.0))
                key, target, lane = job
                self.inflight[key] = target
                task = asyncio.get_running_loop().create_task(self._send(key, target, lane, slots))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        finally:
            for task in list(self._tasks):
                task.cancel()

    async def _send(self, key: PodKey, target: Target, lane: Lane, slots: asyncio.Semaphore) -> None:
        try:
            outcome = await self.act(key, target, lane)
        except Exception:  # an unexpected bug in one resize must not stop the queue
            outcome = Outcome.RETRY
        finally:
            self.inflight.pop(key, None)
            slots.release()
        if outcome is Outcome.RETRY and key not in self.pending:
            attempts = self.attempts.get(key, 0) + 1
            self.attempts[key] = attempts
            delay = min(self.retry_max, self.retry_base * 2.0 ** (attempts - 1))
            heapq.heappush(self._retries, (self.monotonic() + delay, key, target, lane))
        elif outcome is Outcome.GIVE_UP and key not in self.pending:
            self.given_up[key] = target
        elif outcome is Outcome.DONE:
            self.attempts.pop(key, None)
        self._wake.set()

    def publish(self) -> None:
        metrics.RESIZE_QUEUE_DEPTH.labels("escalation").set(self.depth(Lane.ESCALATION))
        metrics.RESIZE_QUEUE_DEPTH.labels("background").set(self.depth(Lane.BACKGROUND))
