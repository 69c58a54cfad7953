"""AttentionSignal: mirrors crds/heady.io_attentionsignals.yaml."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field, field_validator, model_validator

from heady_operator.models.common import (
    MAX_SIGNAL_SECONDS,
    TIME_CEILING,
    CamelModel,
    attention_window,
    clamp_time,
    window_note,
)


class AttentionSignalSpec(CamelModel):
    services: list[str] = Field(min_length=1, max_length=16)
    intensity: float = Field(default=1.0, ge=0.0, le=1.0)
    source: str = Field(default="api", max_length=63)
    user: str | None = Field(default=None, max_length=253)
    start_time: datetime | None = None
    ttl_seconds: int | None = Field(default=None, ge=1, le=MAX_SIGNAL_SECONDS)
    expires_at: datetime | None = None

    @field_validator("start_time", "expires_at", mode="after")
    @classmethod
    def _in_range(cls, value: datetime | None) -> datetime | None:
        # Clamped where it enters, so no later sum can overflow (models/common.py).
        return None if value is None else clamp_time(value)

    @model_validator(mode="after")
    def _expiry(self) -> AttentionSignalSpec:
        if self.ttl_seconds is not None and self.expires_at is not None:
            raise ValueError("set either ttlSeconds or expiresAt, not both")
        if (
            self.start_time
            and self.expires_at
            and self.expires_at <= self.start_time
            # Both past the ceiling were clamped to it: a window that never opens, not an error.
            and self.expires_at < TIME_CEILING
        ):
            raise ValueError("expiresAt must be after startTime")
        if len(set(self.services)) != len(self.services):
            raise ValueError("services must be unique")
        return self

    def window(
        self, created: datetime, default_ttl_seconds: int, max_seconds: int = MAX_SIGNAL_SECONDS
    ) -> tuple[datetime, datetime]:
        """When the attention starts and ends (models/common.attention_window); never raises."""
        return attention_window(
            created, self.start_time, self.ttl_seconds, self.expires_at, default_ttl_seconds, max_seconds
        )

    def window_note(self, created: datetime, max_seconds: int = MAX_SIGNAL_SECONDS) -> str | None:
        """Why `window` differs from the spec's own times (clamped), for a condition message."""
        return window_note(created, self.start_time, self.expires_at, max_seconds)
