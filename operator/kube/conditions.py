"""One condition of a heady object, written without clobbering the others' conditions.

Conditions are one list in status; a merge patch replaces the whole list. So the list is read
fresh, the one condition changed, and the patch carries the resourceVersion it was read at: if
another writer (the reconcile loop's reporter) patched in between, the API server answers 409
and the merge is redone on the newer list.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from kubernetes_asyncio.client.exceptions import ApiException

from heady_operator.kube.client import Kube
from heady_operator.kube.status import patch_status
from heady_operator.models.common import GROUP, VERSION

log = logging.getLogger(__name__)
Conditions = list[dict[str, object]]
ATTEMPTS = 5


async def merge_condition(
    kube: Kube,
    plural: str,
    namespace: str,
    name: str,
    change: Callable[[Conditions, int | None], Conditions],
) -> dict[str, Any] | None:
    """Apply change(conditions, generation) to the object's current conditions and patch them.

    Returns the object as read (for Events), or None when it is gone.
    """
    for _ in range(ATTEMPTS):
        try:
            current: dict[str, Any] = await kube.custom.get_namespaced_custom_object(
                GROUP, VERSION, namespace, plural, name
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        meta = current.get("metadata") or {}
        conditions = list((current.get("status") or {}).get("conditions") or [])
        updated = change(conditions, meta.get("generation"))
        if updated == conditions:
            return current
        try:
            await patch_status(
                kube,
                plural,
                namespace,
                name,
                {"conditions": updated},
                resource_version=meta.get("resourceVersion"),
            )
        except ApiException as exc:
            if exc.status == 409:
                continue  # someone else wrote status meanwhile: merge again on theirs
            if exc.status == 404:
                return None
            raise
        return current
    log.warning("could not write a condition of %s %s/%s: it kept changing", plural, namespace, name)
    return None
