"""Kubernetes Events for heady's objects (core/v1, so `kubectl describe` and `kubectl get events` show them)."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Mapping
from typing import Any

from kubernetes_asyncio.client.exceptions import ApiException

from heady_operator.kube.client import Kube
from heady_operator.models.common import rfc3339, utcnow

log = logging.getLogger(__name__)
COMPONENT = "heady-operator"


async def post_event(
    kube: Kube, obj: Mapping[str, Any], reason: str, message: str, type_: str = "Normal"
) -> None:
    """Best effort: an Event that cannot be posted is logged, never raised into a reconcile."""
    meta = obj.get("metadata", {})
    await _create(kube, obj, reason, message, type_, f"{meta.get('name', 'heady')}.{uuid.uuid4().hex[:12]}")


async def _create(
    kube: Kube, obj: Mapping[str, Any], reason: str, message: str, type_: str, name: str
) -> bool:
    meta = obj.get("metadata", {})
    namespace = meta.get("namespace") or "default"
    now = rfc3339(utcnow())
    body = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": namespace},
        "involvedObject": {
            "apiVersion": obj.get("apiVersion"),
            "kind": obj.get("kind"),
            "name": meta.get("name"),
            "namespace": namespace,
            "uid": meta.get("uid"),
            "resourceVersion": meta.get("resourceVersion"),
        },
        "reason": reason,
        "message": message[:1024],
        "type": type_,
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "reportingInstance": COMPONENT,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }
    try:
        await kube.core.create_namespaced_event(namespace, body)  # type: ignore[arg-type]
        return True
    except (ApiException, OSError) as exc:
        log.warning("could not post event %s on %s/%s: %s", reason, namespace, meta.get("name"), exc)
        return False


class EventRecorder:
    """Events with repeats folded into one (count, lastTimestamp), like client-go's correlator.

    The same reason and message on the same object within `window` seconds updates the
    Event already posted instead of creating another: a flapping service or a retried resize
    shows as one line with a count in `kubectl describe`, not a page of duplicates.
    """

    def __init__(self, kube: Kube, window: float = 600.0, max_tracked: int = 4096) -> None:
        self.kube = kube
        self.window = window
        self.max_tracked = max_tracked
        self._seen: dict[tuple[str, str, str, str], tuple[str, str, int, float, str]] = {}

    async def post(self, obj: Mapping[str, Any], reason: str, message: str, type_: str = "Normal") -> None:
        meta = obj.get("metadata", {})
        namespace = meta.get("namespace") or "default"
        key = (str(meta.get("uid") or f"{namespace}/{meta.get('name')}"), type_, reason, message[:1024])
        now_mono = time.monotonic()
        held = self._seen.get(key)
        if held is not None and now_mono - held[3] < self.window:
            name, ns, count, _, first = held
            try:
                await self.kube.core.patch_namespaced_event(
                    name, ns, {"count": count + 1, "lastTimestamp": rfc3339(utcnow())}
                )
                self._seen[key] = (name, ns, count + 1, now_mono, first)
                return
            except (ApiException, OSError) as exc:
                if not isinstance(exc, ApiException) or exc.status != 404:
                    log.warning("could not update event %s on %s/%s: %s", reason, ns, meta.get("name"), exc)
                    return
        name = f"{meta.get('name', 'heady')}.{uuid.uuid4().hex[:12]}"
        if await _create(self.kube, obj, reason, message, type_, name):
            if len(self._seen) >= self.max_tracked:
                self._seen.pop(next(iter(self._seen)))
            self._seen[key] = (name, namespace, 1, now_mono, rfc3339(utcnow()))
