"""Real-node resize latency on kind: attention signal -> resize accepted -> cgroup changed -> status.

Setup: a kind cluster (hack/kind_cluster.py; reused if it answers, else created and deleted at the
end), one operator process, two Guaranteed busybox pods on the one real node:
- `heady`: managed by a HeadyService (baseline 250m, peak 500m CPU, cooldown 0). Each round sends an
  AttentionSignal that expires after --attention-ms (3 s: on a busy machine the kubelet
  must apply peak before the operator relaxes it again), waits until the pod is back at baseline, repeats.
- `raw`: not managed. Each round PATCHes pods/raw/resize directly between the same two sizes: the
  kubelet's own floor, measured in the same run on the same node.
- `plheady` and `plraw`, once those two are gone: the same pair with pod-level resources
  (spec.resources, the containers have none): heady resizes at the pod level (peak 500m/64Mi from
  the template, baselineRatio 0.5), the raw PATCH sets the pod's spec.resources. Their cgroup is the
  pod's own (the containers' parent).

Timestamps (perf_counter, one clock): `sent` just before the create / PATCH call; `accepted` when a
pod watch first shows the spec at the new size (the API server accepted the resize; for raw, the
PATCH's return); `cgroup` when the container's cpu.cfs_quota_us (cgroup v1) or cpu.max (v2) holds the
new quota, polled every millisecond from the host (the kind node's cgroups are the host's); `status`
when the watch shows status.containerStatuses[].resources (pod-level: status.resources) at the new
size (the kubelet's report);
`service` (heady only) when the HeadyService's status.level says Peak (the operator's report).
heady's numbers are reported beside the raw floor and as a ratio to it.

    .venv/bin/python benchmarks/realnode_resize.py            # 60 rounds each
    .venv/bin/python benchmarks/realnode_resize.py --quick    # tiny CI mode

Writes benchmarks/results/realnode_resize.{json,md} (quick mode: *-quick.*, not committed).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.append(str(Path(__file__).resolve().parents[1]))  # appended: stdlib `operator` must win

from kubernetes import client, watch

from benchmarks.measure import ProcStats, pct
from tests.harness import Cluster, OperatorProcess, attention, headyservice, wait_for
from tests.kind.realnode import KIND_CLUSTER, SLEEP, busybox_deployment, image_refs, kind_cluster

RESULTS = Path(__file__).resolve().parent / "results"
BASE = {"cpu": "250m", "memory": "32Mi"}
PEAK = {"cpu": "500m", "memory": "32Mi"}
BASE_Q, PEAK_Q = 250, 500  # millicores as the kernel's quota says them
# Pod-level: heady's peak is the template's pod-level resources, its baseline half of them.
PL_BASE = {"cpu": "250m", "memory": "32Mi"}
PL_PEAK = {"cpu": "500m", "memory": "64Mi"}


def say(msg: str) -> None:
    print(f"[realnode_resize {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def cpu_milli(q: str | None) -> int | None:
    if q is None:
        return None
    return int(q[:-1]) if q.endswith("m") else int(float(q) * 1000)


@dataclass
class Timeline:
    """First-seen times of each value, per pod: spec limit, status limit, cgroup quota, service level."""

    spec: dict[str, list[tuple[float, int | None]]] = field(default_factory=dict)
    status: dict[str, list[tuple[float, int | None]]] = field(default_factory=dict)
    cgroup: dict[str, list[tuple[float, int | None]]] = field(default_factory=dict)
    level: dict[str, list[tuple[float, str]]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def note(self, series: list[Any], value: Any) -> None:
        with self.lock:
            if not series or series[-1][1] != value:
                series.append((time.perf_counter(), value))

    def first(self, series: list[Any], value: Any, after: float) -> float | None:
        with self.lock:
            # The value may already hold when `after` is taken only if nothing changed: callers
            # make sure the pod is at the other size first.
            for t, v in series:
                if t >= after and v == value:
                    return float(t)
        return None


def watch_pods(cluster: Cluster, ns: str, tl: Timeline, stop: threading.Event) -> None:
    core = client.CoreV1Api(cluster.api)
    while not stop.is_set():
        w = watch.Watch()
        try:
            for ev in w.stream(core.list_namespaced_pod, ns, timeout_seconds=30):
                pod = ev["object"]
                app = (pod.metadata.labels or {}).get("app")
                if app is None or pod.metadata.deletion_timestamp:
                    continue
                if pod.spec.resources is not None:  # pod-level resources
                    spec_res, st_res = pod.spec.resources, pod.status.resources
                else:
                    spec_res = pod.spec.containers[0].resources
                    st = (pod.status.container_statuses or [None])[0]
                    st_res = st.resources if st is not None else None
                tl.note(tl.spec.setdefault(app, []), cpu_milli((spec_res.limits or {}).get("cpu")))
                if st_res is not None:
                    tl.note(tl.status.setdefault(app, []), cpu_milli((st_res.limits or {}).get("cpu")))
                if stop.is_set():
                    break
        except Exception as exc:  # a dropped watch is re-opened; the benchmark reports gaps as timeouts
            say(f"pod watch restarted: {exc!r}")
        finally:
            w.stop()


def watch_service(cluster: Cluster, ns: str, tl: Timeline, stop: threading.Event) -> None:
    while not stop.is_set():
        w = watch.Watch()
        try:
            for ev in w.stream(
                cluster.custom.list_namespaced_custom_object,
                "heady.io",
                "v1alpha1",
                ns,
                "headyservices",
                timeout_seconds=30,
            ):
                obj = ev["object"]
                tl.note(tl.level.setdefault(obj["metadata"]["name"], []), obj.get("status", {}).get("level"))
                if stop.is_set():
                    break
        except Exception as exc:
            say(f"service watch restarted: {exc!r}")
        finally:
            w.stop()


def host_cgroup_file(container_id: str) -> Path | None:
    """The container's CPU quota file as the host sees it (kind nodes' cgroups live in the host's tree)."""
    return _host_cgroup_file(f"*{container_id.split('://', 1)[-1]}*")


def host_pod_cgroup_file(uid: str) -> Path | None:
    """The pod's own CPU quota file (systemd driver: `*pod<uid_>.slice`; cgroupfs: `pod<uid>`)."""
    return _host_cgroup_file(f"*pod{uid.replace('-', '_')}.slice") or _host_cgroup_file(f"pod{uid}")


def _host_cgroup_file(pattern: str) -> Path | None:
    roots = (
        (Path("/sys/fs/cgroup/cpu"), "cpu.cfs_quota_us"),  # v1: cpu alone, or a link to cpu,cpuacct
        (Path("/sys/fs/cgroup"), "cpu.max"),  # v2
    )
    for root, name in roots:
        if not root.is_dir():
            continue
        for d in root.rglob(pattern):
            if (d / name).exists():
                return d / name
    return None


def read_quota(path: Path) -> int | None:
    text = path.read_text().split()
    if path.name == "cpu.max":
        return None if text[0] == "max" else int(text[0]) * 1000 // int(text[1])
    quota = int(text[0])
    return None if quota < 0 else quota // 100  # period 100000 us


def poll_cgroup(files: dict[str, Path], tl: Timeline, stop: threading.Event) -> None:
    while not stop.is_set():
        for app, f in files.items():
            try:
                tl.note(tl.cgroup.setdefault(app, []), read_quota(f))
            except OSError as exc:  # a pod gone: say so rather than let every later round time out
                say(f"cgroup of {app} unreadable: {exc!r}")
                stop.wait(1)
        time.sleep(0.001)


def pod_level_deployment(name: str, ns: str, resources: dict[str, str]) -> dict[str, Any]:
    """A Guaranteed busybox pod whose only resources are pod-level (spec.resources)."""
    deploy = busybox_deployment(name, ns, {})
    spec = deploy["spec"]["template"]["spec"]
    spec["resources"] = {"requests": dict(resources), "limits": dict(resources)}
    spec["containers"] = [
        {"name": "app", "image": image_refs()["busybox"], "imagePullPolicy": "Never", "command": SLEEP}
    ]
    return deploy


def running_pod(cluster: Cluster, ns: str, app: str) -> client.V1Pod | None:
    pods = [p for p in cluster.pods(ns, f"app={app}") if p.status.phase == "Running"]
    return pods[0] if len(pods) == 1 else None


def settled(tl: Timeline, app: str, milli: int) -> bool:
    with tl.lock:
        return all((s := series.get(app)) and s[-1][1] == milli for series in (tl.spec, tl.status, tl.cgroup))


def last(tl: Timeline, app: str) -> str:
    with tl.lock:
        return ", ".join(
            f"{name} {series[app][-1][1] if series.get(app) else None}"
            for name, series in (("spec", tl.spec), ("status", tl.status), ("cgroup", tl.cgroup))
        )


def summary(samples: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(pct(samples, 50) * 1000, 1),
        "p99_ms": round(pct(samples, 99) * 1000, 1),
        "n": len(samples),
    }


def watching(
    cluster: Cluster, ns: str, apps: tuple[str, ...], stop: threading.Event
) -> tuple[Timeline, dict[str, Path]]:
    """Watch the pods of `apps` (spec, status, cgroup) and their HeadyServices until `stop`; returns
    once all are at baseline."""
    pods = {
        app: wait_for(lambda a=app: running_pod(cluster, ns, a), f"{app} running", timeout=90) for app in apps
    }
    files: dict[str, Path] = {}
    for app, pod in pods.items():
        f = (
            host_pod_cgroup_file(pod.metadata.uid)
            if pod.spec.resources is not None
            else host_cgroup_file(pod.status.container_statuses[0].container_id)
        )
        if f is None:
            raise RuntimeError(f"cannot find {app}'s cgroup from the host (is the kind node local?)")
        files[app] = f
    tl = Timeline()
    for target, targs in (
        (watch_pods, (cluster, ns, tl, stop)),
        (watch_service, (cluster, ns, tl, stop)),
        (poll_cgroup, (files, tl, stop)),
    ):
        threading.Thread(target=target, args=targs, daemon=True).start()
    wait_for(lambda: all(settled(tl, app, BASE_Q) for app in apps), f"{apps} at baseline", timeout=60)
    return tl, files


def run(args: argparse.Namespace) -> dict[str, Any]:
    with kind_cluster(args.cluster) as cluster:
        ns = f"bench-realnode-{uuid.uuid4().hex[:5]}"
        cluster.core.create_namespace({"metadata": {"name": ns, "labels": {"heady.io/test": "e2e"}}})
        # Cooldown learning off: the rounds come back every few seconds, and after 20 of them the
        # learned cooldown would (rightly) hold peak between rounds, while this measures actuation.
        op = OperatorProcess(
            cluster,
            Path("/tmp"),
            {"HEADY_REBALANCE_INTERVAL_SECONDS": "5", "HEADY_COOLDOWN_LEARNING": "false"},
        )
        stop, pl_stop = threading.Event(), threading.Event()
        try:
            op.start()
            cluster.apply(busybox_deployment("heady", ns, BASE, BASE))
            cluster.apply(busybox_deployment("raw", ns, BASE, BASE))
            cluster.apply(
                headyservice(
                    "heady",
                    ns,
                    containers=[{"name": "app", "peak": PEAK}],
                    baselineRatio=0.5,
                    cooldownSeconds=0,
                )
            )
            tl, files = watching(cluster, ns, ("heady", "raw"), stop)
            # The first resize after a node starts can be slow; one warm-up round each, not counted.
            raw = raw_rounds(cluster, ns, tl, 1)
            raw = raw_rounds(cluster, ns, tl, args.rounds)
            stats = ProcStats(op.proc.pid) if op.proc else None
            cpu0 = stats.cpu_seconds() if stats else 0.0
            t0 = time.perf_counter()
            heady_rounds(cluster, ns, tl, 1, args.attention_ms)
            heady = heady_rounds(cluster, ns, tl, args.rounds, args.attention_ms)
            op_cpu = (stats.cpu_seconds() - cpu0) / (time.perf_counter() - t0) if stats else float("nan")
            stop.set()

            # Pod-level: the same pair, once the first pair is gone (a 2-core node has no room for
            # four of these beside the control plane, and a terminating pod holds its room).
            for app in ("heady", "raw"):
                cluster.apps.delete_namespaced_deployment(app, ns, propagation_policy="Foreground")
            cluster.kubectl("delete", "headyservice", "-n", ns, "heady")
            wait_for(lambda: not cluster.pods(ns, "app in (heady,raw)"), "the first pair gone", timeout=60)
            cluster.apply(pod_level_deployment("plheady", ns, PL_PEAK))
            cluster.apply(pod_level_deployment("plraw", ns, PL_BASE))
            cluster.apply(headyservice("plheady", ns, baselineRatio=0.5, cooldownSeconds=0))
            pl_tl, pl_files = watching(cluster, ns, ("plheady", "plraw"), pl_stop)
            raw_rounds(cluster, ns, pl_tl, 1, "plraw")
            pl_raw = raw_rounds(cluster, ns, pl_tl, args.rounds, "plraw")
            heady_rounds(cluster, ns, pl_tl, 1, args.attention_ms, "plheady")
            pl_heady = heady_rounds(cluster, ns, pl_tl, args.rounds, args.attention_ms, "plheady")
        finally:
            stop.set()
            pl_stop.set()
            op.stop()
            cluster.core.delete_namespace(ns, propagation_policy="Background", grace_period_seconds=0)
        node = cluster.core.list_node().items[0]
        return {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": f"{platform.machine()}, {node.status.capacity['cpu']} cores",
            "kubelet": node.status.node_info.kubelet_version,
            "container_runtime": node.status.node_info.container_runtime_version,
            "cgroup_file": files["heady"].name,
            "rounds": args.rounds,
            "attention_ms": args.attention_ms,
            "raw": raw,
            "heady": heady,
            "operator_cpu_cores": round(op_cpu, 3),
            "pod_level": {"cgroup_file": pl_files["plheady"].name, "raw": pl_raw, "heady": pl_heady},
        }


def raw_rounds(cluster: Cluster, ns: str, tl: Timeline, n: int, app: str = "raw") -> dict[str, Any]:
    accepted: list[float] = []
    cgroup: list[float] = []
    status: list[float] = []
    timeouts = 0
    for _ in range(n):
        with tl.lock:
            at_peak = tl.spec[app][-1][1] == PEAK_Q
        if app == "plraw":
            target, q = (PL_BASE, BASE_Q) if at_peak else (PL_PEAK, PEAK_Q)
            body: dict[str, Any] = {"spec": {"resources": {"requests": target, "limits": target}}}
        else:
            target, q = (BASE, BASE_Q) if at_peak else (PEAK, PEAK_Q)
            body = {
                "spec": {"containers": [{"name": "app", "resources": {"requests": target, "limits": target}}]}
            }
        sent = time.perf_counter()
        _patch(cluster, ns, app, body)
        accepted.append(time.perf_counter() - sent)
        try:
            wait_for(lambda q=q: settled(tl, app, q), f"{app} resized", timeout=15, interval=0.002)
        except AssertionError:
            say(f"{app} not at {q}m within 15 s: {last(tl, app)}")
            timeouts += 1
            continue
        cg = tl.first(tl.cgroup[app], q, sent)
        st = tl.first(tl.status[app], q, sent)
        if cg is not None and st is not None:
            cgroup.append(cg - sent)
            status.append(st - sent)
    return {
        "accepted": summary(accepted),
        "cgroup": summary(cgroup),
        "status": summary(status),
        "timeouts": timeouts,
    }


def _patch(cluster: Cluster, ns: str, app: str, body: dict[str, Any]) -> None:
    pods = [p for p in cluster.pods(ns, f"app={app}") if p.status.phase == "Running"]
    cluster.core.patch_namespaced_pod_resize(pods[0].metadata.name, ns, body)


def heady_rounds(
    cluster: Cluster, ns: str, tl: Timeline, n: int, attention_ms: int, app: str = "heady"
) -> dict[str, Any]:
    accepted: list[float] = []
    cgroup: list[float] = []
    status: list[float] = []
    service: list[float] = []
    timeouts = 0
    for _ in range(n):
        # Back at baseline, and the HeadyService says so: the operator writes a status once a
        # level has lasted its settle time, so a new signal sent before that would find level
        # Peak still standing and no Peak transition to time.
        wait_for(
            lambda: settled(tl, app, BASE_Q) and tl.level.get(app, [(0.0, "")])[-1][1] == "Baseline",
            f"{app} back at baseline (pods and status)",
            timeout=30,
            interval=0.005,
        )
        name = f"sig-{uuid.uuid4().hex[:8]}"
        body = attention(name, ns, app, intensity=0.9, source="bench")
        expires = datetime.now(UTC).timestamp() + attention_ms / 1000
        body["spec"]["expiresAt"] = datetime.fromtimestamp(expires, UTC).isoformat().replace("+00:00", "Z")
        sent = time.perf_counter()
        cluster.custom.create_namespaced_custom_object("heady.io", "v1alpha1", ns, "attentionsignals", body)
        try:
            wait_for(
                lambda s=sent: all(tl.first(x[app], PEAK_Q, s) for x in (tl.spec, tl.cgroup, tl.status)),
                f"{app} at peak (spec, cgroup, status)",
                timeout=15,
                interval=0.002,
            )
            wait_for(
                lambda s=sent: tl.first(tl.level[app], "Peak", s), "level Peak", timeout=5, interval=0.002
            )
        except AssertionError:
            say(
                f"{app} not at peak within 15 s of the signal: {last(tl, app)}, level {tl.level.get(app, [])[-1:]}"
            )
            timeouts += 1
            continue
        acc = tl.first(tl.spec[app], PEAK_Q, sent)
        cg = tl.first(tl.cgroup[app], PEAK_Q, sent)
        st = tl.first(tl.status[app], PEAK_Q, sent)
        if acc is None or cg is None or st is None:
            timeouts += 1
            continue
        accepted.append(acc - sent)
        cgroup.append(cg - sent)
        status.append(st - sent)
        lv = tl.first(tl.level[app], "Peak", sent)
        if lv is not None:
            service.append(lv - sent)
    return {
        "accepted": summary(accepted),
        "cgroup": summary(cgroup),
        "status": summary(status),
        "service_status": summary(service),
        "timeouts": timeouts,
    }


def _table(raw: dict[str, Any], heady: dict[str, Any]) -> list[str]:
    def ratio(step: str, q: str) -> str:
        r = raw[step][q]
        return f"{heady[step][q] / r:.1f}x" if r and r == r and r > 0 else "-"

    lines = [
        "| step | raw PATCH p50 ms | raw p99 ms | heady p50 ms | heady p99 ms | heady/raw p50 | heady/raw p99 |",
        "|---|---|---|---|---|---|---|",
    ]
    for step, label in (
        ("accepted", "resize accepted"),
        ("cgroup", "cgroup changed"),
        ("status", "pod status updated"),
    ):
        lines.append(
            f"| {label} | {raw[step]['p50_ms']} | {raw[step]['p99_ms']} | {heady[step]['p50_ms']} | {heady[step]['p99_ms']} "
            f"| {ratio(step, 'p50_ms')} | {ratio(step, 'p99_ms')} |"
        )
    s = heady["service_status"]
    lines.append(f"| HeadyService level Peak | - | - | {s['p50_ms']} | {s['p99_ms']} | - | - |")
    return lines


def write(result: dict[str, Any], quick: bool) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = "realnode_resize" + ("-quick" if quick else "")
    (RESULTS / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    raw, heady = result["raw"], result["heady"]
    pl = result["pod_level"]
    lines = [
        f"# realnode_resize (kind, {result['kubelet']}, {result['container_runtime']}, {result['date']})",
        "",
        f"{result['rounds']} resizes each, 250m <-> 500m CPU on a Guaranteed busybox pod; machine {result['machine']};"
        f" cgroup file {result['cgroup_file']}. Times from the signal (heady) or the PATCH (raw).",
        "",
        *_table(raw, heady),
        "",
        f"Timeouts: raw {raw['timeouts']}, heady {heady['timeouts']}. Operator CPU while signalling: "
        f"{result['operator_cpu_cores']} cores.",
        "",
        "## Pod-level resources",
        "",
        f"{result['rounds']} resizes each of a pod whose only resources are pod-level (spec.resources),"
        " 250m/32Mi <-> 500m/64Mi, resized at the pod level; the cgroup is the pod's own"
        f" ({pl['cgroup_file']}).",
        "",
        *_table(pl["raw"], pl["heady"]),
        "",
        f"Timeouts: raw {pl['raw']['timeouts']}, heady {pl['heady']['timeouts']}.",
    ]
    (RESULTS / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="tiny run for CI")
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--attention-ms", type=int, default=3000)
    parser.add_argument("--cluster", default=KIND_CLUSTER, help="kind cluster name (reused if running)")
    args = parser.parse_args()
    if args.quick:
        args.rounds = 6
    result = run(args)
    write(result, args.quick)
    for case in (result, result["pod_level"]):
        bad = case["raw"]["timeouts"] + case["heady"]["timeouts"]
        if bad > args.rounds // 5:
            say(f"{bad} of {2 * args.rounds} rounds timed out")
            sys.exit(1)


if __name__ == "__main__":
    main()
