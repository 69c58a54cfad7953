"""cloudflared ingress rules from HeadyService hostnames. Pure.

One tunnel serves every service: each hostname routes to the Kubernetes Service named like the
HeadyService in its namespace (http://<name>.<namespace>.svc.cluster.local:<port>), and a final
catch-all answers 404. Hostnames under a forbidden suffix (default onrender.com: the seeds' rule
against platform domains) and hostnames already claimed by an older service are rejected.
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


@dataclass(frozen=True)
class Rejection:
    namespace: str
    name: str
    hostname: str
    reason: str  # ForbiddenHostname | HostnameTaken
    message: str


@dataclass(frozen=True)
class TunnelConfig:
    text: str
    routed: tuple[Route, ...]
    rejected: tuple[Rejection, ...]

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()[:16]


def _forbidden(hostname: str, suffixes: list[str]) -> str | None:
    host = hostname.lower().rstrip(".")
    for suffix in suffixes:
        s = suffix.lower().strip(".")
        if host == s or host.endswith("." + s):
            return s
    return None


def tunnel_config(routes: list[Route], tunnel_id: str, forbidden_suffixes: list[str]) -> TunnelConfig:
    routed: list[Route] = []
    rejected: list[Rejection] = []
    owner: dict[str, Route] = {}
    for r in sorted(routes, key=lambda r: (r.created, r.namespace, r.name)):
        suffix = _forbidden(r.hostname, forbidden_suffixes)
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
        routed.append(r)
    ingress: list[dict[str, object]] = [
        {"hostname": r.hostname, "service": f"http://{r.name}.{r.namespace}.svc.cluster.local:{r.port}"}
        for r in sorted(routed, key=lambda r: r.hostname)
    ]
    ingress.append({"service": "http_status:404"})
    text = yaml.safe_dump({"tunnel": tunnel_id, "ingress": ingress}, sort_keys=False)
    return TunnelConfig(text, tuple(routed), tuple(rejected))
