"""The one place heady builds Kubernetes API clients (async, for the hot path)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from kubernetes_asyncio import client, config


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
    return Kube(
        api=api,
        core=client.CoreV1Api(api),
        custom=client.CustomObjectsApi(api),
        apps=client.AppsV1Api(api),
        batch=client.BatchV1Api(api),
        networking=client.NetworkingV1Api(api),
    )
