"""Types shared by the three custom resources: priority levels, status conditions and time.

Time values come from users (CRD bodies, POST /v1/attention, the Redis stream) and from what the
operator wrote earlier (status, the model ConfigMap). Any of them may be absurd: `9999-12-31`
is a common way to say "never", and `datetime + timedelta` past year 9999 raises OverflowError
deep inside a planner. So every time value is brought into [TIME_FLOOR, TIME_CEILING] where it
enters (`clamp_time`, `parse_time`, the models' validators), and sums go through `add_seconds`,
which saturates instead of raising. The ceiling leaves about a thousand years of headroom, far
more than any duration the operator adds (settings are seconds to days), so arithmetic on a
clamped value cannot overflow. See docs/reliability.md.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

GROUP = "heady.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"


class PriorityLevel(StrEnum):
    VERY_LOW = "very_low"
    LOW = "low"
    MEDIUM_LOW = "medium_low"
    MEDIUM = "medium"
    MEDIUM_HIGH = "medium_high"
    HIGH = "high"
    VERY_HIGH = "very_high"

    @property
    def value_number(self) -> int:
        return PRIORITY_VALUES[self]

    @property
    def is_high(self) -> bool:
        """High and very_high share the cap of two concurrent escalations."""
        return PRIORITY_VALUES[self] >= HIGH_PRIORITY_THRESHOLD


# The single source of the priority numbers (seeds: semantic priority framework).
PRIORITY_VALUES: dict[PriorityLevel, int] = {
    PriorityLevel.VERY_LOW: 25,
    PriorityLevel.LOW: 40,
    PriorityLevel.MEDIUM_LOW: 65,
    PriorityLevel.MEDIUM: 80,
    PriorityLevel.MEDIUM_HIGH: 90,
    PriorityLevel.HIGH: 125,
    PriorityLevel.VERY_HIGH: 150,
}
HIGH_PRIORITY_THRESHOLD = PRIORITY_VALUES[PriorityLevel.HIGH]


class CamelModel(BaseModel):
    """Base for CRD mirrors: camelCase on the wire, snake_case in Python, unknown keys refused."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(CamelModel):
    type: str
    status: ConditionStatus
    reason: str | None = None
    message: str | None = None
    last_transition_time: datetime | None = None
    observed_generation: int | None = None


def utcnow() -> datetime:
    return datetime.now(UTC)


# The range every time value is clamped into (see the module docstring).
TIME_FLOOR = datetime(1970, 1, 1, tzinfo=UTC)
TIME_CEILING = datetime(9000, 1, 1, tzinfo=UTC)
# The longest an attention signal holds attention, from its start: the CRD's ttlSeconds maximum.
# An expiresAt further out ("never", 9999-12-31) ends the signal here instead.
MAX_SIGNAL_SECONDS = 86_400


def clamp_time(ts: datetime) -> datetime:
    """`ts` as an aware UTC datetime within [TIME_FLOOR, TIME_CEILING]; naive means UTC. Never raises."""
    if ts.tzinfo is None or ts.utcoffset() is None:
        ts = ts.replace(tzinfo=UTC)
    # Compare before converting: astimezone itself overflows for 9999-12-31T23:59-05:00.
    if ts >= TIME_CEILING:
        return TIME_CEILING
    if ts <= TIME_FLOOR:
        return TIME_FLOOR
    return ts.astimezone(UTC)


def add_seconds(ts: datetime, seconds: float) -> datetime:
    """`ts + seconds`, saturating at TIME_FLOOR/TIME_CEILING instead of raising. NaN adds nothing."""
    ts = clamp_time(ts)
    if math.isnan(seconds):
        return ts
    room_up = (TIME_CEILING - ts).total_seconds()
    room_down = (TIME_FLOOR - ts).total_seconds()
    if seconds >= room_up:
        return TIME_CEILING
    if seconds <= room_down:
        return TIME_FLOOR
    return ts + timedelta(seconds=seconds)


def parse_time(value: object) -> datetime | None:
    """A timestamp from an object body or status (the API writes "Z"), clamped; never raises.

    None when absent or unreadable: a garbled time the operator wrote earlier (or someone edited
    into a status) is treated as missing rather than stopping the loop that reads it.
    """
    if not value:
        return None
    if isinstance(value, datetime):
        return clamp_time(value)
    try:
        return clamp_time(datetime.fromisoformat(str(value).strip().replace("Z", "+00:00")))
    except (ValueError, TypeError, OverflowError):
        return None


def attention_window(
    created: datetime,
    start_time: datetime | None,
    ttl_seconds: int | None,
    expires_at: datetime | None,
    default_ttl_seconds: int,
    max_seconds: int = MAX_SIGNAL_SECONDS,
) -> tuple[datetime, datetime]:
    """When a signal's attention starts and ends. Never raises, whatever the inputs.

    Starts at startTime, else at `created`. Ends at expiresAt, else after ttlSeconds (else the
    default TTL) - and never more than `max_seconds` after the start: a far expiresAt is a
    "never" the operator does not promise to honour (docs/reliability.md). Both ends lie in
    [TIME_FLOOR, TIME_CEILING], and end >= start.
    """
    start = clamp_time(start_time or created)
    longest = add_seconds(start, max(0, max_seconds))
    if expires_at is not None:
        end = clamp_time(expires_at)
    else:
        end = add_seconds(start, ttl_seconds or default_ttl_seconds)
    return start, max(start, min(end, longest))


def window_note(
    created: datetime,
    start_time: datetime | None,
    expires_at: datetime | None,
    max_seconds: int = MAX_SIGNAL_SECONDS,
) -> str | None:
    """Why attention_window differs from what the spec says (for a condition message), or None."""
    notes = []
    if start_time is not None and clamp_time(start_time) in (TIME_FLOOR, TIME_CEILING):
        notes.append(f"startTime is outside {rfc3339(TIME_FLOOR)}..{rfc3339(TIME_CEILING)} and was clamped")
    if expires_at is not None:
        start = clamp_time(start_time or created)
        if (clamp_time(expires_at) - start).total_seconds() > max_seconds:
            notes.append(f"expiresAt is more than {max_seconds}s after the start; the signal ends then")
    return "; ".join(notes) or None


def rfc3339(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def set_condition(
    conditions: list[dict[str, object]],
    type_: str,
    status: bool | None,
    reason: str,
    message: str,
    now: datetime,
    generation: int | None,
) -> list[dict[str, object]]:
    """Return conditions with one condition set; lastTransitionTime moves only when status changes."""
    status_text = "Unknown" if status is None else ("True" if status else "False")
    out: list[dict[str, object]] = []
    found = False
    for cond in conditions:
        if cond.get("type") != type_:
            out.append(cond)
            continue
        found = True
        changed = cond.get("status") != status_text
        out.append(
            {
                "type": type_,
                "status": status_text,
                "reason": reason,
                "message": message,
                "lastTransitionTime": rfc3339(now)
                if changed
                else cond.get("lastTransitionTime", rfc3339(now)),
                "observedGeneration": generation,
            }
        )
    if not found:
        out.append(
            {
                "type": type_,
                "status": status_text,
                "reason": reason,
                "message": message,
                "lastTransitionTime": rfc3339(now),
                "observedGeneration": generation,
            }
        )
    return out
