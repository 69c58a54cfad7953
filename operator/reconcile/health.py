"""Is the operator making progress? The watchdog behind /healthz, and the event loop's lag."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Protocol

from heady_operator import metrics

log = logging.getLogger(__name__)


class Progressing(Protocol):
    def stalled(self, limit: float) -> list[str]: ...


class Ingesting(Protocol):
    @property
    def last_progress(self) -> float: ...


class Watchdog:
    """Fails health when a loop (planner, reporter, resize queue, ingest) stopped moving, and says why."""

    def __init__(self, escalation: Progressing, ingest: object | None, limit: float) -> None:
        self.escalation = escalation
        self.ingest = ingest
        self.limit = limit
        self._reported: list[str] = []

    def problems(self) -> list[str]:
        out = self.escalation.stalled(self.limit)
        last = getattr(self.ingest, "last_progress", None)
        if isinstance(last, float) and time.monotonic() - last > self.limit + 5.0:
            # The consumer blocks up to ingest_block_ms per read: it gets that much more slack.
            out.append(f"attention ingest made no progress for {time.monotonic() - last:.0f} s")
        if out != self._reported:
            if out:
                log.error("unhealthy: %s", "; ".join(out))
            elif self._reported:
                log.info("healthy again")
            self._reported = out
        return out


async def watch_loop_lag(interval: float = 0.1) -> None:
    """How late a timer fires is how long something else held the event loop."""
    loop = asyncio.get_running_loop()
    while True:
        planned = loop.time() + interval
        await asyncio.sleep(interval)
        metrics.EVENT_LOOP_LAG.observe(max(0.0, loop.time() - planned))
