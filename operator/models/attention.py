"""AttentionSignal: mirrors crds/heady.io_attentionsignals.yaml."""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import Field, model_validator

from heady_operator.models.common import CamelModel


class AttentionSignalSpec(CamelModel):
    services: list[str] = Field(min_length=1, max_length=16)
    intensity: float = Field(default=1.0, ge=0.0, le=1.0)
    source: str = Field(default="api", max_length=63)
    user: str | None = Field(default=None, max_length=253)
    start_time: datetime | None = None
    ttl_seconds: int | None = Field(default=None, ge=1, le=86400)
    expires_at: datetime | None = None

    @model_validator(mode="after")
    def _expiry(self) -> AttentionSignalSpec:
        if self.ttl_seconds is not None and self.expires_at is not None:
            raise ValueError("set either ttlSeconds or expiresAt, not both")
        if self.start_time and self.expires_at and self.expires_at <= self.start_time:
            raise ValueError("expiresAt must be after startTime")
        if len(set(self.services)) != len(self.services):
            raise ValueError("services must be unique")
        return self

    def window(self, created: datetime, default_ttl_seconds: int) -> tuple[datetime, datetime]:
        """When the attention starts and ends; the default TTL applies when neither expiry is set."""
        start = self.start_time or created
        if self.expires_at is not None:
            return start, self.expires_at
        return start, start + timedelta(seconds=self.ttl_seconds or default_ttl_seconds)
