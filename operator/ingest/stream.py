"""The Redis stream path: a consumer-group reader that feeds the controller, and the producer side.

Delivery is at least once, application effectively once:
- entries are read with XREADGROUP, fed to the controller, then acknowledged (XACK) per batch,
  so a crash between the two leaves them in this consumer's pending list (PEL);
- on every (re)start the consumer first re-reads its own PEL (id 0), then takes over entries
  another consumer read and left unacknowledged for `ingest_claim_idle_seconds` (XAUTOCLAIM;
  a replaced pod's old consumer, a dead second replica);
- a re-delivered entry is harmless: the controller keys signals by name (`redis-<id>`), and this
  process remembers the ids it applied recently, so it only acknowledges them again.

A malformed entry (bad fields, bytes that are not UTF-8, absurd values) is counted, logged once
with its id, copied with the reason to the dead-letter stream and acknowledged: it never blocks
the entries behind it. The same holds for an entry whose application raised anything at all
(outcome `failed`), and for one that cannot even be dead-lettered (outcome `lost`, logged with
its fields): only an outage of Redis itself leaves entries pending, to be read again.

With leader election (docs/high-availability.md) only the leader reads through the group. A
standby follows the stream with plain XREAD (which leaves the group untouched) and feeds the same
state, so the live signals are there when it takes over; the group's entries it then reads are
replays of what it already holds, keyed by the same names. At take-over it claims every entry the
old leader left unacknowledged at once (the old leader is fenced by then: it acknowledges
nothing more), so each entry is applied and acknowledged by exactly one leader.

When Redis is unreachable the consumer sets heady_ingest_available to 0, says so once, and
reconnects with exponential backoff (capped at `ingest_reconnect_max_seconds`). Nothing else
in the operator waits on it: AttentionSignal objects keep working.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from heady_operator import metrics
from heady_operator.config import Settings
from heady_operator.ingest.events import (
    AttentionEvent,
    InvalidEvent,
    Path,
    entry_fields,
    parse_entry,
    stream_time,
)
from heady_operator.ingest.sink import AttentionSink
from heady_operator.planning.leadership import ALWAYS, Gate

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]
Entry = tuple[str, dict[str, str]]

# "Redis is not reachable right now", as opposed to a command Redis refused.
OUTAGE_ERRORS: tuple[type[BaseException], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    OSError,
    TimeoutError,
)
# Consumers of departed pods are forgotten once they hold nothing and were idle this long.
FORGET_CONSUMERS_AFTER_MS = 3_600_000


def connect(settings: Settings) -> aredis.Redis:
    """One client (a connection pool) shared by the consumer and the HTTP endpoint."""
    client: aredis.Redis = aredis.Redis.from_url(
        settings.redis_url,
        decode_responses=True,
        # Bytes that are not UTF-8 come back as lone surrogates instead of failing the whole read
        # (and every re-read of the pending entry): the entry is then refused on its own.
        encoding_errors="surrogateescape",
        protocol=2,
        socket_connect_timeout=2,
        # Longer than the consumer's blocking read, so only a dead peer times out.
        socket_timeout=max(5.0, settings.ingest_block_ms / 1000 + 5),
        # One quick retry rides over a dropped idle connection; outages are handled above it.
        retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), retries=1),
    )
    return client


def consumer_name(settings: Settings) -> str:
    return settings.ingest_consumer or settings.pod_name or socket.gethostname()


async def backlog(client: aredis.Redis, stream: str, group: str) -> int | None:
    """Entries of `stream` the group has not read yet plus those read and not acknowledged."""
    try:
        groups: list[dict[str, Any]] = await client.xinfo_groups(stream)
    except ResponseError:
        return None  # no stream yet
    for g in groups:
        if g.get("name") == group:
            # `lag` is unknown (nil) after deletions in the middle of the stream; pending still counts.
            return int(g.get("lag") or 0) + int(g.get("pending") or 0)
    return None


class RecentIds:
    """A bounded set of ids, oldest forgotten first."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._ids: OrderedDict[str, None] = OrderedDict()

    def __contains__(self, entry_id: object) -> bool:
        return entry_id in self._ids

    def add(self, entry_id: str) -> None:
        self._ids[entry_id] = None
        self._ids.move_to_end(entry_id)
        while len(self._ids) > self.limit:
            self._ids.popitem(last=False)


class RedisAttentionConsumer:
    def __init__(
        self,
        settings: Settings,
        sink: AttentionSink,
        client: aredis.Redis,
        name: str | None = None,
        sleep: Sleep = asyncio.sleep,
        gate: Gate = ALWAYS,
    ) -> None:
        self.settings = settings
        self.sink = sink
        self.redis = client
        self.stream = settings.attention_stream
        self.group = settings.ingest_group
        self.name = name or consumer_name(settings)
        self.available = False
        self.last_error: str | None = None
        self._sleep = sleep
        self._handled = RecentIds(settings.ingest_dedup_window)
        self._maintained = 0.0
        self.gate = gate
        # Electing replicas follow the stream while standing by; a lone one reads the group only.
        self.follows = gate is not ALWAYS
        self._tail: str | None = None  # the last entry this standby followed
        self._took_over = False
        self.acknowledged = 0  # entries this process applied (or dead-lettered) and acknowledged

    # ------------------------------------------------------------------ the loop

    async def run(self) -> None:
        delay = 0.1
        while True:
            try:
                if self.follows and not self.gate.may_write():
                    await self._follow()
                    continue
                await self._start()
                self._set_available(True)
                delay = 0.1
                while self.gate.may_write():
                    _raise_if_cancelled()
                    await self._maintain()
                    await self._read_new()
                log.info("attention ingest: not the leader; following %s instead", self.stream)
                continue
            except asyncio.CancelledError:
                raise
            except OUTAGE_ERRORS as exc:
                self._set_available(False, f"{type(exc).__name__}: {exc}")
            except ResponseError as exc:
                # NOGROUP: Redis restarted without persistence, or someone deleted the stream.
                self._set_available(False, f"Redis refused: {exc}")
            except Exception as exc:  # a bug here must not end the ingest for good
                log.exception("attention ingest failed; restarting it")
                self._set_available(False, f"{type(exc).__name__}: {exc}")
            _raise_if_cancelled()
            await self._sleep(delay)
            delay = min(self.settings.ingest_reconnect_max_seconds, delay * 2)

    def _set_available(self, up: bool, error: str | None = None) -> None:
        if up and not self.available:
            log.info("attention ingest: consuming %s as %s/%s", self.stream, self.group, self.name)
        elif not up and (self.available or self.last_error is None):
            log.warning(
                "attention ingest unavailable (%s); AttentionSignal objects still work; reconnecting", error
            )
        self.available = up
        self.last_error = error
        metrics.INGEST_AVAILABLE.set(1 if up else 0)

    async def _start(self) -> None:
        try:
            # From the start of the stream: events sent before the group existed are not lost,
            # and whatever is already over is dropped as expired when read.
            await self.redis.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        await self._drain_own_pending()
        if self.follows and not self._took_over:
            # Elected: whoever read these before us is fenced and acknowledges nothing more.
            self._took_over = True
            await self._claim_abandoned(idle_ms=0)
        await self._claim_abandoned()
        self._maintained = time.monotonic()

    async def _follow(self) -> None:
        """Standing by: apply every entry to the state (no group, no acknowledgement) until elected."""
        if self._tail is None:
            # Far enough back for any signal still live (TTLs longer than this belong in objects).
            since = int(time.time() * 1000) - int(self.settings.ingest_replay_seconds * 1000)
            self._tail = f"{max(0, since)}-0"
            self._set_available(True)
        block = max(1, min(self.settings.ingest_block_ms, 200))
        batch = max(self.settings.ingest_batch, 1000)
        # The replay is finished before leading, even if elected meanwhile: what it has not read
        # yet may already be acknowledged, and the group would never deliver it again.
        caught_up = False
        while not caught_up or not self.gate.may_write():
            _raise_if_cancelled()
            self.sink.retract_expired()
            reply: Any = await self.redis.xread(
                {self.stream: self._tail}, count=batch, block=block if caught_up else None
            )
            entries = [e for _, got in reply or () for e in _entries(got)]
            caught_up = caught_up or len(entries) < batch
            for entry_id, fields in entries:
                self._tail = entry_id
                with contextlib.suppress(Exception):  # the leader dead-letters what cannot be read
                    event, path = parse_entry(fields)
                    self.sink.follow(event, f"redis-{entry_id}", stream_time(entry_id), path)

    async def _drain_own_pending(self) -> None:
        """Entries this consumer name read before a crash or reconnect, and never acknowledged."""
        start = "0"
        while True:
            entries = await self._read(start, block=None)
            if not entries:
                return
            await self.handle(entries)
            start = entries[-1][0]

    async def _claim_abandoned(self, idle_ms: int | None = None) -> None:
        if idle_ms is None:
            idle_ms = int(self.settings.ingest_claim_idle_seconds * 1000)
        start = "0-0"
        while True:
            reply = await self.redis.xautoclaim(
                self.stream, self.group, self.name, idle_ms, start_id=start, count=self.settings.ingest_batch
            )
            start, entries = str(reply[0]), _entries(reply[1])
            if entries:
                log.info("attention ingest: took over %d unacknowledged entries", len(entries))
                await self.handle(entries)
            if start == "0-0":
                return

    async def _maintain(self) -> None:
        self.sink.retract_expired()
        interval = min(5.0, self.settings.ingest_claim_idle_seconds / 2)
        if time.monotonic() - self._maintained < interval:
            return
        self._maintained = time.monotonic()
        await self._claim_abandoned()
        metrics.INGEST_BACKLOG.set(await backlog(self.redis, self.stream, self.group) or 0)
        consumers: list[dict[str, Any]] = await self.redis.xinfo_consumers(self.stream, self.group)
        for c in consumers:
            if c["name"] != self.name and not c["pending"] and c["idle"] > FORGET_CONSUMERS_AFTER_MS:
                await self.redis.xgroup_delconsumer(self.stream, self.group, c["name"])

    async def _read_new(self) -> None:
        entries = await self._read(">", block=self.settings.ingest_block_ms)
        if entries:
            await self.handle(entries)

    async def _read(self, start: str, block: int | None) -> list[Entry]:
        reply: Any = await self.redis.xreadgroup(
            self.group, self.name, {self.stream: start}, count=self.settings.ingest_batch, block=block
        )
        # RESP2 (connect()'s protocol): [[stream, [(id, fields), ...]]]
        return [e for _, entries in reply or () for e in _entries(entries)]

    # ------------------------------------------------------------------ one batch

    async def handle(self, entries: Sequence[Entry]) -> None:
        """Apply a batch, then acknowledge all of it at once (after, never before, applying).

        Every entry is isolated: whatever one raises, short of Redis going away, ends with that
        entry counted, dead-lettered (or logged as lost) and acknowledged with the others.
        """
        if not self.gate.may_write():
            return  # fenced: they stay pending for the next leader, who claims them
        done: list[str] = []
        for entry_id, fields in entries:
            done.append(entry_id)
            try:
                await self._handle_one(entry_id, fields)
            except asyncio.CancelledError:
                raise
            except OUTAGE_ERRORS:
                raise  # Redis went away: the batch stays pending and is read again
            except Exception as exc:  # the dead-letter write itself was refused (WRONGTYPE, OOM)
                log.error(
                    "attention entry %s dropped: it failed and could not be dead-lettered (%s: %s); fields %s",
                    entry_id,
                    type(exc).__name__,
                    exc,
                    _printable(fields),
                )
                metrics.INGEST_EVENTS.labels("redis", "lost").inc()
                self._handled.add(entry_id)
        if done and self.gate.may_write():
            await self.redis.xack(self.stream, self.group, *done)
            self.acknowledged += len(done)
            metrics.INGEST_ACKNOWLEDGED.inc(len(done))

    async def _handle_one(self, entry_id: str, fields: dict[str, str]) -> None:
        if entry_id in self._handled:
            metrics.INGEST_EVENTS.labels("redis", "duplicate").inc()
            return
        if not fields:
            # Trimmed (MAXLEN) or deleted after it was delivered: nothing left to apply.
            metrics.INGEST_EVENTS.labels("redis", "trimmed").inc()
            return
        try:
            event, path = parse_entry(fields)
        except InvalidEvent as exc:
            await self._dead_letter(entry_id, fields, str(exc))
            return
        except Exception as exc:  # parse_entry raises only InvalidEvent; a bug must still not block
            log.exception("attention entry %s could not be parsed", entry_id)
            await self._dead_letter(entry_id, fields, f"not parsed: {type(exc).__name__}: {exc}", "failed")
            return
        try:
            self.sink.apply(event, f"redis-{entry_id}", stream_time(entry_id), path)
        except Exception as exc:  # one poisoned event must not stall the stream behind it
            log.exception("attention entry %s could not be applied", entry_id)
            await self._dead_letter(entry_id, fields, f"not applied: {type(exc).__name__}: {exc}", "failed")
            return
        self._handled.add(entry_id)

    async def _dead_letter(
        self, entry_id: str, fields: dict[str, str], error: str, outcome: str = "invalid"
    ) -> None:
        log.warning("attention entry %s is malformed, moved to %s: %s", entry_id, self.dead_letters, error)
        await self.redis.xadd(
            self.dead_letters,
            {
                "id": entry_id,
                "stream": self.stream,
                "error": _printable(error),
                # JSON escapes undecodable bytes (\udcff), so the copy is always valid UTF-8.
                "fields": json.dumps(fields, sort_keys=True),
                "at": datetime.now(UTC).isoformat(),
            },
            maxlen=self.settings.ingest_stream_maxlen,
            approximate=True,
        )
        metrics.INGEST_EVENTS.labels("redis", outcome).inc()
        metrics.INGEST_DEAD_LETTERS.inc()
        # Counted, logged and copied once, even if the acknowledgement is lost and it comes back.
        self._handled.add(entry_id)

    @property
    def dead_letters(self) -> str:
        return self.settings.ingest_dead_letter_stream


class Overloaded(Exception):
    pass


class StreamPublisher:
    """The producer side used by POST /v1/attention: XADD, refusing when the consumers lag behind."""

    def __init__(self, settings: Settings, client: aredis.Redis) -> None:
        self.settings = settings
        self.redis = client
        self._backlog = 0
        self._backlog_at = -1.0

    async def publish(self, events: Sequence[AttentionEvent], origin: Path = "http") -> list[str]:
        """Queue events durably; returns their stream ids. Raises Overloaded or an outage error."""
        if self.settings.ingest_max_lag and await self._lagging():
            raise Overloaded(
                f"the attention stream has {self._backlog} entries waiting (limit {self.settings.ingest_max_lag})"
            )
        async with self.redis.pipeline(transaction=len(events) > 1) as pipe:
            for event in events:
                pipe.xadd(
                    self.settings.attention_stream,
                    entry_fields(event, origin),  # type: ignore[arg-type]
                    maxlen=self.settings.ingest_stream_maxlen,
                    approximate=True,
                )
            ids: list[str] = await pipe.execute()
        return [str(i) for i in ids]

    async def _lagging(self) -> bool:
        # One XINFO per half second at most: the answer only needs to be roughly current.
        if time.monotonic() - self._backlog_at > 0.5:
            self._backlog_at = time.monotonic()
            self._backlog = (
                await backlog(self.redis, self.settings.attention_stream, self.settings.ingest_group) or 0
            )
        return self._backlog > self.settings.ingest_max_lag


def _raise_if_cancelled() -> None:
    """Honour a cancellation that a Redis call swallowed.

    Seen with redis-py 8.1: a task cancelled during a blocking XREADGROUP got the command's reply
    instead of CancelledError, and the task (still marked as cancelling) would loop forever.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def _entries(raw: Any) -> list[Entry]:
    out: list[Entry] = []
    for item in raw or ():
        entry_id, fields = item[0], item[1]
        if entry_id is None:
            continue
        out.append((str(entry_id), dict(fields or {})))
    return out


def _printable(value: object) -> str:
    """Text safe to log or write back as UTF-8, whatever bytes it was decoded from."""
    return (
        json.dumps(value, sort_keys=True)
        if not isinstance(value, str)
        else value.encode("utf-8", "backslashreplace").decode("utf-8")
    )


async def close(client: aredis.Redis) -> None:
    with contextlib.suppress(*OUTAGE_ERRORS):
        await client.aclose()
