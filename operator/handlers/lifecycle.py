"""Operator start-up and shutdown: build dependencies once, hand them to handlers through memo."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf

from heady_operator import http, ingest
from heady_operator.arena import ArenaController
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
    memo["arena"] = arena = ArenaController(cfg, kube)
    arena.pods_of = controller.cpu_requests_of
    await _attach_memory(cfg, arena)
    tasks = [
        asyncio.create_task(controller.run(), name="escalation-loop"),
        asyncio.create_task(save_model_forever(kube, cfg, controller), name="model-saver"),
        asyncio.create_task(arena.run(), name="arena-loop"),
    ]
    memo["ingest"] = attention = ingest.build(cfg, controller)
    memo["http"] = await http.start(cfg, controller, attention.intake)
    # A consistent first view before the first plan: a restart must not relax what it has not seen.
    await sync.initial_sync(kube, controller, cfg.namespace_list)
    controller.mark_synced()
    if attention.consumer is not None:
        tasks.append(asyncio.create_task(attention.consumer.run(), name="attention-ingest"))
    memo["tasks"] = tasks
    log.info("heady-operator started; serving http on %s:%d", cfg.http_host, cfg.http_port)


async def _attach_memory(cfg: Settings, arena: ArenaController) -> None:
    """Arena memory in Postgres + pgvector when configured; an outage never blocks start-up."""
    if not cfg.postgres_dsn:
        return
    from heady_operator.storage.embedder import HashingEmbedder
    from heady_operator.storage.resilient import ResilientMemory

    memory = ResilientMemory.for_dsn(cfg.postgres_dsn, cfg.embedding_dimensions)
    await memory.start()
    arena.memory = memory
    arena.embedder = HashingEmbedder(cfg.embedding_dimensions)


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    tasks = list(memo.get("tasks", []))
    controller = memo.get("controller")
    if controller is not None:
        tasks += controller.background_tasks()
    for task in tasks:
        task.cancel()
    # Let them finish cancelling before their API client is closed under them.
    await asyncio.gather(*tasks, return_exceptions=True)
    runner = memo.get("http")
    if runner is not None:
        await runner.cleanup()
    if memo.get("ingest") is not None:
        await memo["ingest"].close()
    kube = memo.get("kube")
    if kube is not None:
        await kube.close()
