"""A real redis-server per test and the real escalation controller (without a cluster) as the sink.

The controller runs with kube=None: everything it does with attention (keying signals by name,
counting them, learning transitions) happens as in the operator; only the resize calls are
missing. A thin subclass records what reached on_signal, in order.
"""

from __future__ import annotations

import asyncio
import inspect
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aredis

from heady_operator.config import Settings
from heady_operator.escalation import EscalationController
from heady_operator.metrics import REGISTRY
from tests.harness import RedisServer


class RecordingController(EscalationController):
    def __init__(self, settings: Settings) -> None:
        super().__init__(settings, kube=None)
        self.calls: list[tuple[str, str, str]] = []  # (event, name, path)
        self.on_call: Callable[[int], None] | None = None

    def on_signal(self, event: str, body: Mapping[str, Any], path: str = "object") -> None:
        super().on_signal(event, body, path)
        self.calls.append((event, body["metadata"]["name"], path))
        if self.on_call is not None:
            self.on_call(len(self.calls))

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
