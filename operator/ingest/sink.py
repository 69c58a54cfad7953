"""Where ingested events meet the cluster state.

The ingest names each event after its origin, `redis-<stream id>` or `http-<uuid>`, and hands
the validated event to `ClusterState` directly, which keys signals by that name: feeding the
same stream entry twice is a replay, kept once and counted once. That naming is the
de-duplication across processes and restarts; the consumer's memory of applied ids only saves
the work within one process. The state forgets ingested signals once they have ended.
"""

from __future__ import annotations

from datetime import datetime

from heady_operator import metrics
from heady_operator.ingest.events import AttentionEvent, Path
from heady_operator.state.cluster import ClusterState


class AttentionSink:
    def __init__(self, state: ClusterState) -> None:
        self.state = state
        self.settings = state.settings

    def clock(self) -> datetime:
        return self.state.clock()

    @property
    def live(self) -> int:
        """Ingested signals the state holds (active, or ended and not yet forgotten)."""
        return self.state.ingested_live

    def apply(self, event: AttentionEvent, name: str, created: datetime, path: Path) -> str:
        """Feed one event to the state; returns the outcome counted in heady_ingest_events_total."""
        now = self.state.clock()
        # A clock ahead of ours (another host stamped it) must not push the window into the future.
        created = min(created, now)
        namespace = event.namespace or self.settings.ingest_default_namespace
        outcome = self.state.add_ingested(event, namespace, name, created, path)
        metrics.INGEST_EVENTS.labels(path, outcome).inc()
        return outcome

    def follow(self, event: AttentionEvent, name: str, created: datetime, path: Path) -> str:
        """A standby's copy of a stream entry: into the state, uncounted (the leader counts it)."""
        created = min(created, self.state.clock())
        namespace = event.namespace or self.settings.ingest_default_namespace
        return self.state.add_ingested(event, namespace, name, created, path)

    def retract_expired(self, now: datetime | None = None) -> int:
        return self.state.expire(now or self.state.clock())
