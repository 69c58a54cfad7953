"""Attention latency on kwok: heady against a minimal controller and the raw resize ceiling (issue 12).

One run, one kwok cluster, three systems, each on a namespace of its own holding the same
N services x P pods (Deployments; Burstable pods whose CPU request moves between baseline and
peak, medium priority and cooldown 0 for heady):

- raw: the benchmark itself PATCHes pods/resize, nothing in between. (a) The ceiling: a loop
  resizing pods between the two levels with 1 and with 8 PATCHes in flight, for --raw-seconds
  each: resizes/s, and per resize the PATCH response time and the time until the benchmark's
  own watch sees the new spec. (b) The same signal rates as the controllers, where a "signal" is
  the P PATCHes to peak sent at once (8 in flight at most over all signals) and P back to
  baseline after --attention-ms.
- minimal: benchmarks/reference_controller.py as its own process: pod watch + AttentionSignal
  watch -> pods by service -> PATCH pods/resize, no status writes, nothing else.
- heady: the operator process (tests/harness.py OperatorProcess, HEADY_NAMESPACES = its namespace).

The controllers never run at the same time: each is started for its round and stopped after it
(its namespace's signals are deleted between rounds). Rounds alternate: for each repeat and each
rate, the ceiling is measured and then raw, minimal and heady run (the order rotates per round),
so load from anything else on the machine hits all three alike.

A run at a rate sends signals round-robin over the services (each AttentionSignal expires after
--attention-ms; a service not fully at baseline when its turn comes is skipped and counted).
Latency = just before the create call -> the benchmark's own pod watch has seen every pod of the
service with its spec at peak (the API server accepted every resize). A signal is lost when that
did not happen within --lost-timeout. The "saturation" rate is the one whose resizes (2 P per
signal) equal the ceiling measured so far (x --sat-factor). Sustained resizes/s: spec changes the
watch saw while the signals were being sent, per second of sending.

Per run, from the start of sending until every pod is back at baseline and writes stop:
API writes per signal (kube-apiserver apiserver_request_total, POST/PUT/PATCH/DELETE, without
leases and nodes, which the control plane and kwok write anyway; this counts the signal's create
and kwok's pod status updates for every system alike), controller CPU (utime+stime from /proc)
per accepted resize, RSS, and for heady its own heady_plan_seconds p99 and
heady_event_loop_lag_seconds p99 (upper bucket bounds; n/a when the operator has no such metric).

The ingest paths (--paths redis http, heady only, after the rounds): --ingest-rates events per
second over the Redis stream and POST /v1/attention, of which --probe-rate/s are measured
escalations and the rest below-threshold focus events sent by another process.

    .venv/bin/python benchmarks/attention_latency.py --cluster NAME   # 50 x 4, 5/10/20/saturation, x2
    .venv/bin/python benchmarks/attention_latency.py --quick          # tiny CI mode
    .venv/bin/python benchmarks/attention_latency.py --render results/attention_latency.json

Extra operator settings: --operator-env KEY=VALUE (repeatable). Writes
benchmarks/results/attention_latency.{json,md} (--stem to change; quick: *-quick.*, not committed).
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
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

sys.path.append(str(Path(__file__).resolve().parents[1]))  # appended: stdlib `operator` must win

import aiohttp
import redis.asyncio as aredis
from kubernetes_asyncio import client as aclient
from kubernetes_asyncio import config as aconfig

from benchmarks.measure import (
    ProcStats,
    RequestKey,
    apiserver_requests,
    histogram_quantile,
    pct,
    resizes_accepted,
    writes,
)
from tests.harness import (
    Cluster,
    OperatorProcess,
    RedisServer,
    deployment,
    headyservice,
    start_cluster,
)

RESULTS = Path(__file__).resolve().parent / "results"
HERE = Path(__file__).resolve().parent
ATTENTION_MS = 300
PROBE_RATE = 10.0
SEND_CONCURRENCY = 64
RAW_INFLIGHT = 8  # the raw system's PATCHes in flight at most (the ceiling's second setting)
# Small pods so three namespaces of them fit the default kwok nodes (4 x 8 CPU) even at peak.
# Burstable: heady keeps the CPU request 1m below the limit at peak and 90% of it at baseline;
# the minimal controller and the raw client are given exactly these numbers.
LIMITS = {"cpu": "20m", "memory": "64Mi"}
TEMPLATE_REQUESTS = {"cpu": "10m", "memory": "32Mi"}
PEAK = {"cpu": "19m", "memory": "64Mi"}
BASE = {"cpu": "18m", "memory": "57Mi"}
SYSTEMS = ("raw", "minimal", "heady")
Sender = Callable[[str, str, datetime], Coroutine[Any, Any, None]]  # (service, signal name, expiry)
TARGETS = {
    "heady_p50_vs_minimal": 1.2,
    "heady_p99_vs_minimal": 1.5,
    "lost_up_to_fraction_of_ceiling": 0.8,
    "sustained_vs_ceiling": 0.9,
    "writes_vs_minimal": 1.1,
    "plan_p99_ms": 2.0,
    "loop_lag_p99_ms": 5.0,
}


def say(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def ms(seconds: float | None) -> float | None:
    return None if seconds is None or seconds != seconds else round(seconds * 1000, 1)


# ---------------------------------------------------------------- our own view of the pods


class PodWatch:
    """A raw-JSON pod watch of one namespace: each running pod's level, per-service counts,
    futures for "every pod of a service at peak" and "this pod at this level", and the time of
    every level change (the accepted resizes)."""

    def __init__(self, namespace: str, replicas: int) -> None:
        self.namespace = namespace
        self.replicas = replicas
        self.level: dict[str, tuple[str, str]] = {}  # running pod -> (app, "peak" | "base" | "other")
        self.count: Counter[tuple[str, str]] = Counter()  # (app, level) -> running pods
        self.pods_of: dict[str, set[str]] = {}
        self.peak_waiters: dict[str, list[asyncio.Future[float]]] = {}
        self.pod_waiters: dict[tuple[str, str], list[asyncio.Future[float]]] = {}
        self.changes: list[float] = []

    @staticmethod
    def _level(pod: dict[str, Any]) -> str:
        containers = (pod.get("spec") or {}).get("containers") or [{}]
        cpu = ((containers[0].get("resources") or {}).get("requests") or {}).get("cpu")
        return "peak" if cpu == PEAK["cpu"] else "base" if cpu == BASE["cpu"] else "other"

    def full(self, app: str, level: str) -> bool:
        return self.count[(app, level)] >= self.replicas

    def all_at(self, apps: list[str], level: str) -> bool:
        return all(self.full(a, level) for a in apps)

    def wait_peak(self, app: str) -> asyncio.Future[float]:
        fut: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.peak_waiters.setdefault(app, []).append(fut)
        return fut

    def wait_pod(self, pod: str, level: str) -> asyncio.Future[float]:
        fut: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.pod_waiters.setdefault((pod, level), []).append(fut)
        return fut

    def _apply(self, kind: str, pod: dict[str, Any], now: float) -> None:
        meta = pod.get("metadata") or {}
        name = meta.get("name", "")
        app = (meta.get("labels") or {}).get("app", "")
        old = self.level.pop(name, None)
        if old is not None:
            self.count[old] -= 1
        if kind == "DELETED" or (pod.get("status") or {}).get("phase") != "Running":
            self.pods_of.get(app, set()).discard(name)
            return
        new = (app, self._level(pod))
        self.level[name] = new
        self.count[new] += 1
        self.pods_of.setdefault(app, set()).add(name)
        if old is not None and old[1] != new[1]:
            self.changes.append(now)
        for fut in self.pod_waiters.pop((name, new[1]), []):
            if not fut.done():
                fut.set_result(now)
        if new[1] == "peak" and self.full(app, "peak"):
            for fut in self.peak_waiters.pop(app, []):
                if not fut.done():
                    fut.set_result(now)

    async def run(self, core: aclient.CoreV1Api) -> None:
        while True:
            resp: Any = await core.list_namespaced_pod(self.namespace, _preload_content=False)
            data = json.loads(await resp.read())
            if "resourceVersion" not in (data.get("metadata") or {}):
                say(f"pod list failed ({resp.status}), again in 1 s: {str(data)[:300]}")
                await asyncio.sleep(1)
                continue
            self.level.clear()
            self.count.clear()
            self.pods_of.clear()
            now = time.perf_counter()
            for pod in data.get("items", []):
                self._apply("ADDED", pod, now)
            rv = data["metadata"]["resourceVersion"]
            gone = False
            while not gone:
                resp = await core.list_namespaced_pod(
                    self.namespace,
                    watch=True,
                    resource_version=rv,
                    allow_watch_bookmarks=True,
                    timeout_seconds=1800,
                    _preload_content=False,
                    _request_timeout=1900,
                )
                async for line in resp.content:
                    if not line.strip():
                        continue
                    now = time.perf_counter()
                    event = json.loads(line)
                    kind, obj = event["type"], event["object"]
                    if kind == "ERROR":
                        say(f"pod watch error, listing again: {str(obj)[:300]}")
                        gone = True  # 410 Gone: list again
                        break
                    rv = (obj.get("metadata") or {}).get("resourceVersion", rv)
                    if kind != "BOOKMARK":
                        self._apply(kind, obj, now)
                resp.release()


async def wait_until(
    check: Callable[[], bool], what: str, limit_s: float, guards: list[asyncio.Task[None]]
) -> None:
    deadline = time.perf_counter() + limit_s
    while time.perf_counter() < deadline:
        for task in guards:
            if task.done():
                task.result()  # a crashed watch surfaces here instead of as a timeout
        if check():
            return
        await asyncio.sleep(0.05)
    raise TimeoutError(f"timed out after {limit_s:.0f} s waiting for {what}")


# ---------------------------------------------------------------- the systems


def resize_body(level: dict[str, str]) -> dict[str, Any]:
    return {"spec": {"containers": [{"name": "app", "resources": {"requests": dict(level)}}]}}


@dataclass
class Bench:
    args: argparse.Namespace
    cluster: Cluster
    api: aclient.ApiClient
    services: list[str]
    ns: dict[str, str]  # system -> namespace
    watches: dict[str, PodWatch]
    watch_tasks: list[asyncio.Task[None]]
    ceilings: list[dict[str, Any]] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.core = aclient.CoreV1Api(self.api)
        self.custom = aclient.CustomObjectsApi(self.api)

    async def patch(self, namespace: str, pod: str, level: dict[str, str]) -> None:
        resp: Any = await self.core.patch_namespaced_pod_resize(
            pod, namespace, resize_body(level), _preload_content=False
        )
        await resp.read()

    async def requests_now(self) -> Counter[RequestKey]:
        text = await asyncio.to_thread(lambda: self.cluster.kubectl("get", "--raw", "/metrics").stdout)
        return apiserver_requests(text)

    async def settled(self, system: str, limit_s: float = 120) -> None:
        await wait_until(
            lambda: self.watches[system].all_at(self.services, "base"),
            f"every {system} pod at baseline",
            limit_s,
            self.watch_tasks,
        )

    async def quiesce(self, limit_s: float = 15) -> tuple[float, Counter[RequestKey]]:
        """Until a second passes without writes (but the background ones); (seconds, last snapshot)."""
        start = time.perf_counter()
        prev = await self.requests_now()
        while time.perf_counter() - start < limit_s:
            await asyncio.sleep(1.0)
            cur = await self.requests_now()
            if not writes(cur - prev):
                return time.perf_counter() - start, cur
            prev = cur
        return time.perf_counter() - start, prev

    # ---- the ceiling: raw PATCHes, k in flight

    async def ceiling(self, inflight: int, seconds: float) -> dict[str, Any]:
        watch, namespace = self.watches["raw"], self.ns["raw"]
        idle = [p for p, (_, lvl) in watch.level.items() if lvl in ("peak", "base")]
        random.Random(inflight).shuffle(idle)
        current = {p: watch.level[p][1] for p in idle}
        resp_lat: list[float] = []
        watch_lat: list[float] = []
        done = 0
        errors = 0
        pending: set[asyncio.Task[None]] = set()

        async def seen(fut: asyncio.Future[float], start: float, pod: str) -> None:
            with contextlib.suppress(TimeoutError):
                watch_lat.append(await asyncio.wait_for(fut, 10) - start)
            idle.append(pod)  # patched again only once the watch showed the last change

        async def worker(stop_at: float) -> None:
            nonlocal done, errors
            while time.perf_counter() < stop_at:
                if not idle:
                    await asyncio.sleep(0.001)
                    continue
                pod = idle.pop(0)
                target = "base" if current[pod] == "peak" else "peak"
                fut = watch.wait_pod(pod, target)
                start = time.perf_counter()
                try:
                    await self.patch(namespace, pod, PEAK if target == "peak" else BASE)
                except aclient.ApiException:
                    errors += 1
                    fut.cancel()
                    idle.append(pod)
                    continue
                resp_lat.append(time.perf_counter() - start)
                done += 1
                current[pod] = target
                task = asyncio.create_task(seen(fut, start, pod))
                pending.add(task)
                task.add_done_callback(pending.discard)

        t0 = time.perf_counter()
        await asyncio.gather(*(worker(t0 + seconds) for _ in range(inflight)))
        elapsed = time.perf_counter() - t0
        await asyncio.gather(*pending)
        # Back to baseline for the raw system's rate run.
        back = [p for p, lvl in current.items() if lvl != "base"]
        sem = asyncio.Semaphore(8)

        async def restore(pod: str) -> None:
            async with sem:
                await self.patch(namespace, pod, BASE)

        await asyncio.gather(*(restore(p) for p in back))
        await self.settled("raw")
        return {
            "inflight": inflight,
            "seconds": round(elapsed, 2),
            "resizes": done,
            "errors": errors,
            "resizes_per_s": round(done / elapsed, 1),
            "response_p50_ms": ms(pct(resp_lat, 50)),
            "response_p99_ms": ms(pct(resp_lat, 99)),
            "watch_p50_ms": ms(pct(watch_lat, 50)),
            "watch_p99_ms": ms(pct(watch_lat, 99)),
        }

    def ceiling_now(self) -> float | None:
        values = [c["resizes_per_s"] for c in self.ceilings if c["inflight"] == 8]
        return statistics.median(values) if values else None

    # ---- senders

    def raw_sender(self) -> tuple[Sender, set[asyncio.Task[None]]]:
        watch, namespace = self.watches["raw"], self.ns["raw"]
        relaxers: set[asyncio.Task[None]] = set()
        # As many PATCHes in flight as the ceiling's knee; unbounded, an overloaded API server
        # would queue them all and every signal would wait for all the others.
        gate = asyncio.Semaphore(RAW_INFLIGHT)

        async def patch(pod: str, level: dict[str, str]) -> None:
            async with gate:
                await self.patch(namespace, pod, level)

        async def relax(pods: list[str]) -> None:
            await asyncio.sleep(self.args.attention_ms / 1000)
            await asyncio.gather(*(patch(p, BASE) for p in pods))

        async def send(svc: str, name: str, expires: datetime) -> None:
            pods = sorted(watch.pods_of.get(svc, ()))
            await asyncio.gather(*(patch(p, PEAK) for p in pods))
            task = asyncio.create_task(relax(pods))
            relaxers.add(task)
            task.add_done_callback(relaxers.discard)

        return send, relaxers

    def signal_sender(self, system: str) -> Sender:
        namespace = self.ns[system]
        custom = self.custom

        async def send(svc: str, name: str, expires: datetime) -> None:
            body = {
                "apiVersion": "heady.io/v1alpha1",
                "kind": "AttentionSignal",
                "metadata": {"name": name},
                "spec": {"services": [svc], "source": "bench", "expiresAt": expires.isoformat()},
            }
            resp: Any = await custom.create_namespaced_custom_object(
                "heady.io", "v1alpha1", namespace, "attentionsignals", body, _preload_content=False
            )
            await resp.read()

        return send

    async def delete_signals(self, system: str) -> None:
        await self.custom.delete_collection_namespaced_custom_object(
            "heady.io", "v1alpha1", self.ns[system], "attentionsignals"
        )

    # ---- one run at one rate

    async def run_rate(
        self,
        system: str,
        rate: float,
        seconds: float,
        label: str,
        send: Sender,
        services: list[str] | None = None,
        count: int | None = None,
    ) -> dict[str, Any]:
        watch = self.watches[system]
        services = services or self.services
        count = count or max(3, int(rate * seconds))
        latencies: list[float] = []
        skipped = lost = late = 0
        pending: list[tuple[float, asyncio.Future[float]]] = []
        sends: list[asyncio.Task[None]] = []
        errors: list[str] = []
        interval = 1.0 / rate
        changes0 = len(watch.changes)
        start = time.perf_counter()
        for i in range(count):
            delay = start + i * interval - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            svc = services[i % len(services)]
            if not watch.full(svc, "base"):
                skipped += 1
                continue
            fut = watch.wait_peak(svc)
            sent = time.perf_counter()
            expires = datetime.now(UTC) + timedelta(milliseconds=self.args.attention_ms)
            # Sent concurrently: awaiting each create would cap the rate at 1 / API round-trip.
            sends.append(asyncio.create_task(send(svc, f"{label}-{uuid.uuid4().hex[:6]}-{i}", expires)))
            pending.append((sent, fut))
        send_end = time.perf_counter()
        send_phase = send_end - start
        for res in await asyncio.gather(*sends, return_exceptions=True):
            if isinstance(res, BaseException):
                errors.append(repr(res))
        changes = [t for t in watch.changes[changes0:] if t <= send_end]
        deadline = time.perf_counter() + self.args.lost_timeout
        for sent, fut in pending:
            try:
                done = await asyncio.wait_for(fut, timeout=max(0.0, deadline - time.perf_counter()))
            except TimeoutError:
                lost += 1
                continue
            latencies.append(done - sent)
            late += done - sent > self.args.attention_ms / 1000
        return {
            "system": system,
            "rate_per_s": round(rate, 2),
            "sent": len(pending),
            "skipped_not_at_baseline": skipped,
            "send_errors": len(errors),
            "first_send_error": errors[0] if errors else None,
            "lost": lost,
            "late": late,
            "achieved_rate_per_s": round(len(pending) / max(send_phase, 1e-9), 1),
            "p50_ms": ms(pct(latencies, 50)),
            "p99_ms": ms(pct(latencies, 99)),
            "mean_ms": ms(statistics.fmean(latencies)) if latencies else None,
            "max_ms": ms(max(latencies)) if latencies else None,
            "sustained_resizes_per_s": round(len(changes) / max(send_phase, 1e-9), 1),
            "latencies_ms": [ms(x) for x in latencies],
        }

    async def measured(
        self,
        system: str,
        rate: float,
        label: str,
        send: Sender,
        proc: ProcStats | None,
        metrics: Callable[[], str] | None,
        relaxers: set[asyncio.Task[None]] | None = None,
    ) -> dict[str, Any]:
        """One run with its costs: API writes, CPU, RSS, the operator's own histograms."""
        r0 = await self.requests_now()
        m0 = await asyncio.to_thread(metrics) if metrics else ""
        cpu0 = proc.cpu_seconds() if proc else 0.0
        t0 = time.perf_counter()
        run = await self.run_rate(system, rate, self.args.seconds, label, send)
        if relaxers:
            await asyncio.gather(*list(relaxers))
        await self.settled(system)
        _, r1 = await self.quiesce()
        window = time.perf_counter() - t0
        delta = r1 - r0
        w = writes(delta)
        resizes = resizes_accepted(delta)
        run.update(
            window_s=round(window, 2),
            writes=w,
            writes_per_signal=round(sum(w.values()) / run["sent"], 2) if run["sent"] else None,
            resizes_accepted=resizes,
        )
        if proc is not None:
            cpu = proc.cpu_seconds() - cpu0
            run.update(
                cpu_s=round(cpu, 2),
                cpu_cores=round(cpu / window, 3),
                cpu_ms_per_resize=round(1000 * cpu / resizes, 2) if resizes else None,
                rss_mb=round(proc.rss_mb(), 1),
                hwm_mb=round(proc.hwm_mb(), 1),
            )
        if metrics is not None:
            m1 = await asyncio.to_thread(metrics)
            run.update(
                plan_p99_ms_le=ms(histogram_quantile(m0, m1, "heady_plan_seconds", 0.99)),
                loop_lag_p99_ms_le=ms(histogram_quantile(m0, m1, "heady_event_loop_lag_seconds", 0.99)),
                loop_lag_metric="heady_event_loop_lag_seconds" in m1,
                operator_p50_ms_le=ms(
                    histogram_quantile(m0, m1, "heady_signal_to_resize_seconds", 0.5, {"source": "bench"})
                ),
                operator_p99_ms_le=ms(
                    histogram_quantile(m0, m1, "heady_signal_to_resize_seconds", 0.99, {"source": "bench"})
                ),
            )
        return run

    # ---- the controllers' lifetimes

    @contextlib.asynccontextmanager
    async def minimal(self) -> Any:
        cmd = [
            sys.executable,
            str(HERE / "reference_controller.py"),
            "--kubeconfig",
            str(self.cluster.kubeconfig),
            "--namespace",
            self.ns["minimal"],
            "--peak",
            json.dumps(PEAK),
            "--baseline",
            json.dumps(BASE),
        ]
        log = (Path(os.environ.get("TMPDIR", "/tmp")) / f"reference-{self.ns['minimal']}.log").open("ab")
        proc = await asyncio.create_subprocess_exec(
            *cmd, stdout=asyncio.subprocess.PIPE, stderr=log, env=self.cluster.env
        )
        try:
            assert proc.stdout is not None
            line = await asyncio.wait_for(proc.stdout.readline(), 60)
            if line.strip() != b"ready":
                raise RuntimeError(
                    f"reference controller did not start (exit {proc.returncode}), see {log.name}"
                )
            yield proc
        finally:
            if proc.returncode is None:
                proc.terminate()
                try:
                    await asyncio.wait_for(proc.wait(), 15)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()
            log.close()

    @contextlib.asynccontextmanager
    async def heady(self, extra: dict[str, str] | None = None) -> Any:
        env = {"HEADY_PREDICTION_ENABLED": "false", "HEADY_NAMESPACES": self.ns["heady"]}
        env.update(dict(kv.split("=", 1) for kv in self.args.operator_env))
        env.update(extra or {})
        op = OperatorProcess(self.cluster, Path(os.environ.get("TMPDIR", "/tmp")), env)
        await asyncio.to_thread(op.start)
        try:
            yield op
        finally:
            await asyncio.to_thread(op.stop)

    # ---- one round: the ceiling, then each system at one rate

    async def round(self, index: int, rate_name: str) -> None:
        for k in (1, 8):
            c = await self.ceiling(k, self.args.raw_seconds)
            c["round"] = index
            self.ceilings.append(c)
            say(f"ceiling, {k} in flight: {c['resizes_per_s']} resizes/s, watch p50 {c['watch_p50_ms']} ms")
        ceiling = self.ceiling_now()
        per_signal = 2 * self.args.pods
        if rate_name == "sat":
            assert ceiling is not None
            rate = self.args.sat_factor * ceiling / per_signal
        else:
            rate = float(rate_name)
        order = SYSTEMS[index % 3 :] + SYSTEMS[: index % 3]
        for system in order:
            say(f"round {index}: {system} at {rate:.1f} signals/s ({rate_name})")
            label = f"{system[:3]}{index}"
            if system == "raw":
                send, relaxers = self.raw_sender()
                run = await self.measured(system, rate, label, send, None, None, relaxers)
                start_s = 0.0
            elif system == "minimal":
                t_start = time.perf_counter()
                async with self.minimal() as proc:
                    stats = ProcStats(proc.pid)
                    await self.settled(system, 300)
                    start_s = time.perf_counter() - t_start
                    await self.quiesce()
                    send = self.signal_sender(system)
                    await self.run_rate(system, 1, 1, f"warm{index}", send, self.services[:1], 1)
                    await self.settled(system)
                    run = await self.measured(system, rate, label, send, stats, None)
                await self.delete_signals(system)
            else:
                t_start = time.perf_counter()
                async with self.heady() as op:
                    assert op.proc is not None
                    stats = ProcStats(op.proc.pid)
                    await self.settled(system, 300)
                    start_s = time.perf_counter() - t_start
                    await self.quiesce()
                    send = self.signal_sender(system)
                    await self.run_rate(system, 1, 1, f"warm{index}", send, self.services[:1], 1)
                    await self.settled(system)
                    run = await self.measured(system, rate, label, send, stats, op.metrics)
                await self.delete_signals(system)
            run.update(
                round=index,
                rate_name=rate_name,
                start_to_settled_s=round(start_s, 2),
                loadavg_1m=round(os.getloadavg()[0], 1),
                ceiling_resizes_per_s=ceiling,
                offered_fraction_of_ceiling=round(rate * per_signal / ceiling, 2) if ceiling else None,
            )
            self.runs.append(run)
            brief = {k: v for k, v in run.items() if k not in ("latencies_ms", "writes")}
            print(json.dumps(brief), flush=True)


# ---------------------------------------------------------------- ingest paths (heady only)


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


async def ingest_runs(bench: Bench) -> list[dict[str, Any]]:
    """heady's Redis and HTTP ingest at --ingest-rates events/s (see the module docstring)."""
    args = bench.args
    namespace = bench.ns["heady"]
    tmp = Path(os.environ.get("TMPDIR", "/tmp"))
    stream = f"heady:attention:bench-{namespace}"
    redis_server = RedisServer(tmp / f"heady-bench-redis-{namespace}")
    redis_server.start()
    out: list[dict[str, Any]] = []
    try:
        env = {"HEADY_REDIS_URL": redis_server.url, "HEADY_ATTENTION_STREAM": stream}
        async with bench.heady(env) as op:
            assert op.proc is not None and redis_server.proc is not None
            stats, redis_stats = ProcStats(op.proc.pid), ProcStats(redis_server.proc.pid)
            await bench.settled("heady")
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
                    await bench.run_rate("heady", 1, 1, "warm", senders[path], bench.services[:1], 1)
                    await bench.settled("heady")
                    for rate in args.ingest_rates:
                        say(f"heady ingest: {path} at {rate:g} events/s for {args.seconds:g} s")
                        cpu0, rcpu0, t0 = stats.cpu_seconds(), redis_stats.cpu_seconds(), time.perf_counter()
                        ctx = multiprocessing.get_context("spawn")
                        queue = ctx.Queue()
                        background = max(0.0, rate - args.probe_rate)
                        proc = ctx.Process(
                            target=background_load,
                            args=(
                                path,
                                targets[path],
                                stream,
                                namespace,
                                bench.services,
                                background,
                                args.seconds,
                                queue,
                            ),
                            daemon=True,
                        )
                        proc.start()
                        assert await asyncio.to_thread(queue.get, True, 60) == "ready"
                        probes = min(rate, args.probe_rate)
                        run = await bench.run_rate(
                            "heady",
                            probes,
                            args.seconds,
                            f"{path}{int(rate)}",
                            senders[path],
                            count=max(3, int(probes * args.seconds)),
                        )
                        try:
                            load: dict[str, Any] = await asyncio.to_thread(queue.get, True, 60)
                        except Exception:  # queue.Empty: its sends still hang on an overloaded server
                            proc.terminate()
                            load = {
                                "sent": 0,
                                "errors": 0,
                                "rate": 0.0,
                                "first_error": "load still sending 60 s later",
                            }
                        await asyncio.to_thread(proc.join, 30)
                        spent = time.perf_counter() - t0
                        run.pop("latencies_ms")
                        run.update(
                            path={"redis": "Redis stream", "http": "HTTP (via stream)"}[path],
                            rate_per_s=rate,
                            measured=run["sent"],
                            background_sent=load["sent"],
                            background_rate_per_s=round(load["rate"], 1),
                            background_errors=load["errors"],
                            first_background_error=load["first_error"],
                            operator_cpu_cores=round((stats.cpu_seconds() - cpu0) / spent, 2),
                            redis_cpu_cores=round((redis_stats.cpu_seconds() - rcpu0) / spent, 2),
                            operator_rss_mb=round(stats.rss_mb(), 1),
                        )
                        out.append(run)
                        print(json.dumps(run), flush=True)
                        await bench.settled("heady")
            finally:
                await session.close()
                await producer.aclose()
    finally:
        redis_server.stop()
    return out


# ---------------------------------------------------------------- the run


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    t_begin = time.perf_counter()
    cluster = await asyncio.to_thread(start_cluster, args.cluster)
    # Pods left by an interrupted run would take the nodes' room.
    cluster.kubectl(
        "delete", "namespace", "-l", "heady.io/test=bench", "--wait=true", "--timeout=120s", check=False
    )
    tag = uuid.uuid4().hex[:6]
    ns = {s: f"bench-{tag}-{s[:3]}" for s in SYSTEMS}
    services = [f"svc-{i:03d}" for i in range(args.services)]
    objs: list[dict[str, Any]] = []
    for system, namespace in ns.items():
        cluster.core.create_namespace(
            cast(Any, {"metadata": {"name": namespace, "labels": {"heady.io/test": "bench"}}})
        )
        for name in services:
            objs.append(deployment(name, namespace, args.pods, TEMPLATE_REQUESTS, LIMITS))
            if system == "heady":
                objs.append(headyservice(name, namespace, peak=LIMITS, priority="medium", cooldownSeconds=0))
    say(f"creating 3 x {len(services)} Deployments x {args.pods} pods in {', '.join(ns.values())}")
    await asyncio.to_thread(cluster.apply, objs)
    await aconfig.load_kube_config(config_file=str(cluster.kubeconfig))
    conf = aclient.Configuration.get_default_copy()
    conf.connection_pool_maxsize = 128
    api = aclient.ApiClient(conf)
    watches = {s: PodWatch(ns[s], args.pods) for s in SYSTEMS}
    core = aclient.CoreV1Api(api)
    tasks = [asyncio.create_task(w.run(core)) for w in watches.values()]
    bench = Bench(args, cluster, api, services, ns, watches, tasks)
    result: dict[str, Any] = {}
    try:

        def running() -> bool:
            return all(
                sum(n for (_, lvl), n in w.count.items()) >= len(services) * args.pods
                for w in watches.values()
            )

        await wait_until(running, "every pod Running", 300, tasks)
        say("every pod Running; bringing them to baseline")
        raw_pods = [p for p, (_, lvl) in watches["raw"].level.items() if lvl != "base"]
        sem = asyncio.Semaphore(8)

        async def to_base(pod: str) -> None:
            async with sem:
                await bench.patch(ns["raw"], pod, BASE)

        await asyncio.gather(*(to_base(p) for p in raw_pods))
        await bench.settled("raw")
        # The controllers bring their pods to baseline in their first round (start_to_settled_s).
        setup_s = time.perf_counter() - t_begin
        index = 0
        for _ in range(args.repeats):
            for rate_name in args.rates:
                await bench.round(index, rate_name)
                index += 1
        ingest: list[dict[str, Any]] = []
        if {"redis", "http"} & set(args.paths) and args.ingest_rates:
            try:
                ingest = await ingest_runs(bench)
            except Exception as exc:  # the three-system comparison above is kept
                say(f"ingest runs failed: {exc!r}")
                ingest = [{"error": repr(exc)}]
        result = {
            "benchmark": "attention_latency",
            "quick": args.quick,
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "note": "the control plane, kwok, the controller under test and this benchmark share these "
                "cores (and other clusters may be running)",
            },
            "cluster": args.cluster,
            "services": args.services,
            "pods_per_service": args.pods,
            "attention_ms": args.attention_ms,
            "seconds_per_run": args.seconds,
            "repeats": args.repeats,
            "levels": {"peak": PEAK, "baseline": BASE, "limits": LIMITS},
            "setup_s": round(setup_s, 1),
            "total_s": round(time.perf_counter() - t_begin, 1),
            "ceilings": bench.ceilings,
            "runs": bench.runs,
            "ingest": ingest,
            "targets": TARGETS,
        }
        result["summary"] = summarize(result)
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        await api.close()
        for namespace in ns.values():
            with contextlib.suppress(Exception):
                cluster.core.delete_namespace(namespace, propagation_policy="Background")
    return result


# ---------------------------------------------------------------- summary and report (pure)


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a is not None and b else None


def summarize(result: dict[str, Any]) -> dict[str, Any]:
    """Pools each system's runs per rate (over repeats) and sets the targets beside the numbers."""
    c1 = [c for c in result["ceilings"] if c["inflight"] == 1]
    c8 = [c for c in result["ceilings"] if c["inflight"] == 8]

    def med(rows: list[dict[str, Any]], key: str) -> float | None:
        vals = [r[key] for r in rows if r.get(key) is not None]
        return round(statistics.median(vals), 1) if vals else None

    ceiling = {
        "resizes_per_s_1": med(c1, "resizes_per_s"),
        "resizes_per_s_8": med(c8, "resizes_per_s"),
        "watch_p50_ms_1": med(c1, "watch_p50_ms"),
        "watch_p99_ms_1": med(c1, "watch_p99_ms"),
        "response_p50_ms_8": med(c8, "response_p50_ms"),
        "watch_p50_ms_8": med(c8, "watch_p50_ms"),
        "watch_p99_ms_8": med(c8, "watch_p99_ms"),
    }
    rates: dict[str, dict[str, Any]] = {}
    for rate_name in dict.fromkeys(r["rate_name"] for r in result["runs"]):
        row: dict[str, Any] = {}
        for system in SYSTEMS:
            runs = [r for r in result["runs"] if r["rate_name"] == rate_name and r["system"] == system]
            if not runs:
                continue
            lat = [x for r in runs for x in r["latencies_ms"] if x is not None]
            sent = sum(r["sent"] for r in runs)
            resizes = sum(r["resizes_accepted"] for r in runs)
            cpu = [r["cpu_s"] for r in runs if "cpu_s" in r]
            row[system] = {
                "rate_per_s": round(statistics.fmean(r["rate_per_s"] for r in runs), 1),
                "offered_fraction_of_ceiling": med(runs, "offered_fraction_of_ceiling"),
                "sent": sent,
                "skipped": sum(r["skipped_not_at_baseline"] for r in runs),
                "lost": sum(r["lost"] for r in runs),
                "p50_ms": round(pct(lat, 50), 1) if lat else None,
                "p99_ms": round(pct(lat, 99), 1) if lat else None,
                "writes_per_signal": round(sum(sum(r["writes"].values()) for r in runs) / sent, 2)
                if sent
                else None,
                "sustained_resizes_per_s": med(runs, "sustained_resizes_per_s"),
                "cpu_ms_per_resize": round(1000 * sum(cpu) / resizes, 2) if cpu and resizes else None,
                "cpu_cores": med(runs, "cpu_cores"),
                "rss_mb": max((r["rss_mb"] for r in runs if "rss_mb" in r), default=None),
                "plan_p99_ms_le": max(
                    (r["plan_p99_ms_le"] for r in runs if r.get("plan_p99_ms_le")), default=None
                ),
                "loop_lag_p99_ms_le": max(
                    (r["loop_lag_p99_ms_le"] for r in runs if r.get("loop_lag_p99_ms_le")), default=None
                ),
            }
        h, m, r = row.get("heady", {}), row.get("minimal", {}), row.get("raw", {})
        row["ratios"] = {
            "heady_vs_minimal_p50": _ratio(h.get("p50_ms"), m.get("p50_ms")),
            "heady_vs_minimal_p99": _ratio(h.get("p99_ms"), m.get("p99_ms")),
            "heady_vs_raw_p50": _ratio(h.get("p50_ms"), r.get("p50_ms")),
            "heady_vs_raw_p99": _ratio(h.get("p99_ms"), r.get("p99_ms")),
            "minimal_vs_raw_p50": _ratio(m.get("p50_ms"), r.get("p50_ms")),
            "heady_vs_minimal_writes": _ratio(h.get("writes_per_signal"), m.get("writes_per_signal")),
            "heady_sustained_vs_ceiling": _ratio(
                h.get("sustained_resizes_per_s"), ceiling["resizes_per_s_8"]
            ),
            "minimal_sustained_vs_ceiling": _ratio(
                m.get("sustained_resizes_per_s"), ceiling["resizes_per_s_8"]
            ),
        }
        rates[rate_name] = row
    t = result["targets"]
    checks: list[dict[str, Any]] = []

    def check(what: str, value: float | None, limit: float, below: bool = True) -> None:
        met = None if value is None else (value <= limit if below else value >= limit)
        checks.append({"target": what, "value": value, "met": met})

    for name in ("5", "10"):
        if name in rates:
            ra = rates[name]["ratios"]
            check(
                f"heady p50 <= {t['heady_p50_vs_minimal']}x minimal at {name}/s",
                ra["heady_vs_minimal_p50"],
                1.2,
            )
            check(
                f"heady p99 <= {t['heady_p99_vs_minimal']}x minimal at {name}/s",
                ra["heady_vs_minimal_p99"],
                1.5,
            )
    lost = [
        row["heady"]["lost"]
        for row in rates.values()
        if "heady" in row
        and (row["heady"]["offered_fraction_of_ceiling"] or 9) <= t["lost_up_to_fraction_of_ceiling"]
    ]
    check(
        f"heady lost signals up to {t['lost_up_to_fraction_of_ceiling']:.0%} of the ceiling",
        sum(lost) if lost else None,
        0,
    )
    if "sat" in rates:
        check(
            f"heady sustained resizes/s >= {t['sustained_vs_ceiling']}x ceiling (saturation)",
            rates["sat"]["ratios"]["heady_sustained_vs_ceiling"],
            t["sustained_vs_ceiling"],
            below=False,
        )
    worst_writes = max(
        (
            row["ratios"]["heady_vs_minimal_writes"]
            for row in rates.values()
            if row["ratios"]["heady_vs_minimal_writes"]
        ),
        default=None,
    )
    check(
        f"heady API writes per signal <= {t['writes_vs_minimal']}x minimal (worst rate)",
        worst_writes,
        t["writes_vs_minimal"],
    )
    plan = max(
        (row["heady"]["plan_p99_ms_le"] or 0 for row in rates.values() if "heady" in row), default=None
    )
    check(
        f"heady plan p99 < {t['plan_p99_ms']} ms (here {result['services'] * result['pods_per_service']} pods)",
        plan or None,
        t["plan_p99_ms"],
    )
    lag = max(
        (row["heady"]["loop_lag_p99_ms_le"] or 0 for row in rates.values() if "heady" in row), default=None
    )
    check(f"heady event-loop lag p99 < {t['loop_lag_p99_ms']} ms", lag or None, t["loop_lag_p99_ms"])
    return {"ceiling": ceiling, "rates": rates, "checks": checks}


def _v(x: Any) -> str:
    return "n/a" if x is None else f"{x:g}" if isinstance(x, float) else str(x)


def _pair(row: dict[str, Any], a: str, b: str) -> str:
    return f"{_v(row.get(a))} / {_v(row.get(b))}" if row else "-"


def write(result: dict[str, Any], stem: str) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{stem}.json").write_text(json.dumps(result, indent=1) + "\n")
    s = result["summary"]
    c = s["ceiling"]
    loads = [r["loadavg_1m"] for r in result["runs"] if "loadavg_1m" in r]
    lines = [
        f"# attention_latency ({result['services']} services x {result['pods_per_service']} pods per system, "
        f"{result['date']})",
        "",
        *([result["note"], ""] if result.get("note") else []),
        f"One kwok cluster, {result['machine']['cpus']} cores shared by everything; {result['repeats']} repeat(s) of "
        f"{result['seconds_per_run']:g} s per system and rate, rounds alternating; signals last "
        f"{result['attention_ms']} ms. Run took {result['total_s']:.0f} s; 1-minute load average during the runs "
        f"{_v(min(loads, default=None))}-{_v(max(loads, default=None))}.",
        "",
        f"Ceiling (raw pods/resize PATCH, median of rounds): 1 in flight {_v(c['resizes_per_s_1'])} resizes/s "
        f"(watch p50/p99 {_v(c['watch_p50_ms_1'])}/{_v(c['watch_p99_ms_1'])} ms); 8 in flight "
        f"{_v(c['resizes_per_s_8'])} resizes/s (response p50 {_v(c['response_p50_ms_8'])} ms, watch p50/p99 "
        f"{_v(c['watch_p50_ms_8'])}/{_v(c['watch_p99_ms_8'])} ms).",
        "",
        "Latency: signal created -> every pod of the service seen at peak by the benchmark's watch (ms).",
        "",
        "| rate/s | % of ceiling | raw p50/p99 | minimal p50/p99 | heady p50/p99 | heady/minimal p50, p99 "
        "| heady/raw p50, p99 | lost raw/min/heady | writes per signal raw/min/heady "
        "| sustained resizes/s raw/min/heady | CPU ms per resize min/heady | RSS MB min/heady "
        "| heady plan p99 <= ms | heady loop lag p99 <= ms |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, row in s["rates"].items():
        raw, mini, hd, ra = row.get("raw", {}), row.get("minimal", {}), row.get("heady", {}), row["ratios"]
        any_row = hd or mini or raw
        frac = any_row.get("offered_fraction_of_ceiling")
        label = f"{_v(any_row.get('rate_per_s'))}" + (" (saturation)" if name == "sat" else "")
        lines.append(
            f"| {label} | {_v(round(100 * frac) if frac else None)} | {_pair(raw, 'p50_ms', 'p99_ms')} "
            f"| {_pair(mini, 'p50_ms', 'p99_ms')} | {_pair(hd, 'p50_ms', 'p99_ms')} "
            f"| {_v(ra['heady_vs_minimal_p50'])}, {_v(ra['heady_vs_minimal_p99'])} "
            f"| {_v(ra['heady_vs_raw_p50'])}, {_v(ra['heady_vs_raw_p99'])} "
            f"| {_v(raw.get('lost'))}/{_v(mini.get('lost'))}/{_v(hd.get('lost'))} of {_v(hd.get('sent'))} "
            f"| {_v(raw.get('writes_per_signal'))}/{_v(mini.get('writes_per_signal'))}/{_v(hd.get('writes_per_signal'))} "
            f"| {_v(raw.get('sustained_resizes_per_s'))}/{_v(mini.get('sustained_resizes_per_s'))}/"
            f"{_v(hd.get('sustained_resizes_per_s'))} "
            f"| {_v(mini.get('cpu_ms_per_resize'))}/{_v(hd.get('cpu_ms_per_resize'))} "
            f"| {_v(mini.get('rss_mb'))}/{_v(hd.get('rss_mb'))} "
            f"| {_v(hd.get('plan_p99_ms_le'))} | {_v(hd.get('loop_lag_p99_ms_le'))} |"
        )
    lines += [
        "",
        "Plan and loop-lag p99 are the upper bounds of the operator's histogram buckets (inf: above the "
        "largest finite one); n/a: the operator exports no such histogram.",
    ]
    lines += ["", "| target (issue 12, not asserted) | value | met |", "|---|---|---|"]
    for ch in s["checks"]:
        met = "n/a" if ch["met"] is None else "yes" if ch["met"] else "**no**"
        lines.append(f"| {ch['target']} | {_v(ch['value'])} | {met} |")
    if result.get("ingest"):
        lines += [
            "",
            "heady's ingest paths (measured escalations at the probe rate among below-threshold events):",
            "",
            "| path | events/s | measured | p50 ms | p99 ms | lost | operator CPU cores | Redis CPU cores | RSS MB |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in result["ingest"]:
            if "error" in r:
                lines.append(f"| failed: {r['error']} | | | | | | | | |")
                continue
            lines.append(
                f"| {r['path']} | {r['rate_per_s']:g} | {r['measured']} | {_v(r['p50_ms'])} | {_v(r['p99_ms'])} "
                f"| {r['lost']} | {r['operator_cpu_cores']} | {r['redis_cpu_cores']} | {r['operator_rss_mb']} |"
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
    parser.add_argument(
        "--rates", nargs="+", default=["5", "10", "20", "sat"], help="signals/s; `sat`: the ceiling's rate"
    )
    parser.add_argument("--sat-factor", type=float, default=1.5, help="saturation rate x this")
    parser.add_argument("--repeats", type=int, default=1, help="rounds per rate")
    parser.add_argument("--seconds", type=float, default=10, help="how long each system sends at each rate")
    parser.add_argument("--raw-seconds", type=float, default=4, help="each ceiling measurement")
    parser.add_argument("--attention-ms", type=int, default=ATTENTION_MS, help="expiry of each signal")
    parser.add_argument("--lost-timeout", type=float, default=10, help="a signal not at peak by then is lost")
    parser.add_argument("--ingest-rates", type=float, nargs="+", default=[100, 1000], help="heady's ingest")
    parser.add_argument("--probe-rate", type=float, default=PROBE_RATE, help="ingest: measured escalations/s")
    parser.add_argument("--paths", nargs="*", choices=["redis", "http"], default=["redis", "http"])
    parser.add_argument("--operator-env", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--cluster", default=os.environ.get("HEADY_BENCH_CLUSTER", "heady-bench"))
    parser.add_argument("--stem", help="results file name (default attention_latency, quick: *-quick)")
    parser.add_argument("--render", type=Path, help="only re-render the markdown of an earlier JSON result")
    args = parser.parse_args()
    if args.quick:
        args.services, args.pods, args.seconds, args.repeats = 4, 2, 2, 1
        args.rates, args.raw_seconds, args.paths, args.lost_timeout = ["sat"], 1, [], 5
    stem = args.stem or ("attention_latency-quick" if args.quick else "attention_latency")
    if args.render:
        result = json.loads(args.render.read_text())
        result["summary"] = summarize(result)
        write(result, stem)
        return
    result = asyncio.run(main_async(args))
    write(result, stem)


if __name__ == "__main__":
    main()
