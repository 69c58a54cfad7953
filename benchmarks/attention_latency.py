"""Attention latency on kwok: from an attention event to every target pod's resize being accepted.

Setup: N HeadyServices x P pods (Deployments, medium priority so the high-priority cap does not
apply), all settled at baseline, one operator process. Then, for each rate, attention events are
sent round-robin over the services at that rate; each signal expires after 300 ms (--attention-ms) and services
have cooldown 0, so a service is back at baseline before it is targeted again.

Latency = time from just before the create call to the moment the benchmark's own pod watch has
seen the last of the service's pods with its spec at peak (the API server accepted the resize).
Signals whose service was not fully at baseline when they were sent are not counted (reported).

The same measurement runs over the ingest paths (--paths): `redis` (XADD to the attention stream
the operator consumes) and `http` (POST /v1/attention, which queues to the same stream), at
--ingest-rates events per second. Of these, --probe-rate per second (default 10, the
AttentionSignal path's middle rate) are measured escalations sent exactly as above; the rest are
below-threshold focus events (intensity 0.05, 300 ms, many users) on the same services, sent by
a separate process so its event loop never delays the benchmark's pod watch. They go through
the whole path, the controller and the planner, but resize nothing: escalating 1,000 services a
second would measure how many resize writes etcd takes on this machine, not the ingest.
"operator p50/p99 <=" are the operator's own heady_signal_to_resize_seconds for the run
(histogram bucket bounds, from the event reaching the controller to each pod's resize being
accepted); not shown with background events, which restart that clock on the same services.
Redis runs as a local redis-server without persistence (the chart's default).

    .venv/bin/python benchmarks/attention_latency.py            # 50 x 4, objects 1/10/100/s, ingest 100/1000/s
    .venv/bin/python benchmarks/attention_latency.py --quick    # tiny CI mode

Writes benchmarks/results/attention_latency.{json,md} (quick mode: *-quick.*, not committed).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import platform
import random
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.append(str(Path(__file__).resolve().parents[1]))  # appended: stdlib `operator` must win

import aiohttp
import redis.asyncio as aredis
from kubernetes_asyncio import client as aclient
from kubernetes_asyncio import config as aconfig
from kubernetes_asyncio import watch as awatch
from prometheus_client.parser import text_string_to_metric_families

from benchmarks.measure import ProcStats, pct
from tests.harness import (
    OperatorProcess,
    RedisServer,
    deployment,
    headyservice,
    start_cluster,
    wait_for,
)

RESULTS = Path(__file__).resolve().parent / "results"
# How long each measured attention lasts (--attention-ms): a service escalates, then relaxes.
ATTENTION_MS = 300
# Ingest paths: escalations (measured events) per second at most (--probe-rate), see run_loaded.
PROBE_RATE = 10.0
SEND_CONCURRENCY = 64
PEAK_CPU = "100m"  # limits; Burstable pods stop 1m short of the limit at peak (200 pods fit 4 x 8 CPU)
PEAK_REQ = "99m"
BASE_REQ = "90m"


def say(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def operator_quantiles(before: str, after: str, source: str) -> dict[str, float | None]:
    """p50/p99 upper bucket bounds of heady_signal_to_resize_seconds{source} between two scrapes."""

    def buckets(text: str) -> dict[float, float]:
        out: dict[float, float] = {}
        for family in text_string_to_metric_families(text):
            if family.name != "heady_signal_to_resize_seconds":
                continue
            for sample in family.samples:
                if sample.name.endswith("_bucket") and sample.labels.get("source") == source:
                    out[float(sample.labels["le"])] = sample.value
        return out

    b0, b1 = buckets(before), buckets(after)
    delta = sorted((le, b1[le] - b0.get(le, 0.0)) for le in b1)
    total = delta[-1][1] if delta else 0.0
    result: dict[str, float | None] = {}
    for name, q in (("operator_p50_ms_le", 0.5), ("operator_p99_ms_le", 0.99)):
        bound = next((le for le, cum in delta if total and cum >= q * total), None)
        result[name] = round(bound * 1000, 1) if bound is not None else None
    return result


class PodWatch:
    """Tracks, from a real watch, which pods of each service have their spec at peak."""

    def __init__(self, namespace: str, services: list[str]) -> None:
        self.namespace = namespace
        self.at_peak: dict[str, set[str]] = {s: set() for s in services}
        self.at_base: dict[str, set[str]] = {s: set() for s in services}
        self.pods: dict[str, int] = dict.fromkeys(services, 0)
        self.waiters: dict[str, list[tuple[float, asyncio.Future[float]]]] = {s: [] for s in services}

    def full_peak(self, svc: str, replicas: int) -> bool:
        return len(self.at_peak[svc]) == replicas

    def full_base(self, svc: str, replicas: int) -> bool:
        return len(self.at_base[svc]) == replicas

    def wait_peak(self, svc: str) -> asyncio.Future[float]:
        fut: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.waiters[svc].append((time.perf_counter(), fut))
        return fut

    async def run(self, core: aclient.CoreV1Api, replicas: int) -> None:
        w = awatch.Watch()
        async with w.stream(core.list_namespaced_pod, self.namespace, _request_timeout=3600) as stream:
            async for event in stream:
                now = time.perf_counter()
                pod = event["object"]
                app = (pod.metadata.labels or {}).get("app")
                if app not in self.at_peak:
                    continue
                req = (pod.spec.containers[0].resources.requests or {}).get("cpu")
                name = pod.metadata.name
                self.at_peak[app].discard(name)
                self.at_base[app].discard(name)
                if event["type"] != "DELETED" and pod.status.phase == "Running":
                    if req == PEAK_REQ:
                        self.at_peak[app].add(name)
                    elif req == BASE_REQ:
                        self.at_base[app].add(name)
                if self.full_peak(app, replicas):
                    for _, fut in self.waiters[app]:
                        if not fut.done():
                            fut.set_result(now)
                    self.waiters[app].clear()


async def run_rate(
    custom: aclient.CustomObjectsApi | None,
    watch: PodWatch,
    namespace: str,
    services: list[str],
    replicas: int,
    rate: float,
    count: int,
    label: str,
    send: Callable[[str, str, datetime], Awaitable[None]],
    attention_ms: int = ATTENTION_MS,
) -> dict[str, Any]:
    latencies: list[float] = []
    skipped = 0
    timeouts = 0
    pending: list[tuple[float, asyncio.Future[float]]] = []
    sends: list[asyncio.Task[None]] = []
    interval = 1.0 / rate
    start = time.perf_counter()
    for i in range(count):
        target_time = start + i * interval
        delay = target_time - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        svc = services[i % len(services)]
        if not watch.full_base(svc, replicas):
            skipped += 1
            continue
        fut = watch.wait_peak(svc)
        sent = time.perf_counter()
        expires = datetime.now(UTC) + timedelta(milliseconds=attention_ms)
        # Sent concurrently: awaiting each create would cap the rate at 1 / API round-trip.
        sends.append(asyncio.create_task(send(svc, f"{label}-{i}", expires)))
        pending.append((sent, fut))
    send_phase = time.perf_counter() - start
    await asyncio.gather(*sends)
    deadline = time.perf_counter() + 30  # one deadline for all: 100 misses must not take 100 x 30 s
    for sent, fut in pending:
        try:
            done = await asyncio.wait_for(fut, timeout=max(0.0, deadline - time.perf_counter()))
            latencies.append(done - sent)
        except TimeoutError:
            timeouts += 1
    return {
        "rate_per_s": rate,
        "sent": len(pending),
        "skipped_not_at_baseline": skipped,
        "timeouts": timeouts,
        "achieved_rate_per_s": round(len(pending) / max(send_phase, 1e-9), 1),
        "p50_ms": round(pct(latencies, 50) * 1000, 1),
        "p99_ms": round(pct(latencies, 99) * 1000, 1),
        "mean_ms": round(statistics.fmean(latencies) * 1000, 1) if latencies else float("nan"),
        "max_ms": round(max(latencies) * 1000, 1) if latencies else float("nan"),
    }


def background_load(
    path: str,
    target: str,
    stream: str,
    namespace: str,
    services: list[str],
    rate: float,
    seconds: float,
    queue: Any,
) -> None:
    """A process of its own sending below-threshold focus events, so its event loop never delays
    the benchmark's pod watch (which would add to every measured latency)."""
    queue.put(asyncio.run(_background(path, target, stream, namespace, services, rate, seconds, queue)))


async def _background(
    path: str,
    target: str,
    stream: str,
    namespace: str,
    services: list[str],
    rate: float,
    seconds: float,
    queue: Any,
) -> dict[str, Any]:
    rng = random.Random(7)
    sent = errors = 0
    first_error: str | None = None
    gate = asyncio.Semaphore(SEND_CONCURRENCY)
    producer = aredis.Redis.from_url(target, decode_responses=True) if path == "redis" else None
    session = aiohttp.ClientSession(target) if path == "http" else None
    tasks: set[asyncio.Task[None]] = set()

    def event(k: int) -> dict[str, Any]:
        expires = datetime.now(UTC) + timedelta(milliseconds=ATTENTION_MS)
        return {
            "service": rng.choice(services),
            "namespace": namespace,
            "intensity": 0.05,
            "expiresAt": expires.isoformat(),
            "source": "bench-load",
            "user": f"user-{k % 200}",
        }

    async def post(body: dict[str, Any]) -> None:
        nonlocal errors, first_error
        assert session is not None
        async with gate:
            try:
                async with session.post("/v1/attention", json=body) as resp:
                    if resp.status != 202:
                        raise RuntimeError(f"{resp.status} {await resp.text()}")
            except Exception as exc:
                errors += 1
                first_error = first_error or repr(exc)

    async def xadd(batch: list[dict[str, Any]]) -> None:
        nonlocal errors, first_error
        assert producer is not None
        try:
            # A gateway batches what arrived in the same 10 ms; the operator still reads entries.
            async with producer.pipeline(transaction=False) as pipe:
                for body in batch:
                    pipe.xadd(stream, {k: str(v) for k, v in body.items()})
                await pipe.execute()
        except Exception as exc:
            errors += len(batch)
            first_error = first_error or repr(exc)

    tick = 0.01
    owed = 0.0
    queue.put("ready")
    start = time.perf_counter()
    i = 0
    while (now := time.perf_counter()) - start < seconds:
        owed += rate * tick
        n, owed = int(owed), owed - int(owed)
        batch = [event(sent + j) for j in range(n)]
        sent += n
        if path == "redis":
            task = asyncio.create_task(xadd(batch))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        else:
            for body in batch:
                task = asyncio.create_task(post(body))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        i += 1
        await asyncio.sleep(max(0.0, start + i * tick - time.perf_counter()))
    elapsed = now - start
    await asyncio.gather(*tasks)
    if producer is not None:
        await producer.aclose()
    if session is not None:
        await session.close()
    return {"sent": sent, "errors": errors, "first_error": first_error, "rate": sent / elapsed}


async def run_loaded(
    watch: PodWatch,
    namespace: str,
    services: list[str],
    replicas: int,
    rate: float,
    seconds: float,
    path: str,
    target: str,
    stream: str,
    send: Callable[[str, str, datetime], Awaitable[None]],
    attention_ms: int = ATTENTION_MS,
    probe_rate: float = PROBE_RATE,
) -> dict[str, Any]:
    """`rate` events per second over one path: `probe_rate` measured escalations (as the
    AttentionSignal path's run at that rate) plus below-threshold focus events from another
    process for the rest. Each goes through the whole path and the planner; only probes resize.
    """
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    background = max(0.0, rate - probe_rate)
    proc = ctx.Process(
        target=background_load,
        args=(path, target, stream, namespace, services, background, seconds, queue),
        daemon=True,
    )
    proc.start()
    assert await asyncio.to_thread(queue.get, True, 60) == "ready"
    probes = min(rate, probe_rate)
    run = await run_rate(
        None,
        watch,
        namespace,
        services,
        replicas,
        probes,
        max(3, int(probes * seconds)),
        f"{path}{int(rate)}",
        send,
        attention_ms,
    )
    load: dict[str, Any] = await asyncio.to_thread(queue.get, True, 120)
    await asyncio.to_thread(proc.join, 30)
    run.update(
        rate_per_s=rate,
        measured=run["sent"],
        sent=run["sent"] + load["sent"],
        achieved_rate_per_s=round(run["achieved_rate_per_s"] + load["rate"], 1),
        background_sent=load["sent"],
        background_rate_per_s=round(load["rate"], 1),
        send_errors=load["errors"],
        first_send_error=load["first_error"],
    )
    return run


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    cluster = start_cluster(args.cluster)
    # Pods left by an interrupted run would take the nodes' room.
    cluster.kubectl(
        "delete", "namespace", "-l", "heady.io/test=bench", "--wait=true", "--timeout=120s", check=False
    )
    namespace = f"bench-{uuid.uuid4().hex[:6]}"
    cluster.core.create_namespace({"metadata": {"name": namespace, "labels": {"heady.io/test": "bench"}}})
    services = [f"svc-{i:03d}" for i in range(args.services)]
    limits = {"cpu": PEAK_CPU, "memory": "256Mi"}
    objs: list[dict[str, Any]] = []
    for name in services:
        objs.append(deployment(name, namespace, args.pods, {"cpu": "50m", "memory": "128Mi"}, limits))
        objs.append(headyservice(name, namespace, priority="medium", cooldownSeconds=0))
    say(f"creating {len(services)} Deployments x {args.pods} pods and their HeadyServices in {namespace}")
    cluster.apply(objs)
    tmp = Path(os.environ.get("TMPDIR", "/tmp"))
    env = {"HEADY_PREDICTION_ENABLED": "false"}
    redis_server: RedisServer | None = None
    stream = f"heady:attention:bench-{namespace}"
    if {"redis", "http"} & set(args.paths):
        redis_server = RedisServer(tmp / f"heady-bench-redis-{namespace}")
        redis_server.start()
        env.update(HEADY_REDIS_URL=redis_server.url, HEADY_ATTENTION_STREAM=stream)
    say("starting the operator")
    op = OperatorProcess(cluster, tmp, env)
    op.start()
    assert op.proc is not None
    stats = ProcStats(op.proc.pid)
    redis_stats = ProcStats(redis_server.proc.pid) if redis_server and redis_server.proc else None
    result: dict[str, Any] = {}
    try:
        await aconfig.load_kube_config(config_file=str(cluster.kubeconfig))
        api = aclient.ApiClient()
        core = aclient.CoreV1Api(api)
        custom = aclient.CustomObjectsApi(api)
        watch = PodWatch(namespace, services)
        watcher = asyncio.create_task(watch.run(core, args.pods))
        say("waiting for every pod at baseline")
        settle_start = time.perf_counter()

        def settled() -> bool:
            if watcher.done():
                watcher.result()  # surfaces a crashed watch instead of waiting forever
            return all(watch.full_base(s, args.pods) for s in services)

        await asyncio.to_thread(wait_for, settled, f"{len(services) * args.pods} pods at baseline", 300, 0.2)
        settle_s = time.perf_counter() - settle_start

        async def send_object(svc: str, name: str, expires: datetime) -> None:
            body = {
                "apiVersion": "heady.io/v1alpha1",
                "kind": "AttentionSignal",
                "metadata": {"name": name},
                "spec": {"services": [svc], "source": "bench", "expiresAt": expires.isoformat()},
            }
            await custom.create_namespaced_custom_object(
                "heady.io", "v1alpha1", namespace, "attentionsignals", body
            )

        # Warm-up: one escalation end to end, so connection set-up is not in the first sample.
        await run_rate(custom, watch, namespace, services[:1], args.pods, 1, 1, "warmup", send_object)
        await asyncio.to_thread(wait_for, settled, "relaxed after warm-up", 120, 0.2)
        runs = []
        for rate in args.rates if "object" in args.paths else []:
            count = max(3, int(rate * args.seconds))
            say(f"{count} AttentionSignals at {rate:g}/s")
            cpu0, t0, m0 = stats.cpu_seconds(), time.perf_counter(), op.metrics()
            run = await run_rate(
                custom,
                watch,
                namespace,
                services,
                args.pods,
                rate,
                count,
                f"r{int(rate)}",
                send_object,
                args.attention_ms,
            )
            run["path"] = "AttentionSignal"
            run["measured"] = run["sent"]
            run.update(operator_quantiles(m0, op.metrics(), "bench"))
            run["operator_cpu_cores"] = round((stats.cpu_seconds() - cpu0) / (time.perf_counter() - t0), 2)
            run["operator_rss_mb"] = round(stats.rss_mb(), 1)
            runs.append(run)
            print(json.dumps(run), flush=True)
            # Let everything relax before the next rate.
            await asyncio.to_thread(wait_for, settled, "relaxed", 120, 0.2)

        if redis_server is not None:
            producer = aredis.Redis.from_url(redis_server.url, decode_responses=True)
            session = aiohttp.ClientSession(f"http://127.0.0.1:{op.port}")

            async def send_redis(svc: str, name: str, expires: datetime) -> None:
                fields = {"service": svc, "namespace": namespace, "expiresAt": expires.isoformat()}
                await producer.xadd(stream, {**fields, "source": "bench-redis"})

            async def send_http(svc: str, name: str, expires: datetime) -> None:
                event = {"service": svc, "namespace": namespace, "expiresAt": expires.isoformat()}
                async with session.post("/v1/attention", json={**event, "source": "bench-http"}) as resp:
                    if resp.status != 202:
                        raise RuntimeError(f"POST /v1/attention: {resp.status} {await resp.text()}")

            senders = {"redis": send_redis, "http": send_http}
            targets = {"redis": redis_server.url, "http": f"http://127.0.0.1:{op.port}"}
            try:
                for path in [p for p in ("redis", "http") if p in args.paths]:
                    # Warm-up: connections and the consumer's first read, not in the first sample.
                    await run_rate(
                        None, watch, namespace, services[:1], args.pods, 1, 1, "warm", senders[path]
                    )
                    await asyncio.to_thread(wait_for, settled, "relaxed after warm-up", 120, 0.2)
                    for rate in args.ingest_rates:
                        say(f"{path} at {rate:g} events/s for {args.seconds:g} s")
                        assert redis_stats is not None
                        cpu0, rcpu0, t0 = stats.cpu_seconds(), redis_stats.cpu_seconds(), time.perf_counter()
                        m0 = op.metrics()
                        run = await run_loaded(
                            watch,
                            namespace,
                            services,
                            args.pods,
                            rate,
                            args.seconds,
                            path,
                            targets[path],
                            stream,
                            senders[path],
                            args.attention_ms,
                            args.probe_rate,
                        )
                        spent = time.perf_counter() - t0
                        run["path"] = {"redis": "Redis stream", "http": "HTTP (via stream)"}[path]
                        if run["background_sent"] == 0:
                            # With background events on the same services the operator's own
                            # histogram times some probes from a later background event.
                            run.update(operator_quantiles(m0, op.metrics(), f"bench-{path}"))
                        run["operator_cpu_cores"] = round((stats.cpu_seconds() - cpu0) / spent, 2)
                        run["redis_cpu_cores"] = round((redis_stats.cpu_seconds() - rcpu0) / spent, 2)
                        run["operator_rss_mb"] = round(stats.rss_mb(), 1)
                        runs.append(run)
                        print(json.dumps(run), flush=True)
                        await asyncio.to_thread(wait_for, settled, "relaxed", 120, 0.2)
            finally:
                await session.close()
                await producer.aclose()
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        await api.close()
        result = {
            "benchmark": "attention_latency",
            "quick": args.quick,
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
            "services": args.services,
            "pods_per_service": args.pods,
            "settle_at_baseline_s": round(settle_s, 2),
            "attention_ms": args.attention_ms,
            "probe_rate_per_s": args.probe_rate,
            "runs": runs,
        }
    finally:
        op.stop()
        if redis_server is not None:
            redis_server.stop()
        cluster.core.delete_namespace(namespace, propagation_policy="Background")
    return result


def write(result: dict[str, Any], quick: bool) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = "attention_latency" + ("-quick" if quick else "")
    (RESULTS / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        f"# attention_latency ({result['services']} services x {result['pods_per_service']} pods, {result['date']})",
        "",
        f"Settled {result['services'] * result['pods_per_service']} pods at baseline in {result['settle_at_baseline_s']} s.",
        "",
        "| path | rate/s | achieved/s | sent | measured | p50 ms | p99 ms | max ms | operator p50/p99 <= ms "
        "| skipped | background | timeouts | send errors | operator CPU cores | Redis CPU cores | RSS MB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["runs"]:
        lines.append(
            f"| {r['path']} | {r['rate_per_s']:g} | {r['achieved_rate_per_s']} | {r['sent']} | {r.get('measured', r['sent'])} "
            f"| {r['p50_ms']} | {r['p99_ms']} | {r['max_ms']} "
            f"| {r.get('operator_p50_ms_le')}/{r.get('operator_p99_ms_le')} | {r['skipped_not_at_baseline']} "
            f"| {r.get('background_sent', 0)} | {r['timeouts']} | {r.get('send_errors', 0)} "
            f"| {r['operator_cpu_cores']} | {r.get('redis_cpu_cores', '-')} | {r['operator_rss_mb']} |"
        )
    (RESULTS / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="tiny run for CI")
    parser.add_argument("--services", type=int, default=50)
    parser.add_argument("--pods", type=int, default=4)
    parser.add_argument("--rates", type=float, nargs="+", default=[1, 10, 100], help="AttentionSignal path")
    parser.add_argument(
        "--ingest-rates", type=float, nargs="+", default=[100, 1000], help="Redis and HTTP paths"
    )
    parser.add_argument(
        "--attention-ms", type=int, default=ATTENTION_MS, help="expiry of each measured event"
    )
    parser.add_argument(
        "--probe-rate",
        type=float,
        default=PROBE_RATE,
        help="ingest paths: measured escalations per second at most",
    )
    parser.add_argument(
        "--paths", nargs="+", choices=["object", "redis", "http"], default=["object", "redis", "http"]
    )
    parser.add_argument("--seconds", type=float, default=10, help="how long each rate runs")
    parser.add_argument("--cluster", default="heady-bench")
    args = parser.parse_args()
    if args.quick:
        args.services, args.pods, args.rates, args.seconds = 4, 2, [2, 10], 1.5
        args.ingest_rates = [2, 10]
    result = asyncio.run(main_async(args))
    write(result, args.quick)


if __name__ == "__main__":
    main()
