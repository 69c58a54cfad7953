"""The pods/{name}/resize call and what its failures mean."""

from __future__ import annotations

import json
from typing import Any

import msgspec
from kubernetes_asyncio.client.exceptions import ApiException

from heady_operator.kube.client import Kube
from heady_operator.kube.objects import Pod

_pod_decoder = msgspec.json.Decoder(Pod)
FIELD_MANAGER = "heady-operator"
# The reason of a resize not sent because this replica may not write (leader election).
NOT_LEADER = "NotLeader"


class ResizeFailed(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


POD_LEVEL_GATE = "InPlacePodLevelResourcesVerticalScaling"


def failure_reason(status: int | None, message: str) -> str:
    """Infeasible (the node can never hold it), Unsupported (this cluster cannot resize it at all),
    NotFound, Conflict, Invalid (won't work on retry), Error."""
    if status == 403 and "allocatable" in message:
        return "Infeasible"  # the PodResizeValidator admission refuses what the node cannot hold
    if status in (403, 422) and (POD_LEVEL_GATE in message or "InPlacePodLevelResources" in message):
        # 403: the NodeDeclaredFeatureValidator (the node's kubelet does not declare pod-level
        # resize); 422: the apiserver's own feature gate is off.
        return "Unsupported"
    if status == 404:
        return "NotFound"
    if status == 409:
        return "Conflict"
    if status == 422:
        return "Invalid"
    return "Error"


def api_message(exc: ApiException) -> str:
    try:
        return str(json.loads(exc.body or b"{}").get("message", exc.reason))
    except (TypeError, ValueError):
        return str(exc.reason)


def status_message(body: bytes, fallback: str) -> str:
    try:
        return str(json.loads(body or b"{}").get("message", fallback))
    except (TypeError, ValueError, AttributeError):
        return fallback


async def resize_pod(kube: Kube, namespace: str, name: str, body: dict[str, Any]) -> Pod:
    """PATCH pods/NAME/resize (strategic merge); the pod as the API server stored it."""
    try:
        resp: Any = await kube.core.patch_namespaced_pod_resize(
            name, namespace, body, field_manager=FIELD_MANAGER, _preload_content=False
        )
        data = await resp.read()
        if not 200 <= resp.status <= 299:
            # Without preloading, the client hands back error answers instead of raising: the
            # body is a Status, not a Pod.
            message = status_message(data, str(resp.reason))
            raise ResizeFailed(failure_reason(resp.status, message), message)
        return _pod_decoder.decode(data)
    except ApiException as exc:
        message = api_message(exc)
        raise ResizeFailed(failure_reason(exc.status, message), message) from None
    except (OSError, TimeoutError) as exc:
        raise ResizeFailed("Error", str(exc) or type(exc).__name__) from None
    except msgspec.DecodeError as exc:
        raise ResizeFailed("Error", f"the answer is not a pod: {exc}") from None
