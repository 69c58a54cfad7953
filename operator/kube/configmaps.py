"""ConfigMaps the operator owns (transition model, tunnel rules): create or update in one call site."""

from __future__ import annotations

from kubernetes_asyncio.client.exceptions import ApiException

from heady_operator.kube.client import Kube

MANAGED_BY = {"app.kubernetes.io/managed-by": "heady-operator"}


async def upsert_config_map(
    kube: Kube, namespace: str, name: str, data: dict[str, str], annotations: dict[str, str] | None = None
) -> None:
    body = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": MANAGED_BY,
            "annotations": annotations or {},
        },
        "data": data,
    }
    try:
        await kube.core.patch_namespaced_config_map(name, namespace, body)
    except ApiException as exc:
        if exc.status != 404:
            raise
        await kube.core.create_namespaced_config_map(namespace, body)  # type: ignore[arg-type]
