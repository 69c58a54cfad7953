"""Operator start-up and shutdown: build every dependency once, by constructor, and start the loops."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf

from heady_operator import http, ingest, metrics
from heady_operator.access import run_access
from heady_operator.arena import ArenaController
from heady_operator.config import Settings
from heady_operator.health import run_health_checks
from heady_operator.kube import client
from heady_operator.kube.escalation_api import KubeEscalationApi
from heady_operator.kube.models_store import load_model, save_model_forever
from heady_operator.models.common import utcnow
from heady_operator.planning.incremental import IncrementalPlanner
from heady_operator.planning.prediction import TransitionModel
from heady_operator.reconcile import feeds
from heady_operator.reconcile.escalation import Escalation, policy_of
from heady_operator.reconcile.health import Watchdog, watch_loop_lag
from heady_operator.state.cluster import ClusterState

log = logging.getLogger(__name__)


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    cfg = Settings()
    # kopf's own Events for handler progress would drown the ones users care about.
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 600
    settings.networking.request_timeout = 60
    settings.persistence.finalizer = "heady.io/finalizer"
    kube = await client.connect(pool_size=cfg.resize_concurrency + 8)
    reports = await client.connect(pool_size=16)
    memo["kube"], memo["settings"], memo["clients"] = kube, cfg, [kube, reports]
    model = await load_model(kube, cfg)
    state = ClusterState(cfg, IncrementalPlanner(policy_of(cfg)), utcnow, model)
    escalation = Escalation(cfg, state, KubeEscalationApi(kube, reports, cfg), utcnow)
    memo["state"], memo["escalation"] = state, escalation
    memory, embedder = await _memory(cfg)
    arena = ArenaController(cfg, kube, pods_of=state.cpu_requests_of, memory=memory, embedder=embedder)
    memo["arena"] = arena
    attention = ingest.build(cfg, state)
    memo["ingest"] = attention
    watchdog = Watchdog(escalation, attention.consumer, cfg.watchdog_stall_seconds)
    memo["http"] = await http.start(cfg, watchdog, attention.intake)
    try:
        await _start_loops(cfg, kube, memo, state, escalation, arena, attention, model)
    except BaseException:
        # A failed start must not leave the port bound for kopf's retry of this handler.
        await _stop(memo)
        raise


async def _start_loops(
    cfg: Settings,
    kube: client.Kube,
    memo: kopf.Memo,
    state: ClusterState,
    escalation: Escalation,
    arena: ArenaController,
    attention: ingest.Ingest,
    model: TransitionModel,
) -> None:
    tasks = [
        asyncio.create_task(escalation.run(), name="escalation-loop"),
        asyncio.create_task(escalation.queue.run(), name="resize-queue"),
        asyncio.create_task(escalation.reporter.run(), name="reporter"),
        asyncio.create_task(save_model_forever(kube, cfg, model), name="model-saver"),
        asyncio.create_task(arena.run(), name="arena-loop"),
        asyncio.create_task(watch_loop_lag(), name="loop-lag"),
        asyncio.create_task(run_health_checks(cfg, kube, state.service_bodies), name="health-checks"),
    ]
    # One replica acts (leader election is not built yet): it leads.
    metrics.LEADER.set(1)
    memo["tasks"] = tasks
    # One consistent first listing before the first plan: a restart must not relax what it has not seen.
    tasks += await feeds.start(feeds.informers(kube, state, cfg.namespace_list))
    vpas = feeds.VpaFeed(kube, state, cfg.namespace_list, cfg.vpa_discovery_seconds)
    await vpas.check_safely()
    tasks.append(asyncio.create_task(vpas.run(), name="vpa-feed"))
    escalation.mark_synced()
    # It waits itself until every HeadyService is cached (AccessLoop.caught_up).
    tasks.append(asyncio.create_task(run_access(cfg, kube, state), name="access"))
    if attention.consumer is not None:
        tasks.append(asyncio.create_task(attention.consumer.run(), name="attention-ingest"))
    log.info("heady-operator started; serving http on %s:%d", cfg.http_host, cfg.http_port)


async def _memory(cfg: Settings) -> tuple[Any, Any]:
    """Arena memory in Postgres + pgvector when configured; an outage never blocks start-up."""
    if not cfg.postgres_dsn:
        return None, None
    from heady_operator.storage.embedder import HashingEmbedder
    from heady_operator.storage.resilient import ResilientMemory

    memory = ResilientMemory.for_dsn(cfg.postgres_dsn, cfg.embedding_dimensions)
    await memory.start()
    return memory, HashingEmbedder(cfg.embedding_dimensions)


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    await _stop(memo)


async def _stop(memo: kopf.Memo) -> None:
    tasks = list(memo.pop("tasks", []))
    for task in tasks:
        task.cancel()
    # Let them finish cancelling before their API client is closed under them.
    await asyncio.gather(*tasks, return_exceptions=True)
    runner = memo.pop("http", None)
    if runner is not None:
        await runner.cleanup()
    attention = memo.pop("ingest", None)
    if attention is not None:
        await attention.close()
    for kube in memo.pop("clients", []):
        await kube.close()
