"""The election loop: read the Lease, let the elector decide, write what it decided, tell the operator.

Every replica runs this from start-up. A standby reads the Lease every retry period (sooner
when the holder's Lease runs out before that) and takes it once it is free or expired; the
leader renews it every retry period. The gate every writer asks is the elector itself
(`may_write`: leading and before the fencing deadline), so a leader that stops renewing stops
writing by its own clock, without waiting for this loop to notice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Protocol

from kubernetes_asyncio.client.exceptions import ApiException

from heady_operator import metrics
from heady_operator.kube.lease import LeaseConflict
from heady_operator.kube.resize import api_message
from heady_operator.planning.leadership import Elector, LeaseRecord, Role, Step

log = logging.getLogger(__name__)

Hook = Callable[[], Awaitable[None]]


class LeaseStore(Protocol):
    async def read(self) -> LeaseRecord | None: ...

    async def create(self, record: LeaseRecord) -> LeaseRecord: ...

    async def replace(self, record: LeaseRecord) -> LeaseRecord: ...


async def _nothing() -> None:
    return None


class Election:
    def __init__(
        self,
        elector: Elector,
        store: LeaseStore,
        clock: Callable[[], datetime],
        on_leading: Hook = _nothing,
        on_fenced: Hook = _nothing,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.elector = elector
        self.store = store
        self.clock = clock
        self.on_leading = on_leading
        self.on_fenced = on_fenced
        self.sleep = sleep
        self.rounds = 0
        self._error: str | None = None

    async def run(self) -> None:
        while self.elector.role is not Role.FENCED:
            try:
                await self.round()
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug in one round must not end the election (the deadline still fences)
                log.exception("leader election round failed")
            await self.sleep(self.elector.wait_seconds())
        metrics.LEADER.set(0)

    async def round(self) -> None:
        elector = self.elector
        self.rounds += 1
        if elector.check():
            await self._fenced()
            return
        if elector.role is Role.FENCED:
            return
        try:
            elector.observe(await self.store.read())
            decision = elector.decide(self.clock())
            if decision.step is Step.WAIT:
                if elector.lost(elector.holder):
                    await self._fenced()
                return
            assert decision.record is not None
            sent = elector.monotonic()
            if decision.step is Step.CREATE:
                written = await self.store.create(decision.record)
            else:
                written = await self.store.replace(decision.record)
        except LeaseConflict as exc:
            # Another replica wrote first: read again next round (a leader's deadline keeps running).
            log.info("leader election: the Lease changed under us (%s)", exc)
            return
        except (ApiException, OSError, TimeoutError) as exc:
            message = api_message(exc) if isinstance(exc, ApiException) else f"{type(exc).__name__}: {exc}"
            if message != self._error:
                log.warning("leader election: the Lease could not be read or written: %s", message)
            self._error = message
            return
        self._error = None
        if elector.written(written, sent):
            metrics.LEADER.set(1)
            log.info(
                "leader election: %s leads (Lease %s, transition %d)",
                elector.identity,
                decision.step.value,
                written.transitions,
            )
            await self.on_leading()
        if elector.check():  # the write itself took longer than the deadline
            await self._fenced()

    async def _fenced(self) -> None:
        metrics.LEADER.set(0)
        log.error("leader election: fenced, writing nothing more: %s", self.elector.fenced_reason)
        await self.on_fenced()

    async def release(self) -> bool:
        """Shutting down: stop writing, then hand the Lease over so a standby takes it on its next round."""
        was_leading = self.elector.role is Role.LEADER
        self.elector.fence("shutting down")
        metrics.LEADER.set(0)
        if not was_leading:
            return False
        for _ in range(3):
            record = self.elector.release_record(self.clock())
            if record is None:
                return False  # someone else holds it already
            try:
                await self.store.replace(record)
            except LeaseConflict:
                # A renewal that was in flight landed first: release the version it wrote.
                try:
                    self.elector.observed = await self.store.read()
                except (ApiException, OSError, TimeoutError) as exc:
                    log.warning(
                        "leader election: could not release the Lease (%s); it expires by itself", exc
                    )
                    return False
                continue
            except (ApiException, OSError, TimeoutError) as exc:
                log.warning("leader election: could not release the Lease (%s); it expires by itself", exc)
                return False
            log.info("leader election: released the Lease")
            return True
        log.warning("leader election: could not release the Lease (it kept changing); it expires by itself")
        return False


__all__ = ["Election", "LeaseStore"]
