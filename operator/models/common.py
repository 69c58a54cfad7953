"""Types shared by the three custom resources: priority levels and status conditions."""

from __future__ import annotations

from datetime import UTC, datetime
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


def parse_time(value: object) -> datetime | None:
    """An RFC 3339 timestamp from an object body (the API writes "Z"), or None when absent."""
    if not value:
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


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
