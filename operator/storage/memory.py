"""ArenaMemory: what arena sessions produced, as embeddings in Postgres + pgvector.

The only module that talks to Postgres. Writes are idempotent on (session, entity_type,
entity_id, content_hash), so a write replayed after an outage never lands twice.
Similarity is 1 - cosine distance (1 = same direction, 0 = orthogonal).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import asyncpg
from pgvector.asyncpg import register_vector

from heady_operator.storage.schema import check_dimensions, migrate

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SearchSettings:
    """How ArenaMemory searches; the defaults come from benchmarks/pgvector_search.py.

    A session with at most `exact_rows` rows is searched exactly: its rows are found through
    the session index and every distance is computed (1-4 us a row with the vectors stored
    inline). A larger session, and the search for precedents across sessions, goes through
    the HNSW index with pgvector's iterative scan, which keeps walking the graph until `limit`
    rows pass the session filter or `max_scan_tuples` index tuples were visited. A walk that comes
    back short is redone exactly, so a result is never silently missing rows.
    """

    exact_rows: int = 10_000
    # HNSW candidate list per step (pgvector default 40): recall against latency. At 100k rows
    # of clustered embeddings 100 left some precedent searches with recall 0 (a cluster the walk
    # never reached); 200 found at least 9 of the 10 for every near query, for twice the CPU.
    ef_search: int = 200
    # pgvector default 20,000; bounds the work of a filtered walk before the exact fallback.
    max_scan_tuples: int = 20_000

    def __post_init__(self) -> None:
        if self.exact_rows < 0:
            raise ValueError(f"exact_rows must not be negative, got {self.exact_rows}")
        if not 1 <= self.ef_search <= 1000:
            raise ValueError(f"ef_search must be within 1..1000 (pgvector's range), got {self.ef_search}")
        if self.max_scan_tuples < 1:
            raise ValueError(f"max_scan_tuples must be positive, got {self.max_scan_tuples}")

    def index_scan(self) -> str:
        """Settings of one HNSW search, applied with SET LOCAL in its own transaction.

        enable_sort off pins the plan to the index: it is the only way to read rows in distance
        order without sorting them, so no cost estimate can turn it into an exact scan of the
        session. Custom plans because the exact and the index search share one statement text,
        so one prepared statement: after five executions Postgres would otherwise reuse a generic
        plan made under whichever settings were in force then.
        """
        return _set_local(
            enable_seqscan="on",
            enable_indexscan="on",
            enable_sort="off",
            **{
                "hnsw.ef_search": str(self.ef_search),
                "hnsw.iterative_scan": "relaxed_order",
                "hnsw.max_scan_tuples": str(self.max_scan_tuples),
            },
        )


def _set_local(**settings: str) -> str:
    # Every statement sets all the planner switches, since several run in one transaction.
    settings["plan_cache_mode"] = "force_custom_plan"
    return "; ".join(f"SET LOCAL {name} = '{value}'" for name, value in settings.items())


# The exact scan of one session: its rows through the identity index (session is its leading
# column) as a bitmap scan, then a top-k sort; index scans off so HNSW cannot take over. The
# count that decides between exact and index search runs under it too (an index-only scan).
_EXACT_SESSION_SCAN = _set_local(enable_seqscan="off", enable_indexscan="off", enable_sort="on")
# The exact search across sessions, only as the fallback of a short HNSW walk: a full scan.
_EXACT_TABLE_SCAN = _set_local(enable_seqscan="on", enable_indexscan="off", enable_sort="on")
# A session known to be larger than exact_rows stays so (rows are never deleted one by one);
# the set is bounded only to keep a long-running process small.
_MAX_LARGE_SESSIONS = 100_000


class Strategy(StrEnum):
    EXACT = "exact"
    INDEX = "index"


class StoreOutcome(StrEnum):
    INSERTED = "inserted"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


def content_hash(content: str) -> str:
    return hashlib.sha256(content.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class MemoryRecord:
    session: str
    repo_name: str
    entity_type: str
    entity_id: str
    content: str
    embedding: Sequence[float]
    battle_depth: int = 0
    risk_score: float = 0.0

    @property
    def content_hash(self) -> str:
        return content_hash(self.content)

    @property
    def identity(self) -> tuple[str, str, str, str]:
        """The table's unique key."""
        return (self.session, self.entity_type, self.entity_id, self.content_hash)


@dataclass(frozen=True)
class SimilarEntry:
    id: int
    session: str
    repo_name: str
    entity_type: str
    entity_id: str
    content: str
    battle_depth: int
    risk_score: float
    similarity: float
    created_at: datetime


_STORE = """
INSERT INTO arena_embeddings AS e
    (session, repo_name, entity_type, entity_id, content_hash, embedding, battle_depth, risk_score, content)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT ON CONSTRAINT arena_embeddings_identity DO UPDATE
    SET repo_name = EXCLUDED.repo_name,
        embedding = EXCLUDED.embedding,
        battle_depth = EXCLUDED.battle_depth,
        risk_score = EXCLUDED.risk_score
    -- A replay of the same write changes nothing and writes no new row version.
    WHERE (e.repo_name, e.battle_depth, e.risk_score) IS DISTINCT FROM
          (EXCLUDED.repo_name, EXCLUDED.battle_depth, EXCLUDED.risk_score)
       OR e.embedding IS DISTINCT FROM EXCLUDED.embedding
RETURNING (xmax = 0) AS inserted
"""

# Rows come back with their distance; the threshold and the final order (distance, then id)
# are applied in Python, so the statements keep the plain "ORDER BY distance LIMIT k" shape an
# HNSW index serves, and a short result (the walk gave up) is told apart from a high threshold.
_COLUMNS = "id, session, repo_name, entity_type, entity_id, content, battle_depth, risk_score, created_at"
SIMILAR_IN_SESSION = f"""
SELECT {_COLUMNS}, embedding <=> $2 AS distance
FROM arena_embeddings
WHERE session = $1
ORDER BY distance
LIMIT $3
"""
SIMILAR_ELSEWHERE = f"""
SELECT {_COLUMNS}, embedding <=> $2 AS distance
FROM arena_embeddings
WHERE session <> $1
ORDER BY distance
LIMIT $3
"""
# Counts at most $2 rows, from the identity index alone.
_SESSION_ROWS_UP_TO = "SELECT count(*) FROM (SELECT 1 FROM arena_embeddings WHERE session = $1 LIMIT $2) s"

_UPDATE_RISK = """
UPDATE arena_embeddings SET risk_score = $4
WHERE session = $1 AND entity_type = $2 AND entity_id = $3 AND risk_score IS DISTINCT FROM $4
"""


class ArenaMemory:
    """Embeddings of arena sessions, over an asyncpg pool. Build with `connect`."""

    def __init__(self, pool: asyncpg.Pool, dimensions: int, search: SearchSettings | None = None) -> None:
        self._pool = pool
        self.dimensions = dimensions
        self.search = search or SearchSettings()
        self._large_sessions: set[str] = set()
        # Searches by how they ran; `exact_fallbacks` counts HNSW walks redone exactly.
        self.searches: dict[Strategy, int] = dict.fromkeys(Strategy, 0)
        self.exact_fallbacks = 0

    @classmethod
    async def connect(
        cls,
        dsn: str,
        dimensions: int,
        *,
        min_size: int = 1,
        max_size: int = 4,
        search: SearchSettings | None = None,
        connect_timeout: float = 5.0,
        command_timeout: float = 30.0,
        server_settings: dict[str, str] | None = None,
    ) -> ArenaMemory:
        """Open a pool. Call `migrate()` before the first write on a fresh database.

        search sets how searches trade speed for recall; server_settings are passed to every
        connection (e.g. application_name, statement_timeout).
        """
        check_dimensions(dimensions)

        async def setup(conn: asyncpg.Connection) -> None:
            # The vector type exists only once the extension does; a pool opened before
            # migrate() gets its codec when migrate() recycles the connections.
            if await conn.fetchval("SELECT 1 FROM pg_extension WHERE extname = 'vector'"):
                await register_vector(conn)

        pool = await asyncpg.create_pool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            init=setup,
            timeout=connect_timeout,
            command_timeout=command_timeout,
            server_settings={"application_name": "heady-operator", **(server_settings or {})},
        )
        return cls(pool, dimensions, search)

    async def migrate(self) -> list[str]:
        async with self._pool.acquire() as conn:
            applied: list[str] = await migrate(conn, self.dimensions)
        # Connections opened before the extension existed lack the vector codec; replace them.
        await self._pool.expire_connections()
        return applied

    async def close(self) -> None:
        await self._pool.close()

    async def ping(self) -> None:
        await self._pool.fetchval("SELECT 1")

    def _check(self, vector: Sequence[float]) -> list[float]:
        values = [float(v) for v in vector]
        if len(values) != self.dimensions:
            raise ValueError(f"embedding has {len(values)} dimensions, memory expects {self.dimensions}")
        return values

    def _params(self, record: MemoryRecord) -> tuple[Any, ...]:
        return (
            record.session,
            record.repo_name,
            record.entity_type,
            record.entity_id,
            record.content_hash,
            self._check(record.embedding),
            record.battle_depth,
            record.risk_score,
            record.content,
        )

    async def store(self, record: MemoryRecord) -> StoreOutcome:
        row = await self._pool.fetchrow(_STORE, *self._params(record))
        if row is None:
            return StoreOutcome.UNCHANGED
        return StoreOutcome.INSERTED if row["inserted"] else StoreOutcome.UPDATED

    async def store_many(self, records: Iterable[MemoryRecord]) -> None:
        """Bulk form of `store` (one round trip per batch, same conflict handling)."""
        args = [self._params(r) for r in records]
        if args:
            async with self._pool.acquire() as conn:
                await conn.executemany(_STORE, args)

    async def find_similar(
        self,
        session: str,
        query_vector: Sequence[float],
        threshold: float = 0.8,
        limit: int = 10,
    ) -> list[SimilarEntry]:
        """The session's entries most similar to the query, most similar first."""
        return await self._search(session, query_vector, threshold, limit, precedents=False)

    async def find_precedents(
        self,
        exclude_session: str,
        query_vector: Sequence[float],
        threshold: float = 0.8,
        limit: int = 10,
    ) -> list[SimilarEntry]:
        """Entries of *other* sessions most similar to the query (the precedent for HeadyRisk)."""
        return await self._search(exclude_session, query_vector, threshold, limit, precedents=True)

    async def explain(
        self, session: str, query_vector: Sequence[float], *, precedents: bool = False, limit: int = 10
    ) -> str:
        """The plan the search for these arguments runs first (EXPLAIN, not executed)."""
        vector = self._check(query_vector)
        async with self._pool.acquire() as conn, conn.transaction(readonly=True):
            strategy = await self._strategy(conn, session, precedents)
            sql, settings = self._statement(strategy, precedents)
            await conn.execute(settings)
            rows = await conn.fetch("EXPLAIN " + sql, session, vector, limit)
        return "\n".join(row[0] for row in rows)

    async def _strategy(self, conn: asyncpg.Connection, session: str, precedents: bool) -> Strategy:
        if precedents or session in self._large_sessions:
            return Strategy.INDEX
        limit = self.search.exact_rows
        await conn.execute(_EXACT_SESSION_SCAN)
        if await conn.fetchval(_SESSION_ROWS_UP_TO, session, limit + 1) <= limit:
            return Strategy.EXACT
        if len(self._large_sessions) >= _MAX_LARGE_SESSIONS:
            self._large_sessions.clear()
        self._large_sessions.add(session)
        return Strategy.INDEX

    def _statement(self, strategy: Strategy, precedents: bool) -> tuple[str, str]:
        sql = SIMILAR_ELSEWHERE if precedents else SIMILAR_IN_SESSION
        if strategy is Strategy.INDEX:
            return sql, self.search.index_scan()
        return sql, _EXACT_TABLE_SCAN if precedents else _EXACT_SESSION_SCAN

    async def _fetch(
        self,
        conn: asyncpg.Connection,
        strategy: Strategy,
        precedents: bool,
        args: tuple[Any, ...],
        in_force: str | None = None,
    ) -> list[asyncpg.Record]:
        sql, settings = self._statement(strategy, precedents)
        if settings != in_force:  # saves a round trip after the count, which set the same
            await conn.execute(settings)
        rows: list[asyncpg.Record] = await conn.fetch(sql, *args)
        return rows

    async def _search(
        self, session: str, query_vector: Sequence[float], threshold: float, limit: int, *, precedents: bool
    ) -> list[SimilarEntry]:
        if limit < 1:
            raise ValueError(f"limit must be positive, got {limit}")
        args = (session, self._check(query_vector), limit)
        # One read-only transaction per search: its SET LOCAL settings end with it.
        async with self._pool.acquire() as conn, conn.transaction(readonly=True):
            counted = not precedents and session not in self._large_sessions
            strategy = await self._strategy(conn, session, precedents)
            in_force = _EXACT_SESSION_SCAN if counted else None
            rows = await self._fetch(conn, strategy, precedents, args, in_force)
            if strategy is Strategy.INDEX and len(rows) < limit:
                # The walk reached max_scan_tuples (or the rows are fewer than limit): exact it is.
                self.exact_fallbacks += 1
                rows = await self._fetch(conn, Strategy.EXACT, precedents, args)
        self.searches[strategy] += 1
        # A relaxed-order walk may return neighbours slightly out of order.
        rows.sort(key=lambda row: (row["distance"], row["id"]))
        return [
            SimilarEntry(
                id=row["id"],
                session=row["session"],
                repo_name=row["repo_name"],
                entity_type=row["entity_type"],
                entity_id=row["entity_id"],
                content=row["content"],
                battle_depth=row["battle_depth"],
                risk_score=row["risk_score"],
                similarity=1.0 - float(row["distance"]),
                created_at=row["created_at"],
            )
            for row in rows
            if 1.0 - float(row["distance"]) >= threshold
        ]

    async def update_risk_score(
        self, session: str, entity_type: str, entity_id: str, risk_score: float
    ) -> int:
        """Set the risk score of every stored version of one entity; returns rows changed."""
        if not 0.0 <= risk_score <= 1.0:
            raise ValueError(f"risk score must be within 0..1, got {risk_score}")
        status: str = await self._pool.execute(_UPDATE_RISK, session, entity_type, entity_id, risk_score)
        return int(status.rsplit(" ", 1)[-1])

    async def count(self, session: str | None = None) -> int:
        if session is None:
            value = await self._pool.fetchval("SELECT count(*) FROM arena_embeddings")
        else:
            value = await self._pool.fetchval(
                "SELECT count(*) FROM arena_embeddings WHERE session = $1", session
            )
        return int(value)
