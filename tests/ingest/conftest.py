"""A real redis-server per test and the operator's real cluster state (without a cluster) as the sink.

Everything the state does with attention (keying signals by name, counting them, learning
transitions, planning) happens as in the operator; only the loop that resizes is not running.
A thin subclass records what reached add_ingested, in order.
"""

from __future__ import annotations

import asyncio
import inspect
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aredis

from heady_operator.config import Settings
from heady_operator.metrics import REGISTRY
from heady_operator.models.attention import AttentionSignalSpec
from heady_operator.models.common import utcnow
from heady_operator.planning.incremental import IncrementalPlanner
from heady_operator.state.cluster import ClusterState
from tests.harness import RedisServer


class RecordingController(ClusterState):
    def __init__(self, settings: Settings) -> None:
        super().__init__(settings, IncrementalPlanner(), utcnow)
        self.calls: list[tuple[str, str, str]] = []  # (event, name, path)
        self.on_call: Callable[[int], None] | None = None

    def add_ingested(
        self, spec: AttentionSignalSpec, namespace: str, name: str, created: datetime, path: str
    ) -> str:
        outcome = super().add_ingested(spec, namespace, name, created, path)
        if outcome in ("applied", "replayed"):
            self.calls.append(("ADDED", name, path))
            if self.on_call is not None:
                self.on_call(len(self.calls))
        return outcome

    def added(self) -> list[str]:
        return [name for event, name, _ in self.calls if event == "ADDED"]


def sample(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


async def until(predicate: Callable[[], Any], what: str, timeout: float = 10.0) -> Any:  # noqa: ASYNC109
    """Poll `predicate` (sync, or returning an awaitable) until truthy; fail with `what` at the deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def durable_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis-aof", appendonly=True)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def settings(redis_server: RedisServer) -> Settings:
    return ingest_settings(redis_server)


def ingest_settings(server: RedisServer, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "redis_url": server.url,
        "attention_stream": f"attention-{uuid.uuid4().hex[:6]}",
        "ingest_block_ms": 100,
        "ingest_reconnect_max_seconds": 0.5,
        "prediction_enabled": False,
        **overrides,
    }
    return Settings(**values)


@pytest.fixture
async def client(redis_server: RedisServer) -> AsyncIterator[aredis.Redis]:
    c = aredis.Redis.from_url(redis_server.url, decode_responses=True)
    yield c
    await c.aclose()
