"""HeadyService watch events, straight into the cluster state: no logic here, no waiting.

A kopf `on.event` handler on purpose: it runs for every watch event as it arrives, without the
consistency wait and progress bookkeeping of change-detecting handlers. Pods, nodes, workloads
and AttentionSignals come through heady's own slim informers (reconcile/feeds.py), not kopf.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from heady_operator import metrics
from heady_operator.models.common import GROUP, VERSION
from heady_operator.state.cluster import ClusterState

log = logging.getLogger(__name__)


@kopf.on.event(GROUP, VERSION, "headyservices")
async def headyservice_event(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    state: ClusterState | None = memo.get("state")
    if state is None:
        return
    try:
        # kopf reports objects from the initial listing with type None.
        state.on_service(str(event.get("type") or "ADDED"), body)
    except Exception:  # isolated to this object: counted, logged, the others go on
        metrics.LOOP_ERRORS.labels("headyservice").inc()
        log.exception(
            "handling HeadyService %s/%s failed",
            body.get("metadata", {}).get("namespace"),
            body.get("metadata", {}).get("name"),
        )
