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

    Every search first picks `candidates` rows by the Hamming distance of their binary
    sketches (the embedding's sign bits), then orders those by the exact cosine distance. A
    session of at most `scan_rows` rows is scanned whole for its candidates (an index-only scan
    of the session's sketches: no graph walk, nothing missed but what the sketch misorders); a
    larger session, and the search for precedents across sessions, walks the HNSW graph over
    the sketches with pgvector's iterative scan, which keeps going until enough rows pass the
    filter or `max_scan_tuples` index tuples were visited. A walk that comes back short is
    redone by a scan, so a result is never silently missing rows. A session of at most
    `candidates` rows is therefore searched exactly.
    """

    # Sessions up to this size scan their sketches (~0.4 us a row); beyond it the graph walk,
    # whose cost does not grow with the session, is cheaper.
    scan_rows: int = 20_000
    # Rows re-ranked by exact distance. On clustered 1536-dim embeddings the sign bits put the
    # true top 10 within the first 200 for every near, other-session and unseen-cluster query
    # of the benchmark (100 missed a few; 40 lost up to 6 of 10).
    candidates: int = 200
    # HNSW candidate list over the sketches (pgvector default 40). At least `candidates`, so one
    # step of the walk yields the re-rank pool; 400 lifted cross-session recall for queries from
    # unseen clusters from 0.92 to 0.96 for under a millisecond.
    ef_search: int = 400
    # pgvector default 20,000; bounds the work of a filtered walk before the fallback scan.
    max_scan_tuples: int = 20_000

    def __post_init__(self) -> None:
        if self.scan_rows < 0:
            raise ValueError(f"scan_rows must not be negative, got {self.scan_rows}")
        if not 1 <= self.candidates <= 10_000:
            raise ValueError(f"candidates must be within 1..10000, got {self.candidates}")
        if not 1 <= self.ef_search <= 1000:
            raise ValueError(f"ef_search must be within 1..1000 (pgvector's range), got {self.ef_search}")
        if self.max_scan_tuples < 1:
            raise ValueError(f"max_scan_tuples must be positive, got {self.max_scan_tuples}")

    def pool_size(self, limit: int) -> int:
        """Rows to re-rank for a search of `limit` results."""
        return max(self.candidates, 4 * limit)

    def index_walk(self) -> str:
        """Settings of one graph walk, applied with SET LOCAL in its own transaction.

        enable_sort off pins the candidates to the HNSW index: it is the only way to read
        sketches in distance order without sorting them, so no cost estimate can turn the walk
        into a scan of the session. Sequential scans off keeps the re-rank on the primary key.
        """
        return _set_local(
            enable_seqscan="off",
            enable_indexscan="on",
            enable_bitmapscan="on",
            enable_sort="off",
            **{
                "hnsw.ef_search": str(self.ef_search),
                "hnsw.iterative_scan": "relaxed_order",
                "hnsw.max_scan_tuples": str(self.max_scan_tuples),
            },
        )


def _set_local(**settings: str) -> str:
    # Every statement sets all the planner switches, since several run in one transaction.
    # Custom plans: asyncpg prepares statements, and after five executions Postgres may switch
    # to a generic plan, made once without the session's value and under whichever settings
    # were in force then.
    settings["plan_cache_mode"] = "force_custom_plan"
    return "; ".join(f"SET LOCAL {name} = '{value}'" for name, value in settings.items())


# The scan of one session's sketches. Its statement orders by hamming_distance(), which the
# HNSW index cannot serve (only its operator, <~>, matches), so the pool comes from the
# covering (session) INCLUDE (id, sketch) index; sequential and bitmap scans off keep the pool
# from reading heap pages and the re-rank on the primary key. The count that decides between
# scan and walk runs under it too (an index-only scan).
_SESSION_SCAN = _set_local(
    enable_seqscan="off", enable_indexscan="on", enable_bitmapscan="off", enable_sort="on"
)
# The exact search across sessions, only as the fallback of a short walk: a full scan.
_EXACT_TABLE_SCAN = _set_local(
    enable_seqscan="on", enable_indexscan="off", enable_bitmapscan="on", enable_sort="on"
)
# A session known to be larger than scan_rows stays so (rows are never deleted one by one);
# the set is bounded only to keep a long-running process small.
_MAX_LARGE_SESSIONS = 100_000


class Strategy(StrEnum):
    SCAN = "scan"  # the session's sketches, scanned whole
    INDEX = "index"  # a walk of the HNSW graph over the sketches
    EXACT = "exact"  # every distance (only as the fallback of a short cross-session walk)


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
# are applied in Python, so a short result (the walk gave up) is told apart from a high
# threshold. $4 is the re-rank pool: the rows nearest by sketch, in a materialised CTE so the
# exact distances are computed for those rows only, looked up by primary key (= ANY of an
# array is an index condition, never a join the planner could turn into a scan of the table).
_COLUMNS = "id, session, repo_name, entity_type, entity_id, content, battle_depth, risk_score, created_at"
_RERANK = f"""
SELECT {_COLUMNS}, embedding <=> $2 AS distance
FROM arena_embeddings
WHERE id = ANY (ARRAY(SELECT id FROM pool))
ORDER BY distance
LIMIT $3
"""


def _pooled(where: str, order: str) -> str:
    """The search of the rows matching `where`: the pool nearest by `order`, then the re-rank."""
    return f"""
WITH pool AS MATERIALIZED (
    SELECT id FROM arena_embeddings
    WHERE {where}
    ORDER BY {order}
    LIMIT $4
){_RERANK}"""


# The graph serves only its operator, <~>; the same distance as a function call it cannot.
_BY_GRAPH = "sketch <~> binary_quantize($2::vector)"
_NOT_BY_GRAPH = "hamming_distance(sketch, binary_quantize($2::vector))"
SIMILAR_IN_SESSION = _pooled("session = $1", _BY_GRAPH)
SCAN_IN_SESSION = _pooled("session = $1", _NOT_BY_GRAPH)
SIMILAR_ELSEWHERE = _pooled("session <> $1", _BY_GRAPH)
# The fallback of a short cross-session walk: every distance.
EXACT_ELSEWHERE = f"""
SELECT {_COLUMNS}, embedding <=> $2 AS distance
FROM arena_embeddings
WHERE session <> $1
ORDER BY distance
LIMIT $3
"""
# Counts at most $2 rows, from an index alone.
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
        # Searches by how they ran; `fallbacks` counts short walks redone by a scan.
        self.searches: dict[Strategy, int] = dict.fromkeys(Strategy, 0)
        self.fallbacks = 0

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
            rows = await conn.fetch("EXPLAIN " + sql, session, vector, limit, self.search.pool_size(limit))
        return "\n".join(row[0] for row in rows)

    async def _strategy(self, conn: asyncpg.Connection, session: str, precedents: bool) -> Strategy:
        if precedents or session in self._large_sessions:
            return Strategy.INDEX
        limit = self.search.scan_rows
        await conn.execute(_SESSION_SCAN)
        if await conn.fetchval(_SESSION_ROWS_UP_TO, session, limit + 1) <= limit:
            return Strategy.SCAN
        if len(self._large_sessions) >= _MAX_LARGE_SESSIONS:
            self._large_sessions.clear()
        self._large_sessions.add(session)
        return Strategy.INDEX

    def _statement(self, strategy: Strategy, precedents: bool) -> tuple[str, str]:
        if strategy is Strategy.EXACT:
            return EXACT_ELSEWHERE, _EXACT_TABLE_SCAN
        if strategy is Strategy.INDEX:
            return SIMILAR_ELSEWHERE if precedents else SIMILAR_IN_SESSION, self.search.index_walk()
        return SCAN_IN_SESSION, _SESSION_SCAN

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
        if strategy is Strategy.EXACT:
            args = args[:3]  # no re-rank pool
        rows: list[asyncpg.Record] = await conn.fetch(sql, *args)
        return rows

    async def _search(
        self, session: str, query_vector: Sequence[float], threshold: float, limit: int, *, precedents: bool
    ) -> list[SimilarEntry]:
        if limit < 1:
            raise ValueError(f"limit must be positive, got {limit}")
        args = (session, self._check(query_vector), limit, self.search.pool_size(limit))
        # One read-only transaction per search: its SET LOCAL settings end with it.
        async with self._pool.acquire() as conn, conn.transaction(readonly=True):
            counted = not precedents and session not in self._large_sessions
            strategy = await self._strategy(conn, session, precedents)
            in_force = _SESSION_SCAN if counted else None
            rows = await self._fetch(conn, strategy, precedents, args, in_force)
            if strategy is Strategy.INDEX and len(rows) < limit:
                # The walk reached max_scan_tuples (or the rows are fewer than limit).
                self.fallbacks += 1
                fallback = Strategy.EXACT if precedents else Strategy.SCAN
                rows = await self._fetch(conn, fallback, precedents, args)
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
