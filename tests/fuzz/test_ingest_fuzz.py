"""Fuzzing the attention ingest end to end (issue 17): the real aiohttp app, and the real stream
consumer on a real redis-server.

Every request gets a JSON answer with a status that says what happened (202, or 4xx with an
`error`), never a 500 or a dropped connection; every stream entry, whatever its bytes, ends
acknowledged (applied or dead-lettered) and the consumer stays available. After each example a
good event still goes through, so the ingest keeps serving.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aredis
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from heady_operator import ingest
from heady_operator.config import Settings
from heady_operator.http import build_app
from heady_operator.ingest import AttentionSink, RedisAttentionConsumer
from heady_operator.ingest.stream import connect
from tests.fuzz.test_models_fuzz import event_dicts, json_values, wire_events
from tests.harness import RedisServer
from tests.ingest.conftest import RecordingController, ingest_settings, sample
from tests.ingest.test_hostile import Healthy

FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
GOOD = json.dumps({"service": "fuzz-canary", "ttlSeconds": 30}).encode()

content_types = st.one_of(
    st.just("application/json"),
    st.sampled_from(
        [
            "application/json; charset=utf-8",
            "application/cloudevents+json",
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/json; charset=utf-16",
            "",
        ]
    ),
    st.text(max_size=30),
)
bodies = st.one_of(
    st.binary(max_size=2048),
    json_values.map(lambda v: json.dumps(v).encode()),
    wire_events,
    st.lists(event_dicts(max_depth=50), max_size=120).map(
        lambda v: json.dumps(v, default=str).encode("utf-8", "surrogatepass")
    ),
    st.integers(min_value=1, max_value=60_000).map(lambda n: b"[" * n + b"]" * n),
    st.integers(min_value=60_000, max_value=200_000).map(lambda n: b'{"service": "' + b"x" * n + b'"}'),
)


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    # Hypothesis drives a synchronous test; the app and its client live on this loop.
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def test_the_endpoint_answers_every_request_with_a_reason(loop: asyncio.AbstractEventLoop) -> None:
    controller = RecordingController(Settings(prediction_enabled=False))
    bundle = ingest.build(controller.settings, controller)
    client: TestClient[Any, Any] = TestClient(
        TestServer(build_app(Healthy(), bundle.intake)),  # type: ignore[arg-type]
        loop=loop,
    )
    loop.run_until_complete(client.start_server())
    failed_before = sample("heady_ingest_events_total", {"path": "http", "outcome": "failed"})

    async def post(body: bytes, content_type: str) -> tuple[int, Any]:
        headers = {"Content-Type": content_type} if content_type else {}
        resp = await client.post("/v1/attention", data=body, headers=headers)
        assert resp.content_type == "application/json", (resp.status, await resp.text())
        return resp.status, await resp.json()

    @FUZZ
    @given(bodies, content_types)
    def one(body: bytes, content_type: str) -> None:
        if not (content_type.isascii() and content_type.isprintable()):
            content_type = "application/json"  # the client refuses to send such a header at all
        status, answer = loop.run_until_complete(post(body, content_type))
        assert status in (202, 400, 413, 415, 429), (status, answer)
        if status != 202:
            assert isinstance(answer["error"], str) and answer["error"]
        status, answer = loop.run_until_complete(post(GOOD, "application/json"))
        assert status == 202, answer

    try:
        one()
    finally:
        loop.run_until_complete(client.close())
    assert sample("heady_ingest_events_total", {"path": "http", "outcome": "failed"}) == failed_before


raw_fields = st.dictionaries(
    st.binary(min_size=1, max_size=12) | st.sampled_from([b"service", b"services", b"data", b"expiresAt"]),
    st.binary(max_size=64)
    | wire_events
    | st.sampled_from([b"web", b"9999-12-31T23:59:59Z", b"\xff\xfe", b"1e400", b"nan"]),
    min_size=1,
    max_size=5,
)


@pytest.mark.redis
def test_the_stream_consumer_acknowledges_every_entry_and_keeps_consuming(
    loop: asyncio.AbstractEventLoop, tmp_path: Path
) -> None:
    server = RedisServer(tmp_path / "redis")
    server.start()
    settings_ = ingest_settings(server)
    controller = RecordingController(settings_)
    raw = aredis.Redis.from_url(server.url)
    consumer_client = connect(settings_)
    consumer = RedisAttentionConsumer(settings_, AttentionSink(controller), consumer_client, name="fuzz")
    task = loop.create_task(consumer.run())

    async def settle(ids: list[bytes]) -> None:
        canary = (await raw.xadd(settings_.attention_stream, {b"service": b"canary"})).decode()
        deadline = loop.time() + 10
        while loop.time() < deadline:
            pending = await raw.xpending(settings_.attention_stream, settings_.ingest_group)
            if f"redis-{canary}" in controller.added() and int(pending["pending"]) == 0:
                break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError(f"entries {ids} not all handled: pending {pending}; {consumer.last_error}")
        assert consumer.available, consumer.last_error

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(raw_fields, min_size=1, max_size=5))
    def one(entries: list[dict[bytes, bytes]]) -> None:
        async def go() -> None:
            ids = [await raw.xadd(settings_.attention_stream, fields) for fields in entries]  # type: ignore[arg-type]
            await settle(ids)

        loop.run_until_complete(go())

    lost_before = sample("heady_ingest_events_total", {"path": "redis", "outcome": "lost"})
    try:
        loop.run_until_complete(settle([]))
        one()
        assert sample("heady_ingest_events_total", {"path": "redis", "outcome": "lost"}) == lost_before
    finally:
        task.cancel()
        loop.run_until_complete(asyncio.gather(task, return_exceptions=True))
        loop.run_until_complete(consumer_client.aclose())
        loop.run_until_complete(raw.aclose())
        server.stop()
