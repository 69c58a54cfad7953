"""Shards on kwok: the scale workload under one operator, then split over two shards, in one run.

Two sets of namespaces with the same objects (Deployments x pods and their HeadyServices, as in
benchmarks/scale.py), created up front so both runs see the same cluster:
- run "1 shard": namespaces one-a and one-b, both labelled heady.io/bench-run=one; one operator
  with HEADY_SHARD_SELECTOR=heady.io/bench-run=one acts in both;
- run "2 shards": namespaces two-a (heady.io/bench-shard=a) and two-b (heady.io/bench-shard=b);
  two operators, one per selector, started together.
Each run: settle (operator start until every pod of its namespaces is at baseline), then a
storm (AttentionSignals on --storm services, half in each namespace) until those are at peak.
Per operator: RSS at settle and at the end (VmHWM), CPU seconds. Every operator lists all pods
(node capacity counts every shard's pods), so memory per shard falls less than its work does.

The ceiling, measured in the same run before any operator starts: the benchmark's own
pods/resize PATCHes, 16 in flight (benchmarks/scale.py's). Settle and storm are reported as
resizes/s beside it, and the 2-shard times as a ratio to the 1-shard ones.

    .venv/bin/python benchmarks/shards.py            # 20 nodes, 2 x 2 x 200 services x 5 pods, storm 200
    .venv/bin/python benchmarks/shards.py --quick    # 4 nodes, 2 x 2 x 10 x 3 pods, storm 10 (~1 min)

Its own kwok cluster (--cluster, default $HEADY_BENCH_CLUSTER or heady-shards / heady-shards-quick),
deleted at the end unless --keep-cluster. Writes benchmarks/results/shards.{json,md} (quick:
shards-quick.*).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

sys.path.append(str(Path(__file__).resolve().parents[1]))  # appended: stdlib `operator` must win

from kubernetes_asyncio import client as aclient
from kubernetes_asyncio import config as aconfig

from benchmarks.measure import ProcStats
from benchmarks.scale import PodTracker, ceiling, create_objects, storm, wait_until
from tests.harness import ROOT, Cluster, OperatorProcess, start_cluster

RESULTS = Path(__file__).resolve().parent / "results"


def say(msg: str) -> None:
    print(f"[shards {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


async def run_once(
    cluster: Cluster,
    api: aclient.ApiClient,
    label: str,
    shards: dict[str, list[str]],  # selector -> its namespaces
    trackers: dict[str, PodTracker],
    names: list[str],
    args: argparse.Namespace,
) -> dict[str, Any]:
    """Start one operator per selector, time settle and storm, stop them."""
    env = {"HEADY_PREDICTION_ENABLED": "false", "HEADY_LOG_LEVEL": "WARNING"}
    log_dir = Path(os.environ.get("TMPDIR", "/tmp"))
    namespaces = [ns for nss in shards.values() for ns in nss]
    pods_per_ns = len(names) * args.pods
    tracker_tasks = [asyncio.create_task(trackers[ns].run(aclient.CoreV1Api(api))) for ns in namespaces]
    ops: dict[str, OperatorProcess] = {}
    stats: dict[str, ProcStats] = {}
    out: dict[str, Any] = {"shards": len(shards), "namespaces": namespaces}
    try:
        t_start = time.perf_counter()
        for selector in shards:
            ops[selector] = OperatorProcess(cluster, log_dir, {**env, "HEADY_SHARD_SELECTOR": selector})
        # Started together: each process's start-up (imports, first listing) overlaps the others'.
        await asyncio.gather(*(asyncio.to_thread(op.start) for op in ops.values()))
        for selector, op in ops.items():
            assert op.proc is not None
            stats[selector] = ProcStats(op.proc.pid)
        settled: dict[str, float] = {}
        for selector, nss in shards.items():
            t = await wait_until(
                lambda nss=nss: all(trackers[ns].at("base") >= pods_per_ns for ns in nss),
                f"{label}: {selector} at baseline",
                args.settle_timeout,
                tracker_tasks[0],
            )
            settled[selector] = t - t_start
        settle_s = max(settled.values())
        rss_settle = {s: round(stats[s].rss_mb(), 1) for s in shards}
        cpu_settle = {s: round(stats[s].cpu_seconds(), 2) for s in shards}
        say(f"{label}: settled in {settle_s:.1f} s; RSS {rss_settle} MB")

        per_ns = max(1, args.storm // len(namespaces))
        targets = dict.fromkeys(namespaces, names[:per_ns])
        for ns, svcs in targets.items():
            trackers[ns].watch_for = dict.fromkeys(svcs, args.pods)
        t_storm = time.perf_counter()
        await asyncio.gather(*(storm(api, ns, svcs) for ns, svcs in targets.items()))
        t_done = await wait_until(
            lambda: all(all(s in trackers[ns].full_peak_at for s in svcs) for ns, svcs in targets.items()),
            f"{label}: storm at peak",
            args.storm_timeout,
            tracker_tasks[0],
        )
        storm_s = t_done - t_storm
        say(f"{label}: storm of {per_ns * len(namespaces)} at peak in {storm_s:.2f} s")
        out.update(
            settle_s=round(settle_s, 2),
            settle_by_shard_s={s: round(v, 2) for s, v in settled.items()},
            settle_resizes_per_s=round(pods_per_ns * len(namespaces) / settle_s, 1),
            storm_signals=per_ns * len(namespaces),
            storm_s=round(storm_s, 2),
            storm_resizes_per_s=round(per_ns * len(namespaces) * args.pods / storm_s, 1),
            rss_settle_mb=rss_settle,
            rss_peak_mb={s: round(stats[s].hwm_mb(), 1) for s in shards},
            cpu_settle_s=cpu_settle,
            cpu_total_s={s: round(stats[s].cpu_seconds(), 2) for s in shards},
        )
        return out
    finally:
        for op in ops.values():
            await asyncio.to_thread(op.stop)
        for task in tracker_tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    os.environ.update(
        HEADY_NODES=str(args.nodes),
        HEADY_NODE_CPU="64",
        HEADY_NODE_MEMORY_GI="256",
        HEADY_NODE_PODS="300",
    )
    load_start = round(os.getloadavg()[0], 1)
    cluster = start_cluster(args.cluster)
    cluster.kubectl(
        "delete", "namespace", "-l", "heady.io/test=shards", "--wait=true", "--timeout=300s", check=False
    )
    layout = {
        "one-a": {"heady.io/bench-run": "one"},
        "one-b": {"heady.io/bench-run": "one"},
        "two-a": {"heady.io/bench-shard": "a"},
        "two-b": {"heady.io/bench-shard": "b"},
    }
    for ns, labels in layout.items():
        cluster.core.create_namespace(
            cast(Any, {"metadata": {"name": ns, "labels": {"heady.io/test": "shards", **labels}}})
        )
    names = [f"svc-{i:04d}" for i in range(args.services)]
    await aconfig.load_kube_config(config_file=str(cluster.kubeconfig))
    conf = aclient.Configuration.get_default_copy()
    conf.connection_pool_maxsize = 128
    api = aclient.ApiClient(conf)
    trackers = {ns: PodTracker(ns) for ns in layout}
    result: dict[str, Any] = {}
    try:
        say(f"creating {len(layout)} x {args.services} Deployments x {args.pods} pods")
        for ns in layout:
            await create_objects(api, ns, names, args.pods)
        watch = [asyncio.create_task(t.run(aclient.CoreV1Api(api))) for t in trackers.values()]
        total = len(layout) * args.services * args.pods
        await wait_until(
            lambda: sum(t.running() for t in trackers.values()) >= total,
            f"{total} pods Running",
            args.schedule_timeout,
            watch[0],
        )
        for task in watch:
            task.cancel()
        say(f"{total} pods Running")
        c = await ceiling(api, "two-a", await _pod_names(api, "two-a"), 16, args.ceiling_seconds)
        say(f"ceiling: {c['resizes_per_s']} resizes/s")
        await asyncio.sleep(3)
        one = await run_once(
            cluster, api, "1 shard", {"heady.io/bench-run=one": ["one-a", "one-b"]}, trackers, names, args
        )
        two = await run_once(
            cluster,
            api,
            "2 shards",
            {"heady.io/bench-shard=a": ["two-a"], "heady.io/bench-shard=b": ["two-b"]},
            trackers,
            names,
            args,
        )
        result = {
            "benchmark": "shards",
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "load_start": load_start,
            },
            "workload": {
                "nodes": args.nodes,
                "services_per_namespace": args.services,
                "pods_per_service": args.pods,
                "pods_per_run": 2 * args.services * args.pods,
                "pods_in_cluster": total,
            },
            "ceiling_resizes_per_s": c["resizes_per_s"],
            "one_shard": one,
            "two_shards": two,
            "ratios": {
                "settle_2_vs_1": round(two["settle_s"] / one["settle_s"], 2),
                "storm_2_vs_1": round(two["storm_s"] / one["storm_s"], 2),
                "settle_vs_ceiling_1": round(one["settle_resizes_per_s"] / c["resizes_per_s"], 2),
                "settle_vs_ceiling_2": round(two["settle_resizes_per_s"] / c["resizes_per_s"], 2),
            },
        }
        print(json.dumps(result, indent=2), flush=True)
    finally:
        await api.close()
        if args.keep_cluster:
            for ns in layout:
                cluster.core.delete_namespace(ns, propagation_policy="Background")
        else:
            say(f"deleting cluster {args.cluster}")
            await asyncio.to_thread(
                subprocess.run,
                [sys.executable, str(ROOT / "hack" / "cluster.py"), "down"],
                env=dict(os.environ, HEADY_CLUSTER_NAME=args.cluster),
                check=False,
            )
    return result


async def _pod_names(api: aclient.ApiClient, namespace: str) -> list[str]:
    resp: Any = await aclient.CoreV1Api(api).list_namespaced_pod(namespace, _preload_content=False)
    return sorted(p["metadata"]["name"] for p in json.loads(await resp.read())["items"])


def write(result: dict[str, Any], stem: str) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    one, two, w = result["one_shard"], result["two_shards"], result["workload"]
    rows = [
        ("settle (s)", one["settle_s"], two["settle_s"], result["ratios"]["settle_2_vs_1"]),
        ("settle resizes/s", one["settle_resizes_per_s"], two["settle_resizes_per_s"], ""),
        ("storm to peak (s)", one["storm_s"], two["storm_s"], result["ratios"]["storm_2_vs_1"]),
        ("storm resizes/s", one["storm_resizes_per_s"], two["storm_resizes_per_s"], ""),
        ("RSS at settle per shard (MB)", _vals(one["rss_settle_mb"]), _vals(two["rss_settle_mb"]), ""),
        ("peak RSS per shard (MB)", _vals(one["rss_peak_mb"]), _vals(two["rss_peak_mb"]), ""),
        ("CPU s per shard", _vals(one["cpu_total_s"]), _vals(two["cpu_total_s"]), ""),
    ]
    lines = [
        f"# Shards ({result['when']})",
        "",
        f"{w['pods_per_run']} pods per run ({w['services_per_namespace']} services x {w['pods_per_service']} pods "
        f"in each of 2 namespaces), {w['pods_in_cluster']} pods in the cluster, {w['nodes']} kwok nodes; "
        f"ceiling {result['ceiling_resizes_per_s']} resizes/s (the benchmark's own PATCHes, 16 in flight).",
        "",
        "| | 1 shard | 2 shards | 2 / 1 |",
        "| --- | --- | --- | --- |",
        *(f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows),
        "",
        f"Settle as a share of the ceiling: 1 shard {result['ratios']['settle_vs_ceiling_1']}, "
        f"2 shards {result['ratios']['settle_vs_ceiling_2']}. Machine: {result['machine']}.",
        "",
    ]
    (RESULTS / f"{stem}.md").write_text("\n".join(lines))
    say(f"wrote {RESULTS / stem}.json and .md")


def _vals(by_shard: dict[str, float]) -> str:
    return " / ".join(str(v) for v in by_shard.values())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="4 nodes, 10 services x 3 pods per namespace")
    parser.add_argument("--services", type=int, default=200, help="services per namespace")
    parser.add_argument("--pods", type=int, default=5)
    parser.add_argument("--storm", type=int, default=200, help="signals per run, split over its namespaces")
    parser.add_argument("--nodes", type=int, default=20)
    parser.add_argument("--ceiling-seconds", type=float, default=5)
    parser.add_argument("--cluster", default=os.environ.get("HEADY_BENCH_CLUSTER"))
    parser.add_argument("--keep-cluster", action="store_true")
    parser.add_argument("--stem")
    parser.add_argument("--schedule-timeout", type=float, default=900)
    parser.add_argument("--settle-timeout", type=float, default=600)
    parser.add_argument("--storm-timeout", type=float, default=300)
    args = parser.parse_args()
    if args.quick:
        args.services, args.pods, args.storm, args.nodes, args.ceiling_seconds = 10, 3, 10, 4, 2
    args.cluster = args.cluster or ("heady-shards-quick" if args.quick else "heady-shards")
    result = asyncio.run(main_async(args))
    if result:
        write(result, args.stem or ("shards-quick" if args.quick else "shards"))


if __name__ == "__main__":
    main()
