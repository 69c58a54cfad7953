"""The access loop with a fake Kubernetes API (in memory) and the local Cloudflare Access API:
render, sync, status and condition, writing nothing when nothing changed."""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any, cast

import aiohttp
import pytest

from heady_operator.access.loop import AccessLoop
from heady_operator.config import Settings
from heady_operator.kube.client import Kube
from heady_operator.planning.incremental import IncrementalPlanner
from heady_operator.state.cluster import ClusterState
from tests.access_api import AccessApiServer, start
from tests.unit.test_access import SEEDS

T = datetime(2026, 11, 29, tzinfo=UTC)


class FakeCustom:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.status_writes = 0

    async def list_cluster_custom_object(self, g: str, v: str, plural: str) -> dict[str, Any]:
        return {"items": [copy.deepcopy(o) for o in self.objects.values()]}

    async def get_namespaced_custom_object(
        self, g: str, v: str, ns: str, plural: str, name: str
    ) -> dict[str, Any]:
        return copy.deepcopy(self.objects[(ns, name)])

    async def patch_namespaced_custom_object_status(
        self, g: str, v: str, ns: str, plural: str, name: str, body: dict[str, Any], **_: Any
    ) -> None:
        self.status_writes += 1
        obj = self.objects[(ns, name)]
        status = obj.setdefault("status", {})
        for k, val in body["status"].items():
            if val is None:
                status.pop(k, None)
            else:
                status[k] = val
        obj["metadata"]["resourceVersion"] = str(int(obj["metadata"]["resourceVersion"]) + 1)


class FakeCore:
    def __init__(self) -> None:
        self.config_maps: dict[tuple[str, str], dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []

    async def patch_namespaced_config_map(self, name: str, ns: str, body: dict[str, Any]) -> None:
        self.config_maps[(ns, name)] = body

    async def create_namespaced_event(self, ns: str, body: dict[str, Any]) -> None:
        self.events.append(body)


def _body(name: str, access: dict[str, Any] | None) -> dict[str, Any]:
    spec: dict[str, Any] = {"workload": {"name": name}, "hostname": f"{name}.headysystems.com"}
    if access is not None:
        spec["access"] = access
    return {
        "apiVersion": "heady.io/v1alpha1",
        "kind": "HeadyService",
        "metadata": {
            "namespace": "heady",
            "name": name,
            "uid": f"uid-{name}",
            "generation": 1,
            "resourceVersion": "1",
            "creationTimestamp": "2026-11-29T00:00:00Z",
        },
        "spec": spec,
    }


@pytest.fixture
async def world() -> AsyncIterator[tuple[ClusterState, FakeCore, FakeCustom, AccessApiServer, str]]:
    server = AccessApiServer()
    runner, url = await start(server)
    core, custom = FakeCore(), FakeCustom()
    state = ClusterState(Settings(), IncrementalPlanner(), lambda: T)
    for name in ("web", "vinci"):
        body = _body(name, SEEDS[name])
        custom.objects[("heady", name)] = copy.deepcopy(body)
        state.on_service("ADDED", body)
    yield state, core, custom, server, url
    await runner.cleanup()


def _kube(core: FakeCore, custom: FakeCustom) -> Kube:
    return cast(Kube, SimpleNamespace(core=core, custom=custom))


def _condition(custom: FakeCustom, name: str) -> dict[str, Any]:
    conds = custom.objects[("heady", name)].get("status", {}).get("conditions", [])
    return next(c for c in conds if c["type"] == "AccessSynced")


async def test_without_credentials_it_renders_and_says_so(
    world: tuple[ClusterState, FakeCore, FakeCustom, AccessApiServer, str],
) -> None:
    state, core, custom, server, _ = world
    loop = AccessLoop(Settings(), _kube(core, custom), state)
    await loop.tick()
    cm = core.config_maps[("heady-system", "heady-access")]
    rendered = json.loads(cm["data"]["applications.json"])
    assert [a["service"] for a in rendered] == ["heady/vinci", "heady/web"]
    assert _condition(custom, "web")["reason"] == "NoCredentials"
    assert (
        custom.objects[("heady", "web")]["status"]["access"]["application"]["domain"]
        == "web.headysystems.com"
    )
    assert state.access_audiences == {}
    assert [e["reason"] for e in core.events] == ["AccessNoCredentials", "AccessNoCredentials"]
    writes = custom.status_writes
    await loop.tick()
    assert custom.status_writes == writes and len(core.events) == 2, "nothing new: nothing written"
    assert server.calls == {}, "no token: the API is never called"


async def test_with_credentials_it_syncs_sets_audiences_and_then_only_lists(
    world: tuple[ClusterState, FakeCore, FakeCustom, AccessApiServer, str],
) -> None:
    state, core, custom, server, url = world
    settings = Settings(
        access_api_token=server.token,
        access_account_id=server.account,
        access_api_url=url,
        access_sync_interval_seconds=1.0,
    )
    clock = [0.0]
    async with aiohttp.ClientSession() as session:
        loop = AccessLoop(settings, _kube(core, custom), state, session=session, monotonic=lambda: clock[0])
        state.topology_changed = False
        await loop.tick()
        web = server.app_named("heady/heady/web")
        assert web is not None
        assert state.access_audiences[("heady", "web")] == web["aud"]
        assert state.topology_changed, "the tunnel config is rebuilt with the new audience"
        assert _condition(custom, "web")["reason"] == "Synced"
        assert custom.objects[("heady", "web")]["status"]["access"]["audTag"] == web["aud"]
        writes, status_writes = server.writes(), custom.status_writes
        await loop.tick()  # within the interval, nothing changed: no API call at all
        assert server.calls["GET apps"] == 1
        clock[0] += 2.0
        await loop.tick()  # the drift check: lists only
        assert server.calls["GET apps"] == 2
        assert (server.writes(), custom.status_writes) == (writes, status_writes)

        # The API fails as a whole: SyncFailed, and cloudflared keeps the audience it had.
        server.fail_next = [(500, 10000, "Internal error", None)] * 4
        clock[0] += 2.0
        await loop.tick()
        assert _condition(custom, "web")["reason"] == "SyncFailed"
        assert "10000: Internal error" in _condition(custom, "web")["message"]
        assert state.access_audiences[("heady", "web")] == web["aud"]
        assert "AccessSyncFailed" in [e["reason"] for e in core.events]
        clock[0] += 10.0
        await loop.tick()
        assert _condition(custom, "web")["reason"] == "Synced"

        # spec.access removed from web: its application goes, status.access and the condition too.
        body = copy.deepcopy(custom.objects[("heady", "web")])
        del body["spec"]["access"]
        body["metadata"]["generation"] = 2
        custom.objects[("heady", "web")] = body
        state.on_service("MODIFIED", body)
        await loop.tick()
        assert server.app_named("heady/heady/web") is None
        assert server.policy_named("heady/heady/web/staff-and-partners") is None
        assert "access" not in custom.objects[("heady", "web")]["status"]
        assert not [
            c for c in custom.objects[("heady", "web")]["status"]["conditions"] if c["type"] == "AccessSynced"
        ]
        assert ("heady", "web") not in state.access_audiences
        await loop.close()


async def test_nothing_happens_before_every_service_is_cached(
    world: tuple[ClusterState, FakeCore, FakeCustom, AccessApiServer, str],
) -> None:
    state, core, custom, server, url = world
    custom.objects[("heady", "late")] = _body("late", SEEDS["web"])  # not through the watch yet
    settings = Settings(access_api_token=server.token, access_account_id=server.account, access_api_url=url)
    async with aiohttp.ClientSession() as session:
        loop = AccessLoop(settings, _kube(core, custom), state, session=session)
        await loop.tick()
        assert server.calls == {} and core.config_maps == {}
        state.on_service("ADDED", custom.objects[("heady", "late")])
        await loop.tick()
        assert server.app_named("heady/heady/late") is not None


def test_a_restart_keeps_the_audience_from_status() -> None:
    state = ClusterState(Settings(), IncrementalPlanner(), lambda: T)
    body = _body("web", SEEDS["web"])
    body["status"] = {"access": {"audTag": "a" * 64, "application": {"domain": "web.headysystems.com"}}}
    state.on_service("ADDED", body)
    assert state.access_audiences == {("heady", "web"): "a" * 64}
    moved = _body("web2", SEEDS["web"])
    moved["status"] = {"access": {"audTag": "a" * 64, "application": {"domain": "elsewhere.example.com"}}}
    state.on_service("ADDED", moved)
    assert ("heady", "web2") not in state.access_audiences, "an audience for another hostname is not trusted"
