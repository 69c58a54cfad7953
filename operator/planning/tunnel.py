"""cloudflared ingress rules from HeadyService hostnames. Pure.

One tunnel serves every service: each hostname routes to the Kubernetes Service named like the
HeadyService in its namespace (http://<name>.<namespace>.svc.cluster.local:<port>), and a final
catch-all answers 404. Hostnames under a forbidden suffix (default onrender.com: the seeds' rule
against platform domains) and hostnames already claimed by an older service are rejected.

Access (planning/access.py) is enforced here too: a hostname whose service has `spec.access`
gets `originRequest.access` (required, the team name, the application's audience tag), so
cloudflared drops any request without a valid Access token before it reaches the pod. Until the
audience tag is known (the application is not created yet) the hostname is not routed at all:
fail closed (bypass too: without its application nothing would restrict the hostname). A hostname without `spec.access` is routed only when public services are allowed.
A bypass-only policy (an internal network) gets no token check: Access issues no token for it,
so only Cloudflare's edge enforces it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

import yaml


@dataclass(frozen=True)
class Route:
    namespace: str
    name: str
    hostname: str
    port: int
    created: datetime
    # None: no spec.access (public); "token": cloudflared requires an Access token; "edge": bypass.
    protection: str | None = None
    audience: str | None = None  # the Access application's AUD, once known


@dataclass(frozen=True)
class EdgeAccess:
    """The chart's part of every token check: the Zero Trust team and whether public is allowed."""

    team_name: str = ""
    allow_public: bool = True


@dataclass(frozen=True)
class Rejection:
    namespace: str
    name: str
    hostname: str
    reason: str  # ForbiddenHostname | HostnameTaken | AccessRequired | AccessPending
    message: str


@dataclass(frozen=True)
class TunnelConfig:
    text: str
    routed: tuple[Route, ...]
    rejected: tuple[Rejection, ...]

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()[:16]


def forbidden_suffix(hostname: str, suffixes: list[str]) -> str | None:
    host = hostname.lower().rstrip(".")
    for suffix in suffixes:
        s = suffix.lower().strip(".")
        if host == s or host.endswith("." + s):
            return s
    return None


def _access_refusal(r: Route, edge: EdgeAccess) -> tuple[str, str] | None:
    if r.protection is None:
        if edge.allow_public:
            return None
        return (
            "AccessRequired",
            f"hostname {r.hostname} has no spec.access policy and public services are not allowed "
            "(chart access.allowPublicServices); say who may reach it in spec.access",
        )
    if not r.audience:
        # Also for bypass: until the application exists, nothing at the edge restricts the hostname.
        return (
            "AccessPending",
            f"hostname {r.hostname} is not routed until its Access application exists and its audience "
            "tag is known (see the AccessSynced condition)",
        )
    if r.protection == "token" and not edge.team_name:
        return (
            "AccessPending",
            f"hostname {r.hostname} needs an Access token check but the operator has no team name "
            "(chart access.teamName); not routed until it has",
        )
    return None


def ingress_rule(r: Route, edge: EdgeAccess) -> dict[str, object]:
    rule: dict[str, object] = {
        "hostname": r.hostname,
        "service": f"http://{r.name}.{r.namespace}.svc.cluster.local:{r.port}",
    }
    if r.protection == "token" and r.audience:
        rule["originRequest"] = {
            "access": {"required": True, "teamName": edge.team_name, "audTag": [r.audience]}
        }
    return rule


def tunnel_config(
    routes: list[Route], tunnel_id: str, forbidden_suffixes: list[str], edge: EdgeAccess | None = None
) -> TunnelConfig:
    edge = edge or EdgeAccess()
    routed: list[Route] = []
    rejected: list[Rejection] = []
    owner: dict[str, Route] = {}
    for r in sorted(routes, key=lambda r: (r.created, r.namespace, r.name)):
        suffix = forbidden_suffix(r.hostname, forbidden_suffixes)
        if suffix is not None:
            rejected.append(
                Rejection(
                    r.namespace,
                    r.name,
                    r.hostname,
                    "ForbiddenHostname",
                    f"hostname {r.hostname} is under the forbidden suffix {suffix}; use a custom domain",
                )
            )
            continue
        first = owner.get(r.hostname)
        if first is not None:
            rejected.append(
                Rejection(
                    r.namespace,
                    r.name,
                    r.hostname,
                    "HostnameTaken",
                    f"hostname {r.hostname} is already routed to {first.namespace}/{first.name}",
                )
            )
            continue
        owner[r.hostname] = r
        refusal = _access_refusal(r, edge)
        if refusal is not None:
            # The hostname stays this service's (no one else may take it while it waits).
            rejected.append(Rejection(r.namespace, r.name, r.hostname, *refusal))
            continue
        routed.append(r)
    ingress: list[dict[str, object]] = [
        ingress_rule(r, edge) for r in sorted(routed, key=lambda r: r.hostname)
    ]
    ingress.append({"service": "http_status:404"})
    text = yaml.safe_dump({"tunnel": tunnel_id, "ingress": ingress}, sort_keys=False)
    return TunnelConfig(text, tuple(routed), tuple(rejected))
