"""What the kind tier reads from real containers: cgroup files (v1 here, v2 on most Docker hosts)
and CPU use, through `kubectl exec` (a pod's own cgroup on the kind node, through the provider's
exec); and the busybox workloads it runs."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client

from tests.harness import ROOT, Cluster, _connect

KIND_CLUSTER = os.environ.get("HEADY_E2E_KIND_CLUSTER", "heady-e2e")
# The provider kind runs its node with (hack/kind_cluster.py: podman unless told otherwise).
PROVIDER = os.environ.get("KIND_EXPERIMENTAL_PROVIDER", "podman")
# The class of the PersistentVolumes tests/kind/test_arena_workspace.py makes for workspaces.
WORKSPACE_STORAGE_CLASS = "heady-workspace"


def _kind(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "hack" / "kind_cluster.py"), *args],
        stdout=subprocess.PIPE,
        text=True,
        env=dict(os.environ, HEADY_KIND_CLUSTER=name),
        check=False,
    )


@contextlib.contextmanager
def kind_cluster(name: str = KIND_CLUSTER) -> Iterator[Cluster]:
    """The kind cluster `name`: reused when it exists (and then left running), otherwise
    created and, on exit, deleted (unless HEADY_KIND_KEEP=1). Raises RuntimeError when it cannot start."""
    # Only a cluster this call creates is deleted at the end; one that existed is left alone.
    existed = _kind(name, "status").returncode != 1
    owned = not existed and not os.environ.get("HEADY_KIND_KEEP")
    try:
        res = _kind(name, "up")
        if res.returncode != 0:
            raise RuntimeError(
                "the kind cluster did not start (hack/kind_cluster.py up failed; see its log above)"
            )
        yield _connect(Path(res.stdout.strip().splitlines()[-1]))
    finally:
        if owned:
            _kind(name, "down")


@functools.cache
def image_refs() -> dict[str, str]:
    out = subprocess.run(
        [sys.executable, str(ROOT / "hack" / "images.py"), "refs"],
        stdout=subprocess.PIPE,
        text=True,
        check=True,
    )
    refs: dict[str, str] = json.loads(out.stdout)
    return refs


SLEEP = ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1; done"]
BUSY = ["sh", "-c", "trap 'exit 0' TERM; while :; do :; done"]


def busybox_deployment(
    name: str,
    namespace: str,
    requests: dict[str, str],
    limits: dict[str, str] | None = None,
    command: list[str] | None = None,
    resize_policy: list[dict[str, str]] | None = None,
    replicas: int = 1,
) -> dict[str, Any]:
    resources: dict[str, Any] = {"requests": requests}
    if limits:
        resources["limits"] = limits
    container: dict[str, Any] = {
        "name": "app",
        "image": image_refs()["busybox"],
        "imagePullPolicy": "Never",
        "command": command or SLEEP,
        "resources": resources,
    }
    if resize_policy:
        container["resizePolicy"] = resize_policy
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"terminationGracePeriodSeconds": 1, "containers": [container]},
            },
        },
    }


# -- cgroups -----------------------------------------------------------------------------------

_READ = r"""
if [ -f /sys/fs/cgroup/cpu.max ]; then
  echo v2; cat /sys/fs/cgroup/cpu.max /sys/fs/cgroup/cpu.weight /sys/fs/cgroup/memory.max
else
  echo v1; cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us \
    /sys/fs/cgroup/cpu/cpu.shares /sys/fs/cgroup/memory/memory.limit_in_bytes
fi
"""


@dataclass(frozen=True)
class Cgroup:
    """The container's CPU limit (millicores, None = unlimited), CPU weight as cgroup v1 shares, and
    memory limit (bytes, None = unlimited), as the kernel has them."""

    cpu_limit_milli: int | None
    cpu_shares: int
    memory_limit: int | None


def parse_cpu(q: str) -> int:
    return int(float(q[:-1])) if q.endswith("m") else int(float(q) * 1000)


def parse_memory(q: str) -> int:
    units = {"Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "k": 1000, "M": 1000**2, "G": 1000**3}
    for suffix, mult in units.items():
        if q.endswith(suffix):
            return int(float(q[: -len(suffix)]) * mult)
    return int(q)


def shares_of(request_milli: int) -> int:
    # The kubelet's MilliCPUToShares.
    return max(2, request_milli * 1024 // 1000)


def expected(requests: dict[str, str], limits: dict[str, str]) -> Cgroup:
    return Cgroup(
        parse_cpu(limits["cpu"]) if "cpu" in limits else None,
        shares_of(parse_cpu(requests["cpu"])),
        parse_memory(limits["memory"]) if "memory" in limits else None,
    )


def read_cgroup(cluster: Cluster, namespace: str, pod: str) -> Cgroup:
    out = cluster.kubectl("exec", "-n", namespace, pod, "-c", "app", "--", "sh", "-c", _READ).stdout.split()
    return _parse_cgroup(out)


# The pod's own cgroup (the parent of its containers') is not visible from inside a container, so
# it is read on the kind node, found by the pod's UID: `kubelet-kubepods-pod<uid_>.slice` (systemd
# driver, kind's default; `-burstable-`/`-besteffort-` in between for those classes) or `pod<uid>`
# (cgroupfs driver).
_READ_POD = r"""
if [ -f /sys/fs/cgroup/cgroup.controllers ]; then v=2; root=/sys/fs/cgroup/; else v=1; root=/sys/fs/cgroup/cpu/; fi
d=$(find "$root" -maxdepth 6 -type d \( -name "*pod$2.slice" -o -name "pod$1" \) | head -n 1)
[ -n "$d" ] || { echo "no cgroup of pod $1 under $root" >&2; exit 1; }
if [ $v = 2 ]; then
  echo v2; cat "$d/cpu.max" "$d/cpu.weight" "$d/memory.max"
else
  echo v1; cat "$d/cpu.cfs_quota_us" "$d/cpu.cfs_period_us" "$d/cpu.shares" \
    "/sys/fs/cgroup/memory/${d#"$root"}/memory.limit_in_bytes"
fi
"""


def running_pod(cluster: Cluster, ns: str, app: str) -> client.V1Pod | None:
    """The one Running pod of `app` that is not being deleted, or None (a rollout: two, or none)."""
    pods = [
        p
        for p in cluster.pods(ns, f"app={app}")
        if p.status.phase == "Running" and not p.metadata.deletion_timestamp
    ]
    return pods[0] if len(pods) == 1 else None


def resize_condition(pod: client.V1Pod) -> tuple[str, str, str] | None:
    """The kubelet's PodResizePending/PodResizeInProgress condition that is True: (type, reason, message)."""
    for c in pod.status.conditions or []:
        if c.type in ("PodResizePending", "PodResizeInProgress") and c.status == "True":
            return c.type, c.reason or "", c.message or ""
    return None


def node_exec(*args: str) -> subprocess.CompletedProcess[str]:
    """`args` run on the kind node (its container, through the provider kind used)."""
    res = subprocess.run(
        [PROVIDER, "exec", f"{KIND_CLUSTER}-control-plane", *args],
        capture_output=True,
        text=True,
        check=False,
    )
    if res.returncode != 0:
        raise AssertionError(f"{PROVIDER} exec on the kind node failed: {' '.join(args)}: {res.stderr}")
    return res


def read_pod_cgroup(uid: str) -> Cgroup:
    """The pod-level cgroup of the pod with this UID, as the kernel has it: for a pod with pod-level
    resources (spec.resources) this is where the kubelet enforces them."""
    out = node_exec("sh", "-c", _READ_POD, "sh", uid, uid.replace("-", "_")).stdout.split()
    return _parse_cgroup(out)


def _parse_cgroup(out: list[str]) -> Cgroup:
    if out[0] == "v2":
        quota, period, weight, mem = out[1], int(out[2]), int(out[3]), out[4]
        # cgroup v2 keeps a weight; convert it back to the shares the kubelet started from
        # (its conversion is lossy, so compare through the same formula in `matches`).
        shares = _weight_to_shares(weight)
        cpu = None if quota == "max" else int(quota) * 1000 // period
        return Cgroup(cpu, shares, None if mem == "max" else int(mem))
    quota, period, shares, mem = (int(x) for x in out[1:5])
    return Cgroup(None if quota < 0 else quota * 1000 // period, shares, None if mem >= 1 << 62 else mem)


def _weight_to_shares(weight: int) -> int:
    return ((weight - 1) * 262142) // 9999 + 2


def matches(actual: Cgroup, want: Cgroup) -> bool:
    if actual.cpu_limit_milli != want.cpu_limit_milli or actual.memory_limit != want.memory_limit:
        return False
    # v2's weight rounds; a few shares of slack covers it (v1 is exact).
    return abs(actual.cpu_shares - want.cpu_shares) <= 40


@dataclass(frozen=True)
class CpuUse:
    cores: float  # CPU used over the window, in cores
    throttled: float  # share of CFS periods in which the quota stopped the container


def cpu_use(cluster: Cluster, namespace: str, pod: str, seconds: float = 3.0) -> CpuUse:
    """The container's CPU use over `seconds`, from its own cgroup's accounting (usage and CFS
    throttling counters), over the container's clock (/proc/uptime, 10 ms resolution)."""
    script = (
        "sample() { if [ -f /sys/fs/cgroup/cpu.stat ]; then "
        "awk '/^usage_usec/ {u=$2*1000} /^nr_periods/ {p=$2} /^nr_throttled/ {t=$2} END {printf \"%.0f %d %d\", u, p, t}' "
        "/sys/fs/cgroup/cpu.stat; else "
        "awk '/^nr_periods/ {p=$2} /^nr_throttled/ {t=$2} END {printf \"%.0f %d %d\", u, p, t}' "
        "u=$(cat /sys/fs/cgroup/cpuacct/cpuacct.usage) /sys/fs/cgroup/cpu/cpu.stat; fi; }; "
        f"a=$(sample); t0=$(cut -d' ' -f1 /proc/uptime); sleep {seconds}; b=$(sample); "
        "t1=$(cut -d' ' -f1 /proc/uptime); echo $a $b $t0 $t1"
    )
    out = cluster.kubectl("exec", "-n", namespace, pod, "-c", "app", "--", "sh", "-c", script).stdout.split()
    u0, p0, th0, u1, p1, th1 = (int(x) for x in out[:6])
    wall = float(out[7]) - float(out[6])
    return CpuUse((u1 - u0) / 1e9 / wall, (th1 - th0) / max(1, p1 - p0))
