"""Arena memory that survives Postgres outages.

Memory is an aid, not a dependency: while Postgres is down the operator keeps admitting and
running sessions. Writes made meanwhile wait in a bounded in-memory queue and are replayed,
oldest first, once a reconnect with exponential backoff succeeds. Replays are safe because
every write is idempotent on the table's unique key. Searches return nothing while memory is
unavailable; `available` (and `last_error`) feed the MemoryAvailable condition.

What is lost: queued writes when the operator restarts during an outage, and the oldest ones
when more than `max_pending` pile up (counted in `dropped`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import asyncpg

from heady_operator.storage.memory import (
    ArenaMemory,
    MemoryRecord,
    SearchSettings,
    SimilarEntry,
    StoreOutcome,
)

log = logging.getLogger(__name__)

Connector = Callable[[], Awaitable[ArenaMemory]]
Sleep = Callable[[float], Awaitable[None]]

# Errors that mean "the database is not reachable right now", as opposed to a bad write.
_OUTAGE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,  # refused, reset, socket file gone
    TimeoutError,
    asyncpg.PostgresConnectionError,  # class 08
    asyncpg.exceptions.OperatorInterventionError,  # class 57: shutting down, starting up
    asyncpg.exceptions.InsufficientResourcesError,  # class 53: too many connections, disk full
    asyncpg.InterfaceError,  # connection or pool closed underneath us
    # A Postgres that came back empty (no volume): recovery re-runs the migrations.
    asyncpg.exceptions.UndefinedTableError,
)


def is_outage(exc: BaseException) -> bool:
    return isinstance(exc, _OUTAGE_ERRORS)


@dataclass(frozen=True)
class StoreWrite:
    record: MemoryRecord

    @property
    def key(self) -> tuple[str, ...]:
        return ("store", *self.record.identity)

    async def apply(self, memory: ArenaMemory) -> None:
        await memory.store(self.record)


@dataclass(frozen=True)
class RiskWrite:
    session: str
    entity_type: str
    entity_id: str
    risk_score: float

    @property
    def key(self) -> tuple[str, ...]:
        return ("risk", self.session, self.entity_type, self.entity_id)

    async def apply(self, memory: ArenaMemory) -> None:
        await memory.update_risk_score(self.session, self.entity_type, self.entity_id, self.risk_score)


PendingWrite = StoreWrite | RiskWrite


class PendingWrites:
    """Writes waiting for Postgres: ordered, one per key, at most `limit`.

    A write for a key already queued replaces it and moves to the back, which is exactly what
    replaying both in order would have left in the table. When full, the oldest write goes.
    """

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"limit must be positive, got {limit}")
        self.limit = limit
        self.dropped = 0
        self._writes: OrderedDict[tuple[str, ...], PendingWrite] = OrderedDict()

    def __len__(self) -> int:
        return len(self._writes)

    def add(self, write: PendingWrite) -> None:
        if write.key in self._writes:
            del self._writes[write.key]
        elif len(self._writes) >= self.limit:
            self._writes.popitem(last=False)
            self.dropped += 1
        self._writes[write.key] = write

    def first(self) -> PendingWrite | None:
        return next(iter(self._writes.values()), None)

    def remove(self, write: PendingWrite) -> None:
        # Only if still the same write: a newer one for the key may have replaced it meanwhile.
        if self._writes.get(write.key) is write:
            del self._writes[write.key]


class ResilientMemory:
    """ArenaMemory behind a write queue and a reconnect loop; never raises for an outage."""

    def __init__(
        self,
        connector: Connector,
        dimensions: int,
        *,
        max_pending: int = 10_000,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._connector = connector
        self.dimensions = dimensions
        self._pending = PendingWrites(max_pending)
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._sleep = sleep
        self._memory: ArenaMemory | None = None
        self._available = asyncio.Event()
        self._recovery: asyncio.Task[None] | None = None
        self._closed = False
        self.last_error: str | None = None
        self.rejected = 0

    @classmethod
    def for_dsn(
        cls,
        dsn: str,
        dimensions: int,
        *,
        max_pending: int = 10_000,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        search: SearchSettings | None = None,
    ) -> ResilientMemory:
        """Memory that connects to `dsn` and applies the migrations when it connects.

        search (scan size, re-rank pool, ef_search, max_scan_tuples) applies to every search.
        """

        async def connect() -> ArenaMemory:
            memory = await ArenaMemory.connect(dsn, dimensions, search=search)
            try:
                await memory.migrate()
            except BaseException:
                await memory.close()
                raise
            return memory

        return cls(
            connect,
            dimensions,
            max_pending=max_pending,
            backoff_initial=backoff_initial,
            backoff_max=backoff_max,
        )

    @property
    def available(self) -> bool:
        return self._available.is_set()

    @property
    def pending(self) -> int:
        return len(self._pending)

    @property
    def dropped(self) -> int:
        return self._pending.dropped

    async def start(self) -> bool:
        """Connect (and migrate) once; on failure keep retrying in the background."""
        try:
            self._memory = await self._connector()
        except Exception as exc:
            self._went_down(exc)
            return False
        self.last_error = None
        self._available.set()
        return True

    async def wait_available(self, seconds: float) -> bool:
        """Wait up to `seconds` for memory to be available; returns whether it is."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._available.wait(), seconds)
        return self.available

    async def close(self) -> None:
        self._closed = True
        if self._recovery is not None:
            self._recovery.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._recovery
        if self._memory is not None:
            await self._memory.close()

    async def store(self, record: MemoryRecord) -> StoreOutcome | None:
        """Store now, or queue while Postgres is away (returns None when queued)."""
        if len(record.embedding) != self.dimensions:
            # Refused up front: a bad record in the queue would be dropped only at replay.
            raise ValueError(
                f"embedding has {len(record.embedding)} dimensions, memory expects {self.dimensions}"
            )
        return await self._write(StoreWrite(record))

    async def update_risk_score(
        self, session: str, entity_type: str, entity_id: str, risk_score: float
    ) -> None:
        if not 0.0 <= risk_score <= 1.0:
            raise ValueError(f"risk score must be within 0..1, got {risk_score}")
        await self._write(RiskWrite(session, entity_type, entity_id, risk_score))

    async def find_similar(
        self, session: str, query_vector: Sequence[float], threshold: float = 0.8, limit: int = 10
    ) -> list[SimilarEntry]:
        memory = self._ready()
        if memory is None:
            return []
        try:
            return await memory.find_similar(session, query_vector, threshold, limit)
        except Exception as exc:
            if not is_outage(exc):
                raise
            self._went_down(exc)
            return []

    async def find_precedents(
        self, exclude_session: str, query_vector: Sequence[float], threshold: float = 0.8, limit: int = 10
    ) -> list[SimilarEntry]:
        memory = self._ready()
        if memory is None:
            return []
        try:
            return await memory.find_precedents(exclude_session, query_vector, threshold, limit)
        except Exception as exc:
            if not is_outage(exc):
                raise
            self._went_down(exc)
            return []

    def _ready(self) -> ArenaMemory | None:
        return self._memory if self.available else None

    async def _write(self, write: PendingWrite) -> StoreOutcome | None:
        memory = self._ready()
        # While older writes wait, newer ones queue behind them to keep their order.
        if memory is not None and not len(self._pending):
            try:
                if isinstance(write, StoreWrite):
                    return await memory.store(write.record)
                await write.apply(memory)
                return None
            except Exception as exc:
                if not is_outage(exc):
                    raise
                self._went_down(exc)
        self._pending.add(write)
        return None

    def _went_down(self, exc: BaseException) -> None:
        self.last_error = f"{type(exc).__name__}: {exc}".strip().rstrip(":")
        if self._available.is_set():
            log.warning("arena memory unavailable, queueing writes: %s", self.last_error)
        self._available.clear()
        if not self._closed and (self._recovery is None or self._recovery.done()):
            self._recovery = asyncio.create_task(self._recover(), name="arena-memory-recovery")

    async def _recover(self) -> None:
        delay = self._backoff_initial
        while not self._closed:
            await self._sleep(delay)
            try:
                if self._memory is None:
                    self._memory = await self._connector()
                else:
                    # Idempotent and cheap; recreates the schema if Postgres lost its data.
                    await self._memory.migrate()
                await self._flush(self._memory)
            except Exception as exc:
                self.last_error = f"{type(exc).__name__}: {exc}".strip().rstrip(":")
                level = logging.INFO if is_outage(exc) else logging.ERROR
                log.log(
                    level, "arena memory still unavailable (next try in %.1fs): %s", delay, self.last_error
                )
                delay = min(delay * 2, self._backoff_max)
                continue
            self.last_error = None
            self._available.set()
            log.info("arena memory available again")
            return

    async def _flush(self, memory: ArenaMemory) -> None:
        """Replay queued writes oldest first; an outage stops the replay, a bad write is dropped."""
        while (write := self._pending.first()) is not None:
            try:
                await write.apply(memory)
            except Exception as exc:
                if is_outage(exc):
                    raise
                self.rejected += 1
                log.error("dropping arena memory write %s: %s", write.key, exc)
            self._pending.remove(write)
