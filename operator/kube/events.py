"""Kubernetes Events for heady's objects (core/v1, so `kubectl describe` and `kubectl get events` show them)."""

from __future__ import annotations

import logging
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
    namespace = meta.get("namespace") or "default"
    now = rfc3339(utcnow())
    body = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{meta.get('name', 'heady')}.{uuid.uuid4().hex[:12]}", "namespace": namespace},
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
    except (ApiException, OSError) as exc:
        log.warning("could not post event %s on %s/%s: %s", reason, namespace, meta.get("name"), exc)
