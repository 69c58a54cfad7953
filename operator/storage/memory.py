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

# pgvector 0.8 can keep scanning an HNSW index until enough rows pass the WHERE clause;
# without it a per-session search returns only the session's rows among the first
# ef_search neighbours overall, often none. Sent as a connection startup parameter, not a SET,
# because the pool's RESET ALL on release would undo a SET. Older pgvector ignores it
# (at most a warning in the server log).
_SEARCH_SETTINGS = {"hnsw.iterative_scan": "relaxed_order"}


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

# The inner query is the plain "ORDER BY distance LIMIT k" shape that an HNSW index serves;
# the threshold is applied outside so it cannot turn the index scan into a filtered sort.
# The outer ORDER BY restores exact order after a relaxed-order iterative scan.
_COLUMNS = "id, session, repo_name, entity_type, entity_id, content, battle_depth, risk_score, created_at"
SIMILAR_IN_SESSION = f"""
SELECT {_COLUMNS}, 1 - distance AS similarity FROM (
    SELECT {_COLUMNS}, embedding <=> $2 AS distance
    FROM arena_embeddings
    WHERE session = $1
    ORDER BY embedding <=> $2
    LIMIT $4
) nearest
WHERE 1 - distance >= $3
ORDER BY distance, id
"""
SIMILAR_ELSEWHERE = f"""
SELECT {_COLUMNS}, 1 - distance AS similarity FROM (
    SELECT {_COLUMNS}, embedding <=> $2 AS distance
    FROM arena_embeddings
    WHERE session <> $1
    ORDER BY embedding <=> $2
    LIMIT $4
) nearest
WHERE 1 - distance >= $3
ORDER BY distance, id
"""

_UPDATE_RISK = """
UPDATE arena_embeddings SET risk_score = $4
WHERE session = $1 AND entity_type = $2 AND entity_id = $3 AND risk_score IS DISTINCT FROM $4
"""


class ArenaMemory:
    """Embeddings of arena sessions, over an asyncpg pool. Build with `connect`."""

    def __init__(self, pool: asyncpg.Pool, dimensions: int) -> None:
        self._pool = pool
        self.dimensions = dimensions

    @classmethod
    async def connect(
        cls,
        dsn: str,
        dimensions: int,
        *,
        min_size: int = 1,
        max_size: int = 4,
        ef_search: int | None = None,
        connect_timeout: float = 5.0,
        command_timeout: float = 30.0,
        server_settings: dict[str, str] | None = None,
    ) -> ArenaMemory:
        """Open a pool. Call `migrate()` before the first write on a fresh database.

        ef_search trades search speed for recall (pgvector's default is 40); server_settings
        are passed to every connection (e.g. application_name, statement_timeout).
        """
        check_dimensions(dimensions)

        async def setup(conn: asyncpg.Connection) -> None:
            # The vector type exists only once the extension does; a pool opened before
            # migrate() gets its codec when migrate() recycles the connections.
            if await conn.fetchval("SELECT 1 FROM pg_extension WHERE extname = 'vector'"):
                await register_vector(conn)

        settings = {"application_name": "heady-operator", **_SEARCH_SETTINGS}
        if ef_search is not None:
            settings["hnsw.ef_search"] = str(int(ef_search))
        settings |= server_settings or {}
        pool = await asyncpg.create_pool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            init=setup,
            timeout=connect_timeout,
            command_timeout=command_timeout,
            server_settings=settings,
        )
        return cls(pool, dimensions)

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
        return await self._search(SIMILAR_IN_SESSION, session, query_vector, threshold, limit)

    async def find_precedents(
        self,
        exclude_session: str,
        query_vector: Sequence[float],
        threshold: float = 0.8,
        limit: int = 10,
    ) -> list[SimilarEntry]:
        """Entries of *other* sessions most similar to the query (the precedent for HeadyRisk)."""
        return await self._search(SIMILAR_ELSEWHERE, exclude_session, query_vector, threshold, limit)

    async def _search(
        self, sql: str, session: str, query_vector: Sequence[float], threshold: float, limit: int
    ) -> list[SimilarEntry]:
        if limit < 1:
            raise ValueError(f"limit must be positive, got {limit}")
        rows = await self._pool.fetch(sql, session, self._check(query_vector), threshold, limit)
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
                similarity=float(row["similarity"]),
                created_at=row["created_at"],
            )
            for row in rows
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
