"""`helm install` of charts/heady into the kwok cluster, and the operator running with only the chart's RBAC.

The operator is run from the host with a token of the chart's ServiceAccount (TokenRequest API),
so every call it makes is authorised by the chart's ClusterRole and nothing else: if the RBAC
missed a verb, the scenario below would fail.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.harness import ROOT, Cluster, OperatorProcess, attention, deployment, headyservice, wait_for

pytestmark = pytest.mark.k8s
RELEASE = "heady"
NAMESPACE = "heady-chart"


def helm(cluster: Cluster, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(
        [str(cluster.bin_dir / "helm"), *args], env=cluster.env, text=True, capture_output=True, timeout=300
    )
    if check and res.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed: {res.stderr}")
    return res


def _names(cluster: Cluster, kind: str) -> set[str]:
    out = cluster.kubectl("get", kind, "-n", NAMESPACE, "-o", "json").stdout
    return {i["metadata"]["name"] for i in json.loads(out)["items"]}


@pytest.fixture(scope="module")
def installed(cluster: Cluster) -> Iterator[None]:
    helm(cluster, "uninstall", RELEASE, "-n", NAMESPACE, check=False)
    helm(
        cluster,
        "install", RELEASE, str(ROOT / "charts" / "heady"),
        "-n", NAMESPACE, "--create-namespace",
        "-f", str(ROOT / "tests" / "unit" / "chart_values" / "kwok.yaml"),
        # The chart's operator must not run inside kwok (no containers run there); the one under
        # test runs on the host with the chart's ServiceAccount token instead.
        "--set", "operator.replicas=0",
    )  # fmt: skip
    yield
    helm(cluster, "uninstall", RELEASE, "-n", NAMESPACE, "--wait", check=False)


def test_install_creates_everything(cluster: Cluster, installed: None) -> None:
    assert f"{RELEASE}-operator" in _names(cluster, "deployment")
    assert {f"{RELEASE}-postgresql", f"{RELEASE}-redis"} <= _names(cluster, "statefulset")
    assert {f"{RELEASE}-operator", "heady-chaos"} <= _names(cluster, "serviceaccount")
    assert any("dashboard" in n for n in _names(cluster, "configmap"))
    crds = cluster.kubectl("get", "crd", "-o", "name").stdout
    for plural in ("headyservices", "attentionsignals", "arenasessions"):
        assert f"{plural}.heady.io" in crds
    wait_for(
        lambda: all(
            s["status"].get("readyReplicas") == s["spec"]["replicas"]
            for s in json.loads(cluster.kubectl("get", "statefulset", "-n", NAMESPACE, "-o", "json").stdout)[
                "items"
            ]
        ),
        "Postgres and Redis StatefulSets ready (simulated kubelets)",
    )


def _sa_kubeconfig(cluster: Cluster, tmp: Path) -> Path:
    token = cluster.kubectl(
        "create", "token", f"{RELEASE}-operator", "-n", NAMESPACE, "--duration=1h"
    ).stdout.strip()
    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    ctx = next(c for c in admin["contexts"] if c["name"] == admin["current-context"])["context"]
    cl = next(c for c in admin["clusters"] if c["name"] == ctx["cluster"])
    cfg: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [cl],
        "users": [{"name": "heady-operator", "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": cl["name"], "user": "heady-operator"}}],
        "current-context": "sa",
    }
    path = tmp / "sa-kubeconfig"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_operator_works_with_only_the_charts_rbac(
    cluster: Cluster, installed: None, operator: OperatorProcess, ns: str, tmp_path: Path
) -> None:
    kubeconfig = _sa_kubeconfig(cluster, tmp_path)
    denied = cluster.kubectl("--kubeconfig", str(kubeconfig), "get", "secrets", "-A", check=False)
    assert denied.returncode != 0, "the ServiceAccount must not read Secrets cluster-wide"
    operator.stop()  # the chart-RBAC operator is the only one acting during this test
    try:
        op = OperatorProcess(
            cluster,
            tmp_path,
            {
                "KUBECONFIG": str(kubeconfig),
                "HEADY_OPERATOR_NAMESPACE": NAMESPACE,
                # As the chart runs it: electing a leader on a Lease the chart's RBAC must allow.
                "HEADY_LEADER_ELECTION": "true",
                "HEADY_LEADER_ELECTION_LEASE": f"heady-operator-{ns}"[:63],
                "HEADY_POD_NAME": "heady-operator-e2e",
            },
        )
        op.start()
        try:
            cluster.apply(
                deployment("app", ns, 2, {"cpu": "1", "memory": "1Gi"}, {"cpu": "2", "memory": "2Gi"})
            )
            cluster.apply(
                headyservice(
                    "app",
                    ns,
                    peak={"cpu": "2", "memory": "2Gi"},
                    hostname=f"app-{ns}.example.com",
                    # An internal network, through an application managed outside heady: routed
                    # without the Cloudflare API (the chart's default refuses hostnames without access).
                    access={
                        "policies": [
                            {"name": "lan", "decision": "bypass", "include": [{"ip": "10.0.0.0/8"}]}
                        ],
                        "audTag": "c" * 64,
                    },
                )
            )
            cluster.apply(attention("look", ns, "app", ttlSeconds=120))
            peak = {"cpu": "1999m", "memory": "2Gi"}
            wait_for(
                lambda: (
                    [dict(p.spec.containers[0].resources.requests) for p in cluster.pods(ns, "app=app")]
                    == [peak, peak]
                ),
                "pods at peak, resized by the chart-RBAC operator",
            )
            wait_for(
                lambda: any(e.reason == "Escalated" for e in cluster.events(ns, "app")), "the Escalated Event"
            )
            wait_for(
                lambda: (
                    f"app-{ns}.example.com"
                    in (
                        cluster.core.read_namespaced_config_map("heady-cloudflared", NAMESPACE).data or {}
                    ).get("config.yaml", "")
                ),
                "the tunnel rule written with the chart's RBAC",
            )
            wait_for(
                lambda: cluster.get("headyservices", ns, "app").get("status", {}).get("level") == "Peak",
                "status",
            )
            # An RBAC denial names the ServiceAccount ("... is forbidden: User "system:serviceaccount:..."
            # cannot ..."); other 403s, such as writes into a namespace being deleted, are not RBAC's.
            denials = [line for line in op.log().splitlines() if f"system:serviceaccount:{NAMESPACE}" in line]
            assert not denials, "\n".join(denials)
        finally:
            op.stop()
    finally:
        operator.start()


def test_uninstall_keeps_only_crds_and_data(cluster: Cluster, installed: None) -> None:
    helm(cluster, "uninstall", RELEASE, "-n", NAMESPACE, "--wait")
    assert not _names(cluster, "deployment")
    assert not _names(cluster, "statefulset")
    assert not {n for n in _names(cluster, "serviceaccount") if n != "default"}
    crds = cluster.kubectl("get", "crd", "-o", "name").stdout
    assert "headyservices.heady.io" in crds
    roles = cluster.kubectl("get", "clusterrole", "-o", "name").stdout
    assert f"{RELEASE}-operator" not in roles
