"""Writes the cloudflared ConfigMap and rolls cloudflared when its rules change."""

from __future__ import annotations

import logging

from kubernetes_asyncio.client.exceptions import ApiException

from heady_operator.config import Settings
from heady_operator.kube.client import Kube
from heady_operator.kube.configmaps import upsert_config_map
from heady_operator.planning.tunnel import TunnelConfig

log = logging.getLogger(__name__)
CONFIG_KEY = "config.yaml"
HASH_ANNOTATION = "heady.io/config-hash"


async def write_tunnel_config(kube: Kube, cfg: Settings, config: TunnelConfig) -> None:
    await upsert_config_map(
        kube,
        cfg.operator_namespace,
        cfg.tunnel_configmap,
        {CONFIG_KEY: config.text},
        {HASH_ANNOTATION: config.digest},
    )
    if cfg.tunnel_deployment:
        # cloudflared reads its config at start: a new pod-template annotation rolls it.
        patch = {"spec": {"template": {"metadata": {"annotations": {HASH_ANNOTATION: config.digest}}}}}
        try:
            await kube.apps.patch_namespaced_deployment(cfg.tunnel_deployment, cfg.operator_namespace, patch)
        except ApiException as exc:
            if exc.status != 404:
                raise
            log.warning(
                "cloudflared Deployment %s not found; rules written but not rolled", cfg.tunnel_deployment
            )
