"""Zero-trust access per hostname: spec.access -> Access API payloads, cloudflared ingress rules,
drift and status. Pure tables; the API client is tested in test_access_api.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from heady_operator.models.headyservice import Access, AccessRule, HeadyServiceSpec
from heady_operator.planning.access import (
    AccessService,
    access_reports,
    diff,
    plan_access,
    rule_payload,
)
from heady_operator.planning.tunnel import EdgeAccess, Route, tunnel_config

T = datetime(2026, 11, 29, tzinfo=UTC)
GROUP = "5d3a7f2e-0b1c-4d5e-8f90-123456789abc"
TOKEN = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
AUD = "a" * 64

# The seeds' four policies (ZeroTrustAccessManager), as spec.access.
SEEDS: dict[str, dict[str, Any]] = {
    # promoter: admins only - staff emails AND the Administrators group.
    "promoter": {
        "policies": [
            {
                "name": "admins",
                "include": [{"emailDomain": "headysystems.com"}],
                "require": [{"group": GROUP}],
            }
        ]
    },
    # web: all staff and approved partners.
    "web": {
        "policies": [
            {
                "name": "staff-and-partners",
                "include": [{"emailDomain": "headysystems.com"}, {"emailDomain": "approved-partners.com"}],
            }
        ]
    },
    # mcp: service tokens only.
    "mcp": {
        "policies": [{"name": "services", "decision": "non_identity", "include": [{"serviceToken": TOKEN}]}]
    },
    # vinci: bypass for the internal network.
    "vinci": {"policies": [{"name": "internal", "decision": "bypass", "include": [{"ip": "172.20.0.0/16"}]}]},
}


def _svc(name: str, access: dict[str, Any], created: datetime = T, ns: str = "heady") -> AccessService:
    return AccessService(ns, name, f"{name}.headysystems.com", Access.model_validate(access), created)


@pytest.mark.parametrize(
    ("rule", "payload"),
    [
        ({"email": "ada@headysystems.com"}, {"email": {"email": "ada@headysystems.com"}}),
        ({"emailDomain": "headysystems.com"}, {"email_domain": {"domain": "headysystems.com"}}),
        ({"group": GROUP}, {"group": {"id": GROUP}}),
        ({"serviceToken": TOKEN}, {"service_token": {"token_id": TOKEN}}),
        ({"ip": "172.20.0.0/16"}, {"ip": {"ip": "172.20.0.0/16"}}),
        ({"ip": "2001:db8::/32"}, {"ip": {"ip": "2001:db8::/32"}}),
    ],
)
def test_rule_payload_is_cloudflares_shape(rule: dict[str, str], payload: dict[str, Any]) -> None:
    assert rule_payload(AccessRule.model_validate(rule)) == payload


def test_seed_policies_render_as_access_api_bodies() -> None:
    plan = plan_access([_svc(n, a) for n, a in SEEDS.items()], "heady", ["onrender.com"])
    apps = {a.key[1]: a for a in plan.apps}
    assert apps["promoter"].application == {
        "name": "heady/heady/promoter",
        "domain": "promoter.headysystems.com",
        "type": "self_hosted",
        "session_duration": "24h",
    }
    assert apps["promoter"].policies == (
        {
            "name": "heady/heady/promoter/admins",
            "decision": "allow",
            "include": [{"email_domain": {"domain": "headysystems.com"}}],
            "require": [{"group": {"id": GROUP}}],
            "exclude": [],
        },
    )
    assert [p["include"] for p in apps["web"].policies] == [
        [
            {"email_domain": {"domain": "headysystems.com"}},
            {"email_domain": {"domain": "approved-partners.com"}},
        ]
    ]
    assert apps["mcp"].policies[0]["decision"] == "non_identity"
    assert apps["mcp"].policies[0]["include"] == [{"service_token": {"token_id": TOKEN}}]
    assert apps["vinci"].policies[0]["decision"] == "bypass"
    assert {k: a.protection for k, a in apps.items()} == {
        "promoter": "token",
        "web": "token",
        "mcp": "token",
        "vinci": "edge",
    }
    assert apps["web"].with_policy_ids(["p1"])["policies"] == [{"id": "p1", "precedence": 1}]
    assert plan.text() == plan_access([_svc(n, a) for n, a in reversed(SEEDS.items())], "heady", []).text()


def test_taken_and_forbidden_hostnames_get_no_application() -> None:
    plan = plan_access(
        [
            _svc("web", SEEDS["web"]),
            AccessService(
                "other", "web2", "web.headysystems.com", Access.model_validate(SEEDS["web"]), T + timedelta(1)
            ),
            AccessService("a", "old", "old.onrender.com", Access.model_validate(SEEDS["web"]), T),
        ],
        "heady",
        ["onrender.com"],
    )
    assert [a.key for a in plan.apps] == [("heady", "web")]
    assert set(plan.skipped) == {("other", "web2"), ("a", "old")}
    assert "already routed to heady/web" in plan.skipped[("other", "web2")]


@pytest.mark.parametrize(
    ("access", "message"),
    [
        ({"policies": []}, "at least 1"),
        ({"policies": [{"name": "x", "include": []}]}, "at least 1"),
        ({"policies": [{"name": "x", "include": [{}]}]}, "exactly one of"),
        (
            {"policies": [{"name": "x", "include": [{"email": "a@b.co", "ip": "10.0.0.0/8"}]}]},
            "exactly one of",
        ),
        ({"policies": [{"name": "x", "include": [{"emailDomain": "@headysystems.com"}]}]}, "pattern"),
        ({"policies": [{"name": "x", "include": [{"ip": "10.0.0.1"}]}]}, "CIDR"),
        ({"policies": [{"name": "x", "include": [{"ip": "10.0.0.0/33"}]}]}, "CIDR"),
        ({"policies": [{"name": "x", "include": [{"group": "Administrator"}]}]}, "pattern"),
        ({"policies": [{"name": "x", "include": [{"serviceToken": TOKEN}]}]}, "non_identity"),
        ({"policies": [{"name": "x", "decision": "bypass", "include": [{"email": "a@b.co"}]}]}, "ip ranges"),
        (
            {"policies": [{"name": "x", "decision": "non_identity", "include": [{"emailDomain": "b.co"}]}]},
            "serviceToken or ip",
        ),
        (
            {
                "policies": [
                    {"name": "a", "decision": "bypass", "include": [{"ip": "10.0.0.0/8"}]},
                    {"name": "b", "include": [{"emailDomain": "b.co"}]},
                ]
            },
            "cannot be mixed",
        ),
        (
            {
                "policies": [
                    {"name": "a", "include": [{"email": "a@b.co"}]},
                    {"name": "a", "include": [{"email": "c@b.co"}]},
                ]
            },
            "unique names",
        ),
        (
            {"policies": [{"name": "a", "include": [{"email": "a@b.co"}]}], "sessionDuration": "1 day"},
            "pattern",
        ),
        ({"policies": [{"name": "a", "include": [{"email": "a@b.co"}]}], "audTag": "xyz"}, "pattern"),
        ({"policies": [{"name": "a", "decision": "deny", "include": [{"email": "a@b.co"}]}]}, "decision"),
    ],
)
def test_bad_access_is_refused_by_the_model(access: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Access.model_validate(access)


def test_access_needs_a_hostname() -> None:
    with pytest.raises(ValidationError, match="access needs a hostname"):
        HeadyServiceSpec.model_validate({"workload": {"name": "w"}, "access": SEEDS["web"]})


# ---------------------------------------------------------------- the edge: cloudflared ingress

EDGE = EdgeAccess(team_name="heady", allow_public=False)


def _rules(routes: list[Route], edge: EdgeAccess = EDGE) -> tuple[list[dict[str, Any]], dict[str, str]]:
    cfg = tunnel_config(routes, "heady", ["onrender.com"], edge)
    return yaml.safe_load(cfg.text)["ingress"], {r.name: r.reason for r in cfg.rejected}


@pytest.mark.parametrize(
    ("protection", "audience", "edge", "origin_request", "reason"),
    [
        # Token-protected with a known audience: cloudflared requires a valid Access token.
        ("token", AUD, EDGE, {"access": {"required": True, "teamName": "heady", "audTag": [AUD]}}, None),
        # Audience not known yet (application not created): not routed at all.
        ("token", None, EDGE, None, "AccessPending"),
        # No team name: cloudflared could not check the token, so not routed.
        ("token", AUD, EdgeAccess("", False), None, "AccessPending"),
        # Bypass: routed once the application exists, without a token check (there is no token).
        ("edge", AUD, EDGE, {}, None),
        ("edge", None, EDGE, None, "AccessPending"),
        # No spec.access: refused unless public services are allowed.
        (None, None, EDGE, None, "AccessRequired"),
        (None, None, EdgeAccess("heady", True), {}, None),
    ],
)
def test_policy_to_ingress_rule(
    protection: str | None,
    audience: str | None,
    edge: EdgeAccess,
    origin_request: dict[str, Any] | None,
    reason: str | None,
) -> None:
    rules, rejected = _rules(
        [Route("heady", "web", "web.headysystems.com", 80, T, protection, audience)], edge
    )
    assert rules[-1] == {"service": "http_status:404"}
    if origin_request is None:
        assert rules == [{"service": "http_status:404"}]
        assert rejected == {"web": reason}
    else:
        want: dict[str, Any] = {
            "hostname": "web.headysystems.com",
            "service": "http://web.heady.svc.cluster.local:80",
        }
        if origin_request:
            want["originRequest"] = origin_request
        assert rules[0] == want
        assert rejected == {}


def test_a_pending_service_keeps_its_hostname() -> None:
    _, rejected = _rules(
        [
            Route("a", "first", "x.example.com", 80, T, "token", None),
            Route("b", "second", "x.example.com", 80, T + timedelta(seconds=1), "token", AUD),
        ]
    )
    assert rejected == {"first": "AccessPending", "second": "HostnameTaken"}


# ---------------------------------------------------------------- drift


def _policy(name: str, **kw: Any) -> dict[str, Any]:
    return {
        "name": name,
        "decision": "allow",
        "include": [{"email": {"email": "a@b.co"}}],
        "require": [],
        "exclude": [],
        **kw,
    }


def test_diff_creates_updates_deletes_only_what_differs_and_only_its_own() -> None:
    desired = {"heady/a/x/p": _policy("heady/a/x/p"), "heady/a/y/p": _policy("heady/a/y/p")}
    listed = [
        {**_policy("heady/a/x/p"), "id": "1", "created_at": "t", "app_count": 1},  # same: kept
        {**_policy("heady/a/y/p", decision="bypass"), "id": "2"},  # drifted: updated
        {**_policy("heady/a/gone/p"), "id": "3"},  # ours, no longer wanted: deleted
        {**_policy("someone-else"), "id": "4"},  # not ours: untouched
        {**_policy("heady-other/a/x/p"), "id": "5"},  # another prefix: untouched
        {**_policy("heady/a/x/p"), "id": "6"},  # a duplicate of ours: deleted
    ]
    d = diff(desired, listed, "heady")
    assert d.create == []
    assert d.update == [("2", desired["heady/a/y/p"])]
    assert d.delete == ["3", "6"]
    assert set(d.current) == {"heady/a/x/p"}
    assert diff(desired, [], "heady").create == [desired["heady/a/x/p"], desired["heady/a/y/p"]]


def test_diff_of_applications_compares_policy_ids_and_order() -> None:
    want = {"name": "heady/a/x", "domain": "x.example.com", "type": "self_hosted", "session_duration": "24h"}
    body = {**want, "policies": [{"id": "p1", "precedence": 1}, {"id": "p2", "precedence": 2}]}
    listed = {
        **want,
        "id": "app",
        "aud": AUD,
        # The API lists an application's policies expanded.
        "policies": [
            {"id": "p2", "precedence": 2, "name": "b", "decision": "allow"},
            {"id": "p1", "precedence": 1, "name": "a", "decision": "allow"},
        ],
    }
    assert diff({"heady/a/x": body}, [listed], "heady").update == []
    swapped = {**body, "policies": [{"id": "p2", "precedence": 1}, {"id": "p1", "precedence": 2}]}
    assert diff({"heady/a/x": swapped}, [listed], "heady").update == [("app", swapped)]


# ---------------------------------------------------------------- status


def test_reports_say_what_happened() -> None:
    plan = plan_access([_svc("web", SEEDS["web"]), _svc("ext", {**SEEDS["web"], "audTag": AUD})], "heady", [])
    kw: dict[str, Any] = {"app_ids": {}, "errors": {}, "failure": None, "where": "heady-system/heady-access"}
    none = access_reports(plan, credentials=False, audiences={}, **kw)
    assert (none[("heady", "web")].synced, none[("heady", "web")].reason) == (False, "NoCredentials")
    assert "heady-system/heady-access" in none[("heady", "web")].message
    assert (none[("heady", "ext")].synced, none[("heady", "ext")].reason) == (True, "ManagedOutside")
    assert none[("heady", "ext")].access["audTag"] == AUD
    ok = access_reports(plan, credentials=True, audiences={("heady", "web"): AUD}, **kw)
    assert (ok[("heady", "web")].synced, ok[("heady", "web")].reason) == (True, "Synced")
    assert ok[("heady", "web")].access["application"]["policies"] == [
        {"name": "heady/heady/web/staff-and-partners", "precedence": 1}
    ]
    failed = access_reports(
        plan,
        credentials=True,
        audiences={},
        **{**kw, "errors": {("heady", "web"): "POST apps: 12130: bad domain"}},
    )
    assert failed[("heady", "web")].reason == "SyncFailed"
    assert "12130: bad domain" in failed[("heady", "web")].message
