"""Time values at the edges (issue 17): clamped where they enter, so no later sum can overflow.

`expiresAt: 9999-12-31T23:59:59Z` is a common "never"; before these helpers it made planning
raise OverflowError (end + any timedelta), and a startTime near 9999 with a TTL made the window
itself raise ("date value out of range").
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from heady_operator.ingest.events import InvalidEvent, parse_event
from heady_operator.models.attention import AttentionSignalSpec
from heady_operator.models.common import (
    MAX_SIGNAL_SECONDS,
    TIME_CEILING,
    TIME_FLOOR,
    add_seconds,
    attention_window,
    clamp_time,
    parse_time,
)

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
# Far more than any duration the operator adds to a time (settings are seconds to days).
HEADROOM = timedelta(days=365 * 100)

NEVER = [
    "9999-12-31T23:59:59Z",
    "9999-12-31T23:59:59.999999Z",
    "9999-12-31T23:59:59-12:00",  # past year 9999 in UTC: astimezone itself overflows
    "9000-01-01T00:00:00Z",
]


@pytest.mark.parametrize("expires", NEVER)
def test_a_far_expiry_ends_the_signal_after_the_longest_signal(expires: str) -> None:
    spec = AttentionSignalSpec.model_validate({"services": ["web"], "expiresAt": expires})
    start, end = spec.window(NOW, 60)
    assert start == NOW
    assert end == NOW + timedelta(seconds=MAX_SIGNAL_SECONDS)
    assert end + HEADROOM > end  # no OverflowError in whatever the planner adds
    assert "expiresAt" in (spec.window_note(NOW) or "")


@pytest.mark.parametrize("start", NEVER)
@pytest.mark.parametrize("ttl", [None, 1, MAX_SIGNAL_SECONDS])
def test_a_far_start_with_a_ttl_is_a_window_that_never_opens(start: str, ttl: int | None) -> None:
    body: dict[str, object] = {"services": ["web"], "startTime": start}
    if ttl is not None:
        body["ttlSeconds"] = ttl
    spec = AttentionSignalSpec.model_validate(body)
    begin, end = spec.window(NOW, 60)
    assert begin <= end <= TIME_CEILING
    assert begin > NOW + HEADROOM  # still in the far future: it never activates
    assert end + HEADROOM > end


def test_start_and_expiry_both_beyond_the_ceiling_are_not_refused() -> None:
    spec = AttentionSignalSpec.model_validate(
        {"services": ["web"], "startTime": "9500-01-01T00:00:00Z", "expiresAt": "9999-12-31T23:59:59Z"}
    )
    assert spec.window(NOW, 60)[0] == TIME_CEILING


def test_ancient_times_are_clamped_to_the_floor() -> None:
    spec = AttentionSignalSpec.model_validate(
        {"services": ["web"], "startTime": "0001-01-01T00:00:00+05:00", "ttlSeconds": 5}
    )
    start, end = spec.window(NOW, 60)
    assert start == TIME_FLOOR and end == TIME_FLOOR + timedelta(seconds=5)
    assert start.timestamp() == 0


def test_the_same_edges_hold_for_http_and_stream_events() -> None:
    event = parse_event({"service": "web", "expiresAt": "9999-12-31T23:59:59Z"})
    assert event.window(NOW, 60)[1] == NOW + timedelta(seconds=MAX_SIGNAL_SECONDS)
    with pytest.raises(InvalidEvent, match="timezone"):
        parse_event({"service": "web", "expiresAt": "2030-01-01T00:00:00"})


def test_the_crd_rule_still_refuses_an_expiry_before_the_start() -> None:
    with pytest.raises(ValidationError, match="after startTime"):
        AttentionSignalSpec.model_validate(
            {"services": ["web"], "startTime": "2030-01-02T00:00:00Z", "expiresAt": "2030-01-01T00:00:00Z"}
        )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("2026-11-29T12:00:00Z", NOW),
        ("2026-11-29T12:00:00", NOW),  # naive: UTC
        ("2026-11-29T13:00:00+01:00", NOW),
        ("9999-12-31T23:59:59Z", TIME_CEILING),
        ("9999-12-31T23:59:59-05:00", TIME_CEILING),
        ("0001-01-01T00:00:00+05:00", TIME_FLOOR),
        ("not a time", None),
        ("2026-13-45T99:00:00Z", None),
        (12345, None),
        (["2026"], None),
        (NOW, NOW),
    ],
)
def test_persisted_times_are_parsed_clamped_or_treated_as_missing(value: object, expected: object) -> None:
    parsed = parse_time(value)
    assert parsed == expected
    if parsed is not None:
        assert parsed.tzinfo is not None


def test_add_seconds_saturates_instead_of_raising() -> None:
    assert add_seconds(datetime(9999, 12, 31, tzinfo=UTC), 10) == TIME_CEILING
    assert add_seconds(NOW, 1e300) == TIME_CEILING
    assert add_seconds(NOW, float("inf")) == TIME_CEILING
    assert add_seconds(NOW, -1e300) == TIME_FLOOR
    assert add_seconds(NOW, float("nan")) == NOW
    assert add_seconds(NOW, 1.5) == NOW + timedelta(seconds=1.5)


def test_clamp_time_keeps_the_instant_and_says_utc() -> None:
    ts = datetime(2026, 11, 29, 13, 0, tzinfo=timezone(timedelta(hours=1)))
    assert clamp_time(ts) == NOW and clamp_time(ts).utcoffset() == timedelta(0)


def test_attention_window_never_ends_before_it_starts() -> None:
    start, end = attention_window(NOW, None, None, NOW - timedelta(days=1), 60)
    assert start == end == NOW
