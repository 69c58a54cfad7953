"""Health checks of HeadyServices against a real HTTP server started by the test.

The clock that decides when a check is due is a fake (no sleeps); the probes are real TCP
connections and HTTP requests to 127.0.0.1, through the address override the operator offers.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from prometheus_client import generate_latest

from heady_operator import metrics
from heady_operator.health import HealthChecks
from heady_operator.health.verdict import Health, HealthState, ProbeResult, observe
from heady_operator.models.headyservice import HeadyServiceSpec, HealthCheck

OK = ProbeResult(True, 0.01, "HTTP 200")
BAD = ProbeResult(False, 0.01, "connection refused")


# --- the verdict -------------------------------------------------------------------------------


@pytest.mark.parametrize("threshold", [1, 2, 3, 5])
def test_unhealthy_on_exactly_the_threshold_th_failure_in_a_row(threshold: int) -> None:
    state, first = observe(HealthState(), OK, threshold)
    assert first is not None and first.health is Health.HEALTHY
    for n in range(1, threshold):
        state, transition = observe(state, BAD, threshold)
        assert transition is None, n
        assert state.health is Health.HEALTHY
    state, transition = observe(state, BAD, threshold)
    assert transition is not None and transition.health is Health.UNHEALTHY
    assert f"failed {threshold} times in a row: connection refused" in transition.message
    # More failures: no new transition (one Event per outage).
    state, again = observe(state, BAD, threshold)
    assert again is None and state.health is Health.UNHEALTHY
    state, healed = observe(state, OK, threshold)
    assert healed is not None and healed.health is Health.HEALTHY and state.failures == 0


def test_a_pass_resets_the_count() -> None:
    state, _ = observe(HealthState(), OK, 2)
    state, _ = observe(state, BAD, 2)
    state, _ = observe(state, OK, 2)
    state, transition = observe(state, BAD, 2)
    assert transition is None and state.health is Health.HEALTHY


def test_never_healthy_turns_unhealthy_from_unknown() -> None:
    state, transition = observe(HealthState(), BAD, 2)
    assert transition is None and state.health is Health.UNKNOWN
    state, transition = observe(state, BAD, 2)
    assert transition is not None and transition.health is Health.UNHEALTHY


# --- the spec ----------------------------------------------------------------------------------


def test_health_check_defaults_are_the_seeds() -> None:
    spec = HeadyServiceSpec.model_validate({"workload": {"name": "web"}, "healthCheck": {}})
    assert spec.health_check == HealthCheck(
        type="HTTP", interval_seconds=30, timeout_seconds=5, failure_threshold=2
    )
    assert spec.health_check.http_path == "/"


@pytest.mark.parametrize(
    ("check", "message"),
    [
        ({"timeoutSeconds": 40, "intervalSeconds": 30}, "timeoutSeconds must not exceed intervalSeconds"),
        ({"type": "TCP", "path": "/x"}, "path is only for type HTTP"),
        ({"path": "healthz"}, "String should match pattern"),
        ({"failureThreshold": 0}, "greater than or equal to 1"),
    ],
)
def test_bad_health_checks_are_refused(check: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        HeadyServiceSpec.model_validate({"workload": {"name": "web"}, "healthCheck": check})


# --- the loop against a real server ------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """A real aiohttp server that can be stopped and started again on the same port."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.runner: web.AppRunner | None = None
        self.status = 200
        self.delay = 0.0

    async def handler(self, _: web.Request) -> web.Response:
        if self.delay:
            await asyncio.sleep(self.delay)
        return web.Response(status=self.status, text="ok")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/healthz", self.handler)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    srv = Server(free_port())
    await srv.start()
    yield srv
    await srv.stop()


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def hsvc(name: str, check: dict[str, Any], namespace: str = "health") -> dict[str, Any]:
    return {
        "apiVersion": "heady.io/v1alpha1",
        "kind": "HeadyService",
        "metadata": {"name": name, "namespace": namespace, "generation": 1},
        "spec": {"workload": {"name": name}, "port": 80, "healthCheck": check},
        "status": {},
    }


def sample(name: str, **labels: str) -> float | None:
    return metrics.REGISTRY.get_sample_value(name, labels)


async def step(checks: HealthChecks, clock: Clock, seconds: float) -> None:
    clock.t += seconds
    checks.tick()
    await checks.settle()


async def test_unreachable_service_turns_unhealthy_after_exactly_the_failures_and_recovers(
    server: Server,
) -> None:
    clock = Clock()
    services = [hsvc("web", {"path": "/healthz", "failureThreshold": 2})]
    # Probes for web.health.svc:80 go to the test's server.
    checks = HealthChecks(
        None, lambda: services, address=lambda ns, svc, port: ("127.0.0.1", server.port), monotonic=clock
    )
    key = ("health", "web")
    try:
        await step(checks, clock, 0)
        assert checks.health(*key) is Health.HEALTHY
        assert [t.reason for _, t in checks.transitions] == ["Healthy"]
        assert sample("heady_service_up", namespace="health", service="web") == 1

        await step(checks, clock, 10)  # not due yet (interval 30 s): no probe
        assert (
            sample("heady_health_probe_seconds_count", namespace="health", service="web", result="success")
            == 1
        )

        await server.stop()
        await step(checks, clock, 20)  # first failure: still healthy
        assert checks.health(*key) is Health.HEALTHY
        assert sample("heady_service_up", namespace="health", service="web") == 1
        await step(checks, clock, 30)  # second failure: unhealthy, one transition
        assert checks.health(*key) is Health.UNHEALTHY
        assert [t.reason for _, t in checks.transitions] == ["Healthy", "Unhealthy"]
        assert "failed 2 times in a row" in checks.transitions[-1][1].message
        assert (
            "connect" in checks.transitions[-1][1].message or "refused" in checks.transitions[-1][1].message
        )
        assert sample("heady_service_up", namespace="health", service="web") == 0
        assert (
            sample("heady_health_probe_seconds_count", namespace="health", service="web", result="failure")
            == 2
        )
        await step(checks, clock, 30)  # still down: no new transition
        assert len(checks.transitions) == 2

        await server.start()
        await step(checks, clock, 30)
        assert checks.health(*key) is Health.HEALTHY
        assert [t.reason for _, t in checks.transitions] == ["Healthy", "Unhealthy", "Healthy"]
        assert sample("heady_service_up", namespace="health", service="web") == 1

        services.clear()  # deleted: its series go with it
        await step(checks, clock, 1)
        assert key not in checks.entries
        assert b'namespace="health",service="web"' not in generate_latest(metrics.REGISTRY)
    finally:
        await checks.close()


async def test_http_errors_and_timeouts_fail_tcp_only_needs_a_listener(server: Server) -> None:
    clock = Clock()
    services = [
        hsvc("status", {"path": "/healthz", "failureThreshold": 1}),
        hsvc("slow", {"path": "/healthz", "failureThreshold": 1, "timeoutSeconds": 1}),
        hsvc("tcp", {"type": "TCP", "failureThreshold": 1}),
        hsvc("closed", {"type": "TCP", "failureThreshold": 1, "port": 81}),
    ]
    closed = free_port()

    def address(ns: str, svc: str, port: int) -> tuple[str, int]:
        return ("127.0.0.1", closed if port == 81 else server.port)

    checks = HealthChecks(None, lambda: services, address=address, monotonic=clock)
    try:
        server.status = 503
        await step(checks, clock, 0)
        # One server: status answers 503 to every HTTP check, so both HTTP checks fail.
        assert checks.health("health", "status") is Health.UNHEALTHY
        assert "HTTP 503" in dict(checks.transitions)[("health", "status")].message
        assert checks.health("health", "tcp") is Health.HEALTHY
        assert checks.health("health", "closed") is Health.UNHEALTHY

        server.status, server.delay = 200, 1.5
        await step(checks, clock, 30)
        # 1.5 s answers: past slow's 1 s timeout, within status's 5 s.
        assert checks.health("health", "slow") is Health.UNHEALTHY
        last = checks.entries[("health", "slow")].state.last
        assert last is not None and "timed out after 1 s" in last.detail
        assert checks.health("health", "status") is Health.HEALTHY
    finally:
        await checks.close()
