"""The stream consumer under leader election, against a real redis-server: a standby follows the
stream into its state without touching the group, and a take-over applies and acknowledges every
entry exactly once between the two leaders (the leadership gate is a switch the test flips)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aredis

from heady_operator.config import Settings
from heady_operator.ingest import AttentionSink, RedisAttentionConsumer
from heady_operator.ingest.stream import connect
from tests.harness import RedisServer
from tests.ingest.conftest import RecordingController, ingest_settings, until
from tests.ingest.test_redis_stream import pending, publish

pytestmark = pytest.mark.redis


class Switch:
    """The leadership gate as the consumer sees it."""

    def __init__(self, leading: bool) -> None:
        self.leading = leading

    def may_write(self) -> bool:
        return self.leading


class Replica:
    def __init__(self, settings: Settings, name: str, leading: bool) -> None:
        self.gate = Switch(leading)
        self.controller = RecordingController(settings)
        self.client = connect(settings)
        self.consumer = RedisAttentionConsumer(
            settings, AttentionSink(self.controller), self.client, name=name, gate=self.gate
        )
        self.task = asyncio.create_task(self.consumer.run())

    def live(self) -> set[str]:
        return {k[1] for k in self.controller.signals}

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        await self.client.aclose()


@pytest.fixture
async def replicas() -> AsyncIterator[list[Replica]]:
    started: list[Replica] = []
    yield started
    for r in started:
        await r.stop()


async def group_consumers(client: aredis.Redis, settings: Settings) -> set[str]:
    return {c["name"] for c in await client.xinfo_consumers(settings.attention_stream, settings.ingest_group)}


async def test_a_standby_follows_without_joining_the_group_and_a_takeover_loses_and_repeats_nothing(
    redis_server: RedisServer, client: aredis.Redis, replicas: list[Replica]
) -> None:
    settings = ingest_settings(redis_server, ingest_batch=5)
    early = await publish(client, settings.attention_stream, 10)  # before either replica runs
    leader = Replica(settings, "op-a", leading=True)
    standby = Replica(settings, "op-b", leading=False)
    replicas += [leader, standby]
    names = {f"redis-{i}" for i in early}
    await until(lambda: names <= leader.live() and names <= standby.live(), "both hold the first 10")
    assert await group_consumers(client, settings) == {"op-a"}, "the standby read through the group"
    assert standby.consumer.acknowledged == 0

    # The leader is fenced in the middle of a batch: it applies in memory but acknowledges nothing more.
    def fence_at_13(count: int) -> None:
        if count == 13:
            leader.gate.leading = False

    leader.controller.on_call = fence_at_13
    later = await publish(client, settings.attention_stream, 20)
    names |= {f"redis-{i}" for i in later}
    await until(lambda: not leader.gate.leading, "the leader fenced")
    await until(lambda: names <= standby.live(), "the standby followed all 30")
    left = await pending(client, settings)
    assert left > 0, "the fenced leader left its last batch unacknowledged"

    standby.gate.leading = True  # elected: claims what the old leader left, at once
    await until(
        lambda: leader.consumer.acknowledged + standby.consumer.acknowledged == 30,
        "every entry acknowledged once between the two leaders",
    )
    assert await pending(client, settings) == 0
    await asyncio.sleep(0.3)  # nothing more arrives late
    assert leader.consumer.acknowledged + standby.consumer.acknowledged == 30
    assert standby.consumer.acknowledged >= left
    assert names <= standby.live()
    # After the take-over the new leader reads new entries through the group; the old one does not.
    more = await publish(client, settings.attention_stream, 3)
    await until(lambda: standby.consumer.acknowledged + leader.consumer.acknowledged == 33, "new ones too")
    assert {f"redis-{i}" for i in more} <= standby.live()
