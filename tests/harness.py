"""Shared by e2e tests and benchmarks: the kwok cluster, the operator as a process, object builders."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from kubernetes import client, config

ROOT = Path(__file__).resolve().parents[1]
T = TypeVar("T")
E2E_CLUSTER = os.environ.get("HEADY_E2E_CLUSTER", "heady-e2e")


def wait_for(predicate: Callable[[], T], what: str, timeout: float = 30.0, interval: float = 0.1) -> T:
    """Poll until predicate() is truthy; fail with `what` at the deadline."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except client.ApiException as exc:
            last = exc
            if exc.status != 404:
                raise
        else:
            if last:
                return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


@dataclass
class Cluster:
    kubeconfig: Path
    bin_dir: Path
    env: dict[str, str]
    api: client.ApiClient
    core: client.CoreV1Api = field(init=False)
    apps: client.AppsV1Api = field(init=False)
    custom: client.CustomObjectsApi = field(init=False)

    def __post_init__(self) -> None:
        self.core = client.CoreV1Api(self.api)
        self.apps = client.AppsV1Api(self.api)
        self.custom = client.CustomObjectsApi(self.api)

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        res = subprocess.run(
            [str(self.bin_dir / "kubectl"), *args], env=self.env, input=input, text=True, capture_output=True
        )
        if check and res.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {res.stderr}")
        return res

    def apply(self, manifest: str | dict[str, Any] | list[dict[str, Any]]) -> None:
        text = (
            manifest
            if isinstance(manifest, str)
            else json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "List",
                    "items": manifest if isinstance(manifest, list) else [manifest],
                }
            )
        )
        self.kubectl("apply", "-f", "-", input=text)

    def get(self, plural: str, namespace: str, name: str) -> dict[str, Any]:
        obj: dict[str, Any] = self.custom.get_namespaced_custom_object(
            "heady.io", "v1alpha1", namespace, plural, name
        )
        return obj

    def pods(self, namespace: str, selector: str) -> list[client.V1Pod]:
        return list(self.core.list_namespaced_pod(namespace, label_selector=selector).items)

    def events(self, namespace: str, name: str) -> list[client.CoreV1Event]:
        return list(
            self.core.list_namespaced_event(namespace, field_selector=f"involvedObject.name={name}").items
        )


def start_cluster(name: str = E2E_CLUSTER) -> Cluster:
    """Start (or reuse) a kwok cluster; raise with the reason when it cannot start.

    HEADY_E2E_KUBECONFIG points the tests at an existing cluster instead (e.g. kind).
    """
    external = os.environ.get("HEADY_E2E_KUBECONFIG")
    if external:
        return _connect(Path(external).expanduser())
    # Tests get a cluster of their own, so a developer's `make run` demo never shares the
    # cluster-wide high-priority slots with them.
    res = subprocess.run(
        [sys.executable, str(ROOT / "hack" / "cluster.py"), "up"],
        stdout=subprocess.PIPE,
        text=True,
        env=dict(os.environ, HEADY_CLUSTER_NAME=name),
    )
    if res.returncode != 0:
        raise RuntimeError("the kwok cluster did not start (hack/cluster.py up failed; see its log above)")
    return _connect(Path(res.stdout.strip().splitlines()[-1]))


def _connect(kubeconfig: Path) -> Cluster:
    bin_dir = Path(
        subprocess.run(
            [str(ROOT / "hack" / "tools.sh"), "--bin-dir"], stdout=subprocess.PIPE, text=True, check=True
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    env = dict(os.environ, KUBECONFIG=str(kubeconfig), PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    api = config.new_client_from_config(config_file=str(kubeconfig))
    c = Cluster(kubeconfig, bin_dir, env, api)
    c.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
    c.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
    c.kubectl("create", "namespace", "heady-system", check=False)
    # Leftovers of an interrupted earlier run would hold escalation slots.
    c.kubectl("delete", "namespace", "-l", "heady.io/test=e2e", "--wait=true", "--timeout=60s", check=False)
    return c


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ManagedProcess:
    """A real server process a test starts, kills (SIGKILL, as when its node dies) and stops."""

    proc: subprocess.Popen[bytes] | None = None

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
            self.proc = None


class OperatorProcess(ManagedProcess):
    """The operator as users run it (`heady-operator`), in its own process."""

    def __init__(self, cluster: Cluster, log_dir: Path, extra_env: dict[str, str] | None = None) -> None:
        self.cluster = cluster
        self.port = _free_port()
        self.log_path = log_dir / f"operator-{uuid.uuid4().hex[:6]}.log"
        self.env = dict(
            cluster.env,
            HEADY_HTTP_PORT=str(self.port),
            HEADY_HTTP_HOST="127.0.0.1",
            HEADY_OPERATOR_NAMESPACE="heady-system",
            HEADY_RESYNC_SECONDS="2",
            HEADY_EXPIRED_SIGNAL_RETENTION_SECONDS="600",
        )
        self.env.update(extra_env or {})
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "heady_operator.main"], env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        wait_for(self.healthy, "the operator's /healthz", timeout=60)

    def healthy(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"operator exited with {self.proc.returncode}; log:\n{self.log()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=1) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as resp:
            return str(resp.read().decode())

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]


def deployment(
    name: str,
    namespace: str,
    replicas: int = 2,
    requests: dict[str, str] | None = None,
    limits: dict[str, str] | None = None,
    node: str | None = None,
) -> dict[str, Any]:
    resources: dict[str, Any] = {}
    if requests:
        resources["requests"] = requests
    if limits:
        resources["limits"] = limits
    spec: dict[str, Any] = {"containers": [{"name": "app", "image": "example/app:1", "resources": resources}]}
    if node:
        spec["nodeSelector"] = {"kubernetes.io/hostname": node}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": spec},
        },
    }


def headyservice(
    name: str, namespace: str, peak: dict[str, str] | None = None, **spec: Any
) -> dict[str, Any]:
    """A HeadyService for `deployment(name, ...)`; `peak` sets its container's peak explicitly
    (without it, peak is the template's requests)."""
    if peak is not None:
        spec.setdefault("containers", [{"name": "app", "peak": peak}])
    return {
        "apiVersion": "heady.io/v1alpha1",
        "kind": "HeadyService",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"workload": {"kind": "Deployment", "name": name}, **spec},
    }


def attention(name: str, namespace: str, *services: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "heady.io/v1alpha1",
        "kind": "AttentionSignal",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"services": list(services), **spec},
    }


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any] | None:
    for c in obj.get("status", {}).get("conditions") or []:
        if c.get("type") == type_:
            return dict(c)
    return None


def requests_of(pod: client.V1Pod) -> dict[str, str]:
    return dict(pod.spec.containers[0].resources.requests or {})


def status_requests_of(pod: client.V1Pod) -> dict[str, str]:
    statuses = pod.status.container_statuses or []
    if not statuses or statuses[0].resources is None:
        return {}
    return dict(statuses[0].resources.requests or {})


class RedisServer(ManagedProcess):
    """A real redis-server as a plain process on a free port, its files in `workdir`.

    `appendonly=True` writes every change to the append-only file before replying (fsync
    always), so SIGKILL + restart on the same workdir keeps exactly what clients were told.
    """

    def __init__(self, workdir: Path, appendonly: bool = False, port: int | None = None) -> None:
        self.workdir = workdir
        self.appendonly = appendonly
        self.port = port or _free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "redis.log"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        durability = (
            ["--appendonly", "yes", "--appendfsync", "always"] if self.appendonly else ["--appendonly", "no"]
        )
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    "redis-server",
                    "--port",
                    str(self.port),
                    "--bind",
                    "127.0.0.1",
                    "--dir",
                    str(self.workdir),
                    "--save",
                    "",
                    *durability,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for(self.ready, f"redis-server on port {self.port}", timeout=15, interval=0.05)

    def ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"redis-server exited with {self.proc.returncode}: {self.log()}")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:] if self.log_path.exists() else ""
