"""The event model and its stream encodings (pure: no Redis)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from heady_operator.config import Settings
from heady_operator.ingest import AttentionSink, InvalidEvent, parse_entry, parse_event
from heady_operator.ingest.events import entry_fields, stream_time
from tests.ingest.conftest import RecordingController

NOW = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)


def test_flat_fields_as_redis_cli_sends_them() -> None:
    event, path = parse_entry(
        {
            "services": "web, api,",
            "namespace": "shop",
            "intensity": "0.4",
            "ttlSeconds": "30",
            "session": "s1",
        }
    )
    assert path == "redis"
    assert event.services == ["web", "api"]
    assert (event.namespace, event.intensity, event.ttl_seconds, event.user) == ("shop", 0.4, 30, "s1")


def test_json_entries_round_trip_and_keep_their_origin() -> None:
    event = parse_event(
        {"service": "web", "services": ["api"], "user": "u", "expiresAt": "2030-01-01T00:00:00Z"}
    )
    assert event.services == ["web", "api"]
    again, path = parse_entry(entry_fields(event, "http"))
    assert path == "http"
    assert again == event


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"data": "[]"}, "must be a JSON object"),
        ({"data": "{}", "service": "web"}, "no other fields"),
        ({"service": "web", "startTime": "2030-01-01T00:00:00"}, "timezone"),
        ({"services": "a,a"}, "services must be unique"),
        ({"service": "web", "intensity": "lots"}, "intensity: Input should be a valid number"),
    ],
)
def test_bad_entries_say_what_is_wrong(fields: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidEvent, match=message):
        parse_entry(fields)


def test_the_body_is_what_a_watch_would_deliver_for_an_object() -> None:
    event = parse_event({"service": "web", "ttlSeconds": 1, "source": "ui"})
    body = event.signal_body("redis-1-0", "default", NOW + timedelta(microseconds=250_000))
    assert body == {
        "metadata": {
            "namespace": "default",
            "name": "redis-1-0",
            "creationTimestamp": "2026-11-23T12:00:00.250000+00:00",
        },
        "spec": {"services": ["web"], "intensity": 1.0, "source": "ui", "ttlSeconds": 1},
    }


def test_stream_ids_carry_the_time_redis_accepted_the_entry() -> None:
    assert stream_time("1795440221072-3") == datetime(2026, 11, 23, 13, 23, 41, 72_000, tzinfo=UTC)


def test_the_sink_skips_expired_events_and_retracts_live_ones_after_they_end() -> None:
    clock = [NOW]
    controller = RecordingController(Settings(prediction_enabled=False))
    controller.clock = lambda: clock[0]
    sink = AttentionSink(controller)
    event = parse_event({"service": "web", "ttlSeconds": 10})
    assert sink.apply(event, "redis-old", NOW - timedelta(seconds=11), "redis") == "expired"
    assert sink.apply(event, "redis-new", NOW, "redis") == "applied"
    assert sink.apply(event, "redis-new", NOW, "redis") == "replayed"
    # A producer clock ahead of ours does not stretch the window.
    assert sink.apply(event, "redis-ahead", NOW + timedelta(hours=1), "redis") == "applied"
    assert sink.live == 2
    clock[0] = NOW + timedelta(seconds=10.5)
    assert sink.retract_expired() == 0, "kept a moment after the end"
    clock[0] = NOW + timedelta(seconds=11)
    assert sink.retract_expired() == 2
    assert controller.signals == {}
    assert controller.added() == ["redis-new", "redis-new", "redis-ahead"]
