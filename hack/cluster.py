#!/usr/bin/env python3
"""Start and stop heady's local Kubernetes cluster: kwok with the binary runtime.

The control plane is real (etcd, kube-apiserver, kube-controller-manager, kube-scheduler built
from the Go module proxy by hack/tools.sh); only nodes and kubelets are simulated by kwok Stages
(hack/kwok/stages.yaml), including the kubelet's side of in-place pod resize.

    hack/cluster.py up        # build tools if missing, start the cluster, add nodes, wait Ready
    hack/cluster.py down      # stop and delete the cluster
    hack/cluster.py status    # exit 0 when the apiserver answers
    hack/cluster.py env       # print `export KUBECONFIG=... PATH=...` for a shell
    hack/cluster.py --kind up # the kind tier instead: real kubelet + containerd (hack/kind_cluster.py)
    hack/cluster.py stop-test-clusters NAME...
                              # what `make test` runs on exit: delete the clusters it started,
                              # or with HEADY_KEEP_CLUSTERS=1 say which are left and how to stop them

Every component (etcd, kube-apiserver, controller-manager, scheduler, kwok) listens on
127.0.0.1 only (hack/kwok/loopback.yaml).

Idempotent: `up` on a healthy cluster only re-checks it; on a broken one it recreates it.
Only the standard library is used so this runs before any virtualenv exists.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("HEADY_CACHE", Path.home() / ".cache" / "heady"))
NAME = os.environ.get("HEADY_CLUSTER_NAME", "heady")
WORKDIR = CACHE / "kwok"
CLUSTER_DIR = CACHE / "clusters" / NAME
KUBECONFIG = Path(os.environ.get("HEADY_KUBECONFIG", CLUSTER_DIR / "kubeconfig"))

# Every simulated node is the same size: the resize Stages decide Infeasible from these numbers
# (a kwok Stage cannot read the pod's node), and tests and benchmarks size workloads from them.
NODE_COUNT = int(os.environ.get("HEADY_NODES", "4"))
NODE_CPU = os.environ.get("HEADY_NODE_CPU", "8")
NODE_MEMORY_GI = int(os.environ.get("HEADY_NODE_MEMORY_GI", "32"))
NODE_PODS = os.environ.get("HEADY_NODE_PODS", "250")
ZONES = ("zone-a", "zone-b")


def log(msg: str) -> None:
    print(f"[cluster {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def die(msg: str) -> None:
    log(f"ERROR: {msg}")
    sys.exit(1)


def bin_dir(build: bool) -> Path:
    args = [str(ROOT / "hack" / "tools.sh")] + ([] if build else ["--bin-dir"])
    out = subprocess.run(args, check=False, stdout=subprocess.PIPE, text=True)
    if out.returncode != 0:
        die("hack/tools.sh failed; see its output above")
    return Path(out.stdout.strip().splitlines()[-1])


def tool_env(bins: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{bins}{os.pathsep}{env.get('PATH', '')}"
    env["KWOK_WORKDIR"] = str(WORKDIR)
    env["KUBECONFIG"] = str(KUBECONFIG)
    return env


def run(
    cmd: list[str], env: dict[str, str], check: bool = True, **kw: object
) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(cmd, env=env, text=True, check=False, **kw)  # type: ignore[call-overload]
    if check and res.returncode != 0:
        die(f"{' '.join(cmd)} exited {res.returncode}")
    return res  # type: ignore[no-any-return]


def render_stages() -> Path:
    cpu_milli = int(float(NODE_CPU) * 1000)
    mem_bytes = NODE_MEMORY_GI * 1024**3
    jq = "\n".join(
        line
        for line in (ROOT / "hack/kwok/infeasible.jq").read_text().splitlines()
        if not line.startswith("#")
    )
    text = (ROOT / "hack/kwok/stages.yaml").read_text()
    text = text.replace("'@INFEASIBLE_JQ@'", json.dumps(jq))
    text = text.replace("@NODE_CPU_MILLI@", str(cpu_milli)).replace("@NODE_MEM_BYTES@", str(mem_bytes))
    CLUSTER_DIR.mkdir(parents=True, exist_ok=True)
    out = CLUSTER_DIR / "stages.yaml"
    out.write_text(text)
    return out


def nodes_manifest() -> str:
    docs = []
    for i in range(NODE_COUNT):
        name = f"kwok-node-{i}"
        docs.append(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": name,
                    "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
                    "labels": {
                        "type": "kwok",
                        "kubernetes.io/hostname": name,
                        "kubernetes.io/os": "linux",
                        "kubernetes.io/arch": "amd64",
                        "topology.kubernetes.io/zone": ZONES[i % len(ZONES)],
                    },
                },
                "spec": {},
                "status": {
                    "allocatable": {"cpu": NODE_CPU, "memory": f"{NODE_MEMORY_GI}Gi", "pods": NODE_PODS},
                    "capacity": {"cpu": NODE_CPU, "memory": f"{NODE_MEMORY_GI}Gi", "pods": NODE_PODS},
                },
            }
        )
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": docs})


def healthy(env: dict[str, str]) -> bool:
    if not KUBECONFIG.exists():
        return False
    res = run(
        ["kubectl", "get", "--raw", "/readyz", "--request-timeout=5s"],
        env,
        check=False,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return res.returncode == 0


def loopback_only(name: str | None = None) -> bool:
    """Whether kwokctl created the cluster with every component bound to 127.0.0.1."""
    config = WORKDIR / "clusters" / (name or NAME) / "kwok.yaml"
    return config.exists() and "bindAddress: 127.0.0.1" in config.read_text()


def clusters(env: dict[str, str]) -> list[str]:
    res = run(
        ["kwokctl", "get", "clusters"], env, check=False, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    return (res.stdout or "").split()


def exists(env: dict[str, str], name: str | None = None) -> bool:
    return (name or NAME) in clusters(env)


def create(bins: Path, env: dict[str, str]) -> None:
    stages = render_stages()
    log(
        f"creating kwok cluster {NAME!r} (binary runtime, {NODE_COUNT} nodes of {NODE_CPU} CPU/{NODE_MEMORY_GI}Gi)"
    )
    run(
        [
            "kwokctl",
            "create",
            "cluster",
            "--name",
            NAME,
            "--runtime",
            "binary",
            "--kubeconfig",
            str(KUBECONFIG),
            "--kube-apiserver-binary",
            str(bins / "kube-apiserver"),
            "--kube-controller-manager-binary",
            str(bins / "kube-controller-manager"),
            "--kube-scheduler-binary",
            str(bins / "kube-scheduler"),
            "--kwok-controller-binary",
            str(bins / "kwok"),
            "--etcd-binary",
            str(bins / "etcd"),
            "--disable-qps-limits",
            # One instance of each: leader election only lets a loaded machine (a lease renewal
            # over 5 s late) stop the controller-manager and scheduler for good.
            "--extra-args",
            "kube-controller-manager=leader-elect=false",
            "--extra-args",
            "kube-scheduler=leader-elect=false",
            "--wait",
            "120s",
            "-c",
            str(stages),
            "-c",
            str(ROOT / "hack" / "kwok" / "loopback.yaml"),
        ],
        env,
    )


def wait_nodes(env: dict[str, str], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        res = run(
            ["kubectl", "get", "nodes", "-o", "json"],
            env,
            check=False,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        if res.returncode == 0:
            items = json.loads(res.stdout)["items"]
            ready = [
                n
                for n in items
                if any(
                    c["type"] == "Ready" and c["status"] == "True"
                    for c in n.get("status", {}).get("conditions", [])
                )
            ]
            if len(ready) >= NODE_COUNT:
                log(f"{len(ready)} nodes Ready")
                return
        time.sleep(1)
    die(f"nodes did not become Ready within {timeout:.0f} s")


def wait_default_sa(env: dict[str, str], timeout: float = 60.0) -> None:
    # Pods cannot be created in a namespace until the controller-manager made its ServiceAccount.
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        res = run(["kubectl", "get", "sa", "default", "-n", "default"], env, check=False, capture_output=True)
        if res.returncode == 0:
            return
        time.sleep(0.5)
    die("the default ServiceAccount never appeared (is kube-controller-manager running?)")


def up() -> None:
    started = time.monotonic()
    bins = bin_dir(build=True)
    env = tool_env(bins)
    if healthy(env) and not loopback_only():
        # Created before hack/kwok/loopback.yaml: its etcd and apiserver listen on 0.0.0.0.
        log(f"cluster {NAME!r} listens beyond 127.0.0.1; recreating it bound to loopback")
        run(["kwokctl", "delete", "cluster", "--name", NAME], env, check=False)
        create(bins, env)
    elif healthy(env):
        log(f"cluster {NAME!r} already running")
    else:
        if exists(env):
            # Its processes died with the session that started them. `kwokctl start` can wait
            # minutes on stale state; a fresh cluster takes seconds and nothing in it is precious.
            log(f"cluster {NAME!r} exists but does not answer; recreating it")
            run(["kwokctl", "delete", "cluster", "--name", NAME], env, check=False)
            create(bins, env)
        else:
            create(bins, env)
    run(["kubectl", "apply", "-f", "-"], env, input=nodes_manifest(), stdout=subprocess.DEVNULL)
    wait_nodes(env)
    wait_default_sa(env)
    log(f"cluster ready in {time.monotonic() - started:.1f} s; KUBECONFIG={KUBECONFIG}")
    print(KUBECONFIG)


def down() -> None:
    env = tool_env(bin_dir(build=False))
    if shutil.which("kwokctl", path=env["PATH"]) is None:
        log("kwokctl not built; nothing to stop")
        return
    if exists(env):
        run(["kwokctl", "delete", "cluster", "--name", NAME], env, check=False)
        log(f"cluster {NAME!r} deleted")
    else:
        log(f"no cluster {NAME!r}")


def stop_test_clusters(names: list[str]) -> None:
    """Delete the given clusters (those `make test` starts), unless HEADY_KEEP_CLUSTERS=1.

    Kept clusters make the next run faster; they are listed with the command that stops them,
    so nothing is left running without the developer being told.
    """
    bins = bin_dir(build=False)
    if shutil.which("kwokctl", path=str(bins)) is None:
        return
    env = tool_env(bins)
    running = [n for n in dict.fromkeys(names) if n in clusters(env)]
    if not running:
        return
    if os.environ.get("HEADY_KEEP_CLUSTERS") == "1":
        log(f"HEADY_KEEP_CLUSTERS=1: left running {len(running)} kwok cluster(s), on 127.0.0.1 only:")
        for name in running:
            log(f"  {name}: stop with  HEADY_CLUSTER_NAME={name} python3 hack/cluster.py down")
        return
    for name in running:
        run(["kwokctl", "delete", "cluster", "--name", name], env, check=False)
        log(f"stopped test cluster {name!r} (HEADY_KEEP_CLUSTERS=1 keeps it for the next run)")


def main(argv: list[str]) -> None:
    if "--kind" in argv:
        # The kind tier (real kubelet, containerd, runc): hack/kind_cluster.py.
        sys.path.insert(0, str(ROOT / "hack"))
        import kind_cluster

        kind_cluster.main(argv)
        return
    cmd = argv[1] if len(argv) > 1 else "up"
    if cmd == "up":
        up()
    elif cmd == "down":
        down()
    elif cmd == "status":
        sys.exit(0 if healthy(tool_env(bin_dir(build=False))) else 1)
    elif cmd == "stop-test-clusters":
        stop_test_clusters(argv[2:])
    elif cmd == "env":
        bins = bin_dir(build=False)
        print(f"export KUBECONFIG={KUBECONFIG} PATH={bins}:$PATH")
    else:
        die(f"unknown command {cmd!r}: use up, down, status, env or stop-test-clusters")


if __name__ == "__main__":
    main(sys.argv)
