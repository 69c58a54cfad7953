"""Is the operator making progress? The watchdog behind /healthz, and the event loop's lag."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Protocol

from heady_operator import metrics
from heady_operator.planning.leadership import Elector, Role

log = logging.getLogger(__name__)


class Progressing(Protocol):
    def stalled(self, limit: float) -> list[str]: ...


class Ingesting(Protocol):
    @property
    def last_progress(self) -> float: ...


class Watchdog:
    """Fails health when a loop (planner, reporter, resize queue, ingest) stopped moving, and says why.

    With leader election a standby is healthy (its loops move; it only does not write), and a
    fenced leader is not: it will never write again, and a restart makes it a fresh standby.
    """

    def __init__(
        self, escalation: Progressing, ingest: object | None, limit: float, elector: Elector | None = None
    ) -> None:
        self.elector = elector
        self.escalation = escalation
        self.ingest = ingest
        self.limit = limit
        self._reported: list[str] = []

    def problems(self) -> list[str]:
        out = self.escalation.stalled(self.limit)
        if self.role() == Role.FENCED.value:
            reason = self.elector.fenced_reason if self.elector is not None else ""
            out.append(
                f"fenced leader ({reason or 'its renew deadline passed'}): restart to rejoin as a standby"
            )
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

    def role(self) -> str | None:
        """leader, standby or fenced; None when this process acts alone (no election)."""
        if self.elector is None:
            return None
        if self.elector.may_write():
            return Role.LEADER.value
        # Past its deadline the leader is fenced already, before its election loop says so.
        return Role.FENCED.value if self.elector.role is Role.LEADER else self.elector.role.value


async def watch_loop_lag(interval: float = 0.1) -> None:
    """How late a timer fires is how long something else held the event loop."""
    loop = asyncio.get_running_loop()
    while True:
        planned = loop.time() + interval
        await asyncio.sleep(interval)
        metrics.EVENT_LOOP_LAG.observe(max(0.0, loop.time() - planned))
