"""Make the account's heady-owned Access objects what the plan says: list, diff, then change only
what differs (planning/access.py decides; this module only calls the API).

Order matters to Cloudflare: policies first (applications reference their IDs), then
applications, then deletions: applications before policies, since a policy still used by an
application cannot be deleted. A failure of one service's objects is that service's error; the
others are still synced. A failed listing fails the whole round (nothing is changed blind).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial

from heady_operator.edge.cloudflare import AccessApi, AccessApiError
from heady_operator.planning.access import AccessPlan, Payload, ServiceKey, diff

log = logging.getLogger(__name__)


@dataclass
class SyncResult:
    audiences: dict[ServiceKey, str] = field(default_factory=dict)
    app_ids: dict[ServiceKey, str] = field(default_factory=dict)
    errors: dict[ServiceKey, str] = field(default_factory=dict)
    changes: list[str] = field(default_factory=list)  # what was created/updated/deleted, for logs


async def sync_access(api: AccessApi, plan: AccessPlan, prefix: str) -> SyncResult:
    out = SyncResult()
    managed = [a for a in plan.apps if a.managed]
    owner_of_policy = {p["name"]: a.key for a in managed for p in a.policies}
    want_policies = {p["name"]: p for a in managed for p in a.policies}
    policies = diff(want_policies, await api.list_policies(), prefix)
    ids = {name: str(obj.get("id")) for name, obj in policies.current.items()}
    changes: list[tuple[str, Payload, Callable[[], Awaitable[Payload]]]] = [
        (f"update policy {body['name']}", body, partial(api.update, "policies", oid, body))
        for oid, body in policies.update
    ] + [
        (f"create policy {body['name']}", body, partial(api.create, "policies", body))
        for body in policies.create
    ]
    for what, body, call in changes:
        result = await _apply(out, owner_of_policy[body["name"]], what, call)
        if result is not None:
            ids[body["name"]] = str(result.get("id"))

    want_apps: dict[str, Payload] = {}
    key_of_app: dict[str, ServiceKey] = {}
    for a in managed:
        if a.key in out.errors or any(p["name"] not in ids for p in a.policies):
            continue  # its policies failed: its application waits, and keeps what it had
        body = a.with_policy_ids([ids[p["name"]] for p in a.policies])
        want_apps[body["name"]] = body
        key_of_app[body["name"]] = a.key
    # An application whose policies failed is neither changed nor deleted this round.
    waiting = {a.application["name"] for a in managed if a.application["name"] not in want_apps}
    listed_apps = [o for o in await api.list_apps() if o.get("name") not in waiting]
    apps = diff(want_apps, listed_apps, prefix)
    objects: dict[str, Payload] = dict(apps.current)
    app_changes: list[tuple[str, Payload, Callable[[], Awaitable[Payload]]]] = [
        (f"update application {body['name']}", body, partial(api.update, "apps", oid, body))
        for oid, body in apps.update
    ] + [
        (f"create application {body['name']}", body, partial(api.create, "apps", body))
        for body in apps.create
    ]
    for what, body, call in app_changes:
        result = await _apply(out, key_of_app[body["name"]], what, call)
        if result is not None:
            objects[body["name"]] = result
    for name, obj in objects.items():
        key = key_of_app.get(name)
        if key is None:
            continue
        if obj.get("aud"):
            out.audiences[key] = str(obj["aud"])
        if obj.get("id"):
            out.app_ids[key] = str(obj["id"])

    for oid in apps.delete:
        await _delete(out, api, "apps", oid)
    for oid in policies.delete:
        await _delete(out, api, "policies", oid)
    return out


async def _apply(
    out: SyncResult, key: ServiceKey, what: str, call: Callable[[], Awaitable[Payload]]
) -> Payload | None:
    try:
        result = await call()
    except AccessApiError as exc:
        out.errors[key] = str(exc)
        log.warning("access sync: %s failed: %s", what, exc)
        return None
    out.changes.append(what)
    return result


async def _delete(out: SyncResult, api: AccessApi, kind: str, oid: str) -> None:
    try:
        await api.delete(kind, oid)
        out.changes.append(f"delete {kind} {oid}")
    except AccessApiError as exc:
        log.warning("access sync: deleting %s %s failed: %s", kind, oid, exc)
