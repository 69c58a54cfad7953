"""Fuzzing the models and the event parsers (issue 17): whatever comes in, a clear refusal or a
value every later step can use - never another exception, never a time that overflows later.

Hypothesis throws arbitrary types, sizes, nesting, strings (lone surrogates included) and times
(years 1 to 9999, any offset) at the pydantic models of the three CRDs and at the ingest parsers.
Example counts are kept modest so `make test` stays fast; the strategies aim at the edges.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from heady_operator.ingest.events import InvalidEvent, entry_fields, parse_entry, parse_payload
from heady_operator.models.arena import ArenaSessionSpec, ChaosSpec
from heady_operator.models.attention import AttentionSignalSpec
from heady_operator.models.common import TIME_CEILING, TIME_FLOOR, parse_time
from heady_operator.models.headyservice import HeadyServiceSpec
from heady_operator.planning.prediction import TransitionModel

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
CENTURY = timedelta(days=36_500)

offsets = st.integers(min_value=-23 * 60 - 59, max_value=23 * 60 + 59).map(
    lambda m: timezone(timedelta(minutes=m))
)
datetimes = st.datetimes(
    min_value=datetime(1, 1, 2),
    max_value=datetime(9999, 12, 30),
    timezones=st.none() | offsets | st.just(UTC),
)
# Time strings as clients write them, and as they should not.
time_texts = st.one_of(
    datetimes.map(lambda d: d.isoformat()),
    datetimes.map(lambda d: d.isoformat().replace("+00:00", "Z")),
    st.sampled_from(
        [
            "9999-12-31T23:59:59Z",
            "9999-12-31T23:59:59.999999-12:00",
            "0001-01-01T00:00:00+14:00",
            "2026-02-30T00:00:00Z",
            "1970-01-01T00:00:00Z",
            "",
            "now",
            "-1",
        ]
    ),
    st.text(max_size=40),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.text(alphabet=st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1, max_size=3),
    time_texts,
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)


def _deep(depth: int) -> Any:
    value: Any = "web"
    for i in range(depth):
        value = [value] if i % 2 else {"services": value}
    return value


deep_values = st.integers(min_value=1, max_value=3000).map(_deep)
EVENT_KEYS = [
    "service",
    "services",
    "namespace",
    "intensity",
    "source",
    "user",
    "session",
    "sessionId",
    "startTime",
    "ttlSeconds",
    "expiresAt",
]


def event_dicts(max_depth: int = 3000) -> st.SearchStrategy[dict[str, Any]]:
    """Mostly the real keys, so validation gets past the first field and into the rules."""
    return st.dictionaries(
        st.sampled_from(EVENT_KEYS) | st.text(max_size=10),
        json_values
        | st.integers(min_value=1, max_value=max_depth).map(_deep)
        | st.lists(st.text(max_size=10), max_size=20),
        max_size=8,
    )


events = event_dicts()
# Shallow enough for json.dumps (the bodies and entries clients send are serialised first).
wire_events = event_dicts(max_depth=200).map(
    lambda v: json.dumps(v, default=str).encode("utf-8", "surrogatepass")
)


def _refusal(exc: Exception) -> None:
    message = str(exc)
    assert message  # a message a client can act on ...
    message.encode("utf-8", "backslashreplace")  # ... that can be sent back as text


def _check_window(spec: AttentionSignalSpec) -> None:
    for created in (NOW, TIME_FLOOR, TIME_CEILING):
        start, end = spec.window(created, 60)
        assert TIME_FLOOR <= start <= end <= TIME_CEILING
        # Whatever the planner adds to these (settings are seconds to days) cannot overflow.
        assert end + CENTURY > end and start - CENTURY < start
        spec.window_note(created)


@FUZZ
@given(events)
def test_attention_spec_refuses_clearly_or_gives_a_usable_window(data: dict[str, Any]) -> None:
    try:
        spec = AttentionSignalSpec.model_validate(data)
    except ValidationError:
        return
    _check_window(spec)


@FUZZ
@given(st.one_of(events, st.lists(events, max_size=5), json_values, deep_values))
def test_parse_payload_raises_nothing_but_invalid_event(payload: Any) -> None:
    try:
        parsed = parse_payload(payload, max_events=100)
    except InvalidEvent as exc:
        _refusal(exc)
        return
    for event in parsed:
        _check_window(event)
        event.signal_body("x", "default", NOW)
        # What the HTTP endpoint writes to the stream reads back as the same event.
        again, origin = parse_entry(entry_fields(event, "http"))
        assert again == event and origin == "http"


@FUZZ
@given(st.dictionaries(st.text(max_size=12), st.text(max_size=40) | time_texts, max_size=8))
def test_parse_entry_raises_nothing_but_invalid_event(fields: dict[str, str]) -> None:
    try:
        event, _ = parse_entry(fields)
    except InvalidEvent as exc:
        _refusal(exc)
        return
    _check_window(event)


@FUZZ
@given(st.one_of(json_values, datetimes, time_texts))
def test_parse_time_is_none_or_an_aware_time_in_range(value: Any) -> None:
    parsed = parse_time(value)
    assert parsed is None or (parsed.tzinfo is not None and TIME_FLOOR <= parsed <= TIME_CEILING)


spec_dicts = st.dictionaries(st.text(max_size=16), json_values, max_size=6)


@FUZZ
@given(
    st.sampled_from([HeadyServiceSpec, ArenaSessionSpec, ChaosSpec]),
    st.one_of(
        spec_dicts,
        st.fixed_dictionaries(
            {"workload": st.fixed_dictionaries({"name": st.text(max_size=8)})},
            optional={
                "containers": json_values,
                "baselineRatio": scalars,
                "priority": scalars,
                "hostname": scalars,
                "port": scalars,
                "maxPeakSeconds": scalars,
                "cooldownSeconds": scalars,
            },
        ),
        st.fixed_dictionaries(
            {}, optional={"experiments": st.lists(spec_dicts, max_size=3), "dryRun": scalars}
        ),
    ),
)
def test_crd_models_refuse_only_with_validation_errors(model: type[BaseModel], data: dict[str, Any]) -> None:
    try:
        model.model_validate(data)
    except ValidationError as exc:
        _refusal(exc)


@FUZZ
@given(
    st.one_of(
        st.text(max_size=200),
        json_values.map(json.dumps),
        st.integers(min_value=1, max_value=50_000).map(lambda n: '{"counts": ' + "[" * n + "]" * n + "}"),
    )
)
def test_the_model_configmap_never_stops_start_up(text: str) -> None:
    model = TransitionModel.from_json(text)
    TransitionModel.from_json(model.to_json())


@FUZZ
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "bucketSeconds": st.one_of(scalars, st.sampled_from([60, 300, 700, 86_400])),
            "maxDays": st.one_of(scalars, st.integers(min_value=-1, max_value=70)),
            "services": st.one_of(
                json_values,
                st.dictionaries(
                    st.sampled_from(["ns/a", "a", "ns/", "/b"]),
                    st.one_of(
                        json_values,
                        st.fixed_dictionaries(
                            {},
                            optional={
                                "day": st.one_of(scalars, st.integers()),
                                "seen": st.one_of(scalars, st.integers()),
                                "starts": st.one_of(
                                    json_values,
                                    st.dictionaries(st.text(max_size=4), st.one_of(scalars, st.integers())),
                                ),
                            },
                        ),
                    ),
                    max_size=3,
                ),
            ),
        },
    )
)
def test_the_recurrence_in_the_model_configmap_never_stops_start_up(recurrence: dict[str, Any]) -> None:
    model = TransitionModel.from_json(json.dumps({"version": 2, "recurrence": recurrence}))
    again = TransitionModel.from_json(model.to_json())
    assert again.recurrence.habits == model.recurrence.habits
