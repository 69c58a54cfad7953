"""Zero-trust access per hostname against the real API server: the access ConfigMap, status.access
and the AccessSynced condition appear for a HeadyService with spec.access; without a Cloudflare
token the operator only renders (NoCredentials) and does not route the hostname; with a token
(a local Access API, tests/access_api.py) it creates the application, puts its audience tag into
cloudflared's rule, and repairs drift."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.access_api import AccessApiServer, ThreadedServer
from tests.harness import Cluster, OperatorProcess, condition, headyservice, wait_for

pytestmark = pytest.mark.k8s

GROUP = "5d3a7f2e-0b1c-4d5e-8f90-123456789abc"
STAFF = {"policies": [{"name": "staff-and-partners", "include": [{"emailDomain": "headysystems.com"}]}]}
ADMINS = {
    "policies": [
        {"name": "admins", "include": [{"emailDomain": "headysystems.com"}], "require": [{"group": GROUP}]}
    ],
    "sessionDuration": "8h",
}


def _rules(cluster: Cluster) -> list[dict[str, Any]]:
    cm = cluster.core.read_namespaced_config_map("heady-cloudflared", "heady-system")
    rules: list[dict[str, Any]] = yaml.safe_load(cm.data["config.yaml"])["ingress"]
    return rules


def _rendered(cluster: Cluster) -> list[dict[str, Any]]:
    try:
        cm = cluster.core.read_namespaced_config_map("heady-access", "heady-system")
    except Exception:
        return []
    apps: list[dict[str, Any]] = json.loads((cm.data or {}).get("applications.json", "[]"))
    return apps


def _access_condition(cluster: Cluster, ns: str, name: str) -> dict[str, Any] | None:
    return condition(cluster.get("headyservices", ns, name), "AccessSynced")


def test_without_a_token_access_is_rendered_only(
    cluster: Cluster, operator: OperatorProcess, ns: str
) -> None:
    host = f"web-{ns}.headysystems.com"
    cluster.apply(headyservice("web", ns, hostname=host, access=STAFF))
    cond = wait_for(lambda: _access_condition(cluster, ns, "web"), "the AccessSynced condition")
    assert (cond["status"], cond["reason"]) == ("False", "NoCredentials")
    assert "heady-system/heady-access" in cond["message"]
    svc = cluster.get("headyservices", ns, "web")
    access = svc["status"]["access"]
    assert access["application"] == {
        "name": f"heady/{ns}/web",
        "domain": host,
        "type": "self_hosted",
        "session_duration": "24h",
        "policies": [{"name": f"heady/{ns}/web/staff-and-partners", "precedence": 1}],
    }
    assert access["policies"][0]["include"] == [{"email_domain": {"domain": "headysystems.com"}}]
    assert access["protection"] == "token" and "audTag" not in access
    mine = wait_for(
        lambda: [a for a in _rendered(cluster) if a["service"] == f"{ns}/web"],
        "the application in heady-access",
    )
    assert mine[0]["application"] == access["application"] and mine[0]["policies"] == access["policies"]
    tunnel = wait_for(
        lambda: condition(cluster.get("headyservices", ns, "web"), "TunnelRouted"), "TunnelRouted"
    )
    assert (tunnel["status"], tunnel["reason"]) == ("False", "AccessPending")
    assert not any(r.get("hostname") == host for r in _rules(cluster)), "fail closed: no audience, no route"
    wait_for(lambda: any(e.reason == "AccessNoCredentials" for e in cluster.events(ns, "web")), "an Event")

    # spec.access removed: status.access and the condition go; the hostname is now simply public,
    # which the operator refuses by default.
    body = cluster.get("headyservices", ns, "web")
    del body["spec"]["access"]
    cluster.custom.replace_namespaced_custom_object("heady.io", "v1alpha1", ns, "headyservices", "web", body)
    wait_for(
        lambda: (
            (s := cluster.get("headyservices", ns, "web"))
            and condition(s, "AccessSynced") is None
            and "access" not in s.get("status", {})
        ),
        "status.access and AccessSynced removed",
    )
    wait_for(
        lambda: (
            (condition(cluster.get("headyservices", ns, "web"), "TunnelRouted") or {}).get("reason")
            == "AccessRequired"
        ),
        "AccessRequired",
    )
    wait_for(
        lambda: not [a for a in _rendered(cluster) if a["service"] == f"{ns}/web"], "gone from heady-access"
    )


@pytest.fixture
def api_server() -> Iterator[ThreadedServer]:
    with ThreadedServer(AccessApiServer()) as served:
        yield served


def test_with_a_token_the_application_is_created_enforced_and_repaired(
    cluster: Cluster, operator: OperatorProcess, ns: str, api_server: ThreadedServer, tmp_path: Path
) -> None:
    server = api_server.server
    prefix = f"e2e-{ns}"[:40]
    operator.stop()  # this test's operator is the only one acting
    op = OperatorProcess(
        cluster,
        tmp_path,
        {
            "HEADY_ACCESS_TEAM_NAME": "heady-test",
            "HEADY_ACCESS_ACCOUNT_ID": server.account,
            "HEADY_ACCESS_API_TOKEN": server.token,
            "HEADY_ACCESS_API_URL": api_server.url,
            "HEADY_ACCESS_NAME_PREFIX": prefix,
            "HEADY_ACCESS_SYNC_INTERVAL_SECONDS": "1",
        },
    )
    try:
        op.start()
        host = f"promoter-{ns}.headysystems.com"
        cluster.apply(headyservice("promoter", ns, hostname=host, access=ADMINS))
        cond = wait_for(
            lambda: (c := _access_condition(cluster, ns, "promoter")) and c["status"] == "True" and c,
            "AccessSynced=True",
        )
        assert cond["reason"] == "Synced"
        app = api_server.run(lambda s: s.app_named(f"{prefix}/{ns}/promoter"))
        assert app is not None and app["domain"] == host and app["session_duration"] == "8h"
        policy = api_server.run(lambda s: s.policy_named(f"{prefix}/{ns}/promoter/admins"))
        assert policy is not None and policy["require"] == [{"group": {"id": GROUP}}]
        status = cluster.get("headyservices", ns, "promoter")["status"]["access"]
        assert status["audTag"] == app["aud"] and status["applicationId"] == app["id"]
        want = {
            "hostname": host,
            "service": f"http://promoter.{ns}.svc.cluster.local:80",
            "originRequest": {"access": {"required": True, "teamName": "heady-test", "audTag": [app["aud"]]}},
        }
        wait_for(lambda: want in _rules(cluster), "cloudflared requiring the application's Access token")
        wait_for(
            lambda: (
                (condition(cluster.get("headyservices", ns, "promoter"), "TunnelRouted") or {}).get("status")
                == "True"
            ),
            "TunnelRouted=True",
        )

        # Quiet: with nothing changed, later rounds only list.
        writes = api_server.run(lambda s: s.writes())
        lists = api_server.run(lambda s: s.calls["GET apps"])
        wait_for(lambda: api_server.run(lambda s: s.calls["GET apps"]) >= lists + 2, "two more drift checks")
        assert api_server.run(lambda s: s.writes()) == writes

        # Drift: the application is deleted by hand; the operator recreates it (a new AUD) and
        # cloudflared follows.
        api_server.run(lambda s: s.apps.pop(app["id"]))
        new = wait_for(
            lambda: (a := api_server.run(lambda s: s.app_named(f"{prefix}/{ns}/promoter"))) and a, "recreated"
        )
        assert new["aud"] != app["aud"]
        wait_for(
            lambda: any(
                r.get("hostname") == host and r["originRequest"]["access"]["audTag"] == [new["aud"]]
                for r in _rules(cluster)
            ),
            "cloudflared following the new audience tag",
        )

        # Deleted service: its application and policy go (only this cluster's prefix).
        api_server.run(
            lambda s: s.apps.__setitem__(
                "foreign",
                {
                    "id": "foreign",
                    "name": "hand-made",
                    "domain": "x.example.com",
                    "type": "self_hosted",
                    "policies": [],
                    "aud": "f" * 64,
                },
            )
        )
        cluster.custom.delete_namespaced_custom_object(
            "heady.io", "v1alpha1", ns, "headyservices", "promoter"
        )
        mine = f"{prefix}/{ns}/"
        wait_for(
            lambda: (
                not api_server.run(
                    lambda s: [
                        o["name"]
                        for o in [*s.apps.values(), *s.policies.values()]
                        if o["name"].startswith(mine)
                    ]
                )
            ),
            "the application and its policy deleted",
        )
        assert api_server.run(lambda s: "foreign" in s.apps), "an application heady does not own is kept"
        assert not any(r.get("hostname") == host for r in _rules(cluster))
    finally:
        op.stop()
        operator.start()
