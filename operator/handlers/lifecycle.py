"""Operator start-up and shutdown: build every dependency once, by constructor, and start the loops."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import threading
import uuid
from typing import Any

import kopf

from heady_operator import http, ingest, metrics
from heady_operator.access import run_access
from heady_operator.arena import ArenaController
from heady_operator.config import Settings
from heady_operator.health import run_health_checks
from heady_operator.kube import client
from heady_operator.kube.escalation_api import KubeEscalationApi
from heady_operator.kube.events import post_event
from heady_operator.kube.lease import LeaseApi
from heady_operator.kube.models_store import load_model, save_model_forever
from heady_operator.models.common import utcnow
from heady_operator.planning.incremental import IncrementalPlanner
from heady_operator.planning.leadership import ALWAYS, Elector, Gate, Timings
from heady_operator.planning.prediction import TransitionModel
from heady_operator.reconcile import feeds
from heady_operator.reconcile.escalation import Escalation, policy_of
from heady_operator.reconcile.health import Watchdog, watch_loop_lag
from heady_operator.reconcile.leadership import Election
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
    elector = _elector(cfg)
    # Every writer asks this right before it writes: the elector when replicas elect a leader.
    gate: Gate = elector if elector is not None else ALWAYS
    memo["gate"], memo["elector"] = gate, elector
    memo.setdefault("on_leading", [])
    model = await load_model(kube, cfg)
    state = ClusterState(cfg, IncrementalPlanner(policy_of(cfg)), utcnow, model)
    escalation = Escalation(cfg, state, KubeEscalationApi(kube, reports, cfg, gate), utcnow, gate=gate)
    memo["state"], memo["escalation"] = state, escalation
    memory, embedder = await _memory(cfg)
    arena = ArenaController(
        cfg, kube, pods_of=state.cpu_requests_of, memory=memory, embedder=embedder, gate=gate
    )
    memo["arena"] = arena
    attention = ingest.build(cfg, state, gate)
    memo["ingest"] = attention
    watchdog = Watchdog(escalation, attention.consumer, cfg.watchdog_stall_seconds, elector)
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
    gate: Gate = memo["gate"]
    tasks = [
        asyncio.create_task(escalation.run(), name="escalation-loop"),
        asyncio.create_task(escalation.queue.run(), name="resize-queue"),
        asyncio.create_task(escalation.reporter.run(), name="reporter"),
        asyncio.create_task(save_model_forever(kube, cfg, model, gate=gate), name="model-saver"),
        asyncio.create_task(arena.run(), name="arena-loop"),
        asyncio.create_task(watch_loop_lag(), name="loop-lag"),
        asyncio.create_task(
            run_health_checks(cfg, kube, state.service_bodies, gate=gate), name="health-checks"
        ),
    ]
    memo["tasks"] = tasks
    # One consistent first listing before the first plan: a restart must not relax what it has not seen.
    tasks += await feeds.start(feeds.informers(kube, state, cfg.namespace_list))
    vpas = feeds.VpaFeed(kube, state, cfg.namespace_list, cfg.vpa_discovery_seconds)
    await vpas.check_safely()
    tasks.append(asyncio.create_task(vpas.run(), name="vpa-feed"))
    escalation.mark_synced()
    # It waits itself until every HeadyService is cached (AccessLoop.caught_up).
    tasks.append(asyncio.create_task(run_access(cfg, kube, state, gate), name="access"))
    if attention.consumer is not None:
        tasks.append(asyncio.create_task(attention.consumer.run(), name="attention-ingest"))
    elector: Elector | None = memo["elector"]
    if elector is None:
        metrics.LEADER.set(1)  # acting alone: it leads
    else:
        # Campaign only with warm caches: a new leader acts at once, on everything it has seen.
        tasks.append(asyncio.create_task(await _campaign(cfg, memo, elector), name="leader-election"))
    log.info("heady-operator started; serving http on %s:%d", cfg.http_host, cfg.http_port)


def _elector(cfg: Settings) -> Elector | None:
    if not cfg.leader_election:
        return None
    timings = Timings(
        cfg.leader_election_lease_duration_seconds,
        cfg.leader_election_renew_deadline_seconds,
        cfg.leader_election_retry_period_seconds,
    )
    problem = timings.problem()
    if problem is not None:
        raise kopf.PermanentError(f"leader election settings refused: {problem}")
    # The pod name, as client-go: a replacement pod is a new identity, a restarted container is not.
    identity = cfg.pod_name or f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}"
    return Elector(identity, timings)


async def _campaign(cfg: Settings, memo: kopf.Memo, elector: Elector) -> Any:
    """The election loop, its hooks, and SIGTERM handling that hands the Lease over first."""
    # Its own connection: a renewal never waits behind resizes for a pooled connection.
    lease_kube = await client.connect(pool_size=2)
    memo["clients"].append(lease_kube)
    store = LeaseApi(
        lease_kube,
        cfg.operator_namespace,
        cfg.leader_election_lease,
        # A slow renewal that still lands in time counts (fencing goes by when it was sent).
        timeout=elector.timings.renew_deadline,
    )
    escalation: Escalation = memo["escalation"]
    arena: ArenaController = memo["arena"]
    reports: client.Kube = memo["clients"][1]

    async def leading() -> None:
        metrics.LEADER_TRANSITIONS.labels("acquired").inc()
        escalation.take_over()
        arena.kick()
        before = elector.previous_holder
        await post_event(
            reports,
            _leader_object(cfg),
            "LeaderElected",
            f"{elector.identity} leads (Lease {cfg.operator_namespace}/{cfg.leader_election_lease}"
            + (f", taking over from {before}" if before else "")
            + ")",
        )
        for hook in list(memo.get("on_leading", [])):
            try:
                await hook()
            except Exception:  # one hook's failure must not keep the others from running
                log.exception("a take-over step failed")

    async def fenced() -> None:
        metrics.LEADER_TRANSITIONS.labels("fenced").inc()

    election = Election(elector, store, utcnow, leading, fenced)
    memo["election"] = election
    _hand_over_on_signals(memo, election)
    return election.run()


def _leader_object(cfg: Settings) -> dict[str, Any]:
    """Where leadership Events go: the replica's pod (downward API name), else the Lease."""
    if cfg.pod_name:
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": cfg.pod_name, "namespace": cfg.operator_namespace},
        }
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": cfg.leader_election_lease, "namespace": cfg.operator_namespace},
    }


def _hand_over_on_signals(memo: kopf.Memo, election: Election) -> None:
    """SIGTERM/SIGINT: stop writing and release the Lease at once, then let kopf shut down.

    kopf's own shutdown first waits for daemons and handlers (seconds); the standby should not.
    Installed after kopf's handlers (this runs from a startup handler), it replaces them; kopf is
    then stopped through the stop flag `heady-operator` passes it.
    """
    stop: threading.Event | None = memo.get("stop_flag")
    if stop is None or threading.current_thread() is not threading.main_thread():
        return  # not started by heady_operator.main: the release happens in cleanup
    loop = asyncio.get_running_loop()

    def on_signal(signum: int) -> None:
        if memo.get("releasing") is not None:
            stop.set()  # a second signal: no more waiting
            return
        log.info("signal %d: handing the Lease over, then shutting down", signum)

        async def release_then_stop() -> None:
            try:
                if await election.release():
                    metrics.LEADER_TRANSITIONS.labels("released").inc()
            finally:
                stop.set()

        memo["releasing"] = loop.create_task(release_then_stop())

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)


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
    election: Election | None = memo.pop("election", None)
    releasing = memo.pop("releasing", None)
    if releasing is not None:
        await asyncio.gather(releasing, return_exceptions=True)
    elif election is not None:
        # Nothing more is written from here on, and the standby need not wait for the Lease to expire.
        try:
            await asyncio.wait_for(election.release(), timeout=5)
        except Exception as exc:
            log.warning("could not release the Lease on shutdown: %s", exc)
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
        if attention.consumer is not None:
            log.info(
                "attention ingest: %d stream entries acknowledged by this process",
                attention.consumer.acknowledged,
            )
        await attention.close()
    for kube in memo.pop("clients", []):
        await kube.close()
