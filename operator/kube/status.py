"""Status patches of heady's custom resources (merge patches on the status subresource)."""

from __future__ import annotations

from typing import Any

from heady_operator.kube.client import Kube
from heady_operator.models.common import GROUP, VERSION


async def patch_status(
    kube: Kube,
    plural: str,
    namespace: str,
    name: str,
    status: dict[str, Any],
    *,
    resource_version: str | None = None,
) -> None:
    """Merge-patch status; with resource_version the API server refuses it (409) if the object
    changed since it was read, so a list replaced wholesale (conditions) loses nobody's entry."""
    body: dict[str, Any] = {"status": status}
    if resource_version is not None:
        body["metadata"] = {"resourceVersion": resource_version}
    await kube.custom.patch_namespaced_custom_object_status(
        GROUP,
        VERSION,
        namespace,
        plural,
        name,
        body,
        _content_type="application/merge-patch+json",  # type: ignore[call-arg]
    )


async def delete_object(kube: Kube, plural: str, namespace: str, name: str) -> None:
    await kube.custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, plural, name)
