#!/usr/bin/env python3
"""Start and stop heady's kind cluster: real kubelet, containerd and runc in one kind node.

    hack/cluster.py --kind up      # (= hack/kind_cluster.py up) build what is missing, create, load images
    hack/cluster.py --kind down    # delete exactly what `up` created
    hack/cluster.py --kind status  # exit 0 when the apiserver answers, 1 no cluster, 2 not answering
    hack/cluster.py --kind env     # print `export KUBECONFIG=... PATH=...`
    hack/cluster.py --kind run -- CMD  # CMD with the cluster up; deleted after if this created it

The node image, the control-plane images and the workload/operator images are built locally by
hack/images.py (no registry). The provider is podman unless KIND_EXPERIMENTAL_PROVIDER says
otherwise: users with Docker run `KIND_EXPERIMENTAL_PROVIDER=docker make kind-up` (kind's default).

What `up` creates is recorded in ~/.cache/heady/clusters/kind-<name>/created.json, and `down`
removes only that: the kind cluster (its node container and volumes), the podman network when
`up` created it, the kubeconfig. One node (the static bridge CNI of the node image is single-node).
Only the standard library is used.
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
NAME = os.environ.get("HEADY_KIND_CLUSTER", "heady")
CLUSTER_DIR = CACHE / "clusters" / f"kind-{NAME}"
KUBECONFIG = Path(os.environ.get("HEADY_KIND_KUBECONFIG", CLUSTER_DIR / "kubeconfig"))
STATE = CLUSTER_DIR / "created.json"
PROVIDER = os.environ.get("KIND_EXPERIMENTAL_PROVIDER", "podman")
# A podman network of our own, so `down` can remove it without touching anyone else's "kind".
NETWORK = os.environ.get("KIND_EXPERIMENTAL_PODMAN_NETWORK", f"{NAME}-kind")
NODE = f"{NAME}-control-plane"
ARCHIVES = CACHE / "kind" / "images" / "archives"
NODE_ARCHIVES = "/heady/images"


def log(msg: str) -> None:
    print(f"[kind {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def die(msg: str) -> None:
    log(f"ERROR: {msg}")
    sys.exit(1)


def bin_dir(script: str) -> Path:
    out = subprocess.run(
        [str(ROOT / "hack" / script), "--bin-dir"], check=True, stdout=subprocess.PIPE, text=True
    )
    return Path(out.stdout.strip().splitlines()[-1])


def env() -> dict[str, str]:
    e = dict(os.environ)
    e["PATH"] = f"{bin_dir('kind-tools.sh')}{os.pathsep}{bin_dir('tools.sh')}{os.pathsep}{e.get('PATH', '')}"
    e["KUBECONFIG"] = str(KUBECONFIG)
    e["KIND_EXPERIMENTAL_PROVIDER"] = PROVIDER
    if PROVIDER == "podman":
        e["KIND_EXPERIMENTAL_PODMAN_NETWORK"] = NETWORK
    return e


def run(cmd: list[str], check: bool = True, **kw: object) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(cmd, env=env(), text=True, check=False, **kw)  # type: ignore[call-overload]
    if check and res.returncode != 0:
        err = f": {res.stderr.strip()[-1500:]}" if isinstance(res.stderr, str) and res.stderr else ""
        die(f"{' '.join(cmd)} exited {res.returncode}{err}")
    return res  # type: ignore[no-any-return]


def images(cmd: str) -> str:
    return run([sys.executable, str(ROOT / "hack" / "images.py"), cmd], stdout=subprocess.PIPE).stdout.strip()


def clusters() -> list[str]:
    res = run(["kind", "get", "clusters"], check=False, capture_output=True)
    return res.stdout.split() if res.returncode == 0 else []


def healthy(patience: float = 30.0) -> bool:
    """The apiserver answers /readyz (a busy machine gets `patience` seconds of retries)."""
    if not KUBECONFIG.exists():
        return False
    deadline = time.monotonic() + patience
    while True:
        res = run(
            ["kubectl", "get", "--raw", "/readyz", "--request-timeout=10s"], check=False, capture_output=True
        )
        if res.returncode == 0:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(2)


def kind_config() -> Path:
    CLUSTER_DIR.mkdir(parents=True, exist_ok=True)
    path = CLUSTER_DIR / "kind-config.yaml"
    ARCHIVES.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"""# Written by hack/kind_cluster.py.
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
networking:
  # The node image's static bridge CNI uses 10.244.0.0/24 of this.
  podSubnet: 10.244.0.0/16
  # kube-proxy talks to nftables directly: no guessing between the iptables backends.
  kubeProxyMode: nftables
nodes:
  - role: control-plane
    labels:
      topology.kubernetes.io/zone: zone-a
    extraMounts:
      # The image archives hack/images.py wrote, imported by the node's ctr from here.
      - hostPath: {ARCHIVES}
        containerPath: {NODE_ARCHIVES}
        readOnly: true
kubeadmConfigPatches:
  - |
    # One control plane: no leader election, so a slow apiserver on a busy machine cannot make
    # the controller-manager or scheduler give up their lease and restart mid-test.
    apiVersion: kubeadm.k8s.io/v1beta4
    kind: ClusterConfiguration
    controllerManager:
      extraArgs:
        - name: leader-elect
          value: "false"
    scheduler:
      extraArgs:
        - name: leader-elect
          value: "false"
  - |
    kind: KubeletConfiguration
    failCgroupV1: false
    # Seconds, not minutes, between a resize and the kubelet's next look at a Deferred one.
    syncFrequency: 10s
"""
    )
    return path


def record(created: dict[str, object]) -> None:
    CLUSTER_DIR.mkdir(parents=True, exist_ok=True)
    STATE.write_text(json.dumps(created, indent=2))


def recorded() -> dict[str, object]:
    return json.loads(STATE.read_text()) if STATE.exists() else {}


def network_exists() -> bool:
    if PROVIDER != "podman":
        return False
    return run(["podman", "network", "exists", NETWORK], check=False).returncode == 0


def node_images() -> set[str]:
    res = run(
        [PROVIDER, "exec", NODE, "ctr", "-n", "k8s.io", "images", "ls", "-q"],
        check=False,
        capture_output=True,
    )
    return set(res.stdout.split())


def load_images() -> None:
    refs = json.loads(images("refs"))
    have = node_images()
    archives = images("archives").splitlines()
    wanted = [refs["busybox"], refs["redis"], refs["postgres"], refs["git"], refs["operator"]]
    for ref, archive in zip(wanted, archives, strict=True):
        if ref in have or f"docker.io/{ref}" in have:
            continue
        start = time.monotonic()
        # One image per archive, imported by the node's own ctr from the directory mounted into
        # it (`kind load docker-image` does not see podman's store, multi-image archives confuse
        # `ctr import`, streaming through `podman exec -i` is slow, and unpacking
        # now would cost half a minute per image: containerd unpacks what a container first uses).
        res = run(
            [PROVIDER, "exec", NODE, "ctr", "-n", "k8s.io", "images", "import", "--digests", "--no-unpack",
             f"{NODE_ARCHIVES}/{Path(archive).name}"],
            check=False,
            capture_output=True,
        )  # fmt: skip
        if res.returncode != 0:
            die(f"loading {ref} into {NODE} failed: {res.stderr[-1500:]}")
        log(f"loaded {ref} in {time.monotonic() - start:.1f} s")
    missing = [r for r in wanted if r not in node_images()]
    if missing:
        die(f"images missing in the node after loading: {missing}")


def wait_ready(timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    checks = [
        ["kubectl", "wait", "--for=condition=Ready", "node", "--all", "--timeout=5s"],
        ["kubectl", "-n", "kube-system", "wait", "--for=condition=Ready", "pod", "-l", "k8s-app=kube-dns", "--timeout=5s"],
        ["kubectl", "-n", "kube-system", "wait", "--for=condition=Ready", "pod", "-l", "k8s-app=kube-proxy", "--timeout=5s"],
        ["kubectl", "get", "serviceaccount", "default", "-n", "default"],
    ]  # fmt: skip
    for check in checks:
        while True:
            res = run(check, check=False, capture_output=True)
            if res.returncode == 0:
                break
            if time.monotonic() > deadline:
                die(
                    f"cluster not ready within {timeout:.0f} s: {' '.join(check)}: {res.stderr.strip()[-500:]}"
                )
            time.sleep(1)


def up() -> None:
    started = time.monotonic()
    # Tools and images (cached; built with podman/buildah whatever the provider).
    run([str(ROOT / "hack" / "kind-setup.sh")])
    node_image = images("node")
    if (
        PROVIDER != "podman"
        and run([PROVIDER, "image", "inspect", node_image], check=False, capture_output=True).returncode != 0
    ):
        # Docker users: the node image is built into podman's store; hand it over.
        run(["bash", "-c", f"podman save {node_image} | {PROVIDER} load"], stdout=subprocess.DEVNULL)
    if NAME in clusters() and healthy():
        log(f"kind cluster {NAME!r} already running")
    else:
        if NAME in clusters():
            log(f"kind cluster {NAME!r} exists but does not answer; recreating it")
            run(["kind", "delete", "cluster", "--name", NAME, "--kubeconfig", str(KUBECONFIG)], check=False)
        created = recorded()
        created.update({"cluster": NAME, "provider": PROVIDER, "kubeconfig": str(KUBECONFIG)})
        if PROVIDER == "podman" and not network_exists():
            created["network"] = NETWORK
        log(f"creating kind cluster {NAME!r} ({PROVIDER}, node image {node_image})")
        record(created)
        start = time.monotonic()
        run(
            [
                "kind", "create", "cluster", "--name", NAME, "--image", node_image, "--config", str(kind_config()),
                "--kubeconfig", str(KUBECONFIG), "--wait", "120s", "--retain",
            ]
        )  # fmt: skip
        log(f"kind create cluster: {time.monotonic() - start:.1f} s")
    load_images()
    wait_ready()
    log(f"kind cluster {NAME!r} ready in {time.monotonic() - started:.1f} s; KUBECONFIG={KUBECONFIG}")
    print(KUBECONFIG)


def down() -> None:
    created = recorded()
    if shutil.which("kind", path=env()["PATH"]) is None:
        log("kind is not built; nothing to delete")
        return
    if NAME in clusters():
        run(["kind", "delete", "cluster", "--name", NAME, "--kubeconfig", str(KUBECONFIG)], check=False)
        log(f"kind cluster {NAME!r} deleted")
    else:
        log(f"no kind cluster {NAME!r}")
    if PROVIDER == "podman":
        # kind removes its node's /var volume; check, by the label kind gives it (the node's name).
        vols = run(
            ["podman", "volume", "ls", "-q", "--filter", f"label={NODE}"], check=False, capture_output=True
        ).stdout.split()
        for v in vols:
            run(["podman", "volume", "rm", "-f", v], check=False, stdout=subprocess.DEVNULL)
            log(f"podman volume {v} of {NODE} removed")
    net = created.get("network")
    if (
        isinstance(net, str)
        and PROVIDER == "podman"
        and run(["podman", "network", "exists", net], check=False).returncode == 0
    ):
        users = run(
            ["podman", "ps", "-aq", "--filter", f"network={net}"], check=False, capture_output=True
        ).stdout.split()
        if users:
            log(f"podman network {net!r} still has containers {users}; left in place")
        else:
            run(["podman", "network", "rm", net], check=False, stdout=subprocess.DEVNULL)
            log(f"podman network {net!r} removed")
    KUBECONFIG.unlink(missing_ok=True)
    STATE.unlink(missing_ok=True)


def run_with_cluster(cmd: list[str]) -> int:
    """Run `cmd` with the cluster up, then delete it if this call created it (on success, failure
    or interrupt): one cluster for the kind tests and the benchmark of one `make test`."""
    existed = NAME in clusters()
    code = 1
    try:
        up()
        env = dict(os.environ, HEADY_KIND_KEEP="1", HEADY_KIND_CLUSTER=NAME, HEADY_E2E_KIND_CLUSTER=NAME)
        code = subprocess.run(cmd, env=env, check=False).returncode
    finally:
        if not existed:
            down()
    return code


def main(argv: list[str]) -> None:
    args = [a for a in argv[1:] if a != "--kind"]
    cmd = args[0] if args else "up"
    if cmd == "up":
        up()
    elif cmd == "down":
        down()
    elif cmd == "run":
        rest = args[1:]
        if rest[:1] == ["--"]:
            rest = rest[1:]
        if not rest:
            die("usage: hack/kind_cluster.py run -- COMMAND...")
        sys.exit(run_with_cluster(rest))
    elif cmd == "status":
        # 0: running and answering; 1: no such cluster; 2: it exists but does not answer.
        if NAME not in clusters():
            sys.exit(1)
        sys.exit(0 if healthy() else 2)
    elif cmd == "env":
        e = env()
        print(
            f"export KUBECONFIG={KUBECONFIG} PATH={e['PATH'].split(os.pathsep, 2)[0]}:{e['PATH'].split(os.pathsep, 2)[1]}:$PATH"
        )
    else:
        die(f"unknown command {cmd!r}: use up, down, status, env or run")


if __name__ == "__main__":
    main(sys.argv)
