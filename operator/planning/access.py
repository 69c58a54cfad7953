"""Cloudflare Access applications and policies from HeadyService.spec.access. Pure.

Each HeadyService with a hostname and `spec.access` needs one self-hosted Access application for
that hostname and one reusable Access policy per entry of `spec.access.policies`, referenced by
the application in order (precedence 1, 2, ...). This module renders those as the request bodies
of Cloudflare's Access API (POST/PUT /accounts/{account_id}/access/apps and .../access/policies)
and decides, from what the API lists, which objects to create, update or delete (`diff`).

Ownership is by name: everything heady creates is named `<prefix>/<namespace>/<service>[/<policy>]`,
and only names under `<prefix>/` are ever updated or deleted, so applications made by hand (or by
another cluster with another prefix) in the same account are left alone.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from heady_operator.models.headyservice import Access, AccessPolicy, AccessRule
from heady_operator.planning.tunnel import forbidden_suffix

ServiceKey = tuple[str, str]
Payload = dict[str, Any]

# spec rule selector -> (Cloudflare rule key, field inside it)
RULE_SHAPES: dict[str, tuple[str, str]] = {
    "email": ("email", "email"),
    "emailDomain": ("email_domain", "domain"),
    "group": ("group", "id"),
    "serviceToken": ("service_token", "token_id"),
    "ip": ("ip", "ip"),
}


@dataclass(frozen=True)
class AccessService:
    namespace: str
    name: str
    hostname: str
    access: Access
    created: datetime


@dataclass(frozen=True)
class DesiredApp:
    """One service's Access application and its policies, as the API wants them.

    `application` lacks `policies`: they reference the policies' IDs, known only once the
    policies exist (`with_policy_ids`)."""

    key: ServiceKey
    application: Payload
    policies: tuple[Payload, ...]
    protection: str  # "token": cloudflared requires an Access token; "edge": bypass only
    external_aud: str | None  # spec.access.audTag: an application managed outside heady

    @property
    def managed(self) -> bool:
        return self.external_aud is None

    def with_policy_ids(self, ids: Sequence[str]) -> Payload:
        return {
            **self.application,
            "policies": [{"id": pid, "precedence": i + 1} for i, pid in enumerate(ids)],
        }

    def rendered(self) -> Payload:
        """What status.access and the ConfigMap show: the application naming its policies."""
        return {
            **self.application,
            "policies": [{"name": p["name"], "precedence": i + 1} for i, p in enumerate(self.policies)],
        }


@dataclass(frozen=True)
class AccessPlan:
    apps: tuple[DesiredApp, ...]
    skipped: Mapping[ServiceKey, str]  # services whose hostname is not theirs to protect, and why

    def text(self) -> str:
        """The ConfigMap's data: every application with its policies, sorted, stable."""
        doc = [
            {
                "service": f"{a.key[0]}/{a.key[1]}",
                "managed": a.managed,
                "application": a.rendered(),
                "policies": list(a.policies),
            }
            for a in self.apps
        ]
        return json.dumps(doc, indent=2, sort_keys=True) + "\n"

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.text().encode()).hexdigest()[:16]


def rule_payload(rule: AccessRule) -> Payload:
    """{emailDomain: x} -> {"email_domain": {"domain": x}} and so on (Cloudflare's AccessRule)."""
    key, inner = RULE_SHAPES[rule.selector]
    return {key: {inner: rule.value}}


def app_name(prefix: str, namespace: str, name: str) -> str:
    return f"{prefix}/{namespace}/{name}"


def policy_payload(prefix: str, namespace: str, name: str, policy: AccessPolicy) -> Payload:
    return {
        "name": f"{app_name(prefix, namespace, name)}/{policy.name}",
        "decision": policy.decision,
        "include": [rule_payload(r) for r in policy.include],
        "require": [rule_payload(r) for r in policy.require],
        "exclude": [rule_payload(r) for r in policy.exclude],
    }


def desired_app(prefix: str, svc: AccessService) -> DesiredApp:
    return DesiredApp(
        key=(svc.namespace, svc.name),
        application={
            "name": app_name(prefix, svc.namespace, svc.name),
            "domain": svc.hostname,
            "type": "self_hosted",
            "session_duration": svc.access.session_duration,
        },
        policies=tuple(policy_payload(prefix, svc.namespace, svc.name, p) for p in svc.access.policies),
        protection="edge" if svc.access.bypass else "token",
        external_aud=svc.access.aud_tag,
    )


def plan_access(services: Iterable[AccessService], prefix: str, forbidden_suffixes: list[str]) -> AccessPlan:
    """The applications the cluster needs. A hostname the tunnel will not route to this service
    (a forbidden suffix, or an older service holding it) gets no application: the same first-come
    rule as planning/tunnel.py, so Access never protects a route that is someone else's."""
    owner: dict[str, ServiceKey] = {}
    apps: list[DesiredApp] = []
    skipped: dict[ServiceKey, str] = {}
    for svc in sorted(services, key=lambda s: (s.created, s.namespace, s.name)):
        key = (svc.namespace, svc.name)
        suffix = forbidden_suffix(svc.hostname, forbidden_suffixes)
        if suffix is not None:
            skipped[key] = f"hostname {svc.hostname} is under the forbidden suffix {suffix}"
            continue
        first = owner.get(svc.hostname)
        if first is not None:
            skipped[key] = f"hostname {svc.hostname} is already routed to {first[0]}/{first[1]}"
            continue
        owner[svc.hostname] = key
        apps.append(desired_app(prefix, svc))
    return AccessPlan(tuple(sorted(apps, key=lambda a: a.key)), skipped)


# ---------------------------------------------------------------- drift


@dataclass
class Diff:
    """What to do so the owned objects the API listed become the desired ones."""

    create: list[Payload] = field(default_factory=list)
    update: list[tuple[str, Payload]] = field(default_factory=list)  # (id, full desired body)
    delete: list[str] = field(default_factory=list)  # ids
    current: dict[str, Payload] = field(default_factory=dict)  # name -> listed object kept as is


def owned(name: object, prefix: str) -> bool:
    return isinstance(name, str) and name.startswith(prefix + "/")


def _comparable(listed: Mapping[str, Any], want: Mapping[str, Any]) -> Payload:
    """The listed object reduced to the fields heady sets (the API adds id, aud, timestamps ...)."""
    out: Payload = {}
    for k in want:
        value = listed.get(k)
        if k == "policies":
            # Applications list their policies expanded; what heady sets is the id and order.
            value = [
                {"id": p.get("id"), "precedence": p.get("precedence")}
                for p in sorted(value or [], key=lambda p: p.get("precedence") or 0)
            ]
        elif k in ("include", "require", "exclude"):
            value = list(value or [])
        out[k] = value
    return out


def diff(desired: Mapping[str, Payload], listed: Iterable[Mapping[str, Any]], prefix: str) -> Diff:
    """Compare by name. Objects not under `prefix/` are never touched; a duplicate of an owned
    name (two objects left by an interrupted create) is deleted; a changed field is an update."""
    out = Diff()
    seen: set[str] = set()
    for obj in listed:
        name = obj.get("name")
        if not owned(name, prefix):
            continue
        assert isinstance(name, str)
        oid = str(obj.get("id", ""))
        want = desired.get(name)
        if want is None or name in seen:
            out.delete.append(oid)
            continue
        seen.add(name)
        if _comparable(obj, want) != want:
            out.update.append((oid, dict(want)))
        else:
            out.current[name] = dict(obj)
    out.create = [dict(want) for name, want in sorted(desired.items()) if name not in seen]
    return out


# ---------------------------------------------------------------- status


@dataclass(frozen=True)
class AccessReport:
    """One service's status.access and its AccessSynced condition (status, reason, message)."""

    access: Payload
    synced: bool
    reason: str
    message: str


def access_reports(
    plan: AccessPlan,
    *,
    credentials: bool,
    audiences: Mapping[ServiceKey, str],
    app_ids: Mapping[ServiceKey, str],
    errors: Mapping[ServiceKey, str],
    failure: str | None,
    where: str,
) -> dict[ServiceKey, AccessReport]:
    """What each service with spec.access says about its Access application.

    credentials: whether the operator may call the API; failure: why the last round failed as a
    whole (a listing error), per-service errors beside it; where: the ConfigMap's namespace/name.
    """
    out: dict[ServiceKey, AccessReport] = {}
    for app in plan.apps:
        aud = app.external_aud or audiences.get(app.key)
        access: Payload = {
            "application": app.rendered(),
            "policies": list(app.policies),
            "protection": app.protection,
            "audTag": aud,
            "applicationId": app_ids.get(app.key),
        }
        name = app.application["name"]
        count = f"{len(app.policies)} polic{'y' if len(app.policies) == 1 else 'ies'}"
        if not app.managed:
            report = AccessReport(
                access,
                True,
                "ManagedOutside",
                f"application for {app.application['domain']} is managed "
                f"outside heady (spec.access.audTag); cloudflared checks tokens for that audience",
            )
        elif not credentials:
            report = AccessReport(
                access,
                False,
                "NoCredentials",
                f"no Cloudflare API token and account id (chart access.apiTokenSecret, access.accountId): "
                f"application {name} and its {count} are only rendered, in ConfigMap {where} and "
                f"status.access; {app.application['domain']} is not routed until the application exists "
                "(or spec.access.audTag names one)",
            )
        elif app.key in errors or failure is not None:
            report = AccessReport(
                access,
                False,
                "SyncFailed",
                f"Cloudflare refused or failed: {errors.get(app.key) or failure}; retrying"
                + ("" if aud is None else f" (cloudflared keeps the last audience tag {aud[:12]}...)"),
            )
        elif aud is None:
            report = AccessReport(access, False, "Pending", f"application {name} not created yet")
        else:
            report = AccessReport(
                access,
                True,
                "Synced",
                f"application {name} (audience {aud[:12]}...) and its {count} match Cloudflare",
            )
        out[app.key] = report
    for key, why in plan.skipped.items():
        out[key] = AccessReport({}, False, "NotRouted", f"no Access application: {why}")
    return out
