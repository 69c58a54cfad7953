"""Health checks against the real kube-apiserver: the CRD's CEL rules, the Healthy condition
merged into conditions another writer owns, the Events, and a real HTTP server as the service.

The probes go to a server on loopback through the address override; the clock deciding when a
check is due is a fake, so the test never sleeps for an interval.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from kubernetes import client
from kubernetes_asyncio import client as aclient
from kubernetes_asyncio import config as aconfig

from heady_operator.health import HealthChecks
from heady_operator.kube.client import Kube
from tests.harness import Cluster, OperatorProcess

pytestmark = pytest.mark.k8s
GROUP, VERSION, PLURAL = "heady.io", "v1alpha1", "headyservices"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self) -> None:
        self.port = free_port()
        self.runner: web.AppRunner | None = None

    async def ok(self, _: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/healthz", self.ok)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None


@pytest.fixture
async def kube(cluster: Cluster) -> AsyncIterator[Kube]:
    # The operator's own client type, on the test cluster's kubeconfig (kubernetes_asyncio reads
    # $KUBECONFIG at import, so the file is passed explicitly).
    cfg = aclient.Configuration()
    await aconfig.load_kube_config(config_file=str(cluster.kubeconfig), client_configuration=cfg)
    api = aclient.ApiClient(configuration=cfg)
    k = Kube(
        api=api,
        core=aclient.CoreV1Api(api),
        custom=aclient.CustomObjectsApi(api),
        apps=aclient.AppsV1Api(api),
        batch=aclient.BatchV1Api(api),
        networking=aclient.NetworkingV1Api(api),
    )
    yield k
    await k.close()


def hsvc(name: str, check: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "HeadyService",
        "metadata": {"name": name},
        "spec": {"workload": {"name": name}, "port": 8080, "healthCheck": check},
    }


def conditions(cluster: Cluster, ns: str, name: str) -> dict[str, dict[str, Any]]:
    body = cluster.custom.get_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name)
    return {c["type"]: c for c in (body.get("status") or {}).get("conditions") or []}


def events(cluster: Cluster, ns: str, name: str) -> list[tuple[str, str]]:
    """The health checks' own Events (an operator started by another test may post its own)."""
    items = cluster.core.list_namespaced_event(ns, field_selector=f"involvedObject.name={name}").items
    ordered = sorted(items, key=lambda e: int(e.metadata.resource_version))
    return [(e.reason, e.type) for e in ordered if e.reason in ("Healthy", "Unhealthy")]


@pytest.mark.parametrize(
    ("check", "message"),
    [
        ({"timeoutSeconds": 40, "intervalSeconds": 30}, "timeoutSeconds must not exceed intervalSeconds"),
        ({"type": "TCP", "path": "/x"}, "path is only for type HTTP"),
        ({"failureThreshold": 0}, "should be greater than or equal to 1"),
    ],
)
def test_bad_health_checks_are_refused_at_apply(
    cluster: Cluster, ns: str, check: dict[str, Any], message: str
) -> None:
    with pytest.raises(client.ApiException) as refused:
        cluster.custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, hsvc("bad", check))
    assert refused.value.status == 422
    assert message in str(refused.value.body)


def test_defaults_are_the_seeds(cluster: Cluster, ns: str) -> None:
    created = cluster.custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, hsvc("defaults", {}))
    assert created["spec"]["healthCheck"] == {
        "type": "HTTP",
        "intervalSeconds": 30,
        "timeoutSeconds": 5,
        "failureThreshold": 2,
    }


async def test_healthy_condition_events_and_recovery_on_the_apiserver(
    cluster: Cluster, ns: str, kube: Kube, operator: OperatorProcess
) -> None:
    # This test plays the reporter's part itself: the shared operator process must not act meanwhile.
    operator.stop()
    try:
        await _healthy_condition_events_and_recovery(cluster, ns, kube)
    finally:
        operator.start()


async def _healthy_condition_events_and_recovery(cluster: Cluster, ns: str, kube: Kube) -> None:
    name = "web"
    cluster.custom.create_namespaced_custom_object(
        GROUP, VERSION, ns, PLURAL, hsvc(name, {"path": "/healthz", "failureThreshold": 2})
    )
    # The reconcile loop's conditions, which the health checks must leave alone.
    ready = {
        "type": "Ready",
        "status": "True",
        "reason": "AtBaseline",
        "message": "reporter's",
        "lastTransitionTime": "2026-11-29T10:00:00Z",
    }
    cluster.custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, ns, PLURAL, name, {"status": {"conditions": [ready]}}
    )

    server = Server()
    await server.start()
    clock = [0.0]

    def services() -> list[dict[str, Any]]:
        return [cluster.custom.get_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name)]

    checks = HealthChecks(
        kube, services, address=lambda *_: ("127.0.0.1", server.port), monotonic=lambda: clock[0]
    )

    async def step(seconds: float) -> None:
        clock[0] += seconds
        checks.tick()
        await checks.settle()

    try:
        await step(0)
        conds = conditions(cluster, ns, name)
        assert conds["Healthy"]["status"] == "True"
        assert conds["Healthy"]["reason"] == "HealthCheckPassed"
        assert conds["Ready"]["message"] == "reporter's"
        assert events(cluster, ns, name) == [("Healthy", "Normal")]

        await server.stop()
        await step(30)
        assert conditions(cluster, ns, name)["Healthy"]["status"] == "True"  # one failure: not yet
        await step(30)
        conds = conditions(cluster, ns, name)
        assert conds["Healthy"]["status"] == "False"
        assert conds["Healthy"]["reason"] == "HealthCheckFailed"
        assert "failed 2 times in a row" in conds["Healthy"]["message"]
        assert conds["Ready"]["message"] == "reporter's"
        assert events(cluster, ns, name) == [("Healthy", "Normal"), ("Unhealthy", "Warning")]

        # The reporter rewrites the conditions without ours: the next tick puts Healthy back.
        cluster.custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, ns, PLURAL, name, {"status": {"conditions": [ready]}}
        )
        await step(1)
        assert conditions(cluster, ns, name)["Healthy"]["status"] == "False"

        await server.start()
        await step(30)
        conds = conditions(cluster, ns, name)
        assert conds["Healthy"]["status"] == "True"
        assert conds["Ready"]["message"] == "reporter's"
        assert [r for r, _ in events(cluster, ns, name)] == ["Healthy", "Unhealthy", "Healthy"]
    finally:
        await checks.close()
        await server.stop()
        await asyncio.sleep(0)
