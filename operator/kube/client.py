"""The one place heady builds Kubernetes API clients (async, for the hot path)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from kubernetes_asyncio import client, config

from heady_operator import metrics

WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass
class Kube:
    api: client.ApiClient
    core: client.CoreV1Api
    custom: client.CustomObjectsApi
    apps: client.AppsV1Api
    batch: client.BatchV1Api
    networking: client.NetworkingV1Api

    async def close(self) -> None:
        await self.api.close()


async def connect(pool_size: int = 64) -> Kube:
    """Connect with the in-cluster service account, else $KUBECONFIG / ~/.kube/config."""
    cfg = client.Configuration()
    if os.environ.get("KUBERNETES_SERVICE_HOST") and not os.environ.get("KUBECONFIG"):
        config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
    else:
        await config.load_kube_config(client_configuration=cfg)
    # Resizes fan out to many pods at once; the default pool of 4 would serialise them.
    cfg.connection_pool_maxsize = pool_size
    api = client.ApiClient(configuration=cfg)
    _count_writes(api)
    return Kube(
        api=api,
        core=client.CoreV1Api(api),
        custom=client.CustomObjectsApi(api),
        apps=client.AppsV1Api(api),
        batch=client.BatchV1Api(api),
        networking=client.NetworkingV1Api(api),
    )


def resource_of(url: str) -> str:
    """`pods/resize`, `leases`, `headyservices/status`: the resource (and subresource) a URL names."""
    parts = urlsplit(url).path.split("/")
    if "namespaces" in parts:
        i = parts.index("namespaces")
        rest = parts[i + 2 :] if len(parts) > i + 2 else ["namespaces"]
    else:
        core = 2 if len(parts) > 1 and parts[1] == "api" else 3  # /api/v1/... or /apis/group/version/...
        rest = parts[core + 1 :]
    if not rest:
        return "unknown"
    return f"{rest[0]}/{rest[2]}" if len(rest) > 2 else rest[0]


def _count_writes(api: client.ApiClient) -> None:
    """Count every write this process sends (leader election is shown by who writes, not who says so)."""
    rest = api.rest_client
    send = rest.request

    async def counted(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        if method in WRITES:
            resource = resource_of(url)
            metrics.API_WRITES.labels(resource).inc()
            if resource != "leases":
                metrics.API_LAST_WRITE.set(time.time())
        return await send(method, url, *args, **kwargs)

    rest.request = counted  # type: ignore[method-assign]
