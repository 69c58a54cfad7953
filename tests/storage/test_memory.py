"""ArenaMemory and ResilientMemory against a real PostgreSQL + pgvector (see conftest.py)."""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from pgvector.asyncpg import register_vector

from heady_operator.storage.memory import (
    SIMILAR_IN_SESSION,
    ArenaMemory,
    MemoryRecord,
    SearchSettings,
    StoreOutcome,
    Strategy,
)
from heady_operator.storage.resilient import PendingWrites, ResilientMemory, RiskWrite, StoreWrite
from heady_operator.storage.schema import Migration, SchemaError, check_pgvector_version, load_migrations

DIMS = 8


def direction(angle_degrees: float, axis: int = 1) -> list[float]:
    """A unit vector at `angle_degrees` from e0 towards e_axis: its similarity to e0 is cos(angle)."""
    v = [0.0] * DIMS
    v[0] = math.cos(math.radians(angle_degrees))
    v[axis] = math.sin(math.radians(angle_degrees))
    return v


E0 = direction(0)


def record(
    entity_id: str,
    content: str | None = None,
    *,
    session: str = "s1",
    embedding: list[float] | None = None,
    battle_depth: int = 0,
    risk_score: float = 0.0,
) -> MemoryRecord:
    return MemoryRecord(
        session=session,
        repo_name="HeadyMe",
        entity_type="answer",
        entity_id=entity_id,
        content=content if content is not None else f"content of {entity_id}",
        embedding=embedding if embedding is not None else E0,
        battle_depth=battle_depth,
        risk_score=risk_score,
    )


@pytest.fixture
async def memory(dsn: str) -> AsyncIterator[ArenaMemory]:
    mem = await ArenaMemory.connect(dsn, DIMS)
    await mem.migrate()
    yield mem
    await mem.close()


# --- schema ----------------------------------------------------------------------------------


@pytest.mark.postgres
async def test_the_vector_extension_works(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        version = await conn.fetchval("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        assert tuple(int(x) for x in version.split(".")) >= (0, 8, 0)
        distance = await conn.fetchval("SELECT '[1,0]'::vector <=> '[0,1]'::vector")
        assert distance == pytest.approx(1.0)
    finally:
        await conn.close()


@pytest.mark.postgres
async def test_migrations_apply_once(dsn: str) -> None:
    mem = await ArenaMemory.connect(dsn, DIMS)
    try:
        assert await mem.migrate() == ["001", "002", "003"]
        assert await mem.migrate() == []
    finally:
        await mem.close()
    conn = await asyncpg.connect(dsn)
    try:
        assert await conn.fetchval("SELECT count(*) FROM schema_migrations") == 3
        columns = {
            row["attname"]: row["type"]
            for row in await conn.fetch(
                "SELECT attname, format_type(atttypid, atttypmod) AS type FROM pg_attribute "
                "WHERE attrelid = 'arena_embeddings'::regclass AND attname IN ('embedding', 'sketch')"
            )
        }
        assert columns == {"embedding": f"vector({DIMS})", "sketch": f"bit({DIMS})"}
        indexes = {
            row["indexname"]: row["indexdef"]
            for row in await conn.fetch(
                "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'arena_embeddings'"
            )
        }
        assert (
            "USING hnsw (sketch bit_hamming_ops) WITH (m='16', ef_construction='128')"
            in (indexes["arena_embeddings_sketch_hnsw"])
        )
        assert "(session) INCLUDE (id, sketch)" in indexes["arena_embeddings_session_sketch"]
        # The graph over the full vectors is gone: nothing searches it.
        assert "arena_embeddings_embedding_hnsw" not in indexes
    finally:
        await conn.close()


@pytest.mark.postgres
async def test_sketches_follow_the_embedding(memory: ArenaMemory, dsn: str) -> None:
    await memory.store(record("q1", embedding=[1, -1, 0, 2, -3, 1, 1, -1]))
    conn = await asyncpg.connect(dsn)
    try:
        assert await conn.fetchval("SELECT sketch::text FROM arena_embeddings") == "10010110"
        await memory.store(record("q1", embedding=[-1, 1, 0, 2, -3, 1, 1, 1]))  # same identity, new vector
        assert await conn.fetchval("SELECT sketch::text FROM arena_embeddings") == "01010111"
    finally:
        await conn.close()


@pytest.mark.postgres
async def test_a_filled_table_gets_its_sketches_on_upgrade(dsn: str) -> None:
    """A database of the previous release (migrations 001-002, rows in it) moves to sketches."""
    from heady_operator.storage.schema import migrate

    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn, DIMS, load_migrations()[:2])
        await register_vector(conn)
        await conn.executemany(
            "INSERT INTO arena_embeddings (session, repo_name, entity_type, entity_id, content_hash, embedding)"
            " VALUES ('old', 'r', 'answer', $1, $1, $2)",
            [(f"e{i}", direction(i)) for i in range(0, 90, 10)],
        )
    finally:
        await conn.close()
    mem = await ArenaMemory.connect(dsn, DIMS, server_settings={"statement_timeout": "5s"})
    try:
        assert await mem.migrate() == ["003"]
        found = await mem.find_similar("old", E0, threshold=-1.0, limit=3)
        assert [e.entity_id for e in found] == ["e0", "e10", "e20"]
    finally:
        await mem.close()


@pytest.mark.postgres
async def test_a_different_dimension_setting_is_refused(dsn: str) -> None:
    first = await ArenaMemory.connect(dsn, DIMS)
    await first.migrate()
    await first.close()
    second = await ArenaMemory.connect(dsn, 16)
    try:
        with pytest.raises(SchemaError, match="8 dimensions but HEADY_EMBEDDING_DIMENSIONS is 16"):
            await second.migrate()
    finally:
        await second.close()


@pytest.mark.postgres
async def test_an_edited_migration_is_refused(dsn: str) -> None:
    from heady_operator.storage.schema import migrate

    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn, DIMS)
        original = load_migrations()[0]
        edited = Migration(original.version, original.name, original.template + "\n-- edited\n")
        with pytest.raises(SchemaError, match="changed after it was applied"):
            await migrate(conn, DIMS, [edited])
    finally:
        await conn.close()


def test_dimensions_beyond_what_hnsw_indexes_are_refused() -> None:
    from heady_operator.storage.schema import check_dimensions

    check_dimensions(2000)
    with pytest.raises(SchemaError, match=r"1\.\.2000"):
        check_dimensions(3072)


# --- writes ----------------------------------------------------------------------------------


@pytest.mark.postgres
async def test_store_is_idempotent(memory: ArenaMemory) -> None:
    r = record("q1", battle_depth=2)
    assert await memory.store(r) is StoreOutcome.INSERTED
    assert await memory.store(r) is StoreOutcome.UNCHANGED
    assert await memory.store(record("q1", battle_depth=3)) is StoreOutcome.UPDATED
    assert await memory.count() == 1
    # Other content for the same entity is another version of it, so another row.
    assert await memory.store(record("q1", "revised answer")) is StoreOutcome.INSERTED
    await memory.store_many([record("q1"), record("q2"), record("q2")])
    assert await memory.count("s1") == 3


@pytest.mark.postgres
async def test_wrong_dimensions_are_refused_before_the_database(memory: ArenaMemory) -> None:
    with pytest.raises(ValueError, match="3 dimensions, memory expects 8"):
        await memory.store(record("x", embedding=[1.0, 0.0, 0.0]))
    with pytest.raises(ValueError, match="memory expects 8"):
        await memory.find_similar("s1", [1.0])


@pytest.mark.postgres
async def test_update_risk_score(memory: ArenaMemory) -> None:
    await memory.store(record("op-1", "first"))
    await memory.store(record("op-1", "second"))
    await memory.store(record("op-2"))
    assert await memory.update_risk_score("s1", "answer", "op-1", 0.7) == 2
    assert await memory.update_risk_score("s1", "answer", "op-1", 0.7) == 0  # already so
    found = await memory.find_similar("s1", E0, threshold=0.0)
    assert sorted((e.entity_id, e.risk_score) for e in found) == [("op-1", 0.7), ("op-1", 0.7), ("op-2", 0.0)]
    with pytest.raises(ValueError, match=r"0\.\.1"):
        await memory.update_risk_score("s1", "answer", "op-1", 1.5)


# --- search ----------------------------------------------------------------------------------


@pytest.mark.postgres
async def test_similarity_order_and_threshold(memory: ArenaMemory) -> None:
    # Similarity to e0 is cos(angle): 1.0, 0.9, 0.6, 0.0, -1.0
    angles = {"same": 0.0, "close": math.degrees(math.acos(0.9)), "far": math.degrees(math.acos(0.6))}
    angles |= {"orthogonal": 90.0, "opposite": 180.0}
    for name, angle in angles.items():
        await memory.store(record(name, embedding=direction(angle)))
    await memory.store(record("same-elsewhere", session="s2", embedding=E0))

    found = await memory.find_similar("s1", E0)  # default threshold 0.8
    assert [(e.entity_id, round(e.similarity, 4)) for e in found] == [("same", 1.0), ("close", 0.9)]
    found = await memory.find_similar("s1", E0, threshold=0.5)
    assert [e.entity_id for e in found] == ["same", "close", "far"]
    found = await memory.find_similar("s1", E0, threshold=-1.0)
    assert [e.entity_id for e in found] == ["same", "close", "far", "orthogonal", "opposite"]
    assert found[-1].similarity == pytest.approx(-1.0)
    found = await memory.find_similar("s1", E0, threshold=-1.0, limit=2)
    assert [e.entity_id for e in found] == ["same", "close"]
    assert found[0].content == "content of same"
    assert found[0].repo_name == "HeadyMe"

    # Precedents come from every session but the asking one.
    precedents = await memory.find_precedents("s1", E0)
    assert [(e.session, e.entity_id) for e in precedents] == [("s2", "same-elsewhere")]
    precedents = await memory.find_precedents("s2", E0, threshold=0.95)
    assert [(e.session, e.entity_id) for e in precedents] == [("s1", "same")]


def _near(rng: random.Random, axis: int) -> list[float]:
    v = [rng.gauss(0, 0.05) for _ in range(DIMS)]
    v[axis] += 1.0
    return v


async def _two_sessions(mem: ArenaMemory) -> list[float]:
    """Sessions a and b of 600 rows each in two clusters; returns a query inside b's cluster."""
    rng = random.Random(5)
    await mem.store_many(record(f"b{i}", session="b", embedding=_near(rng, 1)) for i in range(600))
    await mem.store_many(record(f"a{i}", session="a", embedding=_near(rng, 0)) for i in range(600))
    await mem.store(record("tiny", session="t", embedding=_near(rng, 1)))
    query = [0.0] * DIMS
    query[1] = 1.0
    return query


# A re-rank pool as large as a session makes a search of it exact: these tests check which
# path runs and that the paths agree; recall with a realistic pool is the next test's business
# (8-bit sketches order nothing usefully) and the benchmark's.
WHOLE = 600


@pytest.mark.postgres
async def test_a_large_session_walks_the_sketch_graph_with_an_iterative_scan(dsn: str) -> None:
    """The 100 nearest rows overall all belong to session b, yet a search of a finds a's rows."""
    mem = await ArenaMemory.connect(dsn, DIMS, search=SearchSettings(scan_rows=100, candidates=WHOLE))
    await mem.migrate()
    scan = await ArenaMemory.connect(dsn, DIMS, search=SearchSettings(scan_rows=10_000, candidates=WHOLE))
    try:
        query = await _two_sessions(mem)
        for _ in range(8):  # past the five executions after which Postgres may go generic
            found = await mem.find_similar("a", query, threshold=-1.0, limit=10)
        assert len(found) == 10
        assert {e.session for e in found} == {"a"}
        assert [e.similarity for e in found] == sorted((e.similarity for e in found), reverse=True)
        assert mem.searches[Strategy.INDEX] == 8
        assert mem.fallbacks == 0
        assert "arena_embeddings_sketch_hnsw" in await mem.explain("a", query)
        # The scan of the session agrees.
        reference = await scan.find_similar("a", query, threshold=-1.0, limit=10)
        assert scan.searches[Strategy.SCAN] == 1
        assert [e.id for e in found] == [e.id for e in reference]
    finally:
        await mem.close()
        await scan.close()

    conn = await asyncpg.connect(dsn)
    try:
        await register_vector(conn)
        async with conn.transaction():
            # What pgvector < 0.8 does: the walk stops after ef_search rows, whatever the filter
            # keeps of them (8-bit sketches tie too often for a larger ef_search to say which).
            await conn.execute(
                "SET LOCAL enable_sort = off; SET LOCAL hnsw.iterative_scan = off; SET LOCAL hnsw.ef_search = 1"
            )
            assert len(await conn.fetch(SIMILAR_IN_SESSION, "a", query, 10, WHOLE)) < 10
    finally:
        await conn.close()


@pytest.mark.postgres
async def test_plans_are_pinned_per_strategy(dsn: str) -> None:
    mem = await ArenaMemory.connect(dsn, DIMS, search=SearchSettings(scan_rows=1_000))
    try:
        await mem.migrate()
        query = await _two_sessions(mem)
        conn = await asyncpg.connect(dsn)
        try:
            # Statistics that make the session index look cheap, as on a table of many sessions.
            await conn.execute("ANALYZE arena_embeddings")
        finally:
            await conn.close()
        # A small session: its sketches from the covering index, no graph.
        small = await mem.explain("a", query)
        assert "Index Only Scan using arena_embeddings_session_sketch" in small
        assert "arena_embeddings_sketch_hnsw" not in small
        # The re-rank looks its rows up by primary key, never scanning the table.
        assert "Index Cond: (id = ANY" in small
        # Once the session is larger than scan_rows: the graph, whatever the costs say.
        mem.search = SearchSettings(scan_rows=100)
        large = await mem.explain("a", query)
        assert "Index Scan using arena_embeddings_sketch_hnsw" in large
        assert "arena_embeddings_session_sketch" not in large
        # Precedents always walk the graph.
        assert "Index Scan using arena_embeddings_sketch_hnsw" in await mem.explain(
            "a", query, precedents=True
        )
    finally:
        await mem.close()


@pytest.mark.postgres
async def test_a_walk_that_comes_back_short_is_redone_by_a_scan(dsn: str) -> None:
    # scan_rows 0: every session walks the graph first.
    mem = await ArenaMemory.connect(dsn, DIMS, search=SearchSettings(scan_rows=0, candidates=WHOLE))
    try:
        await mem.migrate()
        query = await _two_sessions(mem)
        # One row in session t: the walk cannot bring ten, so the session is scanned.
        found = await mem.find_similar("t", query, threshold=-1.0, limit=10)
        assert [e.entity_id for e in found] == ["tiny"]
        assert (mem.searches[Strategy.INDEX], mem.fallbacks) == (1, 1)
        # More precedents asked for than exist elsewhere: every distance, all 601 rows.
        precedents = await mem.find_precedents("a", query, threshold=-1.0, limit=700)
        assert {e.session for e in precedents} == {"b", "t"} and len(precedents) == 601
        assert mem.fallbacks == 2
    finally:
        await mem.close()


@pytest.mark.postgres
async def test_re_ranked_sketches_find_the_true_neighbours(dsn: str) -> None:
    """With realistic dimensions the default pool finds what an exact search finds."""
    dims, rng = 256, random.Random(11)
    centres = [[rng.gauss(0, 1) for _ in range(dims)] for _ in range(20)]

    def point(centre: list[float]) -> list[float]:
        return [c + rng.gauss(0, 0.7) for c in centre]

    mem = await ArenaMemory.connect(dsn, dims, search=SearchSettings(scan_rows=1_500))
    try:
        await mem.migrate()
        rows = {
            session: [point(centres[rng.randrange(20)]) for _ in range(size)]
            for session, size in (("small", 150), ("mid", 1_200), ("big", 3_000))
        }
        for session, vectors in rows.items():
            await mem.store_many(
                MemoryRecord(session, "r", "answer", f"{session}-{i}", f"{session} {i}", v)
                for i, v in enumerate(vectors)
            )

        def cosine(a: list[float], b: list[float]) -> float:
            return sum(x * y for x, y in zip(a, b, strict=True)) / math.sqrt(
                sum(x * x for x in a) * sum(y * y for y in b)
            )

        hits = total = 0
        for session, vectors in rows.items():
            for _ in range(10):
                query = point(centres[rng.randrange(20)])
                truth = sorted(range(len(vectors)), key=lambda i: -cosine(query, vectors[i]))[:10]
                found = await mem.find_similar(session, query, threshold=-1.0, limit=10)
                hits += len({f"{session}-{i}" for i in truth} & {e.entity_id for e in found})
                total += 10
        assert mem.searches[Strategy.SCAN] == 20 and mem.searches[Strategy.INDEX] == 10
        assert hits / total >= 0.95
    finally:
        await mem.close()


@pytest.mark.postgres
async def test_vectors_are_stored_inline(memory: ArenaMemory, dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        storage = await conn.fetchval(
            "SELECT attstorage::text FROM pg_attribute "
            "WHERE attrelid = 'arena_embeddings'::regclass AND attname = 'embedding'"
        )
        assert storage == "m"
    finally:
        await conn.close()


@pytest.mark.parametrize("version", ["0.8.0", "0.8.1", "0.10.0", "1.0", "0.8.0-dev"])
def test_pgvector_from_0_8_is_accepted(version: str) -> None:
    check_pgvector_version(version)


@pytest.mark.parametrize(
    ("installed", "available", "advice"),
    [
        ("0.7.4", "0.7.4", "pgvector/pgvector:0.8.0-pg16"),
        ("0.5.1", None, "install pgvector >= 0.8.0"),
        ("0.7.0", "0.8.1", "ALTER EXTENSION vector UPDATE"),
        ("unknown", None, "install pgvector"),
    ],
)
def test_pgvector_before_0_8_is_refused_with_what_to_do(
    installed: str, available: str | None, advice: str
) -> None:
    with pytest.raises(SchemaError, match=r"needs pgvector >= 0\.8\.0") as raised:
        check_pgvector_version(installed, available)
    assert advice in str(raised.value)
    assert repr(installed) in str(raised.value)


# --- outages ---------------------------------------------------------------------------------


def test_pending_writes_are_bounded_ordered_and_deduplicated() -> None:
    pending = PendingWrites(limit=3)
    a, b, c, d = (StoreWrite(record(x)) for x in "abcd")
    risk_a = RiskWrite("s1", "answer", "a", 0.5)
    for write in (a, b, risk_a):
        pending.add(write)
    pending.add(StoreWrite(record("a")))  # same key as a: replaces it, moves to the back
    assert len(pending) == 3
    assert pending.first() is b
    pending.add(c)  # full: b, the oldest, goes
    assert pending.dropped == 1
    assert pending.first() is risk_a
    pending.remove(risk_a)
    stale = pending.first()
    assert stale is not None
    pending.add(d)
    pending.add(StoreWrite(record("a")))  # replaces the queued a with an equal, newer write
    pending.remove(stale)  # the queued write for that key is no longer the one we replayed
    assert len(pending) == 3
    with pytest.raises(ValueError, match="positive"):
        PendingWrites(0)


async def _rows(dsn: str) -> list[tuple[str, str, float]]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT session, entity_id, risk_score FROM arena_embeddings ORDER BY id")
        return [(r["session"], r["entity_id"], r["risk_score"]) for r in rows]
    finally:
        await conn.close()


@pytest.mark.postgres
async def test_writes_during_an_outage_land_exactly_once_when_postgres_returns(
    postgres: Any,
    dsn: str,  # conftest.Postgres
) -> None:
    mem = ResilientMemory.for_dsn(dsn, DIMS, backoff_initial=0.05, backoff_max=0.4)
    assert await mem.start()
    assert mem.available
    assert await mem.store(record("before")) is StoreOutcome.INSERTED

    await asyncio.to_thread(postgres.stop)
    try:
        assert await mem.store(record("during-1")) is None
        assert not mem.available
        assert mem.last_error
        await mem.store(record("during-2"))
        await mem.store(record("during-1"))  # a retry by the caller: still one write
        await mem.store(record("before"))  # already stored before the outage: replays harmlessly
        await mem.update_risk_score("s1", "answer", "before", 0.9)
        assert mem.pending == 4
        assert await mem.find_similar("s1", E0) == []  # searches degrade to "nothing known"
        with pytest.raises(ValueError, match="dimensions"):
            await mem.store(record("bad", embedding=[1.0]))
        # A second operator process starting during the outage comes up without memory.
        late = ResilientMemory.for_dsn(dsn, DIMS, backoff_initial=0.05, backoff_max=0.4)
        assert not await late.start()
        await late.store(record("from-late", session="s2"))
    finally:
        await asyncio.to_thread(postgres.start)

    assert await mem.wait_available(30)
    assert await late.wait_available(30)
    assert mem.pending == 0
    assert late.pending == 0
    assert mem.last_error is None
    rows = await _rows(dsn)
    assert sorted(rows) == [
        ("s1", "before", 0.9),
        ("s1", "during-1", 0.0),
        ("s1", "during-2", 0.0),
        ("s2", "from-late", 0.0),
    ]
    assert mem.dropped == 0
    assert mem.rejected == 0
    # Back to writing straight through. Equal vectors come back in insertion order, which
    # shows the replay order: the caller's retry of during-1 moved it behind during-2.
    assert await mem.store(record("after")) is StoreOutcome.INSERTED
    assert [e.entity_id for e in await mem.find_similar("s1", E0, limit=10)] == [
        "before",
        "during-2",
        "during-1",
        "after",
    ]
    await mem.close()
    await late.close()


@pytest.mark.postgres
async def test_a_postgres_that_comes_back_empty_gets_its_schema_before_the_replay(dsn: str) -> None:
    mem = ResilientMemory.for_dsn(dsn, DIMS, backoff_initial=0.05, backoff_max=0.4)
    assert await mem.start()
    await mem.store(record("kept"))
    conn = await asyncpg.connect(dsn)
    try:
        # What a Postgres without a persistent volume looks like after a restart.
        await conn.execute("DROP TABLE arena_embeddings, schema_migrations")
        assert await mem.store(record("queued")) is None
        assert not mem.available
        assert await mem.wait_available(30)
        rows = await conn.fetch("SELECT entity_id FROM arena_embeddings")
        assert [r["entity_id"] for r in rows] == ["queued"]
    finally:
        await conn.close()
        await mem.close()


def test_search_settings_are_checked() -> None:
    SearchSettings(scan_rows=0, candidates=1, ef_search=1000, max_scan_tuples=1)
    with pytest.raises(ValueError, match="scan_rows"):
        SearchSettings(scan_rows=-1)
    with pytest.raises(ValueError, match="candidates"):
        SearchSettings(candidates=0)
    with pytest.raises(ValueError, match=r"1\.\.1000"):
        SearchSettings(ef_search=1001)
    with pytest.raises(ValueError, match="max_scan_tuples"):
        SearchSettings(max_scan_tuples=0)
    # Every search pins all planner switches, since several statements share a transaction.
    for name in ("enable_seqscan", "enable_indexscan", "enable_bitmapscan", "enable_sort", "plan_cache_mode"):
        assert f"SET LOCAL {name} =" in SearchSettings().index_walk()
