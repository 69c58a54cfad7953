"""Operator start-up and shutdown: build dependencies once, hand them to handlers through memo."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf

from heady_operator import http
from heady_operator.config import Settings
from heady_operator.escalation import EscalationController
from heady_operator.kube import client, sync
from heady_operator.kube.models_store import load_model, save_model_forever

log = logging.getLogger(__name__)


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    cfg = Settings()
    # kopf's own Events for handler progress would drown the ones users care about.
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 600
    settings.networking.request_timeout = 60
    settings.persistence.finalizer = "heady.io/finalizer"
    kube = await client.connect()
    model = await load_model(kube, cfg)
    controller = EscalationController(cfg, kube, model=model)
    memo["settings"] = cfg
    memo["kube"] = kube
    memo["controller"] = controller
    tasks = [
        asyncio.create_task(controller.run(), name="escalation-loop"),
        asyncio.create_task(save_model_forever(kube, cfg, controller), name="model-saver"),
    ]
    memo["http"] = await http.start(cfg, controller)
    # A consistent first view before the first plan: a restart must not relax what it has not seen.
    await sync.initial_sync(kube, controller, cfg.namespace_list)
    controller.mark_synced()
    memo["tasks"] = tasks
    log.info("heady-operator started; serving http on %s:%d", cfg.http_host, cfg.http_port)


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    for task in memo.get("tasks", []):
        task.cancel()
    runner = memo.get("http")
    if runner is not None:
        await runner.cleanup()
    kube = memo.get("kube")
    if kube is not None:
        await kube.close()
