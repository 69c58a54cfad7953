"""The cloudflared ConfigMap follows HeadyService hostnames; forbidden hostnames are refused, and so
are hostnames without spec.access (the operator's default: no public services)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.harness import Cluster, OperatorProcess, condition, headyservice, wait_for

pytestmark = pytest.mark.k8s


def _rules(cluster: Cluster) -> list[dict[str, Any]]:
    cm = cluster.core.read_namespaced_config_map("heady-cloudflared", "heady-system")
    rules: list[dict[str, Any]] = yaml.safe_load(cm.data["config.yaml"])["ingress"]
    return rules


# An internal network only, through an Access application managed outside heady (its audience
# tag given): routed at once, without a token check (bypass) and without the Cloudflare API.
INTERNAL = {
    "policies": [{"name": "internal", "decision": "bypass", "include": [{"ip": "172.20.0.0/16"}]}],
    "audTag": "b" * 64,
}


def test_configmap_follows_hostnames(cluster: Cluster, operator: OperatorProcess, ns: str) -> None:
    cluster.apply(headyservice("site", ns, hostname=f"site-{ns}.example.com", port=8080, access=INTERNAL))
    want = {"hostname": f"site-{ns}.example.com", "service": f"http://site.{ns}.svc.cluster.local:8080"}
    wait_for(lambda: want in _rules(cluster), "the hostname's rule in the ConfigMap")
    assert _rules(cluster)[-1] == {"service": "http_status:404"}
    cluster.apply(headyservice("site", ns, hostname=f"www-{ns}.example.com", port=8080, access=INTERNAL))
    wait_for(
        lambda: (
            any(r.get("hostname") == f"www-{ns}.example.com" for r in _rules(cluster))
            and want not in _rules(cluster)
        ),
        "the rule following the new hostname",
    )
    cluster.custom.delete_namespaced_custom_object("heady.io", "v1alpha1", ns, "headyservices", "site")
    wait_for(
        lambda: not any(r.get("hostname", "").endswith(f"{ns}.example.com") for r in _rules(cluster)),
        "the rule removed with the service",
    )


def test_forbidden_hostname_is_refused_with_condition_and_event(
    cluster: Cluster, operator: OperatorProcess, ns: str
) -> None:
    cluster.apply(headyservice("legacy", ns, hostname=f"legacy-{ns}.onrender.com"))
    svc = wait_for(
        lambda: (s := cluster.get("headyservices", ns, "legacy")) and condition(s, "TunnelRouted") and s,
        "TunnelRouted condition",
    )
    cond = condition(svc, "TunnelRouted")
    assert cond["status"] == "False" and cond["reason"] == "ForbiddenHostname"
    assert "onrender.com" in cond["message"]
    wait_for(
        lambda: any(e.reason == "ForbiddenHostname" for e in cluster.events(ns, "legacy")), "a Warning Event"
    )
    assert not any("onrender" in r.get("hostname", "") for r in _rules(cluster))


def test_hostname_without_access_is_not_routed(cluster: Cluster, operator: OperatorProcess, ns: str) -> None:
    cluster.apply(headyservice("open", ns, hostname=f"open-{ns}.example.com"))
    svc = wait_for(
        lambda: (s := cluster.get("headyservices", ns, "open")) and condition(s, "TunnelRouted") and s,
        "TunnelRouted condition",
    )
    cond = condition(svc, "TunnelRouted")
    assert (cond["status"], cond["reason"]) == ("False", "AccessRequired")
    assert "spec.access" in cond["message"]
    wait_for(lambda: any(e.reason == "AccessRequired" for e in cluster.events(ns, "open")), "a Warning Event")
    assert not any(r.get("hostname") == f"open-{ns}.example.com" for r in _rules(cluster))
