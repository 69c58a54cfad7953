"""Scale on kwok: 1,000 HeadyServices x 10 pods under one operator, then a storm of 500 signals.

Phases, each timed from the benchmark's own pod watch (raw JSON, not the operator's view):
1. schedule: Deployments and HeadyServices created (async, as fast as the API takes them), until
   every pod is Running. This is the cluster's time, not the operator's; it is only reported.
2. ceiling: before any operator runs, the benchmark itself PATCHes pods/resize on these pods
   (CPU request between the template's and 10m more, then back) with 8 and with 16 in flight
   for --ceiling-seconds each: the resizes/s this cluster on this machine takes at most. The
   settle and storm targets are 1.15 x their resizes / that ceiling (the better of 8 and 16).
3. empty operator: an operator process scoped (HEADY_NAMESPACES) to an empty namespace, for its
   RSS without pods; bytes per cached pod = (settled RSS - that) / pods.
4. settle: the operator process starts on the populated cluster; until every pod's CPU request
   is at baseline (the operator listed everything and resized every pod down from its template).
5. storm: 500 AttentionSignals on 500 distinct services created concurrently; until every pod
   of those services is at peak. Per-signal latency: its create call to its last pod at peak.
   While it runs, probe signals on services outside the storm (one every --probe-interval s,
   at most --probes): a new escalation's latency must not wait behind the storm (p99 < 1 s).

Operator cost: CPU seconds and RSS (VmRSS sampled, VmHWM at the end) from /proc. API requests
made by the operator: the kube-apiserver's `apiserver_request_total` has no user-agent label,
so the delta per phase is attributed by request kind: pods/resize, headyservices/status,
attentionsignals/status and deletes, configmap writes are the operator's alone; Event writes are
counted as the operator's (nothing else in these phases should write Events; kept separate in
the report). Cross-checked against the operator's own heady_resize_requests_total.

    .venv/bin/python benchmarks/scale.py             # 50 nodes, 1,000 x 10 pods, storm 500
    .venv/bin/python benchmarks/scale.py --quick     # 5 nodes, 25 x 4 pods, storm 15 (~1 min)
    .venv/bin/python benchmarks/scale.py --profile --services 200 --stem scale-profile
                                                     # cProfile the operator (slows it down)
    .venv/bin/python benchmarks/scale.py --render benchmarks/results/scale.json   # markdown again

Its own kwok cluster (--cluster, default $HEADY_BENCH_CLUSTER or heady-scale / heady-scale-quick),
deleted at the end unless --keep-cluster. Operator settings: --operator-env KEY=VALUE (repeatable).
Writes benchmarks/results/scale.{json,md} (quick mode: scale-quick.*).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import pstats
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

sys.path.append(str(Path(__file__).resolve().parents[1]))  # appended: stdlib `operator` must win

from kubernetes_asyncio import client as aclient
from kubernetes_asyncio import config as aconfig

from benchmarks.measure import ProcStats, RequestKey, histogram_quantile, pct, writes
from benchmarks.measure import apiserver_requests as all_requests
from tests.harness import (
    ROOT,
    Cluster,
    OperatorProcess,
    deployment,
    headyservice,
    start_cluster,
)

RESULTS = Path(__file__).resolve().parent / "results"
# Burstable pods: limits are the peak; the operator sets requests to 90% (baseline) or to 1m
# below the CPU limit (peak, so the pod stays Burstable). Requests start at the template's.
LIMITS = {"cpu": "100m", "memory": "128Mi"}
REQUESTS = {"cpu": "50m", "memory": "64Mi"}
BASE_CPU = "90m"
PEAK_CPU = "99m"
# A pod of this benchmark as a Python dict parsed from its JSON (~3 KB): measured with tracemalloc
# over 2,000 copies of a pod listed from the kwok cluster.
POD_BODY_KIB = 17.8
QUIESCE_LIMIT_S = 120.0  # how long the benchmark waits for the operator's writes to stop
# Issue 12: settle and storm within 1.15 x (their resizes / the ceiling), a new escalation's p99
# during the storm, peak RSS; plan p99 and loop-lag p99 as in attention_latency.
TARGETS = {
    "vs_ceiling": 1.15,
    "probe_p99_s": 1.0,
    "rss_mb": 250.0,
    "plan_p99_ms": 2.0,
    "loop_lag_p99_ms": 5.0,
}
CEILING_BUMP_M = 10  # the ceiling's resizes move a pod's CPU request by this many millicores


def say(msg: str) -> None:
    print(f"[scale {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- the operator process


class SampledProcStats(ProcStats):
    """ProcStats with RSS also sampled in a thread, to show the curve between readings."""

    def __init__(self, pid: int) -> None:
        super().__init__(pid)
        self.samples: list[tuple[float, float]] = []  # (monotonic, rss MB)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.5):
            with contextlib.suppress(OSError, ValueError):
                self.samples.append((time.monotonic(), self.rss_mb()))

    def stop(self) -> None:
        self._stop.set()


class ProfiledOperator(OperatorProcess):
    """The operator under cProfile; the profile is written when it exits on SIGTERM."""

    def __init__(self, *args: Any, profile: Path, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.profile = profile

    def start(self) -> None:
        from tests.harness import wait_for

        log = self.log_path.open("ab")
        cmd = [sys.executable, "-m", "cProfile", "-o", str(self.profile), "-m", "heady_operator.main"]
        self.proc = subprocess.Popen(cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        wait_for(self.healthy, "the operator's /healthz", timeout=120)


# ---------------------------------------------------------------- our own view of the pods


class PodTracker:
    """A raw-JSON pod watch of one namespace: which pods run, and at which level (CPU request).

    Counters are kept incrementally so the benchmark's own checks stay cheap at 10,000 pods,
    and JSON is parsed by hand rather than into client models (a V1Pod each would cost the
    benchmark more CPU than the operator it measures, on the same two cores).
    """

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.state: dict[str, tuple[str, bool, str]] = {}  # pod -> (app, running, level)
        self.counts: Counter[tuple[bool, str]] = Counter()
        self.peak_by_app: Counter[str] = Counter()
        self.watch_for: dict[str, int] = {}  # app -> replicas, apps whose full peak we time
        self.full_peak_at: dict[str, float] = {}
        self.events = 0

    @staticmethod
    def _level(pod: dict[str, Any]) -> str:
        containers = pod.get("spec", {}).get("containers") or [{}]
        cpu = ((containers[0].get("resources") or {}).get("requests") or {}).get("cpu")
        return {BASE_CPU: "base", PEAK_CPU: "peak"}.get(cpu or "", "other")

    def _set(self, name: str, new: tuple[str, bool, str] | None) -> None:
        old = self.state.pop(name, None)
        if old is not None:
            self.counts[(old[1], old[2])] -= 1
            if old[1] and old[2] == "peak":
                self.peak_by_app[old[0]] -= 1
        if new is None:
            return
        self.state[name] = new
        self.counts[(new[1], new[2])] += 1
        if new[1] and new[2] == "peak":
            self.peak_by_app[new[0]] += 1
            want = self.watch_for.get(new[0])
            if want is not None and self.peak_by_app[new[0]] >= want and new[0] not in self.full_peak_at:
                self.full_peak_at[new[0]] = time.perf_counter()

    def _apply(self, kind: str, pod: dict[str, Any]) -> None:
        meta = pod.get("metadata", {})
        if kind == "DELETED":
            self._set(meta["name"], None)
            return
        app = (meta.get("labels") or {}).get("app", "")
        running = pod.get("status", {}).get("phase") == "Running"
        self._set(meta["name"], (app, running, self._level(pod)))

    def running(self) -> int:
        return sum(v for (run, _), v in self.counts.items() if run)

    def at(self, level: str) -> int:
        return self.counts[(True, level)]

    async def run(self, core: aclient.CoreV1Api) -> None:
        while True:
            resp: Any = await core.list_namespaced_pod(self.namespace, _preload_content=False)
            data = json.loads(await resp.read())
            self.state.clear()
            self.counts.clear()
            self.peak_by_app.clear()
            for pod in data.get("items", []):
                self._apply("ADDED", pod)
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
                    event = json.loads(line)
                    kind, obj = event["type"], event["object"]
                    if kind == "ERROR":
                        gone = True  # 410 Gone and friends: list again
                        break
                    rv = obj.get("metadata", {}).get("resourceVersion", rv)
                    if kind != "BOOKMARK":
                        self.events += 1
                        self._apply(kind, obj)
                resp.release()


async def wait_until(check: Any, what: str, limit_s: float, tracker_task: asyncio.Task[None]) -> float:
    """Poll a cheap predicate every 50 ms; returns the perf_counter time it first held."""
    deadline = time.perf_counter() + limit_s
    while time.perf_counter() < deadline:
        if tracker_task.done():
            tracker_task.result()  # a crashed watch surfaces here instead of as a timeout
        if check():
            return time.perf_counter()
        await asyncio.sleep(0.05)
    raise TimeoutError(f"timed out after {limit_s:.0f} s waiting for {what}")


# ---------------------------------------------------------------- API requests (pure)


def parse_requests(text: str) -> Counter[tuple[str, str, str, str]]:
    """apiserver_request_total summed over codes: (verb, group, resource, subresource) -> count."""
    out: Counter[tuple[str, str, str, str]] = Counter()
    for (verb, group, resource, subresource, _code), count in all_requests(text).items():
        out[(verb, group, resource, subresource)] += count
    return out


def operator_requests(delta: Counter[tuple[str, str, str, str]]) -> dict[str, int]:
    """Requests in a phase that only the operator makes (Events: see the module docstring)."""
    out: Counter[str] = Counter()
    for (verb, group, resource, sub), n in delta.items():
        if n <= 0:
            continue
        if resource == "pods" and sub == "resize":
            out["pods/resize PATCH"] += n
        elif group == "heady.io" and sub == "status" and verb in ("PATCH", "PUT"):
            out[f"{resource}/status {verb}"] += n
        elif group == "heady.io" and resource == "attentionsignals" and verb == "DELETE":
            out["attentionsignals DELETE"] += n
        elif resource == "configmaps" and verb in ("POST", "PUT", "PATCH"):
            out[f"configmaps {verb}"] += n
        elif resource == "events" and verb in ("POST", "PATCH", "PUT"):
            out[f"events {verb}"] += n
    return dict(sorted(out.items()))


def apiserver_requests(cluster: Cluster) -> Counter[tuple[str, str, str, str]]:
    return parse_requests(cluster.kubectl("get", "--raw", "/metrics").stdout)


def operator_metric(text: str, name: str, labels: str = "") -> float:
    """Sum of a metric's samples from the operator's /metrics (optionally those containing `labels`)."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and (line[len(name)] in "{ ") and labels in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


# ---------------------------------------------------------------- the run


async def create_objects(api: aclient.ApiClient, namespace: str, names: list[str], replicas: int) -> None:
    apps = aclient.AppsV1Api(api)
    custom = aclient.CustomObjectsApi(api)
    sem = asyncio.Semaphore(32)

    async def one(name: str) -> None:
        async with sem:
            resp: Any = await apps.create_namespaced_deployment(
                namespace,
                cast(Any, deployment(name, namespace, replicas, REQUESTS, LIMITS)),
                _preload_content=False,
            )
            resp.release()
            resp = await custom.create_namespaced_custom_object(
                "heady.io",
                "v1alpha1",
                namespace,
                "headyservices",
                headyservice(name, namespace, peak=LIMITS, priority="medium"),
                _preload_content=False,
            )
            resp.release()

    await asyncio.gather(*(one(n) for n in names))


async def storm(api: aclient.ApiClient, namespace: str, targets: list[str]) -> dict[str, float]:
    """Create one AttentionSignal per target, all at once; returns each one's send time."""
    custom = aclient.CustomObjectsApi(api)
    sem = asyncio.Semaphore(100)
    sent: dict[str, float] = {}

    async def one(svc: str) -> None:
        body = {
            "apiVersion": "heady.io/v1alpha1",
            "kind": "AttentionSignal",
            "metadata": {"name": f"storm-{svc}"},
            "spec": {"services": [svc], "source": "bench", "ttlSeconds": 900},
        }
        async with sem:
            sent[svc] = time.perf_counter()
            resp = await custom.create_namespaced_custom_object(
                "heady.io", "v1alpha1", namespace, "attentionsignals", body, _preload_content=False
            )
            resp.release()

    await asyncio.gather(*(one(s) for s in targets))
    return sent


async def ceiling(
    api: aclient.ApiClient, namespace: str, pods: list[str], inflight: int, seconds: float
) -> dict[str, Any]:
    """Raw pods/resize PATCHes, `inflight` at a time for `seconds`: each pod's CPU request goes
    CEILING_BUMP_M up from the template's, the next time back; every pod is left as it was."""
    core = aclient.CoreV1Api(api)
    base_m = int(REQUESTS["cpu"].rstrip("m"))
    bumped: dict[str, bool] = dict.fromkeys(pods, False)
    queue = list(pods)
    latencies: list[float] = []
    errors = 0

    async def patch(pod: str, up: bool) -> None:
        cpu = f"{base_m + CEILING_BUMP_M if up else base_m}m"
        body = {"spec": {"containers": [{"name": "app", "resources": {"requests": {"cpu": cpu}}}]}}
        resp: Any = await core.patch_namespaced_pod_resize(pod, namespace, body, _preload_content=False)
        resp.release()

    async def worker(stop_at: float) -> None:
        nonlocal errors
        while time.perf_counter() < stop_at:
            pod = queue.pop(0)
            queue.append(pod)
            start = time.perf_counter()
            try:
                await patch(pod, not bumped[pod])
            except aclient.ApiException:
                errors += 1
                continue
            latencies.append(time.perf_counter() - start)
            bumped[pod] = not bumped[pod]

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(t0 + seconds) for _ in range(inflight)))
    elapsed = time.perf_counter() - t0
    sem = asyncio.Semaphore(inflight)

    async def restore(pod: str) -> None:
        async with sem:
            await patch(pod, False)

    await asyncio.gather(*(restore(p) for p, up in bumped.items() if up))
    return {
        "inflight": inflight,
        "seconds": round(elapsed, 2),
        "resizes": len(latencies),
        "errors": errors,
        "resizes_per_s": round(len(latencies) / elapsed, 1),
        "response_p50_ms": round(1000 * pct(latencies, 50), 1),
        "response_p99_ms": round(1000 * pct(latencies, 99), 1),
    }


async def probes(
    api: aclient.ApiClient,
    namespace: str,
    services: list[str],
    interval: float,
    storm_over: asyncio.Event,
) -> dict[str, float]:
    """One signal every `interval` s on a service outside the storm, while the storm runs (at
    least 3, at most len(services)); returns each one's send time."""
    custom = aclient.CustomObjectsApi(api)
    sent: dict[str, float] = {}
    for i, svc in enumerate(services):
        if i >= 3 and storm_over.is_set():
            break
        body = {
            "apiVersion": "heady.io/v1alpha1",
            "kind": "AttentionSignal",
            "metadata": {"name": f"probe-{svc}"},
            "spec": {"services": [svc], "source": "bench-probe", "ttlSeconds": 900},
        }
        sent[svc] = time.perf_counter()
        resp: Any = await custom.create_namespaced_custom_object(
            "heady.io", "v1alpha1", namespace, "attentionsignals", body, _preload_content=False
        )
        resp.release()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(storm_over.wait(), interval)
    return sent


async def cluster_quiet(cluster: Cluster, limit_s: float = 120) -> float:
    """Until 2 s pass without writes (but leases and node heartbeats): kwok and the controllers
    finish the pods' start-up before the ceiling is measured; returns the seconds waited."""
    start = time.perf_counter()

    def snapshot() -> Counter[RequestKey]:
        return all_requests(cluster.kubectl("get", "--raw", "/metrics").stdout)

    prev = await asyncio.to_thread(snapshot)
    while time.perf_counter() - start < limit_s:
        await asyncio.sleep(2)
        cur = await asyncio.to_thread(snapshot)
        if not writes(cur - prev):
            break
        prev = cur
    return time.perf_counter() - start


async def quiesce(
    cluster: Cluster, limit_s: float = QUIESCE_LIMIT_S
) -> tuple[float, Counter[tuple[str, str, str, str]]]:
    """Wait until the operator's API writes stop (2 s without any); returns (seconds waited, snapshot)."""
    start = time.perf_counter()
    prev = await asyncio.to_thread(apiserver_requests, cluster)
    while time.perf_counter() - start < limit_s:
        await asyncio.sleep(2)
        cur = await asyncio.to_thread(apiserver_requests, cluster)
        if not operator_requests(cur - prev):
            return time.perf_counter() - start, cur
        prev = cur
    return time.perf_counter() - start, prev


def _phase(delta: Counter[tuple[str, str, str, str]], seconds: float) -> dict[str, Any]:
    ops = operator_requests(delta)
    total = sum(ops.values())
    return {
        "seconds": round(seconds, 2),
        "operator_requests": ops,
        "operator_requests_total": total,
        "operator_requests_per_s": round(total / seconds, 1) if seconds > 0 else None,
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    os.environ.update(
        HEADY_NODES=str(args.nodes),
        HEADY_NODE_CPU=str(args.node_cpu),
        HEADY_NODE_MEMORY_GI=str(args.node_memory_gi),
        HEADY_NODE_PODS=str(args.node_pods),
    )
    t_cluster = time.perf_counter()
    load_start = round(os.getloadavg()[0], 1)
    cluster = start_cluster(args.cluster)
    cluster_s = time.perf_counter() - t_cluster
    cluster.kubectl(
        "delete", "namespace", "-l", "heady.io/test=scale", "--wait=true", "--timeout=300s", check=False
    )
    namespace = f"scale-{uuid.uuid4().hex[:6]}"
    cluster.core.create_namespace(
        cast(Any, {"metadata": {"name": namespace, "labels": {"heady.io/test": "scale"}}})
    )
    names = [f"svc-{i:04d}" for i in range(args.services)]
    total: int = args.services * args.pods

    await aconfig.load_kube_config(config_file=str(cluster.kubeconfig))
    conf = aclient.Configuration.get_default_copy()
    conf.connection_pool_maxsize = 128
    api = aclient.ApiClient(conf)
    core = aclient.CoreV1Api(api)
    tracker = PodTracker(namespace)
    tracker_task = asyncio.create_task(tracker.run(core))
    op: OperatorProcess | None = None
    stats: SampledProcStats | None = None
    profile: Path | None = None
    result: dict[str, Any] = {}
    try:
        say(f"creating {args.services} Deployments x {args.pods} pods and their HeadyServices in {namespace}")
        t0 = time.perf_counter()
        await create_objects(api, namespace, names, args.pods)
        created_s = time.perf_counter() - t0
        say(f"created in {created_s:.1f} s; waiting for {total} pods Running")

        def all_running() -> bool:
            return tracker.running() >= total

        t_run = await wait_until(all_running, f"{total} pods Running", args.schedule_timeout, tracker_task)
        schedule_s = t_run - t0
        say(f"{total} pods Running after {schedule_s:.1f} s")

        # ---- the ceiling, before any operator runs, once the cluster stopped writing
        quiet_s = await cluster_quiet(cluster)
        say(f"cluster writes stopped {quiet_s:.1f} s later")
        ceiling_pods = sorted(tracker.state)[: args.ceiling_pods]
        ceilings = []
        for k in (8, 16):
            c = await ceiling(api, namespace, ceiling_pods, k, args.ceiling_seconds)
            ceilings.append(c)
            say(
                f"ceiling, {k} in flight: {c['resizes_per_s']} resizes/s (response p50 {c['response_p50_ms']} ms)"
            )
        ceiling_rps = max(c["resizes_per_s"] for c in ceilings)
        await asyncio.sleep(5)  # kwok's status updates for those resizes drain

        env = {"HEADY_PREDICTION_ENABLED": "false", "HEADY_LOG_LEVEL": "WARNING"}
        env.update(dict(kv.split("=", 1) for kv in args.operator_env))
        log_dir = Path(os.environ.get("TMPDIR", "/tmp"))

        # ---- the operator's RSS with nothing to cache
        empty_ns = f"{namespace}-empty"
        cluster.core.create_namespace(
            cast(Any, {"metadata": {"name": empty_ns, "labels": {"heady.io/test": "scale"}}})
        )
        empty_op = OperatorProcess(cluster, log_dir, {**env, "HEADY_NAMESPACES": empty_ns})
        await asyncio.to_thread(empty_op.start)
        assert empty_op.proc is not None
        await asyncio.sleep(3)
        rss_empty = ProcStats(empty_op.proc.pid).rss_mb()
        await asyncio.to_thread(empty_op.stop)
        cluster.core.delete_namespace(empty_ns, propagation_policy="Background")
        say(f"operator RSS with an empty namespace: {rss_empty:.1f} MB")

        # ---- settle
        before = await asyncio.to_thread(apiserver_requests, cluster)
        profile = log_dir / f"scale-operator-{uuid.uuid4().hex[:6]}.prof" if args.profile else None
        op = (
            ProfiledOperator(cluster, log_dir, env, profile=profile)
            if profile
            else OperatorProcess(cluster, log_dir, env)
        )
        say("starting the operator")
        t_start = time.perf_counter()
        op.start()
        assert op.proc is not None
        stats = SampledProcStats(op.proc.pid)
        healthy_s = time.perf_counter() - t_start

        def all_base() -> bool:
            return tracker.at("base") >= total

        t_settled = await wait_until(all_base, f"{total} pods at baseline", args.settle_timeout, tracker_task)
        settle_s = t_settled - t_start
        cpu_settle = stats.cpu_seconds()
        rss_settle = stats.rss_mb()
        at_settle = await asyncio.to_thread(apiserver_requests, cluster)
        say(
            f"all {total} pods at baseline {settle_s:.1f} s after the operator started (healthy at {healthy_s:.1f} s)"
        )
        drain_s, after_settle = await quiesce(cluster)
        say(f"operator writes stopped {drain_s:.1f} s later (status, Events)")
        settle_phase = _phase(at_settle - before, settle_s)
        settle_all = _phase(after_settle - before, settle_s + drain_s)
        metrics_settle = await asyncio.to_thread(op.metrics)

        # ---- storm
        targets = names[: args.storm]
        probe_services = names[args.storm : args.storm + args.probes]
        tracker.watch_for = dict.fromkeys(targets + probe_services, args.pods)
        cpu_before_storm = stats.cpu_seconds()
        before_storm = after_settle
        say(f"storm: {len(targets)} AttentionSignals, probes on {len(probe_services)} other services")
        t_storm = time.perf_counter()
        storm_over = asyncio.Event()
        probe_task = asyncio.create_task(
            probes(api, namespace, probe_services, args.probe_interval, storm_over)
        )
        sent = await storm(api, namespace, targets)
        sent_s = time.perf_counter() - t_storm

        def storm_done() -> bool:
            return all(s in tracker.full_peak_at for s in targets)

        try:
            t_done = await wait_until(
                storm_done, f"{len(targets)} services at peak", args.storm_timeout, tracker_task
            )
        finally:
            storm_over.set()
            probe_sent = await probe_task
        storm_s = t_done - t_storm
        cpu_storm = stats.cpu_seconds() - cpu_before_storm
        at_storm = await asyncio.to_thread(apiserver_requests, cluster)
        say(f"storm applied in {storm_s:.1f} s (all signals created in {sent_s:.1f} s)")
        with contextlib.suppress(TimeoutError):
            await wait_until(
                lambda: all(s in tracker.full_peak_at for s in probe_sent),
                "every probe at peak",
                args.storm_timeout,
                tracker_task,
            )
        probe_lat = [tracker.full_peak_at[s] - t for s, t in probe_sent.items() if s in tracker.full_peak_at]
        probes_lost = len(probe_sent) - len(probe_lat)
        storm_drain_s, after_storm = await quiesce(cluster)
        latencies = [tracker.full_peak_at[s] - sent[s] for s in targets]
        metrics_end = await asyncio.to_thread(op.metrics)
        rss_end = stats.rss_mb()
        hwm = stats.hwm_mb()
        plan_n = operator_metric(metrics_end, "heady_plan_seconds_count")
        plan_sum = operator_metric(metrics_end, "heady_plan_seconds_sum")
        plan_n_settle = operator_metric(metrics_settle, "heady_plan_seconds_count")
        plan_sum_settle = operator_metric(metrics_settle, "heady_plan_seconds_sum")
        storm_delta = at_storm - before_storm
        storm_resizes = len(targets) * args.pods

        def q_ms(before: str, after: str, name: str) -> float | None:
            v = histogram_quantile(before, after, name, 0.99)
            return None if v is None else round(1000 * v, 2)

        result = {
            "benchmark": "scale",
            "quick": args.quick,
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "note": "kube-apiserver, etcd, controller-manager, scheduler, kwok, the operator and this "
                "benchmark share these cores (and other clusters may be running)",
            },
            "cluster": {
                "name": args.cluster,
                "nodes": args.nodes,
                "node": f"{args.node_cpu} CPU / {args.node_memory_gi}Gi / {args.node_pods} pods",
                "up_s": round(cluster_s, 1),
            },
            "services": args.services,
            "pods_per_service": args.pods,
            "pods": total,
            "storm_signals": len(targets),
            "ceiling": {
                "how": f"raw pods/resize PATCHes by the benchmark before the operator starts, on "
                f"{len(ceiling_pods)} of the pods, CPU request +/- {CEILING_BUMP_M}m",
                "runs": ceilings,
                "resizes_per_s": ceiling_rps,
            },
            "settle_target_s": round(TARGETS["vs_ceiling"] * total / ceiling_rps, 1),
            "storm_resizes": storm_resizes,
            "storm_target_s": round(TARGETS["vs_ceiling"] * storm_resizes / ceiling_rps, 1),
            "cluster_quiet_before_ceiling_s": round(quiet_s, 1),
            "loadavg_1m": {"start": load_start, "end": round(os.getloadavg()[0], 1)},
            "probes": {
                "sent": len(probe_sent),
                "lost": probes_lost,
                "interval_s": args.probe_interval,
                "p50_s": round(pct(probe_lat, 50), 3),
                "p99_s": round(pct(probe_lat, 99), 3),
                "max_s": round(max(probe_lat), 3) if probe_lat else None,
            },
            "create_objects_s": round(created_s, 1),
            "schedule_all_running_s": round(schedule_s, 1),
            "operator_healthy_s": round(healthy_s, 2),
            "settle_s": round(settle_s, 2),
            "settle_writes_drained_s": round(drain_s, 1),
            "storm_s": round(storm_s, 2),
            "storm_create_s": round(sent_s, 2),
            "storm_latency_s": {
                "p50": round(pct(latencies, 50), 2),
                "p90": round(pct(latencies, 90), 2),
                "p99": round(pct(latencies, 99), 2),
                "max": round(max(latencies), 2),
                "mean": round(statistics.fmean(latencies), 2),
            },
            "storm_writes_drained_s": round(storm_drain_s, 1),
            "operator": {
                "cpu_s_settle": round(cpu_settle, 1),
                "cpu_s_storm": round(cpu_storm, 1),
                "cpu_cores_settle": round(cpu_settle / settle_s, 2),
                "cpu_cores_storm": round(cpu_storm / storm_s, 2),
                "rss_mb_settled": round(rss_settle, 1),
                "rss_mb_end": round(rss_end, 1),
                "rss_mb_peak": round(hwm, 1),
                "rss_mb_empty_namespace": round(rss_empty, 1),
                "bytes_per_pod": round((rss_settle - rss_empty) * 2**20 / total),
                "plan_p99_ms_le_settle": q_ms("", metrics_settle, "heady_plan_seconds"),
                "plan_p99_ms_le_storm": q_ms(metrics_settle, metrics_end, "heady_plan_seconds"),
                "loop_lag_p99_ms_le_settle": q_ms("", metrics_settle, "heady_event_loop_lag_seconds"),
                "loop_lag_p99_ms_le_storm": q_ms(metrics_settle, metrics_end, "heady_event_loop_lag_seconds"),
                "plans": int(plan_n),
                "plan_seconds_total": round(plan_sum, 2),
                "plan_ms_mean": round(1000 * plan_sum / plan_n, 1) if plan_n else None,
                "plans_settle": int(plan_n_settle),
                "plan_ms_mean_settle": round(1000 * plan_sum_settle / plan_n_settle, 1)
                if plan_n_settle
                else None,
                "resize_requests_counted_by_operator": int(
                    operator_metric(metrics_end, "heady_resize_requests_total")
                ),
                "resize_failures": int(operator_metric(metrics_end, "heady_resize_failures_total")),
                "signal_to_resize_mean_s": _hist_mean(metrics_end, "heady_signal_to_resize_seconds"),
            },
            "api": {
                "how": "kube-apiserver apiserver_request_total deltas per phase, attributed by request kind",
                "settle": settle_phase,
                "settle_including_status_drain": settle_all,
                "storm": _phase(storm_delta, storm_s),
                "storm_including_status_drain": _phase(after_storm - before_storm, storm_s + storm_drain_s),
            },
            "targets": TARGETS,
            "log": str(op.log_path),
        }
        print(json.dumps(result, indent=2), flush=True)
    finally:
        if stats is not None:
            stats.stop()
        if op is not None:
            op.stop()
        tracker_task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await tracker_task
        await api.close()
        if args.keep_cluster:
            cluster.core.delete_namespace(namespace, propagation_policy="Background")
        else:
            say(f"deleting cluster {args.cluster}")
            await asyncio.to_thread(
                subprocess.run,
                [sys.executable, str(ROOT / "hack" / "cluster.py"), "down"],
                env=dict(os.environ, HEADY_CLUSTER_NAME=args.cluster),
                check=False,
            )
    if result and profile is not None and profile.exists():
        result["profile"] = top_functions(profile)
    return result


def _hist_mean(text: str, name: str) -> float | None:
    n = operator_metric(text, name + "_count")
    return round(operator_metric(text, name + "_sum") / n, 3) if n else None


def top_functions(path: Path, count: int = 15) -> list[dict[str, Any]]:
    stats = pstats.Stats(str(path))
    rows = []
    for (file, line, func), (_, calls, tottime, cumtime, _) in stats.stats.items():  # type: ignore[attr-defined]
        rows.append(
            {
                "function": f"{Path(file).name}:{line}({func})",
                "calls": calls,
                "tottime_s": round(tottime, 2),
                "cumtime_s": round(cumtime, 2),
            }
        )
    return sorted(rows, key=lambda r: -r["tottime_s"])[:count]


def where_time_goes(result: dict[str, Any]) -> list[str]:
    """Derived from the measured numbers: the planner's share of the wall clock, repeated resizes."""
    o, api = result["operator"], result["api"]
    wall = (
        result["settle_s"]
        + result["settle_writes_drained_s"]
        + result["storm_s"]
        + result["storm_writes_drained_s"]
    )
    settle_patches = api["settle_including_status_drain"]["operator_requests"].get("pods/resize PATCH", 0)
    storm_patches = api["storm_including_status_drain"]["operator_requests"].get("pods/resize PATCH", 0)
    plans = (
        f"- The planner (heady_plan_seconds) ran {o['plans']} times for {o['plan_ms_mean']} ms on average: "
        f"{o['plan_seconds_total']} s, {100 * o['plan_seconds_total'] / wall:.0f}% of the {wall:.0f} s the "
        "operator was measured."
        if o["plans"]
        else "- The operator exported no heady_plan_seconds observations."
    )
    return [
        "",
        "## Where the time goes",
        "",
        plans,
        f"- Resizes: the API server saw {settle_patches} pods/resize PATCHes for the {result['pods']} pods "
        f"settling to baseline, and {storm_patches} for the {result['storm_resizes']} pods raised by the storm "
        "(plus the probes' pods).",
        f"- Memory: {o['rss_mb_settled']} MB once settled with {result['pods']} pods, {o['rss_mb_empty_namespace']} MB "
        f"for the same operator watching an empty namespace: {o['bytes_per_pod']} bytes per cached pod.",
    ]


def _na(value: Any) -> str:
    return "n/a" if value is None else str(value)


def _drain(seconds: float) -> str:
    if seconds >= QUIESCE_LIMIT_S - 1:
        return f"operator writes still going when the benchmark stopped waiting ({seconds:.0f} s)"
    return f"{seconds} s more of operator writes (status, Events, late resizes)"


def _ok(value: float | None, target: float) -> str:
    return "n/a" if value is None else "yes" if value <= target else "**no**"


def write(result: dict[str, Any], stem: str) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    o, api, lat = result["operator"], result["api"], result["storm_latency_s"]
    ceil, pr = result["ceiling"], result["probes"]
    lines = [
        f"# scale ({result['services']} HeadyServices x {result['pods_per_service']} pods = {result['pods']} pods, "
        f"{result['cluster']['nodes']} kwok nodes, {result['date']})",
        "",
        *([result["note"], ""] if result.get("note") else []),
        f"Machine: {result['machine']['cpus']} cores shared by the whole control plane, kwok, the operator "
        "and this benchmark (1-minute load average at start/end: "
        f"{result['loadavg_1m']['start']}/{result['loadavg_1m']['end']})."
        + (" The operator ran under cProfile: its times are inflated." if result.get("profile") else ""),
        "",
        f"Ceiling: {ceil['resizes_per_s']} resizes/s ({ceil['how']}; "
        + ", ".join(
            f"{c['inflight']} in flight: {c['resizes_per_s']}/s, response p50/p99 "
            f"{c['response_p50_ms']}/{c['response_p99_ms']} ms"
            for c in ceil["runs"]
        )
        + "). Targets from issue 12, not asserted.",
        "",
        "| measure | value | target | met |",
        "|---|---|---|---|",
        f"| settle: operator start -> every pod at baseline | {result['settle_s']} s "
        f"| <= {result['settle_target_s']} s (1.15 x {result['pods']} / ceiling) "
        f"| {_ok(result['settle_s'], result['settle_target_s'])} |",
        f"| storm: {result['storm_signals']} signals -> every target pod at peak | {result['storm_s']} s "
        f"| <= {result['storm_target_s']} s (1.15 x {result['storm_resizes']} / ceiling) "
        f"| {_ok(result['storm_s'], result['storm_target_s'])} |",
        f"| new signal during the storm: p99 ({pr['sent']} probes, p50 {pr['p50_s']} s, max {pr['max_s']} s, "
        f"{pr['lost']} never at peak) | {pr['p99_s']} s | < {TARGETS['probe_p99_s']:g} s "
        f"| {_ok(pr['p99_s'] if not pr['lost'] else float('inf'), TARGETS['probe_p99_s'])} |",
        f"| operator RSS, peak (VmHWM) | {o['rss_mb_peak']} MB | < {TARGETS['rss_mb']:g} MB "
        f"| {_ok(o['rss_mb_peak'], TARGETS['rss_mb'])} |",
        f"| bytes per cached pod ((settled RSS - {o['rss_mb_empty_namespace']} MB empty) / pods) "
        f"| {o['bytes_per_pod']} | - | - |",
        f"| heady plan p99, settle / storm (bucket bound; inf: above the largest finite bucket) | {o['plan_p99_ms_le_settle']} / "
        f"{o['plan_p99_ms_le_storm']} ms | < {TARGETS['plan_p99_ms']:g} ms "
        f"| {_ok(o['plan_p99_ms_le_storm'], TARGETS['plan_p99_ms'])} |",
        f"| heady event-loop lag p99, settle / storm | {_na(o['loop_lag_p99_ms_le_settle'])} / "
        f"{_na(o['loop_lag_p99_ms_le_storm'])} ms | < {TARGETS['loop_lag_p99_ms']:g} ms "
        f"| {_ok(o['loop_lag_p99_ms_le_storm'], TARGETS['loop_lag_p99_ms'])} |",
        "",
        "| phase | seconds | detail |",
        "|---|---|---|",
        f"| create {result['services']} Deployments + HeadyServices | {result['create_objects_s']} | async, 32 at a time |",
        f"| cluster schedules and runs {result['pods']} pods | {result['schedule_all_running_s']} | from the first create |",
        f"| operator healthy | {result['operator_healthy_s']} | /healthz answers |",
        f"| settle | {result['settle_s']} | then {_drain(result['settle_writes_drained_s'])} |",
        f"| storm | {result['storm_s']} | signals created in {result['storm_create_s']} s; per signal p50 {lat['p50']} s, "
        f"p90 {lat['p90']} s, p99 {lat['p99']} s, max {lat['max']} s; then "
        f"{_drain(result['storm_writes_drained_s'])}"
        + (
            "; started while the settle's writes were still going"
            if result["settle_writes_drained_s"] >= QUIESCE_LIMIT_S - 1
            else ""
        )
        + " |",
        "",
        "## Operator cost",
        "",
        f"- CPU: {o['cpu_s_settle']} s during settle ({o['cpu_cores_settle']} cores), {o['cpu_s_storm']} s during "
        f"the storm ({o['cpu_cores_storm']} cores).",
        f"- RSS: {o['rss_mb_settled']} MB when settled, {o['rss_mb_end']} MB after the storm, peak {o['rss_mb_peak']} MB.",
        f"- Planner: {o['plans']} plans, {o['plan_seconds_total']} s in total, {o['plan_ms_mean']} ms each on average "
        f"(settle: {o['plans_settle']} plans, {o['plan_ms_mean_settle']} ms each) - heady_plan_seconds covers "
        "building the world from the watch cache and plan_levels.",
        f"- Resizes counted by the operator: {o['resize_requests_counted_by_operator']} "
        f"(failures {o['resize_failures']}); signal-to-resize mean {o['signal_to_resize_mean_s']} s.",
        "",
        "## API requests made by the operator",
        "",
        f"How: {api['how']}.",
        "",
        "| phase | seconds | requests | per second | by kind |",
        "|---|---|---|---|---|",
    ]
    for name in ("settle", "settle_including_status_drain", "storm", "storm_including_status_drain"):
        ph = api[name]
        kinds = ", ".join(f"{k}: {v}" for k, v in ph["operator_requests"].items())
        lines.append(
            f"| {name.replace('_', ' ')} | {ph['seconds']} | {ph['operator_requests_total']} "
            f"| {ph['operator_requests_per_s']} | {kinds} |"
        )
    lines += where_time_goes(result)
    if result.get("profile"):
        lines += [
            "",
            "## cProfile of the operator (top functions by own time)",
            "",
            "| function | calls | own s | cum s |",
            "|---|---|---|---|",
        ]
        for r in result["profile"]:
            lines.append(f"| `{r['function']}` | {r['calls']} | {r['tottime_s']} | {r['cumtime_s']} |")
    lines.append("")
    (RESULTS / f"{stem}.md").write_text("\n".join(lines))
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="5 nodes, 25 x 4 pods, storm 15")
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--pods", type=int, default=10)
    parser.add_argument("--storm", type=int, default=500)
    parser.add_argument("--nodes", type=int, default=50)
    parser.add_argument("--node-cpu", type=int, default=64)
    parser.add_argument("--node-memory-gi", type=int, default=256)
    parser.add_argument("--node-pods", type=int, default=300)
    parser.add_argument("--probes", type=int, default=20, help="signals sent during the storm, at most")
    parser.add_argument("--probe-interval", type=float, default=1.0, help="seconds between probes")
    parser.add_argument("--ceiling-pods", type=int, default=1000, help="pods the ceiling resizes")
    parser.add_argument("--ceiling-seconds", type=float, default=8, help="each ceiling measurement")
    parser.add_argument("--operator-env", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument(
        "--cluster",
        default=os.environ.get("HEADY_BENCH_CLUSTER"),
        help="default $HEADY_BENCH_CLUSTER, else heady-scale (quick: heady-scale-quick)",
    )
    parser.add_argument(
        "--keep-cluster", action="store_true", help="leave the cluster running (namespace deleted)"
    )
    parser.add_argument("--profile", action="store_true", help="run the operator under cProfile")
    parser.add_argument("--stem", help="results file name (default scale, quick: scale-quick)")
    parser.add_argument("--render", type=Path, help="only re-render the markdown of an earlier JSON result")
    parser.add_argument("--schedule-timeout", type=float, default=1800)
    parser.add_argument("--settle-timeout", type=float, default=900)
    parser.add_argument("--storm-timeout", type=float, default=600)
    args = parser.parse_args()
    if args.quick:
        args.services, args.pods, args.storm, args.nodes = 25, 4, 15, 5
        args.probes, args.probe_interval, args.ceiling_seconds = 5, 0.3, 2
    args.cluster = args.cluster or ("heady-scale-quick" if args.quick else "heady-scale")
    stem = args.stem or ("scale-quick" if args.quick else "scale")
    if args.render:
        write(json.loads(args.render.read_text()), stem)
        return
    result = asyncio.run(main_async(args))
    if result:
        write(result, stem)


if __name__ == "__main__":
    main()
