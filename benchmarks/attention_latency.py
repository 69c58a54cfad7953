"""Attention latency on kwok: from an attention event to every target pod's resize being accepted.

Setup: N HeadyServices x P pods (Deployments, medium priority so the high-priority cap does not
apply), all settled at baseline, one operator process. Then, for each rate, attention events are
sent round-robin over the services at that rate; each signal expires after 300 ms and services
have cooldown 0, so a service is back at baseline before it is targeted again.

Latency = time from just before the create call to the moment the benchmark's own pod watch has
seen the last of the service's pods with its spec at peak (the API server accepted the resize).
Signals whose service was not fully at baseline when they were sent are not counted (reported).

    .venv/bin/python benchmarks/attention_latency.py            # 50 x 4, 1/10/100 per second
    .venv/bin/python benchmarks/attention_latency.py --quick    # tiny CI mode

Writes benchmarks/results/attention_latency.{json,md} (quick mode: *-quick.*, not committed).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.append(str(Path(__file__).resolve().parents[1]))  # appended: stdlib `operator` must win

from kubernetes_asyncio import client as aclient  # noqa: E402
from kubernetes_asyncio import config as aconfig  # noqa: E402
from kubernetes_asyncio import watch as awatch  # noqa: E402

from tests.harness import OperatorProcess, deployment, headyservice, start_cluster, wait_for  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
PEAK_CPU = "100m"  # limits; Burstable pods stop 1m short of the limit at peak (200 pods fit 4 x 8 CPU)
PEAK_REQ = "99m"
BASE_REQ = "90m"


def say(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    idx = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[idx]


class ProcStats:
    """CPU seconds and RSS of a process, read from /proc (Linux)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.tick = os.sysconf("SC_CLK_TCK")

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / self.tick

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")


class PodWatch:
    """Tracks, from a real watch, which pods of each service have their spec at peak."""

    def __init__(self, namespace: str, services: list[str]) -> None:
        self.namespace = namespace
        self.at_peak: dict[str, set[str]] = {s: set() for s in services}
        self.at_base: dict[str, set[str]] = {s: set() for s in services}
        self.pods: dict[str, int] = {s: 0 for s in services}
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
    custom: aclient.CustomObjectsApi,
    watch: PodWatch,
    namespace: str,
    services: list[str],
    replicas: int,
    rate: float,
    count: int,
    label: str,
    send: Callable[[str, str, datetime], Awaitable[None]],
) -> dict[str, Any]:
    latencies: list[float] = []
    skipped = 0
    timeouts = 0
    pending: list[tuple[float, asyncio.Future[float]]] = []
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
        expires = datetime.now(UTC) + timedelta(milliseconds=300)
        await send(svc, f"{label}-{i}", expires)
        pending.append((sent, fut))
    for sent, fut in pending:
        try:
            done = await asyncio.wait_for(fut, timeout=30)
            latencies.append(done - sent)
        except TimeoutError:
            timeouts += 1
    elapsed = time.perf_counter() - start
    return {
        "rate_per_s": rate,
        "sent": len(pending),
        "skipped_not_at_baseline": skipped,
        "timeouts": timeouts,
        "achieved_rate_per_s": round(len(pending) / elapsed, 1),
        "p50_ms": round(pct(latencies, 50) * 1000, 1),
        "p99_ms": round(pct(latencies, 99) * 1000, 1),
        "mean_ms": round(statistics.fmean(latencies) * 1000, 1) if latencies else float("nan"),
        "max_ms": round(max(latencies) * 1000, 1) if latencies else float("nan"),
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    cluster = start_cluster(args.cluster)
    # Pods left by an interrupted run would take the nodes' room.
    cluster.kubectl("delete", "namespace", "-l", "heady.io/test=bench", "--wait=true", "--timeout=120s", check=False)
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
    say("starting the operator")
    op = OperatorProcess(cluster, Path(os.environ.get("TMPDIR", "/tmp")), {"HEADY_PREDICTION_ENABLED": "false"})
    op.start()
    assert op.proc is not None
    stats = ProcStats(op.proc.pid)
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
            await custom.create_namespaced_custom_object("heady.io", "v1alpha1", namespace, "attentionsignals", body)

        # Warm-up: one escalation end to end, so connection set-up is not in the first sample.
        await run_rate(custom, watch, namespace, services[:1], args.pods, 1, 1, "warmup", send_object)
        await asyncio.to_thread(wait_for, settled, "relaxed after warm-up", 120, 0.2)
        runs = []
        for rate in args.rates:
            count = max(3, int(rate * args.seconds))
            say(f"{count} AttentionSignals at {rate:g}/s")
            cpu0, t0 = stats.cpu_seconds(), time.perf_counter()
            run = await run_rate(
                custom, watch, namespace, services, args.pods, rate, count, f"r{int(rate)}", send_object
            )
            run["path"] = "AttentionSignal"
            run["operator_cpu_cores"] = round((stats.cpu_seconds() - cpu0) / (time.perf_counter() - t0), 2)
            run["operator_rss_mb"] = round(stats.rss_mb(), 1)
            runs.append(run)
            print(json.dumps(run), flush=True)
            # Let everything relax before the next rate.
            await asyncio.to_thread(wait_for, settled, "relaxed", 120, 0.2)
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
            "runs": runs,
        }
    finally:
        op.stop()
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
        "| path | rate/s | sent | p50 ms | p99 ms | max ms | skipped | timeouts | operator CPU cores | RSS MB |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["runs"]:
        lines.append(
            f"| {r['path']} | {r['rate_per_s']:g} | {r['sent']} | {r['p50_ms']} | {r['p99_ms']} | {r['max_ms']} "
            f"| {r['skipped_not_at_baseline']} | {r['timeouts']} | {r['operator_cpu_cores']} | {r['operator_rss_mb']} |"
        )
    (RESULTS / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny run for CI")
    parser.add_argument("--services", type=int, default=50)
    parser.add_argument("--pods", type=int, default=4)
    parser.add_argument("--rates", type=float, nargs="+", default=[1, 10, 100])
    parser.add_argument("--seconds", type=float, default=10, help="how long each rate runs")
    parser.add_argument("--cluster", default="heady-bench")
    args = parser.parse_args()
    if args.quick:
        args.services, args.pods, args.rates, args.seconds = 4, 2, [2, 10], 1.5
    result = asyncio.run(main_async(args))
    write(result, args.quick)


if __name__ == "__main__":
    main()
