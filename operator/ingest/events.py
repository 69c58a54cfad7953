"""One attention event as clients send it, over the stream or HTTP, and its wire formats.

An event is an AttentionSignal spec plus the namespace it applies in, so the rules (intensity
0..1, ttlSeconds or expiresAt, unique services) are the CRD's own: `AttentionEvent` extends
`AttentionSignalSpec` instead of restating them.

Stream entries come in two shapes (both documented in docs/attention-ingest.md):
- flat fields, handy from redis-cli: `service web namespace shop intensity 0.8 ttlSeconds 30`,
  with `services` as a comma-separated list;
- one `data` field holding the event as JSON (what POST /v1/attention writes).
An optional `origin` field says which path the event came in by (`http` for the endpoint).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import AwareDatetime, Field, ValidationError, model_validator

from heady_operator.models.attention import AttentionSignalSpec
from heady_operator.models.common import TIME_CEILING, TIME_FLOOR, clamp_time

Path = Literal["redis", "http"]
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
# Keys clients may use for the user; the transition model learns per user.
_USER_ALIASES = ("session", "sessionId", "session_id", "userId", "user_id")
# An event is a flat object whose deepest value is a list of names: anything nested deeper than
# this is refused before validation, so no path recurses through a hostile structure.
MAX_NESTING = 8


class InvalidEvent(ValueError):
    """An event that can never be applied: a client error, not an outage."""


class AttentionEvent(AttentionSignalSpec):
    namespace: str | None = Field(default=None, max_length=63, pattern=DNS_LABEL)
    # Naive timestamps would be compared with aware ones deep in the planner.
    start_time: AwareDatetime | None = None
    expires_at: AwareDatetime | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthands(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        out = dict(data)
        single = out.pop("service", None)
        if single is not None:
            listed = out.get("services") or []
            if not isinstance(listed, list):
                raise ValueError("services must be a list of service names")
            out["services"] = [single, *[s for s in listed if s != single]]
        elif "services" not in out:
            raise ValueError("name the service(s) the attention is on: service or services")
        for alias in _USER_ALIASES:
            if alias in out:
                value = out.pop(alias)
                out.setdefault("user", value)
        return out

    @model_validator(mode="after")
    def _not_a_prediction(self) -> AttentionEvent:
        if self.source == "predictor":
            raise ValueError('source "predictor" is reserved for the operator\'s own predictions')
        return self

    def spec_body(self) -> dict[str, Any]:
        """The AttentionSignal spec as the controller reads it (camelCase, nothing unset)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True, exclude={"namespace"})

    def signal_body(self, name: str, default_namespace: str, created: datetime) -> dict[str, Any]:
        """What a watch would deliver for an AttentionSignal object carrying this event."""
        return {
            "metadata": {
                "namespace": self.namespace or default_namespace,
                "name": name,
                # Full precision: sub-second TTLs must not be shifted by truncation to seconds.
                "creationTimestamp": created.astimezone(UTC).isoformat(),
            },
            "spec": self.spec_body(),
        }


def describe(exc: ValidationError, prefix: str = "") -> str:
    """A one-line message a client can act on: `field: problem; field: problem`."""
    parts = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(x) for x in err["loc"])
        msg = str(err["msg"]).removeprefix("Value error, ")
        where = f"{prefix}{loc}" if loc else prefix.rstrip(".")
        parts.append(f"{where}: {msg}" if where else msg)
    return "; ".join(parts)


def nesting_problem(value: Any, limit: int = MAX_NESTING) -> str | None:
    """Why `value` is not a plain JSON-like event (too deep, a string that is not Unicode), or None.

    Iterative, so a structure nested thousands deep is measured without recursion.
    """
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if not _is_unicode(item):
                return "a string is not valid Unicode (lone surrogate or undecodable bytes)"
            continue
        if isinstance(item, Mapping):
            children = [*item.keys(), *item.values()]
        elif isinstance(item, list | tuple):
            children = list(item)
        else:
            continue
        if depth > limit:
            return f"nested deeper than {limit} levels"
        stack.extend((child, depth + 1) for child in children)
    return None


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def parse_event(data: Any, prefix: str = "") -> AttentionEvent:
    """One event, or InvalidEvent with a message a client can act on. Raises nothing else."""
    if not isinstance(data, Mapping):
        raise InvalidEvent(
            f"{prefix.rstrip('.') or 'event'}: must be a JSON object, got {type(data).__name__}"
        )
    problem = nesting_problem(data)
    if problem is not None:
        raise InvalidEvent(f"{prefix.rstrip('.') or 'event'}: {problem}")
    try:
        return AttentionEvent.model_validate(data)
    except ValidationError as exc:
        raise InvalidEvent(describe(exc, prefix)) from None
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:
        # pydantic wraps validator errors; anything that escapes it is still this event's fault.
        raise InvalidEvent(f"{prefix.rstrip('.') or 'event'}: {type(exc).__name__}: {exc}") from None


def parse_payload(payload: Any, max_events: int) -> list[AttentionEvent]:
    """An HTTP body: one event object or a list of them; every problem reported at once.

    Raises InvalidEvent and nothing else, whatever the payload (json.loads output or not).
    """
    problem = nesting_problem(payload, MAX_NESTING + 1)
    if problem is not None:
        raise InvalidEvent(f"the body is not an attention event: {problem}")
    items = payload if isinstance(payload, list) else [payload]
    if not items:
        raise InvalidEvent("the list of events is empty")
    if len(items) > max_events:
        raise InvalidEvent(f"at most {max_events} events per request, got {len(items)}")
    events: list[AttentionEvent] = []
    problems: list[str] = []
    for i, item in enumerate(items):
        try:
            events.append(parse_event(item, f"[{i}]." if isinstance(payload, list) else ""))
        except InvalidEvent as exc:
            problems.append(str(exc))
    if problems:
        raise InvalidEvent("; ".join(problems))
    return events


def parse_entry(fields: Mapping[str, str]) -> tuple[AttentionEvent, Path]:
    """A stream entry's fields to the event and the path it came in by."""
    values = dict(fields)
    for key, value in values.items():
        if not isinstance(key, str) or not isinstance(value, str) or not _is_unicode(key + value):
            raise InvalidEvent(f"field {key!r}: not UTF-8 text")
    origin: Path = "http" if values.pop("origin", "redis") == "http" else "redis"
    data: Any
    if "data" in values:
        raw = values.pop("data")
        if values:
            raise InvalidEvent(f"a data entry has no other fields, got {', '.join(sorted(values))}")
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise InvalidEvent(f"data: not JSON ({exc})") from None
        except RecursionError:
            raise InvalidEvent("data: JSON nested far too deeply") from None
    else:
        data = values
        if "services" in data:
            data["services"] = [s.strip() for s in data["services"].split(",") if s.strip()]
    return parse_event(data), origin


def entry_fields(event: AttentionEvent, origin: Path) -> dict[str, str]:
    """The stream entry for an event (the inverse of parse_entry)."""
    return {
        "data": json.dumps(event.model_dump(mode="json", by_alias=True, exclude_none=True)),
        "origin": origin,
    }


def stream_time(entry_id: str) -> datetime:
    """When Redis accepted an entry: the first part of its id is the server clock in ms.

    Ids may be chosen by the producer (`XADD s 99999999999999999-0 ...`): clamped like any time.
    """
    try:
        millis = int(entry_id.split("-", 1)[0])
        return clamp_time(datetime.fromtimestamp(millis / 1000, tz=UTC))
    except (ValueError, OverflowError, OSError):
        return TIME_CEILING if entry_id[:1].isdigit() else TIME_FLOOR
