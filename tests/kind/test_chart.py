"""`helm install charts/heady` on kind: the operator runs from its locally built image (non-root,
read-only root filesystem, in a namespace enforcing the restricted Pod Security Standard) with only
the chart's RBAC; the chart's Postgres (pgvector) and Redis run for real; the operator resizes real
containers; chaos runs as real Jobs from the same image; `helm upgrade` and `helm uninstall` work.

Network partitions: the kind node image here ships a static bridge CNI, which does NOT enforce
NetworkPolicy. The test checks the partition's NetworkPolicy is created and removed by the real
chaos Job, and checks the traffic effect only where the CNI enforces policies (e.g. kindnetd with
Docker's kind); on the bridge CNI it says so in the test output.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from tests.harness import ROOT, Cluster, OperatorProcess, attention, condition, headyservice, wait_for
from tests.kind.realnode import busybox_deployment, expected, image_refs, matches, read_cgroup

pytestmark = pytest.mark.kind
RELEASE = "heady"
NAMESPACE = "heady-kind"


def helm(cluster: Cluster, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(
        [str(cluster.bin_dir / "helm"), *args], env=cluster.env, text=True, capture_output=True, timeout=400
    )
    if check and res.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed: {res.stderr}")
    return res


def _split(ref: str) -> tuple[str, str]:
    repo, tag = ref.rsplit(":", 1)
    return repo, tag


def _values() -> list[str]:
    refs = image_refs()
    op_repo, op_tag = _split(refs["operator"])
    pg_repo, pg_tag = _split(refs["postgres"])
    redis_repo, redis_tag = _split(refs["redis"])
    sets = {
        "image.repository": op_repo,
        "image.tag": op_tag,
        "image.pullPolicy": "Never",
        "postgresql.image.repository": pg_repo,
        "postgresql.image.tag": pg_tag,
        "postgresql.image.pullPolicy": "Never",
        "postgresql.persistence.enabled": "false",
        "postgresql.resources.requests.cpu": "50m",
        "redis.image.repository": redis_repo,
        "redis.image.tag": redis_tag,
        "redis.image.pullPolicy": "Never",
        "redis.resources.requests.cpu": "20m",
        "redis.maxmemory": "128mb",
        "redis.resources.limits.memory": "256Mi",
        "cloudflared.enabled": "false",
        "operator.resources.requests.cpu": "50m",
        # One replica on the one kind node: these tests follow "the operator pod" through exec,
        # logs and an upgrade. Two replicas electing a leader are shown on kwok
        # (tests/e2e/test_leader_election.py); the chart's election stays on.
        "operator.replicas": "1",
        "operator.logLevel": "INFO",
    }
    out: list[str] = []
    for k, v in sets.items():
        out += ["--set-string" if k.endswith(("tag", "cpu", "maxmemory")) else "--set", f"{k}={v}"]
    return out


def _operator_pod(cluster: Cluster) -> client.V1Pod | None:
    pods = [
        p
        for p in cluster.pods(NAMESPACE, "app.kubernetes.io/component=operator")
        if p.status.phase == "Running" and not p.metadata.deletion_timestamp
    ]
    if len(pods) != 1:
        return None
    st = (pods[0].status.container_statuses or [None])[0]
    return pods[0] if st is not None and st.ready else None


@pytest.fixture(scope="module")
def installed(cluster: Cluster, operator: OperatorProcess) -> Iterator[None]:
    # The chart's operator is the only one acting while it is installed.
    operator.stop()
    helm(cluster, "uninstall", RELEASE, "-n", NAMESPACE, "--wait", check=False)
    cluster.kubectl("delete", "namespace", NAMESPACE, "--wait=true", "--timeout=90s", check=False)
    # The restricted Pod Security Standard, enforced: every pod of the chart must pass it.
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": NAMESPACE,
                "labels": {
                    "pod-security.kubernetes.io/enforce": "restricted",
                    "pod-security.kubernetes.io/enforce-version": "latest",
                },
            },
        }
    )
    start = time.monotonic()
    helm(
        cluster,
        "install",
        RELEASE,
        str(ROOT / "charts" / "heady"),
        "-n",
        NAMESPACE,
        *_values(),
        "--wait",
        "--timeout",
        "240s",
    )
    print(f"helm install --wait: {time.monotonic() - start:.1f} s")
    try:
        yield
    finally:
        helm(cluster, "uninstall", RELEASE, "-n", NAMESPACE, "--wait", check=False)
        cluster.kubectl("delete", "namespace", NAMESPACE, "--wait=false", check=False)
        operator.start()


@pytest.fixture
def workload_ns(cluster: Cluster) -> Iterator[str]:
    name = f"k-chart-{uuid.uuid4().hex[:5]}"
    cluster.core.create_namespace(
        {"metadata": {"name": name, "labels": {"heady.io/test": "e2e", "heady.io/chaos": "enabled"}}}
    )
    yield name
    cluster.core.delete_namespace(name, propagation_policy="Background", grace_period_seconds=0)


def test_everything_runs_for_real_from_local_images(cluster: Cluster, installed: None) -> None:
    pod = wait_for(lambda: _operator_pod(cluster), "the operator pod Ready", timeout=120)
    st = pod.status.container_statuses[0]
    assert st.image.endswith(image_refs()["operator"].split("/", 1)[1]), st.image
    # Non-root and a read-only root filesystem, as the kernel sees them.
    uid = cluster.kubectl("exec", "-n", NAMESPACE, pod.metadata.name, "--", "id", "-u").stdout.strip()
    assert uid == "10001"
    touch = cluster.kubectl("exec", "-n", NAMESPACE, pod.metadata.name, "--", "touch", "/opt/x", check=False)
    assert touch.returncode != 0 and "Read-only file system" in touch.stderr, touch.stderr

    # Postgres with pgvector and Redis, really running; the operator connected to both.
    pg = f"{RELEASE}-postgresql-0"
    ext = cluster.kubectl(
        "exec", "-n", NAMESPACE, pg, "--", "psql", "-h", "/var/run/postgresql", "-U", "heady", "-d", "heady",
        "-Atc", "SELECT extname FROM pg_extension",
    ).stdout.split()  # fmt: skip
    assert "vector" in ext

    def connected(sql: str) -> bool:
        out = cluster.kubectl(
            "exec", "-n", NAMESPACE, pg, "--", "psql", "-h", "/var/run/postgresql", "-U", "heady", "-d", "heady", "-Atc", sql
        ).stdout.strip()  # fmt: skip
        return out not in ("", "0")

    wait_for(
        lambda: connected(
            "SELECT count(*) FROM pg_stat_activity WHERE client_addr IS NOT NULL AND datname = 'heady'"
        ),
        "the operator's Postgres connection",
        timeout=60,
        interval=1,
    )
    clients = cluster.kubectl(
        "exec", "-n", NAMESPACE, f"{RELEASE}-redis-0", "--", "redis-cli", "client", "list"
    ).stdout
    assert clients.count("\n") >= 2, f"only redis-cli itself is connected: {clients}"


def test_the_in_cluster_operator_resizes_real_containers(
    cluster: Cluster, installed: None, workload_ns: str
) -> None:
    ns = workload_ns
    res = {"cpu": "100m", "memory": "64Mi"}
    peak = {"cpu": "300m", "memory": "96Mi"}
    cluster.apply(busybox_deployment("app", ns, res, res))
    cluster.apply(
        headyservice(
            "app", ns, containers=[{"name": "app", "peak": peak}], baselineRatio=0.5, cooldownSeconds=1
        )
    )
    cluster.apply(attention("look", ns, "app", ttlSeconds=120, intensity=0.9))

    def at_peak() -> client.V1Pod | None:
        pods = [p for p in cluster.pods(ns, "app=app") if p.status.phase == "Running"]
        if len(pods) != 1:
            return None
        return (
            pods[0]
            if matches(read_cgroup(cluster, ns, pods[0].metadata.name), expected(peak, peak))
            else None
        )

    pod = wait_for(at_peak, "the container's cgroup at peak, resized by the in-cluster operator", timeout=90)
    assert pod.status.container_statuses[0].restart_count == 0
    wait_for(lambda: any(e.reason == "Escalated" for e in cluster.events(ns, "app")), "the Escalated Event")
    svc = wait_for(
        lambda: (s := cluster.get("headyservices", ns, "app")).get("status", {}).get("level") == "Peak" and s,
        "Peak",
    )
    assert condition(svc, "Ready")["status"] == "True"
    op = _operator_pod(cluster)
    assert op is not None
    logs = cluster.kubectl("logs", "-n", NAMESPACE, op.metadata.name).stdout
    denials = [line for line in logs.splitlines() if f"system:serviceaccount:{NAMESPACE}" in line]
    assert not denials, "\n".join(denials)


def _session(cluster: Cluster, ns: str, name: str, *experiments: dict[str, Any]) -> None:
    cluster.apply(
        {
            "apiVersion": "heady.io/v1alpha1",
            "kind": "ArenaSession",
            "metadata": {"name": name, "namespace": ns},
            "spec": {
                "repos": [{"name": "heady"}],
                "durationSeconds": 600,
                "chaos": {"experiments": list(experiments)},
            },
        }
    )


def _record(cluster: Cluster, ns: str, name: str, experiment: str) -> dict[str, Any]:
    status = cluster.get("arenasessions", ns, name).get("status") or {}
    return dict(((status.get("chaos") or {}).get("experiments") or {}).get(experiment) or {})


def _jobs(cluster: Cluster, session: str) -> list[client.V1Job]:
    batch = client.BatchV1Api(cluster.api)
    return list(batch.list_namespaced_job(NAMESPACE, label_selector=f"heady.io/session={session}").items)


def test_chaos_runs_as_real_jobs_from_the_image(cluster: Cluster, installed: None, workload_ns: str) -> None:
    ns = workload_ns
    cluster.apply(busybox_deployment("web", ns, {"cpu": "10m", "memory": "16Mi"}, replicas=3))
    cluster.apply(headyservice("web", ns))
    wait_for(
        lambda: len([p for p in cluster.pods(ns, "app=web") if p.status.phase == "Running"]) == 3,
        "3 web pods",
    )
    before = {p.metadata.name for p in cluster.pods(ns, "app=web")}
    _session(
        cluster, ns, "kill",
        {"name": "kill", "kind": "pod_termination", "service": "web", "mode": "fixed", "value": 1, "recoveryObjectiveSeconds": 60},
    )  # fmt: skip
    rec = wait_for(
        lambda: (r := _record(cluster, ns, "kill", "kill")).get("phase") == "Verdict" and r,
        "pod kill verdict",
        timeout=120,
        interval=1,
    )
    assert rec["verdict"] == "Pass", rec
    jobs = _jobs(cluster, "kill")
    assert jobs, "the experiment ran through Jobs"
    inject = [j for j in jobs if (j.metadata.labels or {}).get("heady.io/action") == "inject"]
    assert inject and inject[0].status.succeeded == 1, [j.status for j in jobs]
    job_pods = cluster.core.list_namespaced_pod(
        NAMESPACE, label_selector=f"job-name={inject[0].metadata.name}"
    ).items
    assert job_pods and job_pods[0].status.container_statuses[0].image.endswith(
        image_refs()["operator"].split("/", 1)[1]
    )
    after = {p.metadata.name for p in cluster.pods(ns, "app=web") if p.status.phase == "Running"}
    assert len(after) == 3 and len(before - after) == 1, "one pod killed for real and replaced"

    # A network partition: the NetworkPolicy comes and goes through real Jobs.
    _session(
        cluster, ns, "part",
        {"name": "cut", "kind": "network_partition", "service": "web", "mode": "all", "durationSeconds": 8, "recoveryObjectiveSeconds": 120},
    )  # fmt: skip
    net = client.NetworkingV1Api(cluster.api)
    wait_for(
        lambda: net.list_namespaced_network_policy(ns, label_selector="heady.io/session=part").items,
        "the partition NetworkPolicy",
        timeout=90,
        interval=0.5,
    )
    enforced = _policy_enforced(cluster, ns)
    wait_for(
        lambda: not net.list_namespaced_network_policy(ns, label_selector="heady.io/session=part").items,
        "the NetworkPolicy removed",
        timeout=90,
        interval=0.5,
    )
    rec = wait_for(
        lambda: (r := _record(cluster, ns, "part", "cut")).get("phase") == "Verdict" and r,
        "partition verdict",
        timeout=120,
        interval=1,
    )
    assert rec["verdict"] == "Pass", rec
    cni = cluster.kubectl("get", "configmap", "heady-static-cni", "-n", "kube-system", check=False)
    if cni.returncode == 0:
        # heady's kind node image: static bridge CNI, no NetworkPolicy enforcement. Said, not hidden.
        print(
            "NOTE: the bridge CNI of heady's kind node does not enforce NetworkPolicy: partition traffic not checked"
        )
        assert not enforced
    else:
        assert enforced, "this cluster's CNI should enforce NetworkPolicy, but traffic to web still flowed"


def _policy_enforced(cluster: Cluster, ns: str) -> bool:
    """True when a pod cannot reach a web pod while the partition's policy exists."""
    pods = [p for p in cluster.pods(ns, "app=web") if p.status.phase == "Running" and p.status.pod_ip]
    target = pods[0].status.pod_ip
    probe = cluster.kubectl(
        "run", f"probe-{uuid.uuid4().hex[:5]}", "-n", ns, "--rm", "-i", "--restart=Never", "--quiet",
        "--image", image_refs()["busybox"], "--image-pull-policy", "Never",
        "--command", "--", "sh", "-c", f"ping -c 2 -W 2 {target} >/dev/null 2>&1 && echo reachable || echo blocked",
        check=False,
    )  # fmt: skip
    return "blocked" in probe.stdout


def test_helm_upgrade_then_uninstall(cluster: Cluster, installed: None) -> None:
    old = wait_for(lambda: _operator_pod(cluster), "operator Ready").metadata.name
    helm(cluster, "upgrade", RELEASE, str(ROOT / "charts" / "heady"), "-n", NAMESPACE, *_values(),
         "--set", "operator.logLevel=DEBUG", "--wait", "--timeout", "240s")  # fmt: skip
    new = wait_for(
        lambda: (p := _operator_pod(cluster)) and p.metadata.name != old and p,
        "the upgraded operator Ready",
        timeout=120,
    )
    env = {e.name: e.value for e in new.spec.containers[0].env or []}
    assert env.get("HEADY_LOG_LEVEL") == "DEBUG"
    # The chaos test's session goes with its namespace; its finalizer (run by the operator)
    # removes that session's Jobs. Uninstalling before it ran would leave them behind.
    wait_for(
        lambda: not json.loads(cluster.kubectl("get", "job", "-n", NAMESPACE, "-o", "json").stdout)["items"],
        "the operator removed the chaos Jobs of deleted sessions",
        timeout=180,
    )
    helm(cluster, "uninstall", RELEASE, "-n", NAMESPACE, "--wait", "--timeout", "180s")
    left = json.loads(cluster.kubectl("get", "deploy,statefulset,job", "-n", NAMESPACE, "-o", "json").stdout)[
        "items"
    ]
    assert not left, [i["metadata"]["name"] for i in left]
    assert "headyservices.heady.io" in cluster.kubectl("get", "crd", "-o", "name").stdout
