"""RedisAttentionConsumer against a real redis-server, feeding the real escalation controller."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis.asyncio as aredis

from heady_operator.config import Settings
from heady_operator.ingest import AttentionSink, RedisAttentionConsumer
from heady_operator.ingest.stream import connect
from tests.harness import RedisServer
from tests.ingest.conftest import RecordingController, ingest_settings, sample, until

pytestmark = pytest.mark.redis


class Crash(BaseException):
    """The process dying at this exact point: nothing after it runs, no handler sees it."""


class Running:
    """A consumer task plus the client it owns."""

    def __init__(self, settings: Settings, controller: RecordingController, name: str = "op-0") -> None:
        self.client = connect(settings)
        self.consumer = RedisAttentionConsumer(settings, AttentionSink(controller), self.client, name=name)
        self.task = asyncio.create_task(self.consumer.run())

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Crash):
            await self.task
        await self.client.aclose()


@pytest.fixture
async def running() -> AsyncIterator[list[Running]]:
    started: list[Running] = []
    yield started
    for r in started:
        await r.stop()


async def publish(client: aredis.Redis, stream: str, count: int, **fields: str) -> list[str]:
    ids = []
    for i in range(count):
        entry = {"service": f"svc-{i % 3}", "user": "u1", "intensity": "0.8", "ttlSeconds": "600", **fields}
        ids.append(await client.xadd(stream, entry))  # type: ignore[arg-type]
    return ids


async def pending(client: aredis.Redis, settings: Settings) -> int:
    info = await client.xpending(settings.attention_stream, settings.ingest_group)
    return int(info["pending"])


async def _no_pending(client: aredis.Redis, settings: Settings) -> bool:
    return await pending(client, settings) == 0


async def test_entries_are_applied_in_order_then_acknowledged(
    settings: Settings, client: aredis.Redis, running: list[Running]
) -> None:
    before = sample("heady_attention_events_total", {"path": "redis", "source": "ui"})
    ids = await publish(client, settings.attention_stream, 30, source="ui", namespace="shop")
    controller = RecordingController(settings)
    running.append(Running(settings, controller))
    await until(lambda: len(controller.added()) == 30, "30 events applied")
    assert controller.added() == [f"redis-{i}" for i in ids]
    assert {p for _, _, p in controller.calls} == {"redis"}
    await until(lambda: running[0].consumer.available, "consumer available")
    await until(lambda: _no_pending(client, settings), "every entry acknowledged")
    assert sample("heady_attention_events_total", {"path": "redis", "source": "ui"}) - before == 30
    entry = controller.signals[("shop", f"redis-{ids[4]}")]
    assert entry.signal is not None
    assert entry.signal.services == (("shop", "svc-1"),)
    assert entry.signal.intensity == 0.8
    assert entry.signal.user == "u1"
    assert (entry.signal.end - entry.signal.start).total_seconds() == 600


async def test_restart_with_the_same_name_loses_nothing_and_skips_what_was_acknowledged(
    redis_server: RedisServer, client: aredis.Redis, running: list[Running]
) -> None:
    settings = ingest_settings(redis_server, ingest_batch=5)
    ids = await publish(client, settings.attention_stream, 20)
    names = [f"redis-{i}" for i in ids]
    first = RecordingController(settings)

    def crash_at_seventh(count: int) -> None:
        if count == 7:
            raise Crash

    first.on_call = crash_at_seventh
    running.append(Running(settings, first, name="op-0"))
    with pytest.raises(Crash):
        await running[-1].task
    # Batch one (1-5) was applied and acknowledged; batch two was read, 6 and 7 applied, no ack.
    assert first.added() == names[:7]
    assert await pending(client, settings) == 5

    # The restarted process: a fresh controller, the same consumer name.
    second = RecordingController(settings)
    running.append(Running(settings, second, name="op-0"))
    await until(lambda: len(second.added()) == 15, "the rest applied after the restart")
    assert second.added() == names[5:], "acknowledged entries must not come back; the in-flight batch must"
    await until(lambda: _no_pending(client, settings), "every entry acknowledged")


async def test_a_replay_into_the_same_controller_counts_each_event_once(
    redis_server: RedisServer, client: aredis.Redis, running: list[Running]
) -> None:
    settings = ingest_settings(redis_server, ingest_batch=5)
    ids = await publish(client, settings.attention_stream, 20, source="replay")
    names = [f"redis-{i}" for i in ids]
    controller = RecordingController(settings)
    events_before = sample("heady_attention_events_total", {"path": "redis", "source": "replay"})
    replayed_before = sample("heady_ingest_events_total", {"path": "redis", "outcome": "replayed"})

    def crash_at_seventh(count: int) -> None:
        if count == 7:
            controller.on_call = None
            raise Crash

    controller.on_call = crash_at_seventh
    running.append(Running(settings, controller, name="op-0"))
    with pytest.raises(Crash):
        await running[-1].task
    # A new consumer in the same process (e.g. after the ingest task was restarted).
    running.append(Running(settings, controller, name="op-0"))
    await until(lambda: set(controller.added()) == set(names), "all 20 applied")
    await until(lambda: len(controller.added()) == 22, "the two in-flight entries replayed")
    calls = Counter(controller.added())
    assert [n for n in names if calls[n] == 2] == names[5:7]
    assert len([k for k in controller.signals if k[1] in set(names)]) == 20
    assert sample("heady_attention_events_total", {"path": "redis", "source": "replay"}) - events_before == 20
    assert (
        sample("heady_ingest_events_total", {"path": "redis", "outcome": "replayed"}) - replayed_before == 2
    )
    await until(lambda: _no_pending(client, settings), "every entry acknowledged")


async def test_entries_left_by_a_dead_consumer_are_taken_over(
    redis_server: RedisServer, client: aredis.Redis, running: list[Running]
) -> None:
    settings = ingest_settings(redis_server, ingest_batch=5, ingest_claim_idle_seconds=0.3)
    ids = await publish(client, settings.attention_stream, 8)
    names = [f"redis-{i}" for i in ids]
    dead = RecordingController(settings)

    def crash_at_second(count: int) -> None:
        if count == 2:
            raise Crash

    dead.on_call = crash_at_second
    running.append(Running(settings, dead, name="op-dead"))
    with pytest.raises(Crash):
        await running[-1].task
    survivor = RecordingController(settings)
    running.append(Running(settings, survivor, name="op-live"))
    await until(lambda: set(survivor.added()) == set(names), "every entry applied by the survivor")
    assert sorted(survivor.added()) == sorted(names), "each entry once"
    await until(lambda: _no_pending(client, settings), "every entry acknowledged")


BAD_ENTRIES: list[dict[str, str]] = [
    {"service": "web", "intensity": "5"},
    {"intensity": "0.5"},
    {"data": "{not json"},
    {"service": "web", "colour": "blue"},
    {"service": "web", "ttlSeconds": "30", "expiresAt": "2030-01-01T00:00:00Z"},
    {"service": "web", "expiresAt": "2030-01-01T00:00:00"},
]


async def test_malformed_entries_go_to_the_dead_letter_stream_once(
    settings: Settings, client: aredis.Redis, running: list[Running], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="heady_operator.ingest")
    stream = settings.attention_stream
    dead_before = sample("heady_ingest_dead_letters_total")
    good_first = await client.xadd(stream, {"service": "web"})
    bad_ids = [await client.xadd(stream, fields) for fields in BAD_ENTRIES]  # type: ignore[arg-type]
    good_last = await client.xadd(stream, {"services": "web, api", "intensity": "0.3"})
    controller = RecordingController(settings)
    running.append(Running(settings, controller))
    await until(lambda: len(controller.added()) == 2, "the good entries applied")
    assert controller.added() == [f"redis-{good_first}", f"redis-{good_last}"]
    last = controller.signals[("default", f"redis-{good_last}")].signal
    assert last is not None and last.services == (("default", "web"), ("default", "api"))

    # Entries are handled in order, so every bad one before the last good one is dead-lettered.
    letters = await client.xrange(settings.ingest_dead_letter_stream)
    assert [d[1]["id"] for d in letters] == bad_ids
    errors = {d[1]["id"]: d[1]["error"] for d in letters}
    assert "intensity: Input should be less than or equal to 1" in errors[bad_ids[0]]
    assert "service or services" in errors[bad_ids[1]]
    assert "not JSON" in errors[bad_ids[2]]
    assert "colour: Extra inputs are not permitted" in errors[bad_ids[3]]
    assert "either ttlSeconds or expiresAt" in errors[bad_ids[4]]
    assert "expiresAt: Input should have timezone info" in errors[bad_ids[5]]
    assert json.loads(letters[0][1]["fields"]) == BAD_ENTRIES[0]
    assert sample("heady_ingest_dead_letters_total") - dead_before == len(BAD_ENTRIES)
    await until(lambda: _no_pending(client, settings), "every entry acknowledged")

    # Re-deliver the whole stream to the same consumer: nothing applied, logged or copied twice.
    await client.xgroup_setid(stream, settings.ingest_group, "0")
    await client.xadd(stream, {"service": "marker"})
    await until(lambda: len(controller.added()) == 3, "the marker applied")
    assert len(controller.added()) == 3
    assert sample("heady_ingest_dead_letters_total") - dead_before == len(BAD_ENTRIES)
    assert await client.xlen(settings.ingest_dead_letter_stream) == len(BAD_ENTRIES)
    for bad in bad_ids:
        assert sum(bad in r.getMessage() for r in caplog.records) == 1, bad


async def test_expired_events_are_not_applied_and_live_ones_are_retracted_after_expiry(
    settings: Settings, client: aredis.Redis, running: list[Running]
) -> None:
    past = (datetime.now(UTC) - timedelta(seconds=5)).isoformat()
    soon = (datetime.now(UTC) + timedelta(milliseconds=300)).isoformat()
    stale = await client.xadd(settings.attention_stream, {"service": "web", "expiresAt": past})
    brief = await client.xadd(settings.attention_stream, {"service": "web", "expiresAt": soon})
    controller = RecordingController(settings)
    running.append(Running(settings, controller))
    await until(lambda: f"redis-{brief}" in controller.added(), "the live event applied")
    assert f"redis-{stale}" not in controller.added()
    # Forgotten a second after it ended (nothing is kept for ended ingested attention).
    await until(lambda: ("default", f"redis-{brief}") not in controller.signals, "retraction", 5)
    assert controller.ingested_live == 0
    await until(lambda: _no_pending(client, settings), "every entry acknowledged")


async def test_redis_killed_and_restarted_mid_stream(
    durable_redis: RedisServer, running: list[Running]
) -> None:
    settings = ingest_settings(durable_redis, ingest_batch=5)
    producer = aredis.Redis.from_url(durable_redis.url, decode_responses=True)
    try:
        ids = await publish(producer, settings.attention_stream, 10)
        controller = RecordingController(settings)
        duplicates_before = sample("heady_ingest_events_total", {"path": "redis", "outcome": "duplicate"})

        def kill_at_seventh(count: int) -> None:
            if count == 7:
                controller.on_call = None
                durable_redis.kill()  # entries 6-10 applied, their ack not yet sent

        controller.on_call = kill_at_seventh
        running.append(Running(settings, controller))
        consumer = running[-1].consumer
        await until(lambda: len(controller.added()) == 10, "the first ten applied")
        await until(lambda: sample("heady_ingest_available") == 0, "heady_ingest_available 0")
        assert not consumer.available

        durable_redis.start()
        await until(lambda: consumer.available, "reconnected", 15)
        assert sample("heady_ingest_available") == 1
        await producer.aclose()
        producer = aredis.Redis.from_url(durable_redis.url, decode_responses=True)
        ids += await publish(producer, settings.attention_stream, 10)
        await until(lambda: len(controller.added()) >= 20, "the next ten applied")
        # Acknowledged (1-5) never came back; unacknowledged (6-10) came back and were only acknowledged.
        assert controller.added() == [f"redis-{i}" for i in ids]
        dup = (
            sample("heady_ingest_events_total", {"path": "redis", "outcome": "duplicate"}) - duplicates_before
        )
        assert dup == 5
        await until(lambda: _no_pending(producer, settings), "every entry acknowledged")
    finally:
        await producer.aclose()


async def test_redis_down_at_start_then_up(tmp_path: Path, running: list[Running]) -> None:
    server = RedisServer(tmp_path / "late")
    settings = ingest_settings(server)
    controller = RecordingController(settings)
    running.append(Running(settings, controller))
    consumer = running[-1].consumer
    await until(lambda: consumer.last_error is not None, "the outage noticed")
    assert not consumer.available and sample("heady_ingest_available") == 0
    server.start()
    try:
        await until(lambda: consumer.available, "consuming once Redis is up", 15)
        producer = aredis.Redis.from_url(server.url, decode_responses=True)
        await publish(producer, settings.attention_stream, 1)
        await producer.aclose()
        await until(lambda: len(controller.added()) == 1, "applied")
    finally:
        await running.pop().stop()
        server.stop()


async def test_events_with_a_user_teach_the_transition_model(
    redis_server: RedisServer, client: aredis.Redis, running: list[Running]
) -> None:
    settings = ingest_settings(redis_server, prediction_enabled=True)
    controller = RecordingController(settings)
    stream = settings.attention_stream
    for service in ("cart", "checkout", "cart", "checkout"):
        await client.xadd(stream, {"service": service, "namespace": "shop", "session": "s-42"})
    await client.xadd(stream, {"service": "cart", "namespace": "shop", "user": "someone-else"})
    running.append(Running(settings, controller))
    await until(lambda: len(controller.added()) == 5, "applied")
    assert controller.model.counts["shop/cart"] == {"shop/checkout": 2}
    assert controller.model.counts["shop/checkout"] == {"shop/cart": 1}
    assert controller.model.last == {"s-42": "shop/checkout", "someone-else": "shop/cart"}
