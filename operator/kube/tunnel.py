"""Writes the cloudflared ConfigMap and rolls cloudflared when its rules change."""

from __future__ import annotations

import logging

from kubernetes_asyncio.client.exceptions import ApiException

from heady_operator.config import Settings
from heady_operator.kube.client import Kube
from heady_operator.planning.tunnel import TunnelConfig

log = logging.getLogger(__name__)
CONFIG_KEY = "config.yaml"
HASH_ANNOTATION = "heady.io/config-hash"


async def write_tunnel_config(kube: Kube, cfg: Settings, config: TunnelConfig) -> None:
    body = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": cfg.tunnel_configmap,
            "namespace": cfg.operator_namespace,
            "labels": {"app.kubernetes.io/managed-by": "heady-operator"},
            "annotations": {HASH_ANNOTATION: config.digest},
        },
        "data": {CONFIG_KEY: config.text},
    }
    try:
        await kube.core.patch_namespaced_config_map(cfg.tunnel_configmap, cfg.operator_namespace, body)
    except ApiException as exc:
        if exc.status != 404:
            raise
        await kube.core.create_namespaced_config_map(cfg.operator_namespace, body)  # type: ignore[arg-type]
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
