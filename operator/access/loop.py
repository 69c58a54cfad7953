"""The access loop: gather (services with spec.access) -> plan (planning/access.py) -> render and
sync (ConfigMap, Cloudflare's API) -> report (status.access, the AccessSynced condition, Events).

It owns the `AccessSynced` condition and `status.access` of every HeadyService, the access
ConfigMap, and the audience tags the tunnel config reads (ClusterState.access_audiences). The
API is called when the plan changed, and every `access_sync_interval_seconds` anyway to find
drift (an application edited or deleted by hand); without a token and account id it only renders.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import aiohttp
from kubernetes_asyncio.client.exceptions import ApiException

from heady_operator.config import Settings
from heady_operator.edge.cloudflare import AccessApi, AccessApiError
from heady_operator.edge.sync import sync_access
from heady_operator.kube.client import Kube
from heady_operator.kube.conditions import Conditions, merge_condition
from heady_operator.kube.configmaps import upsert_config_map
from heady_operator.kube.events import post_event
from heady_operator.kube.status import patch_status
from heady_operator.models.common import GROUP, VERSION, set_condition, utcnow
from heady_operator.planning.access import (
    AccessPlan,
    AccessReport,
    AccessService,
    access_reports,
    plan_access,
)
from heady_operator.planning.leadership import ALWAYS, Gate
from heady_operator.planning.levels import ServiceKey
from heady_operator.state.cluster import ClusterState

log = logging.getLogger(__name__)
CONDITION = "AccessSynced"
PLURAL = "headyservices"
CONFIG_KEY = "applications.json"
TICK_SECONDS = 1.0
MAX_BACKOFF_SECONDS = 300.0


class AccessLoop:
    def __init__(
        self,
        settings: Settings,
        kube: Kube,
        state: ClusterState,
        *,
        session: aiohttp.ClientSession | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        gate: Gate = ALWAYS,
    ) -> None:
        self.settings = settings
        # Only the leader renders, syncs and reports (asked right before each write).
        self.gate = gate
        self.kube = kube
        self.state = state
        self.monotonic = monotonic
        self.credentials = bool(settings.access_api_token and settings.access_account_id)
        self._session = session
        self._own_session = session is None
        self._configmap_digest = ""
        self._synced_digest = ""
        self._next_sync = 0.0
        self._failures = 0
        self.audiences: dict[ServiceKey, str] = dict(state.access_audiences)
        self.app_ids: dict[ServiceKey, str] = {}
        self.errors: dict[ServiceKey, str] = {}
        self.failure: str | None = None
        self._written: dict[ServiceKey, tuple[Any, ...]] = {}
        self._evented: dict[ServiceKey, str] = {}  # the reason of the last Event posted
        self.api: AccessApi | None = None
        self._caught_up = False
        self.last_progress = monotonic()

    async def close(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()

    def _api(self) -> AccessApi:
        if self.api is None:
            if self._session is None:
                self._session = aiohttp.ClientSession()
            s = self.settings
            self.api = AccessApi(self._session, s.access_api_url, s.access_account_id, s.access_api_token)
        return self.api

    def plan(self) -> AccessPlan:
        services = []
        for (ns, name), entry in self.state.services.items():
            spec = entry.spec
            if spec is not None and spec.hostname and spec.access is not None:
                created = entry.created or utcnow()
                services.append(AccessService(ns, name, spec.hostname, spec.access, created))
        return plan_access(services, self.settings.access_name_prefix, self.settings.forbidden_suffixes)

    async def caught_up(self) -> bool:
        """Whether every HeadyService is in the cache (they arrive through kopf's watch, which
        starts after the loops): before that, a missing service would look like "no application
        wanted" and the sync would delete its application. Lists once per tick until true."""
        if self._caught_up:
            return True
        custom = self.kube.custom
        namespaces = self.settings.namespace_list
        items: list[dict[str, Any]] = []
        if namespaces:
            for ns in namespaces:
                items += (await custom.list_namespaced_custom_object(GROUP, VERSION, ns, PLURAL))["items"]
        else:
            items = (await custom.list_cluster_custom_object(GROUP, VERSION, PLURAL))["items"]
        listed = {(i["metadata"]["namespace"], i["metadata"]["name"]) for i in items}
        self._caught_up = listed <= set(self.state.services)
        return self._caught_up

    async def tick(self) -> None:
        if not self.gate.may_write() or not await self.caught_up():
            return
        plan = self.plan()
        if plan.digest != self._configmap_digest and self.gate.may_write():
            await upsert_config_map(
                self.kube,
                self.settings.operator_namespace,
                self.settings.access_configmap,
                {CONFIG_KEY: plan.text()},
                {"heady.io/config-hash": plan.digest},
            )
            self._configmap_digest = plan.digest
        now = self.monotonic()
        if (
            self.credentials
            and (plan.digest != self._synced_digest or now >= self._next_sync)
            and self.gate.may_write()
        ):
            await self._sync(plan)
        wanted = {a.key for a in plan.apps}
        # Audiences of services that no longer have (or own) an application are dropped at once.
        self.audiences = {k: v for k, v in self.audiences.items() if k in wanted}
        self.state.set_access_audiences(self.audiences)
        reports = access_reports(
            plan,
            credentials=self.credentials,
            audiences=self.audiences,
            app_ids=self.app_ids,
            errors=self.errors,
            failure=self.failure,
            where=f"{self.settings.operator_namespace}/{self.settings.access_configmap}",
        )
        await self._report(reports)
        self.last_progress = self.monotonic()

    async def _sync(self, plan: AccessPlan) -> None:
        try:
            result = await sync_access(self._api(), plan, self.settings.access_name_prefix)
        except (AccessApiError, aiohttp.ClientError, TimeoutError) as exc:
            self._failures += 1
            self.failure = str(exc) or type(exc).__name__
            backoff = min(MAX_BACKOFF_SECONDS, 2.0 ** min(self._failures, 10))
            self._next_sync = self.monotonic() + backoff
            log.warning("Cloudflare Access sync failed (retry in %.0f s): %s", backoff, self.failure)
            return
        self.failure = None
        if result.changes:
            log.info("Cloudflare Access: %s", "; ".join(result.changes))
        # A service whose objects failed keeps the audience it had: its application still exists.
        self.audiences = {k: v for k, v in self.audiences.items() if k in result.errors} | result.audiences
        self.app_ids = {k: v for k, v in self.app_ids.items() if k in result.errors} | result.app_ids
        self.errors = result.errors
        self._failures = len(result.errors) and self._failures + 1
        self._synced_digest = plan.digest if not result.errors else ""
        self._next_sync = self.monotonic() + (
            min(MAX_BACKOFF_SECONDS, 2.0 ** min(self._failures, 10))
            if result.errors
            else self.settings.access_sync_interval_seconds
        )

    async def _report(self, reports: dict[ServiceKey, AccessReport]) -> None:
        for key, entry in list(self.state.services.items()):
            if not self.gate.may_write():
                return
            report = reports.get(key)
            current = next(
                (c for c in entry.status.get("conditions") or [] if c.get("type") == CONDITION), None
            )
            if report is None:
                if key in self._written or current is not None or entry.status.get("access"):
                    await self._clear(key, entry.ref.body())
                continue
            want = (report.access, report.synced, report.reason, report.message)
            shown = current is not None and (
                current.get("status"),
                current.get("reason"),
                current.get("message"),
            ) == ("True" if report.synced else "False", report.reason, report.message)
            if key not in self._written and shown and entry.status.get("access") == report.access:
                self._written[key] = want  # a restart: the status already says it
                self._evented[key] = report.reason
            if self._written.get(key) == want:
                if not shown:
                    # Another writer's status replaced the conditions without ours: put it back.
                    await self._condition(key, report)
                continue
            await self._write(key, entry.ref.body(), report)
        for key in set(self._written) - set(self.state.services):
            del self._written[key]
            self._evented.pop(key, None)

    async def _write(self, key: ServiceKey, body: dict[str, Any], report: AccessReport) -> None:
        ns, name = key
        try:
            # A service with no application (NotRouted) shows none: null removes what was there.
            await patch_status(self.kube, PLURAL, ns, name, {"access": dict(report.access) or None})
        except ApiException as exc:
            if exc.status != 404:
                log.warning("could not write status.access of %s/%s: %s %s", ns, name, exc.status, exc.reason)
            return
        obj = await self._condition(key, report)
        self._written[key] = (report.access, report.synced, report.reason, report.message)
        if obj is not None and self._evented.get(key) != report.reason:
            self._evented[key] = report.reason
            warn = not report.synced and report.reason != "Pending"
            await post_event(
                self.kube,
                obj,
                CONDITION if report.synced else f"Access{report.reason}",
                report.message,
                "Warning" if warn else "Normal",
            )

    async def _condition(self, key: ServiceKey, report: AccessReport) -> dict[str, Any] | None:
        ns, name = key
        now = utcnow()

        def change(conditions: Conditions, generation: int | None) -> Conditions:
            return set_condition(
                conditions, CONDITION, report.synced, report.reason, report.message, now, generation
            )

        try:
            return await merge_condition(self.kube, PLURAL, ns, name, change)
        except ApiException as exc:
            log.warning("could not write %s of %s/%s: %s %s", CONDITION, ns, name, exc.status, exc.reason)
            return None

    async def _clear(self, key: ServiceKey, body: dict[str, Any]) -> None:
        """spec.access removed: status.access and the condition go too."""
        ns, name = key
        try:
            await patch_status(self.kube, PLURAL, ns, name, {"access": None})
            await merge_condition(
                self.kube,
                PLURAL,
                ns,
                name,
                lambda conds, _gen: [c for c in conds if c.get("type") != CONDITION],
            )
        except ApiException as exc:
            if exc.status != 404:
                log.warning("could not clear access status of %s/%s: %s", ns, name, exc.status)
            return
        self._written.pop(key, None)
        self._evented.pop(key, None)
        entry = self.state.services.get(key)
        if entry is not None:
            entry.status.pop("access", None)
            entry.status["conditions"] = [
                c for c in entry.status.get("conditions") or [] if c.get("type") != CONDITION
            ]


async def run_access(settings: Settings, kube: Kube, state: ClusterState, gate: Gate = ALWAYS) -> None:
    """Forever (cancel the task to stop); one tick's failure is logged and the next tick retries."""
    loop = AccessLoop(settings, kube, state, gate=gate)
    if not loop.credentials:
        log.info("Cloudflare Access: no API token/account id; applications are rendered only")
    try:
        while True:
            try:
                await loop.tick()
            except asyncio.CancelledError:
                raise
            except Exception:  # a bad round must not end access reporting for good
                log.exception("access loop round failed")
            await asyncio.sleep(TICK_SECONDS)
    finally:
        await loop.close()
