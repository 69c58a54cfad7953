"""Schema migrations: numbered SQL files in migrations/, applied once each, in order.

A migration may contain ``{{dimensions}}``, replaced with the embedding size. Applied versions
are recorded in ``schema_migrations`` with a checksum of the file, so an edited migration is
refused instead of silently diverging from databases that ran the old text.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources

import asyncpg

# pgvector indexes (HNSW and IVFFlat) take vectors of at most 2000 dimensions.
MAX_INDEXED_DIMENSIONS = 2000
# Iterative index scans (hnsw.iterative_scan, hnsw.max_scan_tuples) came with pgvector 0.8.0;
# without them a session-filtered HNSW search returns only the session's rows among the first
# ef_search neighbours of the whole table, often none.
MIN_PGVECTOR = (0, 8, 0)
# Serialises concurrent runners (two operator replicas starting together); any fixed number.
_ADVISORY_LOCK_ID = int.from_bytes(b"headymig", "big")
# A migration may rewrite the table (003 adds a stored column): far longer than the pool's
# command timeout on a filled table, so migrations get their own bound.
MIGRATION_TIMEOUT_SECONDS = 3600.0
_FILE_NAME = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")

_CREATE_LEDGER = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    text PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


class SchemaError(RuntimeError):
    """The database schema does not match this operator's migrations or settings."""


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    template: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.template.encode()).hexdigest()

    def render(self, dimensions: int) -> str:
        return self.template.replace("{{dimensions}}", str(dimensions))


def load_migrations() -> list[Migration]:
    folder = resources.files("heady_operator.storage").joinpath("migrations")
    found: list[Migration] = []
    for entry in folder.iterdir():
        match = _FILE_NAME.match(entry.name)
        if match:
            found.append(Migration(match.group(1), match.group(2), entry.read_text(encoding="utf-8")))
    return sorted(found, key=lambda m: m.version)


def check_dimensions(dimensions: int) -> None:
    if not 1 <= dimensions <= MAX_INDEXED_DIMENSIONS:
        raise SchemaError(
            f"embedding dimensions must be within 1..{MAX_INDEXED_DIMENSIONS} "
            f"(the most a pgvector HNSW index takes), got {dimensions}"
        )


def check_pgvector_version(installed: str, available: str | None = None) -> None:
    """Refuse a pgvector older than MIN_PGVECTOR, saying how to get a newer one."""
    match = re.match(r"^(\d+)\.(\d+)(?:\.(\d+))?", installed.strip())
    version = tuple(int(part or 0) for part in match.groups()) if match else None
    if version is not None and version >= MIN_PGVECTOR:
        return
    needed = ".".join(map(str, MIN_PGVECTOR))
    if available and available != installed:
        how = (
            f"this server has pgvector {available} installed as a package: run "
            "`ALTER EXTENSION vector UPDATE` in the database as its owner or a superuser"
        )
    else:
        how = "install pgvector >= 0.8.0 on the server (e.g. the image pgvector/pgvector:0.8.0-pg16 or newer)"
    raise SchemaError(
        f"arena memory needs pgvector >= {needed} for filtered HNSW search (iterative index scans), "
        f"but the database has pgvector {installed!r}; {how}"
    )


async def migrate(
    conn: asyncpg.Connection, dimensions: int, migrations: list[Migration] | None = None
) -> list[str]:
    """Apply pending migrations in one transaction; returns the versions applied now."""
    check_dimensions(dimensions)
    todo = load_migrations() if migrations is None else migrations
    applied_now: list[str] = []
    async with conn.transaction():
        # A statement_timeout meant for searches (server_settings) must not cut a migration short.
        await conn.execute("SET LOCAL statement_timeout = 0")
        await conn.execute(
            "SELECT pg_advisory_xact_lock($1)", _ADVISORY_LOCK_ID, timeout=MIGRATION_TIMEOUT_SECONDS
        )
        # Before any migration: a later one uses functions an old pgvector lacks, and its error
        # ("function binary_quantize does not exist") would not say what to do.
        await _check_pgvector(conn)
        await conn.execute(_CREATE_LEDGER)
        rows = await conn.fetch("SELECT version, checksum FROM schema_migrations")
        ledger = {row["version"]: row["checksum"] for row in rows}
        for migration in todo:
            recorded = ledger.get(migration.version)
            if recorded is not None:
                if recorded != migration.checksum:
                    raise SchemaError(
                        f"migration {migration.version}_{migration.name} changed after it was applied; "
                        "add a new migration instead of editing an applied one"
                    )
                continue
            await conn.execute(migration.render(dimensions), timeout=MIGRATION_TIMEOUT_SECONDS)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                migration.version,
                migration.name,
                migration.checksum,
            )
            applied_now.append(migration.version)
        # Raised inside the transaction: nothing of this run's migrations stays behind.
        await _check_pgvector(conn)
        actual = await embedding_dimensions(conn)
        if actual is not None and actual != dimensions:
            raise SchemaError(
                f"arena_embeddings.embedding holds vectors of {actual} dimensions but "
                f"HEADY_EMBEDDING_DIMENSIONS is {dimensions}; keep the setting, or migrate the table "
                "(re-embed everything) before changing it"
            )
    return applied_now


async def _check_pgvector(conn: asyncpg.Connection) -> None:
    installed = await conn.fetchval("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
    available = await conn.fetchval(
        "SELECT default_version FROM pg_available_extensions WHERE name = 'vector'"
    )
    if installed is not None:
        check_pgvector_version(installed, available)
    elif available is not None:
        # Not created yet: migration 001 creates the extension at the package's default version.
        check_pgvector_version(available, available)


async def embedding_dimensions(conn: asyncpg.Connection) -> int | None:
    """The declared size of arena_embeddings.embedding (pgvector keeps it in atttypmod)."""
    value = await conn.fetchval(
        """
        SELECT a.atttypmod FROM pg_attribute a
        WHERE a.attrelid = to_regclass('arena_embeddings') AND a.attname = 'embedding'
        """
    )
    return int(value) if value is not None else None
