"""What POST /v1/attention does with a request, apart from HTTP itself.

With Redis configured, an accepted event is in the stream before the client hears 202: it
survives an operator restart and is applied by the consumer like any stream entry. Without
Redis the event goes straight to the controller: just as fast, but lost if the operator
restarts before it expires (the client is told `"durable": false`).
"""

from __future__ import annotations

import hmac
import uuid
from dataclasses import dataclass, field
from typing import Any

from heady_operator import metrics
from heady_operator.config import Settings
from heady_operator.ingest.events import InvalidEvent, parse_payload
from heady_operator.ingest.sink import AttentionSink
from heady_operator.ingest.stream import OUTAGE_ERRORS, Overloaded, RedisAttentionConsumer, StreamPublisher
from heady_operator.planning.leadership import ALWAYS, Gate


class Refused(Exception):
    """A request the intake will not take, with the HTTP status that says why."""

    def __init__(self, status: int, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after = retry_after


@dataclass
class Accepted:
    ids: list[str]
    durable: bool


@dataclass
class AttentionIntake:
    settings: Settings
    sink: AttentionSink
    publisher: StreamPublisher | None = None
    consumer: RedisAttentionConsumer | None = None
    # Without Redis, an event lives only in the memory of the replica that took it: a standby
    # must not take one (the leader would never see it).
    gate: Gate = ALWAYS
    inflight: int = field(default=0, init=False)

    @property
    def state(self) -> str:
        """For /healthz: `ok` / `unavailable` with Redis, `direct` without (not durable)."""
        if self.publisher is None:
            return "direct"
        return "ok" if self.consumer is None or self.consumer.available else "unavailable"

    def authorized(self, authorization: str | None) -> bool:
        token = self.settings.ingest_token
        if not token:
            return True
        scheme, _, given = (authorization or "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())

    async def submit(self, payload: Any) -> Accepted:
        if self.inflight >= self.settings.ingest_http_max_inflight:
            raise self._refuse(
                429, f"{self.inflight} attention requests already in flight; retry shortly", "overloaded", 1
            )
        self.inflight += 1
        try:
            return await self._submit(payload)
        finally:
            self.inflight -= 1

    async def _submit(self, payload: Any) -> Accepted:
        try:
            events = parse_payload(payload, self.settings.ingest_http_max_events)
        except InvalidEvent as exc:
            raise self._refuse(400, str(exc), "invalid") from None
        if self.publisher is None:
            if not self.gate.may_write():
                raise self._refuse(
                    503,
                    "this replica is not the leader and events are not durable without Redis; retry "
                    "(configure HEADY_REDIS_URL so every replica can take them)",
                    "unavailable",
                    1,
                )
            self.sink.retract_expired()  # without a consumer loop, nothing else does it while idle
            if self.sink.live + len(events) > self.settings.ingest_max_live_signals:
                raise self._refuse(
                    429, f"{self.sink.live} ingested signals are live; retry shortly", "overloaded", 1
                )
            ids = []
            for event in events:
                name = f"http-{uuid.uuid4().hex}"
                self.sink.apply(event, name, self.sink.clock(), "http")
                ids.append(name)
            return Accepted(ids, durable=False)
        try:
            stream_ids = await self.publisher.publish(events)
        except Overloaded as exc:
            raise self._refuse(429, str(exc), "overloaded", 1) from None
        except OUTAGE_ERRORS as exc:
            raise self._refuse(
                503, f"the attention stream (Redis) is unavailable: {exc}", "unavailable", 5
            ) from None
        metrics.INGEST_EVENTS.labels("http", "queued").inc(len(events))
        return Accepted([f"redis-{i}" for i in stream_ids], durable=True)

    def _refuse(self, status: int, message: str, outcome: str, retry_after: int | None = None) -> Refused:
        metrics.INGEST_EVENTS.labels("http", outcome).inc()
        return Refused(status, message, retry_after)
