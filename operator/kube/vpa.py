"""Whether this cluster serves VerticalPodAutoscalers (autoscaling.k8s.io/v1) and heady may read them.

The VPA CRD is optional: without it `spec.peakFrom` falls back to the pod template and says
so. A watch on a resource that is not served would fail forever, so the informer runs only
while discovery lists the resource and a first listing is allowed.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp
from kubernetes_asyncio.client.exceptions import ApiException

from heady_operator.kube.client import Kube

GROUP_VERSION = "autoscaling.k8s.io/v1"
PLURAL = "verticalpodautoscalers"


async def _get(kube: Kube, path: str, query: list[tuple[str, str]] | None = None) -> Any:
    resp: Any = await kube.api.call_api(
        path,
        "GET",
        query_params=query or [],
        auth_settings=["BearerToken"],
        _preload_content=False,
        _request_timeout=30,
    )
    try:
        body = await resp.read()
        if not 200 <= resp.status <= 299:
            try:
                message = str(json.loads(body).get("message", ""))
            except (ValueError, AttributeError):
                message = body.decode(errors="replace")[:200]
            raise ApiException(status=resp.status, reason=message)
        return json.loads(body)
    finally:
        resp.release()


async def unavailable(kube: Kube, namespace: str | None = None) -> str | None:
    """None when VPAs can be listed; else why not, in words for a condition."""
    try:
        doc = await _get(kube, f"/apis/{GROUP_VERSION}")
    except ApiException as exc:
        if exc.status == 404:
            return "this cluster does not serve it"
        return f"discovery of {GROUP_VERSION} failed ({exc.status} {exc.reason})"
    except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
        return f"discovery of {GROUP_VERSION} failed ({exc})"
    names = {r.get("name") for r in (doc or {}).get("resources") or []}
    if PLURAL not in names:
        return "this cluster does not serve it"
    scope = f"/namespaces/{namespace}" if namespace else ""
    try:
        await _get(kube, f"/apis/{GROUP_VERSION}{scope}/{PLURAL}", [("limit", "1")])
    except ApiException as exc:
        if exc.status == 403:
            return "the operator may not list verticalpodautoscalers (RBAC: get, list, watch)"
        return f"listing verticalpodautoscalers failed ({exc.status} {exc.reason})"
    except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
        return f"listing verticalpodautoscalers failed ({exc})"
    return None


def path(namespace: str | None) -> str:
    scope = f"/namespaces/{namespace}" if namespace else ""
    return f"/apis/{GROUP_VERSION}{scope}/{PLURAL}"
