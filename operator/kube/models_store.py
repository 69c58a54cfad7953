"""Keeps the attention transition model in a ConfigMap so prediction survives restarts."""

from __future__ import annotations

import asyncio
import logging

from kubernetes_asyncio.client.exceptions import ApiException

from heady_operator.config import Settings
from heady_operator.kube.client import Kube
from heady_operator.kube.configmaps import upsert_config_map
from heady_operator.planning.leadership import ALWAYS, Gate
from heady_operator.planning.prediction import TransitionModel

log = logging.getLogger(__name__)
KEY = "model.json"


async def load_model(kube: Kube, cfg: Settings) -> TransitionModel:
    try:
        cm = await kube.core.read_namespaced_config_map(cfg.prediction_configmap, cfg.operator_namespace)
    except ApiException as exc:
        if exc.status != 404:
            log.warning("cannot read the transition model ConfigMap: %s", exc.reason)
        return TransitionModel()
    try:
        return TransitionModel.from_json((cm.data or {}).get(KEY, ""))
    except (ValueError, TypeError, AttributeError) as exc:
        log.warning("transition model ConfigMap is unreadable (%s); starting a fresh model", exc)
        return TransitionModel()


async def save_model(kube: Kube, cfg: Settings, model: TransitionModel) -> None:
    await upsert_config_map(kube, cfg.operator_namespace, cfg.prediction_configmap, {KEY: model.to_json()})


async def save_model_forever(
    kube: Kube, cfg: Settings, model: TransitionModel, every: float = 5.0, gate: Gate = ALWAYS
) -> None:
    while True:
        await asyncio.sleep(every)
        if not model.dirty or not gate.may_write():
            continue  # a standby learns too (it follows the same attention), the leader saves
        model.dirty = False
        try:
            await save_model(kube, cfg, model)
        except (ApiException, OSError) as exc:
            model.dirty = True
            log.warning("could not save the transition model: %s", exc)
