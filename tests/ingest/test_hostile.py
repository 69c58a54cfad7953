"""Hostile input at the ingest (issue 17): nothing one client sends may stop the stream or the endpoint.

Real redis-server, the real aiohttp app and the real controller (tests/ingest/conftest.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis.asyncio as aredis
from aiohttp.test_utils import TestClient, TestServer

from heady_operator import http, ingest
from heady_operator.config import Settings
from heady_operator.http import build_app
from heady_operator.ingest import AttentionSink, RedisAttentionConsumer
from heady_operator.ingest.stream import connect
from heady_operator.models.common import MAX_SIGNAL_SECONDS
from tests.harness import RedisServer, _free_port
from tests.ingest.conftest import RecordingController, ingest_settings, sample, until

Client = TestClient[Any, Any]
JSON = {"Content-Type": "application/json"}


class Consumer:
    def __init__(self, settings: Settings, controller: RecordingController) -> None:
        self.client = connect(settings)
        self.consumer = RedisAttentionConsumer(settings, AttentionSink(controller), self.client, name="op-0")
        self.task = asyncio.create_task(self.consumer.run())

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        await self.client.aclose()


@pytest.fixture
async def consumers() -> AsyncIterator[list[Consumer]]:
    started: list[Consumer] = []
    yield started
    for c in started:
        await c.stop()


async def _no_pending(client: aredis.Redis, settings: Settings) -> bool:
    info = await client.xpending(settings.attention_stream, settings.ingest_group)
    return int(info["pending"]) == 0


# ---------------------------------------------------------------------- the stream


@pytest.mark.redis
async def test_a_non_utf8_entry_is_dead_lettered_and_does_not_block_the_stream(
    redis_server: RedisServer, consumers: list[Consumer]
) -> None:
    settings = ingest_settings(redis_server)
    raw = aredis.Redis.from_url(redis_server.url)  # bytes in, bytes out
    try:
        bad_value = await raw.xadd(settings.attention_stream, {b"service": b"\xff\xfeweb"})
        bad_key = await raw.xadd(settings.attention_stream, {b"serv\xc3ice": b"web"})
        good = await raw.xadd(settings.attention_stream, {b"service": b"api", b"user": b"u1"})
        controller = RecordingController(settings)
        consumers.append(Consumer(settings, controller))
        await until(lambda: f"redis-{good.decode()}" in controller.added(), "the entry behind them applied")
        client = aredis.Redis.from_url(redis_server.url, decode_responses=True)
        try:
            letters = await client.xrange(settings.ingest_dead_letter_stream)
            assert [d[1]["id"] for d in letters] == [bad_value.decode(), bad_key.decode()]
            assert all("not UTF-8" in d[1]["error"] for d in letters)
            assert "\\udcff" in json.loads(json.dumps(letters[0][1]["fields"]))
            await until(lambda: _no_pending(client, settings), "every entry acknowledged")
        finally:
            await client.aclose()
        assert consumers[0].consumer.available
        assert sample("heady_ingest_available") == 1
    finally:
        await raw.aclose()


@pytest.mark.redis
async def test_never_expiring_and_far_future_entries_do_not_stop_the_consumer(
    redis_server: RedisServer, consumers: list[Consumer]
) -> None:
    settings = ingest_settings(redis_server)
    client = aredis.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        never = await client.xadd(
            settings.attention_stream, {"service": "web", "expiresAt": "9999-12-31T23:59:59Z"}
        )
        later = await client.xadd(
            settings.attention_stream,
            {"service": "web", "startTime": "9999-12-31T23:00:00Z", "ttlSeconds": "86400"},
        )
        # An id the producer chose, far in the future: the entry's own clock is clamped too.
        chosen = await client.xadd(settings.attention_stream, {"service": "db"}, id="99999999999999-0")
        good = await client.xadd(settings.attention_stream, {"service": "api"}, id="99999999999999-1")
        controller = RecordingController(settings)
        consumers.append(Consumer(settings, controller))
        await until(lambda: f"redis-{good}" in controller.added(), "every entry handled")
        assert f"redis-{never}" in controller.added() and f"redis-{chosen}" in controller.added()
        entry = controller.signals[("default", f"redis-{never}")].signal
        assert entry is not None
        assert entry.end - entry.start <= timedelta(seconds=MAX_SIGNAL_SECONDS)
        # Held as a window that never opens, or refused as too far ahead: never active either way.
        future = controller.signals.get(("default", f"redis-{later}"))
        assert future is None or (future.signal is not None and not future.signal.active(datetime.now(UTC)))
        await until(lambda: _no_pending(client, settings), "every entry acknowledged")
        await asyncio.sleep(0.3)  # several more loop turns (retractions run each turn)
        assert consumers[0].consumer.available and consumers[0].consumer.last_error is None
    finally:
        await client.aclose()


class Exploding(RecordingController):
    """A bug in whatever takes ingested events: the escalation controller or the cluster state."""

    def on_signal(self, event: str, body: Mapping[str, Any], path: str = "object") -> None:
        if event == "ADDED" and "boom" in body["spec"]["services"]:
            raise ZeroDivisionError("a bug in the controller")
        super().on_signal(event, body, path)  # type: ignore[misc]

    def add_ingested(self, spec: Any, namespace: str, name: str, created: datetime, path: str) -> str:
        if "boom" in spec.services:
            raise ZeroDivisionError("a bug in the controller")
        return str(super().add_ingested(spec, namespace, name, created, path))  # type: ignore[misc]


class Healthy:
    """/healthz's view of the operator, always fine (both the old and the new interface)."""

    def healthy(self) -> bool:
        return True

    def problems(self) -> list[str]:
        return []


@pytest.mark.redis
async def test_an_entry_that_raises_anything_is_isolated_even_when_it_cannot_be_dead_lettered(
    redis_server: RedisServer, consumers: list[Consumer]
) -> None:
    settings = ingest_settings(redis_server)
    client = aredis.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        failed_before = sample("heady_ingest_events_total", {"path": "redis", "outcome": "failed"})
        boom = await client.xadd(settings.attention_stream, {"service": "boom"})
        controller = Exploding(settings)
        consumers.append(Consumer(settings, controller))
        await until(lambda: consumers[0].consumer.available, "consuming")
        await until(lambda: _no_pending(client, settings), "the failing entry acknowledged")
        (letter,) = await client.xrange(settings.ingest_dead_letter_stream)
        assert letter[1]["id"] == boom and "ZeroDivisionError" in letter[1]["error"]
        assert (
            sample("heady_ingest_events_total", {"path": "redis", "outcome": "failed"}) - failed_before == 1
        )

        # Someone made the dead-letter key a string: XADD there fails with WRONGTYPE.
        await client.delete(settings.ingest_dead_letter_stream)
        await client.set(settings.ingest_dead_letter_stream, "not a stream")
        lost_before = sample("heady_ingest_events_total", {"path": "redis", "outcome": "lost"})
        await client.xadd(settings.attention_stream, {"service": "web", "intensity": "7"})
        good = await client.xadd(settings.attention_stream, {"service": "api"})
        await until(lambda: f"redis-{good}" in controller.added(), "the entry behind it applied")
        await until(lambda: _no_pending(client, settings), "both acknowledged")
        assert sample("heady_ingest_events_total", {"path": "redis", "outcome": "lost"}) - lost_before == 1
        assert consumers[0].consumer.available
    finally:
        await client.aclose()


# ---------------------------------------------------------------------- POST /v1/attention


@pytest.fixture
async def app_client() -> AsyncIterator[tuple[Client, RecordingController]]:
    controller = RecordingController(Settings(prediction_enabled=False))
    bundle = ingest.build(controller.settings, controller)
    client: Client = TestClient(TestServer(build_app(Healthy(), bundle.intake)))  # type: ignore[arg-type]
    await client.start_server()
    yield client, controller
    await client.close()


async def _post(client: Client, data: bytes | str, headers: Mapping[str, str] = JSON) -> tuple[int, Any]:
    resp = await client.post("/v1/attention", data=data, headers=dict(headers))
    assert resp.content_type == "application/json", await resp.text()
    return resp.status, await resp.json()


async def test_deeply_nested_json_is_400(app_client: tuple[Client, RecordingController]) -> None:
    client, controller = app_client
    for depth in (20, 5_000, 30_000):
        status, body = await _post(client, "[" * depth + "]" * depth)
        assert status == 400, body
        assert "nested" in body["error"]
    status, body = await _post(client, json.dumps({"service": "web", "user": {"a": [[[[[[[[[1]]]]]]]]]}}))
    assert status == 400 and "nested deeper" in body["error"]
    assert controller.calls == []


async def test_a_body_that_is_not_json_by_its_content_type_is_415(
    app_client: tuple[Client, RecordingController],
) -> None:
    client, controller = app_client
    good = json.dumps({"service": "web"})
    for headers in (
        {"Content-Type": "text/plain"},
        {"Content-Type": "application/x-www-form-urlencoded"},
        {"Content-Type": "application/json; charset=latin-1"},
        {},
    ):
        status, body = await _post(client, good.encode(), headers)
        assert status == 415, (headers, body)
        assert "application/json" in body["error"]
    assert controller.calls == []
    status, _ = await _post(client, good, {"Content-Type": "application/json; charset=utf-8"})
    assert status == 202
    status, _ = await _post(client, good, {"Content-Type": "application/merge-patch+json"})
    assert status == 202


async def test_an_oversized_body_is_413(app_client: tuple[Client, RecordingController]) -> None:
    client, controller = app_client
    big = json.dumps({"service": "web", "user": "u" * 70_000})
    status, body = await _post(client, big)
    assert status == 413 and "larger than" in body["error"]
    # Without a Content-Length (chunked), the limit still holds while reading.

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(80):
            yield b" " * 1024

    resp = await client.post("/v1/attention", data=chunks(), headers=JSON)
    assert resp.status == 413 and "larger than" in (await resp.json())["error"]
    assert controller.calls == []


async def test_bytes_and_strings_that_are_not_unicode_are_400(
    app_client: tuple[Client, RecordingController],
) -> None:
    client, _ = app_client
    status, body = await _post(client, b'{"service": "\xff\xfe"}')
    assert status == 400 and "not JSON" in body["error"]
    status, body = await _post(client, '{"service": "web", "user": "\\udcff"}')
    assert status == 400 and "Unicode" in body["error"]


async def test_never_expiring_events_are_accepted_and_bounded(
    app_client: tuple[Client, RecordingController],
) -> None:
    client, controller = app_client
    now = datetime.now(UTC)
    for body in (
        {"service": "web", "expiresAt": "9999-12-31T23:59:59Z"},
        {"service": "web", "expiresAt": "9999-12-31T23:59:59-12:00"},
        {"service": "db", "startTime": "9999-12-31T23:59:59Z", "ttlSeconds": 86400},
        {"service": "db", "startTime": "0001-01-01T00:00:00Z", "expiresAt": "9999-12-31T23:59:59Z"},
    ):
        status, answer = await _post(client, json.dumps(body))
        assert status == 202, (body, answer)
    signal = controller.signals[("default", controller.added()[0])].signal
    assert signal is not None
    assert signal.end <= now + timedelta(seconds=MAX_SIGNAL_SECONDS + 60)
    status, _ = await _post(client, json.dumps({"service": "api"}))
    assert status == 202
    assert (await client.get("/healthz")).status == 200


async def test_an_exception_in_one_request_is_a_json_500_and_the_next_request_works(
    app_client: tuple[Client, RecordingController], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, _ = app_client
    before = sample("heady_ingest_events_total", {"path": "http", "outcome": "failed"})
    intake = client.server.app[http.INTAKE]
    real = intake.submit
    calls = 0

    async def flaky(payload: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise KeyError("a bug")
        return await real(payload)

    monkeypatch.setattr(intake, "submit", flaky)
    status, body = await _post(client, json.dumps({"service": "web"}))
    assert status == 500 and "KeyError" in body["error"]
    assert sample("heady_ingest_events_total", {"path": "http", "outcome": "failed"}) - before == 1
    status, _ = await _post(client, json.dumps({"service": "web"}))
    assert status == 202


# ---------------------------------------------------------------------- start-up


async def test_a_second_start_replaces_the_server_an_earlier_attempt_left_bound() -> None:
    """kopf retries a start-up handler that failed after binding: the retry must bind again."""
    port = _free_port()
    settings = Settings(http_host="127.0.0.1", http_port=port, prediction_enabled=False)
    intake = ingest.build(settings, RecordingController(settings)).intake
    # The failed attempt: its runner is never cleaned up by anyone.
    await http.start(settings, Healthy(), intake)  # type: ignore[arg-type]
    runner = await http.start(settings, Healthy(), intake)  # type: ignore[arg-type]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /healthz HTTP/1.0\r\n\r\n")
        await writer.drain()
        assert b"200" in (await reader.readline())
        writer.close()
    finally:
        await runner.cleanup()
        await http.stop()
