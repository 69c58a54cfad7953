"""New pods of a service at peak: pod Ready -> resize accepted, on HPA-style scale-ups and rollouts (issue 18).

One kwok cluster, two namespaces with the same Deployment (--pods Burstable pods; template requests
10m CPU, limit 20m) kept at peak (19m):
- `raw`: the ceiling, measured in the same run. The benchmark's own pod watch PATCHes
  pods/NAME/resize to peak the moment it sees a new pod Ready: nothing between the watch event
  and the PATCH. Also the bare PATCH response time.
- `heady`: the operator process (HEADY_NAMESPACES = its namespace), a HeadyService with peak 19m
  and a long AttentionSignal holding it at peak.

Each round, per system: a scale-up (replicas P -> 2P, as an HPA does), a scale-down back to P, and
a rollout (a pod-template annotation changes: a new ReplicaSet replaces every pod). Latency per new
pod: the benchmark's watch first sees it Ready -> the same watch first sees its spec at peak (the
API server accepted the resize). After each phase, for heady: seconds until the HeadyService's
status and heady_pods_at_peak count exactly the pods that exist, all at peak ("left stale" when
not within 30 s: a service counted at peak with pods that are gone).

    .venv/bin/python benchmarks/rollout_resize.py --cluster NAME   # 10 pods, 5 rounds
    .venv/bin/python benchmarks/rollout_resize.py --quick          # tiny CI mode

Writes benchmarks/results/rollout_resize.{json,md} (quick: *-quick.*, not committed).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import queue
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.append(str(Path(__file__).resolve().parents[1]))  # appended: stdlib `operator` must win

from kubernetes import client, config

from benchmarks.measure import ProcStats, pct
from tests.harness import (
    Cluster,
    OperatorProcess,
    attention,
    deployment,
    headyservice,
    start_cluster,
    wait_for,
)

RESULTS = Path(__file__).resolve().parent / "results"
TEMPLATE_REQUESTS = {"cpu": "10m", "memory": "32Mi"}
LIMITS = {"cpu": "20m", "memory": "64Mi"}
PEAK = {"cpu": "19m", "memory": "64Mi"}  # Burstable at peak: 1m below the CPU limit
APP = "web"
SYSTEMS = ("raw", "heady")
STALE_AFTER_S = 30.0


def say(msg: str) -> None:
    print(f"[rollout_resize {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def ms(seconds: float) -> float | None:
    return None if seconds != seconds else round(seconds * 1000, 1)


Pod = dict[str, Any]  # raw JSON: the watch decodes nothing it does not read


def at_peak(pod: Pod) -> bool:
    containers = (pod.get("spec") or {}).get("containers") or [{}]
    requests = (containers[0].get("resources") or {}).get("requests") or {}
    return bool(requests.get("cpu") == PEAK["cpu"])


def ready(pod: Pod) -> bool:
    status = pod.get("status") or {}
    if (pod.get("metadata") or {}).get("deletionTimestamp") or status.get("phase") != "Running":
        return False
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])


@dataclass
class PodTimes:
    ready: float | None = None
    peak: float | None = None
    patched: float | None = None  # raw: the PATCH returned


@dataclass
class Watch:
    """One namespace's pods as the benchmark sees them; raw: also the reacting 'controller'.

    Raw JSON lines and json.loads (no client models), and the raw system's PATCHes from warm
    worker threads on a client of their own: the ceiling is what the API server allows, not
    what the Python client costs."""

    cluster: Cluster
    namespace: str
    react: bool
    times: dict[str, PodTimes] = field(default_factory=dict)
    live: dict[str, Pod] = field(default_factory=dict)
    patch_latency: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)
    todo: queue.Queue[str] = field(default_factory=queue.Queue)

    def __post_init__(self) -> None:
        if self.react:
            api = config.new_client_from_config(config_file=str(self.cluster.kubeconfig))
            api.configuration.connection_pool_maxsize = 8
            self.patcher = client.CoreV1Api(api)
            for _ in range(4):
                threading.Thread(target=self.patch_worker, daemon=True).start()

    def run(self) -> None:
        core = client.CoreV1Api(config.new_client_from_config(config_file=str(self.cluster.kubeconfig)))
        rv = ""
        while not self.stop.is_set():
            try:
                if not rv:
                    listing = json.loads(
                        core.list_namespaced_pod(self.namespace, _preload_content=False).data
                    )
                    now = time.perf_counter()
                    for pod in listing.get("items") or []:
                        self.on_event("ADDED", pod, now)
                    rv = listing["metadata"]["resourceVersion"]
                resp = core.list_namespaced_pod(
                    self.namespace,
                    watch=True,
                    resource_version=rv,
                    allow_watch_bookmarks=True,
                    timeout_seconds=60,
                    _preload_content=False,
                )
                buf = b""
                for chunk in resp.stream(4096, decode_content=True):
                    now = time.perf_counter()
                    buf += chunk
                    while b"\n" in buf:
                        line, buf = buf.split(b"\n", 1)
                        if not line.strip():
                            continue
                        event = json.loads(line)
                        obj = event["object"]
                        if event["type"] == "ERROR":
                            rv = ""  # 410 Gone: list again
                            break
                        rv = (obj.get("metadata") or {}).get("resourceVersion", rv)
                        if event["type"] != "BOOKMARK":
                            self.on_event(event["type"], obj, now)
                    if self.stop.is_set():
                        break
                resp.release_conn()
            except Exception as exc:  # a dropped watch resumes; the benchmark's timeouts catch the rest
                say(f"watch of {self.namespace} ended ({exc!r}); again")
                rv = ""

    def on_event(self, kind: str, pod: Pod, now: float) -> None:
        name = pod["metadata"]["name"]
        with self.lock:
            if kind == "DELETED" or pod["metadata"].get("deletionTimestamp"):
                self.live.pop(name, None)
                return
            self.live[name] = pod
            t = self.times.setdefault(name, PodTimes())
            first_ready = t.ready is None and ready(pod)
            if first_ready:
                t.ready = now
            if t.peak is None and at_peak(pod):
                t.peak = now
        if first_ready and self.react and not at_peak(pod):
            self.todo.put(name)

    def patch_worker(self) -> None:
        body = {"spec": {"containers": [{"name": "app", "resources": {"requests": dict(PEAK)}}]}}
        while True:
            name = self.todo.get()
            start = time.perf_counter()
            try:
                self.patcher.patch_namespaced_pod_resize(name, self.namespace, body, _preload_content=False)
            except client.ApiException as exc:
                say(f"raw PATCH of {name} failed: {exc.status}")
                continue
            end = time.perf_counter()
            with self.lock:
                self.patch_latency.append(end - start)
                self.times[name].patched = end

    def settled(self, replicas: int, template_hash: str | None = None) -> bool:
        with self.lock:
            pods = list(self.live.values())
        if len(pods) != replicas:
            return False
        if template_hash and any(
            ((p["metadata"].get("labels") or {}).get("pod-template-hash")) != template_hash for p in pods
        ):
            return False
        return all(ready(p) and at_peak(p) for p in pods)


def current_hash(cluster: Cluster, namespace: str) -> str | None:
    """The pod-template-hash of the Deployment's newest ReplicaSet (the one a rollout ends on)."""
    sets = cluster.apps.list_namespaced_replica_set(namespace).items
    newest = max(
        sets, key=lambda rs: int((rs.metadata.annotations or {}).get("deployment.kubernetes.io/revision", 0))
    )
    return str(newest.metadata.labels.get("pod-template-hash"))


def pods_at_peak_metric(op: OperatorProcess, namespace: str) -> float | None:
    prefix = f'heady_pods_at_peak{{namespace="{namespace}",service="{APP}"}} '
    for line in op.metrics().splitlines():
        if line.startswith(prefix):
            return float(line[len(prefix) :])
    return None


def status_converged(cluster: Cluster, op: OperatorProcess, namespace: str, replicas: int) -> bool:
    status = cluster.get("headyservices", namespace, APP).get("status") or {}
    return (
        status.get("podsTotal") == replicas
        and status.get("podsAtPeak") == replicas
        and pods_at_peak_metric(op, namespace) == replicas
    )


def run_phase(
    cluster: Cluster,
    w: Watch,
    system: str,
    phase: str,
    replicas: int,
    op: OperatorProcess | None,
    timeout: float,
) -> dict[str, Any]:
    before = set(w.times)
    started = time.perf_counter()
    if phase == "rollout":
        old = current_hash(cluster, w.namespace)
        cluster.apps.patch_namespaced_deployment(
            APP,
            w.namespace,
            {"spec": {"template": {"metadata": {"annotations": {"bench/rollout": uuid.uuid4().hex[:8]}}}}},
        )
        # Settled means every pod is of the new ReplicaSet, which appears a moment later.
        wait_for(lambda: current_hash(cluster, w.namespace) != old, "the new ReplicaSet", timeout)
    else:
        cluster.apps.patch_namespaced_deployment_scale(APP, w.namespace, {"spec": {"replicas": replicas}})
    template_hash = current_hash(cluster, w.namespace) if phase == "rollout" else None
    wait_for(
        lambda: w.settled(replicas, template_hash), f"{system} {phase}: {replicas} pods at peak", timeout
    )
    took = time.perf_counter() - started
    with w.lock:
        new = {n: t for n, t in w.times.items() if n not in before}
    latencies = [t.peak - t.ready for t in new.values() if t.ready is not None and t.peak is not None]
    row: dict[str, Any] = {
        "system": system,
        "phase": phase,
        "replicas": replicas,
        "new_pods": len(new),
        "phase_s": round(took, 2),
        "ready_to_peak_ms": [ms(x) for x in sorted(latencies)],
    }
    if op is not None:
        t0 = time.perf_counter()
        try:
            wait_for(
                lambda: status_converged(cluster, op, w.namespace, replicas),
                "status and metric at the pods that exist",
                STALE_AFTER_S,
                0.05,
            )
            row["status_converged_s"] = round(time.perf_counter() - t0, 2)
        except AssertionError:
            row["status_converged_s"] = None  # left stale
    return row


def summarize(result: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for phase in ("scale-up", "rollout"):
        row: dict[str, Any] = {}
        for system in SYSTEMS:
            lat = [
                x
                for r in result["phases"]
                if r["system"] == system and r["phase"] == phase
                for x in r["ready_to_peak_ms"]
            ]
            lat = [x for x in lat if x is not None]
            row[system] = {"n": len(lat), "p50_ms": pct(lat, 50), "p99_ms": pct(lat, 99)}
        raw, heady = row["raw"], row["heady"]
        row["heady_vs_raw_p50"] = round(heady["p50_ms"] / raw["p50_ms"], 2) if raw["p50_ms"] else None
        row["heady_vs_raw_p99"] = round(heady["p99_ms"] / raw["p99_ms"], 2) if raw["p99_ms"] else None
        out[phase] = row
    conv = [r.get("status_converged_s") for r in result["phases"] if r["system"] == "heady"]
    out["status_converged_max_s"] = max((c for c in conv if c is not None), default=None)
    out["left_stale"] = sum(1 for c in conv if c is None)
    patch = result["raw_patch_ms"]
    out["raw_patch_p50_ms"], out["raw_patch_p99_ms"] = pct(patch, 50), pct(patch, 99)
    return out


def write(result: dict[str, Any], stem: str) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{stem}.json").write_text(json.dumps(result, indent=1) + "\n")
    s = result["summary"]

    def v(x: float | None) -> str:
        return "-" if x is None or x != x else f"{x:.1f}"

    load = result.get("loadavg_1m") or [None, None]
    lines = [
        f"# rollout_resize ({result['pods']} pods, {result['rounds']} round(s), {result['date']})",
        "",
        f"One kwok cluster, {result['machine']['cpus']} cores shared by everything (1-minute load average "
        f"{v(load[0])} at the start, {v(load[-1])} at the end; other work ran on the machine). A service held at peak "
        f"(19m CPU over a 10m template request) is scaled {result['pods']} -> {2 * result['pods']} -> "
        f"{result['pods']} and rolled out each round. Latency: a new pod first seen Ready -> its spec first "
        "seen at peak by the benchmark's watch (the resize accepted). raw = the benchmark PATCHes pods/resize "
        "itself as soon as its watch sees the pod Ready (the ceiling).",
        "",
        *([result["note"], ""] if result.get("note") else []),
        "| phase | new pods raw/heady | raw p50 / p99 ms | heady p50 / p99 ms | heady/raw p50 | heady/raw p99 |",
        "|---|---|---|---|---|---|",
    ]
    for phase in ("scale-up", "rollout"):
        row = s[phase]
        raw, heady = row["raw"], row["heady"]
        lines.append(
            f"| {phase} | {raw['n']}/{heady['n']} | {v(raw['p50_ms'])} / {v(raw['p99_ms'])} | "
            f"{v(heady['p50_ms'])} / {v(heady['p99_ms'])} | {v(row['heady_vs_raw_p50'])}x | "
            f"{v(row['heady_vs_raw_p99'])}x |"
        )
    lines += [
        "",
        f"Raw resize PATCH response p50/p99: {v(s['raw_patch_p50_ms'])}/{v(s['raw_patch_p99_ms'])} ms. "
        f"After each heady phase (scale-up, scale-down, rollout) the HeadyService status and heady_pods_at_peak "
        f"counted exactly the pods that exist within {v(s['status_converged_max_s'])} s at most (status is "
        f"written at most every 2 s); left stale (not within {STALE_AFTER_S:.0f} s): {s['left_stale']}. "
        f"Operator CPU: {v(result.get('operator_cpu_s'))} s over the heady phases.",
        "",
    ]
    (RESULTS / f"{stem}.md").write_text("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="tiny run for CI")
    parser.add_argument("--pods", type=int, default=10, help="replicas before a scale-up (doubled by it)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--timeout", type=float, default=120, help="per phase")
    parser.add_argument("--cluster", default=os.environ.get("HEADY_BENCH_CLUSTER", "heady-bench"))
    parser.add_argument("--stem", help="results file name (default rollout_resize, quick: *-quick)")
    args = parser.parse_args()
    if args.quick:
        args.pods, args.rounds = 2, 1
    stem = args.stem or ("rollout_resize-quick" if args.quick else "rollout_resize")
    t_begin = time.perf_counter()
    cluster = start_cluster(args.cluster)
    tag = uuid.uuid4().hex[:6]
    ns = {s: f"bench-{tag}-{s}" for s in SYSTEMS}
    for namespace in ns.values():
        cluster.core.create_namespace({"metadata": {"name": namespace, "labels": {"heady.io/test": "bench"}}})
    op = OperatorProcess(
        cluster, Path(tempfile.mkdtemp(prefix="rollout-resize-")), {"HEADY_NAMESPACES": ns["heady"]}
    )
    watches = {s: Watch(cluster, ns[s], react=(s == "raw")) for s in SYSTEMS}
    threads = [threading.Thread(target=w.run, daemon=True) for w in watches.values()]
    for t in threads:
        t.start()
    phases: list[dict[str, Any]] = []
    result: dict[str, Any] = {}
    try:
        cluster.apply(deployment(APP, ns["raw"], args.pods, TEMPLATE_REQUESTS, LIMITS))
        cluster.apply(
            [
                deployment(APP, ns["heady"], args.pods, TEMPLATE_REQUESTS, LIMITS),
                headyservice(APP, ns["heady"], peak=PEAK, cooldownSeconds=0, maxPeakSeconds=86400),
                attention("hold", ns["heady"], APP, intensity=1.0, ttlSeconds=86400),
            ]
        )
        op.start()
        stats = ProcStats(op.proc.pid) if op.proc is not None else None
        for s in SYSTEMS:
            wait_for(lambda s=s: watches[s].settled(args.pods), f"{s}: {args.pods} pods at peak", 180)
        cpu0 = stats.cpu_seconds() if stats else 0.0
        load0 = os.getloadavg()[0]
        for r in range(args.rounds):
            for s in SYSTEMS:
                o = op if s == "heady" else None
                for phase, replicas in (
                    ("scale-up", 2 * args.pods),
                    ("scale-down", args.pods),
                    ("rollout", args.pods),
                ):
                    row = run_phase(cluster, watches[s], s, phase, replicas, o, args.timeout)
                    row["round"] = r
                    phases.append(row)
                    lat = [x for x in row["ready_to_peak_ms"] if x is not None]
                    say(
                        f"round {r} {s} {phase}: {len(lat)} new pods, p50 {pct(lat, 50)} ms, max {max(lat, default=None)} ms"
                    )
        cpu = (stats.cpu_seconds() - cpu0) if stats else None
        result = {
            "benchmark": "rollout_resize",
            "quick": args.quick,
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
            "cluster": args.cluster,
            "pods": args.pods,
            "rounds": args.rounds,
            "levels": {"template_requests": TEMPLATE_REQUESTS, "limits": LIMITS, "peak": PEAK},
            "phases": phases,
            "raw_patch_ms": [ms(x) for x in watches["raw"].patch_latency],
            "operator_cpu_s": round(cpu, 2) if cpu is not None else None,
            "loadavg_1m": [round(load0, 1), round(os.getloadavg()[0], 1)],
            "total_s": round(time.perf_counter() - t_begin, 1),
        }
        result["summary"] = summarize(result)
        write(result, stem)
        print(json.dumps(result["summary"]), flush=True)
    finally:
        for w in watches.values():
            w.stop.set()
        op.stop()
        for namespace in ns.values():
            with contextlib.suppress(client.ApiException):
                cluster.core.delete_namespace(namespace, propagation_policy="Background")


if __name__ == "__main__":
    main()
