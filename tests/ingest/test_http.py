"""POST /v1/attention and /healthz on the real aiohttp app, with a real redis-server where it matters."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis.asyncio as aredis
from aiohttp.test_utils import TestClient, TestServer

from heady_operator import ingest
from heady_operator.config import Settings
from heady_operator.http import build_app
from tests.harness import RedisServer, _free_port
from tests.ingest.conftest import RecordingController, ingest_settings, sample, until

Client = TestClient[Any, Any]


class _Healthy:
    def problems(self) -> list[str]:
        return []


Serve = Callable[..., Awaitable[tuple[Client, RecordingController, ingest.Ingest]]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Start the app for some settings; with `consume=True` the stream consumer runs as well."""
    opened: list[tuple[Client, ingest.Ingest, asyncio.Task[None] | None]] = []

    async def start(
        settings: Settings, consume: bool = False
    ) -> tuple[Client, RecordingController, ingest.Ingest]:
        controller = RecordingController(settings)
        bundle = ingest.build(settings, controller)
        task = None
        if consume and bundle.consumer is not None:
            task = asyncio.create_task(bundle.consumer.run())
        client: Client = TestClient(TestServer(build_app(_Healthy(), bundle.intake)))
        await client.start_server()
        opened.append((client, bundle, task))
        return client, controller, bundle

    yield start
    for client, bundle, task in opened:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await client.close()
        await bundle.close()


async def post(client: Client, body: Any, token: str | None = None) -> tuple[int, dict[str, Any], Any]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = body if isinstance(body, str) else json.dumps(body)
    resp = await client.post("/v1/attention", data=data, headers=headers)
    return resp.status, dict(resp.headers), await resp.json()


def direct_settings(**overrides: Any) -> Settings:
    return Settings(prediction_enabled=False, **overrides)


# ---------------------------------------------------------------------- without Redis


async def test_without_redis_events_are_applied_directly_and_said_not_durable(serve: Serve) -> None:
    client, controller, _ = await serve(direct_settings())
    status, _, body = await post(
        client,
        [
            {"service": "web", "namespace": "shop", "intensity": 0.9, "ttlSeconds": 30, "source": "ui"},
            {"services": ["api", "db"], "user": "u7"},
        ],
    )
    assert status == 202, body
    assert body["accepted"] == 2 and body["durable"] is False
    assert controller.added() == body["ids"]
    assert all(name.startswith("http-") for name in body["ids"])
    first = controller.signals[("shop", body["ids"][0])].signal
    second = controller.signals[("default", body["ids"][1])].signal
    assert first is not None and first.services == (("shop", "web"),) and first.source == "ui"
    assert second is not None and second.user == "u7"
    assert {p for _, _, p in controller.calls} == {"http"}

    health = await (await client.get("/healthz")).json()
    assert health == {"status": "ok", "ingest": "direct"}


async def test_bad_input_is_refused_with_a_readable_reason(serve: Serve) -> None:
    client, controller, _ = await serve(direct_settings(ingest_http_max_events=3))
    cases: list[tuple[Any, str]] = [
        ("{nope", "the body is not JSON"),
        ({"service": "web", "intensity": 2}, "intensity: Input should be less than or equal to 1"),
        ({"intensity": 0.5}, "service or services"),
        (
            {"service": "web", "ttlSeconds": 5, "expiresAt": "2030-01-01T00:00:00Z"},
            "either ttlSeconds or expiresAt",
        ),
        ({"service": "web", "namespace": "Not_A_Namespace"}, "namespace: String should match pattern"),
        ({"service": "web", "source": "predictor"}, "reserved"),
        (
            [{"service": "ok"}, {"service": "web", "colour": "red"}],
            "[1].colour: Extra inputs are not permitted",
        ),
        ([], "empty"),
        ([{"service": "a"}] * 4, "at most 3 events per request"),
        ("42", "must be a JSON object"),
    ]
    for payload, expected in cases:
        status, _, body = await post(client, payload)
        assert status == 400, payload
        assert expected in body["error"], (payload, body)
    assert controller.calls == [], "nothing from a refused request is applied"


async def test_a_configured_token_is_required(serve: Serve) -> None:
    client, controller, _ = await serve(direct_settings(ingest_token="s3cret"))
    before = sample("heady_ingest_events_total", {"path": "http", "outcome": "unauthorized"})
    status, headers, body = await post(client, {"service": "web"})
    assert status == 401 and headers["WWW-Authenticate"] == "Bearer" and "bearer token" in body["error"]
    status, _, _ = await post(client, {"service": "web"}, token="wrong")
    assert status == 401
    assert sample("heady_ingest_events_total", {"path": "http", "outcome": "unauthorized"}) - before == 2
    assert controller.calls == []
    status, _, _ = await post(client, {"service": "web"}, token="s3cret")
    assert status == 202


async def test_overload_is_429_with_retry_after(serve: Serve) -> None:
    client, controller, _ = await serve(direct_settings(ingest_max_live_signals=2))
    clock = [datetime.now(UTC)]
    controller.clock = lambda: clock[0]
    assert (await post(client, [{"service": "a", "ttlSeconds": 10}, {"service": "b", "ttlSeconds": 10}]))[
        0
    ] == 202
    status, headers, body = await post(client, {"service": "c"})
    assert status == 429 and headers["Retry-After"] == "1" and "live" in body["error"]
    clock[0] += timedelta(seconds=12)  # both expired (and retracted): room again
    assert (await post(client, {"service": "c"}))[0] == 202

    client, _, _ = await serve(direct_settings(ingest_http_max_inflight=0))
    status, _, body = await post(client, {"service": "web"})
    assert status == 429 and "in flight" in body["error"]


async def test_events_with_a_user_teach_the_transition_model(serve: Serve) -> None:
    client, controller, _ = await serve(direct_settings())
    for service in ("list", "detail", "list", "detail"):
        assert (await post(client, {"service": service, "namespace": "shop", "sessionId": "tab-1"}))[0] == 202
    assert controller.model.counts["shop/list"] == {"shop/detail": 2}
    assert controller.model.counts["shop/detail"] == {"shop/list": 1}


# ---------------------------------------------------------------------- with Redis


@pytest.mark.redis
async def test_with_redis_202_means_in_the_stream_and_the_consumer_applies_it(
    redis_server: RedisServer, serve: Serve
) -> None:
    settings = ingest_settings(redis_server)
    client, controller, _ = await serve(settings, consume=True)
    before = sample("heady_attention_events_total", {"path": "http", "source": "ui"})
    status, _, body = await post(client, {"service": "web", "source": "ui", "user": "u1", "ttlSeconds": 60})
    assert status == 202, body
    assert body["durable"] is True
    (name,) = body["ids"]
    assert name.startswith("redis-")
    producer = aredis.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        entries = await producer.xrange(settings.attention_stream)
        assert [f"redis-{i}" for i, _ in entries] == [name]
        assert entries[0][1]["origin"] == "http"
        assert json.loads(entries[0][1]["data"])["services"] == ["web"]
    finally:
        await producer.aclose()
    await until(lambda: name in controller.added(), "the posted event applied by the consumer")
    assert ("ADDED", name, "http") in controller.calls
    assert sample("heady_attention_events_total", {"path": "http", "source": "ui"}) - before == 1
    assert await (await client.get("/healthz")).json() == {"status": "ok", "ingest": "ok"}


@pytest.mark.redis
async def test_429_when_the_consumers_lag_behind(redis_server: RedisServer, serve: Serve) -> None:
    settings = ingest_settings(redis_server, ingest_max_lag=3)
    producer = aredis.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        await producer.xgroup_create(settings.attention_stream, settings.ingest_group, id="0", mkstream=True)
        for _ in range(4):
            await producer.xadd(settings.attention_stream, {"service": "web"})
    finally:
        await producer.aclose()
    client, _, _ = await serve(settings)  # the consumer is not running: nothing drains the stream
    status, headers, body = await post(client, {"service": "web"})
    assert status == 429 and headers["Retry-After"] == "1"
    assert "4 entries waiting" in body["error"]


@pytest.mark.redis
async def test_redis_down_is_503_and_healthz_stays_200(redis_server: RedisServer, serve: Serve) -> None:
    settings = ingest_settings(redis_server)
    client, _, bundle = await serve(settings, consume=True)
    assert bundle.consumer is not None
    await until(lambda: bundle.consumer is not None and bundle.consumer.available, "consuming")
    assert (await post(client, {"service": "web"}))[0] == 202
    redis_server.kill()
    status, headers, body = await post(client, {"service": "web"})
    assert status == 503 and headers["Retry-After"] == "5"
    assert "unavailable" in body["error"]
    await until(lambda: bundle.consumer is not None and not bundle.consumer.available, "outage noticed")
    resp = await client.get("/healthz")
    assert resp.status == 200
    assert await resp.json() == {"status": "ok", "ingest": "unavailable"}


async def test_503_when_redis_was_never_reachable(serve: Serve) -> None:
    settings = direct_settings(redis_url=f"redis://127.0.0.1:{_free_port()}/0")
    client, _, _ = await serve(settings)
    status, _, body = await post(client, {"service": "web"})
    assert status == 503, body
