"""Attention at UI speed: focus events from a Redis stream and from POST /v1/attention.

Three ways for attention to reach the escalation controller, one meaning (an AttentionSignal
spec: services, intensity, TTL, source, user):

- **AttentionSignal objects** - declarative: kubectl, GitOps, scripts, a few per minute. Each is
  an API object with status and Events, so it costs an apiserver write and shows up in
  `kubectl get`. Use them when a human or a pipeline states attention.
- **Redis stream** (`HEADY_ATTENTION_STREAM`, default `heady:attention`) - a UI or a gateway that
  emits a focus event per click or view change: hundreds to thousands per second, durable
  (entries survive an operator restart and are acknowledged only once applied), no apiserver
  write. Use this whenever the producer can reach Redis.
- **HTTP** (`POST /v1/attention`) - clients that cannot reach Redis (a browser through an
  ingress, a third-party webhook). With Redis configured, 202 means the event is in the stream;
  without Redis it is applied in memory directly and not durable.

Events from every path carry their user/session id into the same transition model, so
prediction learns from UI events as it does from objects. See docs/attention-ingest.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aredis

from heady_operator.config import Settings
from heady_operator.ingest.events import AttentionEvent, InvalidEvent, parse_entry, parse_event, parse_payload
from heady_operator.ingest.intake import Accepted, AttentionIntake, Refused
from heady_operator.ingest.sink import AttentionSink
from heady_operator.ingest.stream import RedisAttentionConsumer, StreamPublisher, close, connect
from heady_operator.planning.leadership import ALWAYS, Gate
from heady_operator.state.cluster import ClusterState


@dataclass
class Ingest:
    """The ingest as the operator runs it: built once at startup, closed at cleanup."""

    sink: AttentionSink
    intake: AttentionIntake
    consumer: RedisAttentionConsumer | None = None
    client: aredis.Redis | None = None

    async def close(self) -> None:
        if self.client is not None:
            await close(self.client)


def build(settings: Settings, state: ClusterState, gate: Gate = ALWAYS) -> Ingest:
    """Redis when `redis_url` is set (the consumer must then be run); HTTP direct otherwise."""
    sink = AttentionSink(state)
    if not settings.redis_url:
        return Ingest(sink, AttentionIntake(settings, sink, gate=gate))
    client = connect(settings)
    consumer = RedisAttentionConsumer(settings, sink, client, gate=gate)
    intake = AttentionIntake(settings, sink, StreamPublisher(settings, client), consumer)
    return Ingest(sink, intake, consumer, client)


__all__ = [
    "Accepted",
    "AttentionEvent",
    "AttentionIntake",
    "AttentionSink",
    "Ingest",
    "InvalidEvent",
    "RedisAttentionConsumer",
    "Refused",
    "StreamPublisher",
    "build",
    "parse_entry",
    "parse_event",
    "parse_payload",
]
