"""The Cloudflare Access API client and the sync, against a local server (tests/access_api.py)
that enforces the API's documented request shapes, its error envelope and its pagination."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest

from heady_operator.edge.cloudflare import AccessApi, AccessApiError
from heady_operator.edge.sync import sync_access
from heady_operator.models.headyservice import Access
from heady_operator.planning.access import AccessPlan, AccessService, plan_access
from tests.access_api import AccessApiServer, start
from tests.unit.test_access import SEEDS

T = datetime(2026, 11, 29, tzinfo=UTC)


@pytest.fixture
async def served() -> AsyncIterator[tuple[AccessApiServer, AccessApi]]:
    server = AccessApiServer()
    runner, url = await start(server)
    async with aiohttp.ClientSession() as session:
        # per_page 2: a handful of objects already spans several pages.
        yield server, AccessApi(session, url, server.account, server.token, per_page=2)
    await runner.cleanup()


def _plan(services: dict[str, dict[str, Any]], prefix: str = "heady") -> AccessPlan:
    return plan_access(
        [
            AccessService("heady", n, f"{n}.headysystems.com", Access.model_validate(a), T)
            for n, a in services.items()
        ],
        prefix,
        [],
    )


async def test_first_sync_creates_everything_then_a_second_changes_nothing(
    served: tuple[AccessApiServer, AccessApi],
) -> None:
    server, api = served
    result = await sync_access(api, _plan(SEEDS), "heady")
    assert result.errors == {}
    assert len(server.apps) == 4 and len(server.policies) == 4
    for name in SEEDS:
        app = server.app_named(f"heady/heady/{name}")
        assert app is not None
        assert result.audiences[("heady", name)] == app["aud"]
        assert result.app_ids[("heady", name)] == app["id"]
        assert app["domain"] == f"{name}.headysystems.com"
    promoter = server.policy_named("heady/heady/promoter/admins")
    assert promoter is not None and promoter["require"] == [
        {"group": {"id": SEEDS["promoter"]["policies"][0]["require"][0]["group"]}}
    ]
    writes = server.writes()
    again = await sync_access(api, _plan(SEEDS), "heady")
    assert server.writes() == writes, "a sync without drift must only list"
    assert again.changes == [] and again.audiences == result.audiences
    # Empty at first (one page), then 4 objects at 2 per page: the second listing walked 2 pages.
    assert server.calls["GET apps"] == 1 + 2 and server.calls["GET policies"] == 1 + 2


async def test_drift_is_repaired_and_removed_services_are_deleted(
    served: tuple[AccessApiServer, AccessApi],
) -> None:
    server, api = served
    first = await sync_access(api, _plan(SEEDS), "heady")
    first_policies = {p["name"]: p["id"] for p in server.policies.values()}
    # Someone edits a policy and deletes an application by hand; a foreign app must survive.
    web_policy = server.policy_named("heady/heady/web/staff-and-partners")
    assert web_policy is not None
    web_policy["include"] = [{"email": {"email": "intruder@example.com"}}]
    mcp = server.app_named("heady/heady/mcp")
    assert mcp is not None
    del server.apps[mcp["id"]]
    server.apps["foreign"] = {
        "id": "foreign",
        "name": "hand-made",
        "domain": "x.example.com",
        "type": "self_hosted",
        "policies": [],
        "aud": "f" * 64,
    }
    fewer = {k: v for k, v in SEEDS.items() if k != "vinci"}
    result = await sync_access(api, _plan(fewer), "heady")
    assert result.errors == {}
    vinci_policy = first_policies["heady/heady/vinci/internal"]
    assert sorted(result.changes) == sorted(
        [
            "update policy heady/heady/web/staff-and-partners",
            "create application heady/heady/mcp",
            f"delete apps {first.app_ids[('heady', 'vinci')]}",
            f"delete policies {vinci_policy}",
        ]
    )
    web_policy = server.policy_named("heady/heady/web/staff-and-partners")
    assert web_policy is not None and web_policy["include"][0] == {
        "email_domain": {"domain": "headysystems.com"}
    }
    assert server.app_named("heady/heady/mcp") is not None
    assert (
        server.app_named("heady/heady/vinci") is None
        and server.policy_named("heady/heady/vinci/internal") is None
    )
    assert "foreign" in server.apps
    assert result.audiences[("heady", "mcp")] != first.audiences[("heady", "mcp")], (
        "a new application, a new AUD"
    )
    assert result.audiences[("heady", "web")] == first.audiences[("heady", "web")]


async def test_a_refused_object_is_that_services_error_only(
    served: tuple[AccessApiServer, AccessApi],
) -> None:
    server, api = served
    # Another application (made by hand) already holds web's domain: Cloudflare refuses web's.
    server.apps["hand"] = {
        "id": "hand",
        "name": "hand-made",
        "domain": "web.headysystems.com",
        "type": "self_hosted",
        "policies": [],
        "aud": "f" * 64,
    }
    result = await sync_access(api, _plan(SEEDS), "heady")
    assert set(result.errors) == {("heady", "web")}
    assert "12130" in result.errors[("heady", "web")] and "already used" in result.errors[("heady", "web")]
    assert set(result.audiences) == {("heady", "promoter"), ("heady", "mcp"), ("heady", "vinci")}


async def test_rate_limit_and_server_errors_are_retried(served: tuple[AccessApiServer, AccessApi]) -> None:
    server, api = served
    server.fail_next = [(429, 10429, "Rate limited", "0"), (502, 10000, "Bad gateway", None)]
    assert await api.list_apps() == []
    assert server.calls["GET apps"] == 3


async def test_errors_carry_cloudflares_envelope(served: tuple[AccessApiServer, AccessApi]) -> None:
    server, api = served
    server.fail_next = [(429, 10429, "Rate limited", "0")] * 4
    with pytest.raises(AccessApiError, match="10429: Rate limited") as exc:
        await api.list_policies()
    assert exc.value.status == 429
    with pytest.raises(AccessApiError, match="12130: include must be a non-empty array"):
        await api.create("policies", {"name": "heady/x", "decision": "allow", "include": []})
    with pytest.raises(AccessApiError, match="rule email_domain must be"):
        await api.create(
            "policies",
            {"name": "heady/x", "decision": "allow", "include": [{"email_domain": {"email": "x"}}]},
        )
    with pytest.raises(AccessApiError, match="12131: app nope not found"):
        await api.update(
            "apps", "nope", {"name": "heady/x", "domain": "x.example.com", "type": "self_hosted"}
        )
    await api.delete("apps", "nope")  # already gone: what was wanted


async def test_a_wrong_token_is_refused(served: tuple[AccessApiServer, AccessApi]) -> None:
    server, api = served
    bad = AccessApi(api.session, api.base.split("/accounts/")[0], server.account, "wrong")
    with pytest.raises(AccessApiError, match="10000: Authentication error") as exc:
        await sync_access(bad, _plan(SEEDS), "heady")
    assert exc.value.status == 403
    assert server.apps == {} and server.policies == {}


async def test_a_policy_in_use_is_deleted_after_its_application(
    served: tuple[AccessApiServer, AccessApi],
) -> None:
    server, api = served
    await sync_access(api, _plan(SEEDS), "heady")
    result = await sync_access(api, _plan({}), "heady")
    assert result.errors == {}
    assert server.apps == {} and server.policies == {}


async def test_prefixes_keep_two_clusters_apart(served: tuple[AccessApiServer, AccessApi]) -> None:
    server, api = served
    await sync_access(api, _plan({"web": SEEDS["web"]}, "east"), "east")
    other = plan_access(
        [AccessService("heady", "api", "api.headysystems.com", Access.model_validate(SEEDS["web"]), T)],
        "west",
        [],
    )
    await sync_access(api, other, "west")
    assert server.app_named("east/heady/web") is not None and server.app_named("west/heady/api") is not None
