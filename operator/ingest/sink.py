"""Where ingested events meet the escalation controller.

The controller takes attention as watch-like events (`on_signal`), keyed by namespace and name.
The ingest names each event after its origin, `redis-<stream id>` or `http-<uuid>`, so feeding
the same stream entry twice is the same as a watch repeating an ADDED: the controller keeps one
signal and counts it once. That naming is the de-duplication across processes and restarts; the
consumer's memory of applied ids only saves the work within one process.

An AttentionSignal object leaves the controller through a DELETED watch event. Ingested events
have no object, so the sink retracts them itself once they have expired (the planner ignores
an expired signal; keeping thousands of them per second would only slow every plan).
"""

from __future__ import annotations

import heapq
from datetime import datetime, timedelta

from heady_operator import metrics
from heady_operator.escalation import EscalationController
from heady_operator.ingest.events import AttentionEvent, Path

# Expired signals are kept this long before being retracted, so a plan already under way when
# the signal ended still finds what it decided on.
RETRACT_AFTER = timedelta(seconds=1)


class AttentionSink:
    def __init__(self, controller: EscalationController) -> None:
        self.controller = controller
        self.settings = controller.settings
        self._live: list[tuple[datetime, str, str]] = []  # heap of (end, namespace, name)

    @property
    def live(self) -> int:
        """Ingested signals the controller holds (active, or expired and not yet retracted)."""
        return len(self._live)

    def apply(self, event: AttentionEvent, name: str, created: datetime, path: Path) -> str:
        """Feed one event to the controller; returns the outcome counted in heady_ingest_events_total."""
        now = self.controller.clock()
        # A clock ahead of ours (another host stamped it) must not push the window into the future.
        created = min(created, now)
        _, end = event.window(created, self.settings.default_signal_ttl_seconds)
        if end <= now:
            # Replayed after an outage, or sent late: attention that is over escalates nothing.
            outcome = "expired"
        else:
            body = event.signal_body(name, self.settings.ingest_default_namespace, created)
            meta = body["metadata"]
            known = (meta["namespace"], name) in self.controller.signals
            self.controller.on_signal("ADDED", body, path=path)
            if not known:
                heapq.heappush(self._live, (end, meta["namespace"], name))
            outcome = "replayed" if known else "applied"
        metrics.INGEST_EVENTS.labels(path, outcome).inc()
        self.retract_expired(now)
        return outcome

    def retract_expired(self, now: datetime | None = None) -> int:
        now = now or self.controller.clock()
        retracted = 0
        while self._live and self._live[0][0] + RETRACT_AFTER <= now:
            _, namespace, name = heapq.heappop(self._live)
            self.controller.on_signal("DELETED", {"metadata": {"namespace": namespace, "name": name}})
            retracted += 1
        return retracted
