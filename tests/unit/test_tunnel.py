"""cloudflared ingress rules from HeadyService hostnames."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import yaml

from heady_operator.planning.tunnel import Route, tunnel_config

T = datetime(2026, 11, 23, tzinfo=UTC)


def test_rules_per_hostname_then_catch_all_404() -> None:
    cfg = tunnel_config(
        [Route("demo", "web", "web.example.com", 8080, T), Route("demo", "api", "api.example.com", 80, T)],
        "heady",
        ["onrender.com"],
    )
    doc = yaml.safe_load(cfg.text)
    assert doc["tunnel"] == "heady"
    assert doc["ingress"] == [
        {"hostname": "api.example.com", "service": "http://api.demo.svc.cluster.local:80"},
        {"hostname": "web.example.com", "service": "http://web.demo.svc.cluster.local:8080"},
        {"service": "http_status:404"},
    ]
    assert not cfg.rejected


def test_forbidden_suffix_and_taken_hostname_are_rejected() -> None:
    cfg = tunnel_config(
        [
            Route("a", "old", "x.example.com", 80, T),
            Route("b", "new", "x.example.com", 80, T + timedelta(seconds=1)),
            Route("a", "render", "app.onrender.com", 80, T),
            Route("a", "bare", "onrender.com", 80, T),
        ],
        "heady",
        ["onrender.com"],
    )
    reasons = {(r.name, r.reason) for r in cfg.rejected}
    assert reasons == {
        ("new", "HostnameTaken"),
        ("render", "ForbiddenHostname"),
        ("bare", "ForbiddenHostname"),
    }
    assert [r.name for r in cfg.routed] == ["old"]
    assert "onrender" not in cfg.text


def test_digest_changes_only_with_the_rules() -> None:
    a = tunnel_config([Route("a", "s", "s.example.com", 80, T)], "heady", [])
    b = tunnel_config([Route("a", "s", "s.example.com", 80, T + timedelta(days=1))], "heady", [])
    c = tunnel_config([Route("a", "s", "t.example.com", 80, T)], "heady", [])
    assert a.digest == b.digest != c.digest
