"""The health-check loop: probe every HeadyService that has spec.healthCheck when it is due.

The loop owns the `Healthy` condition (only that one: Ready/Progressing/Degraded belong to the
reconcile loop), the `Healthy`/`Unhealthy` Events and the heady_service_up and
heady_health_probe_seconds series. It reads the services from the caller's cache (a callable,
called once per tick) and never lists them itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import aiohttp
from kubernetes_asyncio.client.exceptions import ApiException
from pydantic import ValidationError

from heady_operator import metrics
from heady_operator.config import Settings
from heady_operator.health.probe import probe_http, probe_tcp
from heady_operator.health.verdict import Health, HealthState, ProbeResult, Transition, observe
from heady_operator.kube.client import Kube
from heady_operator.kube.conditions import Conditions, merge_condition
from heady_operator.kube.events import post_event
from heady_operator.models.common import set_condition, utcnow
from heady_operator.models.headyservice import HealthCheck
from heady_operator.planning.leadership import ALWAYS, Gate

log = logging.getLogger(__name__)
Key = tuple[str, str]
# (namespace, Service name, port) -> (host, port) to connect to.
Address = Callable[[str, str, int], tuple[str, int]]
CONDITION = "Healthy"
PLURAL = "headyservices"
# At most this many probes at once: a thousand services with a 30 s interval is ~33 probes/s.
MAX_CONCURRENT_PROBES = 32
# How often the loop looks for new or changed services when nothing is due sooner.
MAX_TICK_SECONDS = 1.0


def service_address(namespace: str, service: str, port: int) -> tuple[str, int]:
    """The Service's cluster DNS name (the operator runs in the cluster)."""
    return f"{service}.{namespace}.svc", port


@dataclass
class _Entry:
    body: Mapping[str, Any]
    check: HealthCheck
    due: float
    state: HealthState = field(default_factory=HealthState)
    task: asyncio.Task[None] | None = None
    written: Health = Health.UNKNOWN


def _spec_check(body: Mapping[str, Any]) -> HealthCheck | None:
    raw = (body.get("spec") or {}).get("healthCheck")
    if raw is None:
        return None
    try:
        return HealthCheck.model_validate(raw)
    except ValidationError:
        return None  # the reconcile loop reports an invalid spec; nothing to probe meanwhile


def _target(body: Mapping[str, Any], check: HealthCheck) -> tuple[str, str, int]:
    meta, spec = body["metadata"], body.get("spec") or {}
    return meta["namespace"], check.service or meta["name"], check.port or int(spec.get("port") or 80)


def _condition_status(body: Mapping[str, Any]) -> str | None:
    for cond in (body.get("status") or {}).get("conditions") or []:
        if cond.get("type") == CONDITION:
            return str(cond.get("status"))
    return None


class HealthChecks:
    def __init__(
        self,
        kube: Kube | None,
        list_services: Callable[[], Iterable[Mapping[str, Any]]],
        *,
        address: Address = service_address,
        monotonic: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = utcnow,
        max_concurrent: int = MAX_CONCURRENT_PROBES,
        gate: Gate = ALWAYS,
    ) -> None:
        self.gate = gate
        self.kube = kube
        self.list_services = list_services
        self.address = address
        self.monotonic = monotonic
        self.now = now
        self.entries: dict[Key, _Entry] = {}
        self._limit = asyncio.Semaphore(max_concurrent)
        self._session: aiohttp.ClientSession | None = None
        # Without a Kubernetes client (tests), transitions are recorded here instead.
        self.transitions: list[tuple[Key, Transition]] = []

    async def close(self) -> None:
        for entry in self.entries.values():
            if entry.task is not None:
                entry.task.cancel()
        await self.settle()
        if self._session is not None:
            await self._session.close()

    def health(self, namespace: str, name: str) -> Health:
        entry = self.entries.get((namespace, name))
        return entry.state.health if entry else Health.UNKNOWN

    async def settle(self) -> None:
        """Wait for the probes in flight (tests; shutdown)."""
        tasks = [e.task for e in self.entries.values() if e.task is not None]
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def tick(self) -> float:
        """Start the probes that are due; return the seconds until the next one is."""
        clock = self.monotonic()
        seen: set[Key] = set()
        for body in self.list_services():
            meta = body.get("metadata") or {}
            key = (meta.get("namespace", ""), meta.get("name", ""))
            check = _spec_check(body)
            if check is None or meta.get("deletionTimestamp"):
                continue
            seen.add(key)
            entry = self.entries.get(key)
            if entry is None:
                entry = self.entries[key] = _Entry(body, check, due=clock)
            elif entry.check != check:
                # A changed check starts over: old failures say nothing about the new target.
                entry.check, entry.due, entry.state = check, clock, HealthState()
            entry.body = body
            if entry.task is not None:
                continue
            if clock >= entry.due:
                entry.due = clock + check.interval_seconds
                entry.task = asyncio.create_task(self._probe(key, entry), name=f"health {key[0]}/{key[1]}")
            elif entry.state.health is not Health.UNKNOWN and _condition_status(body) != _status_text(
                entry.state.health
            ):
                # Someone rewrote the conditions without ours: put it back.
                entry.task = asyncio.create_task(
                    self._write(key, entry, None), name=f"health {key[0]}/{key[1]}"
                )
        for key in set(self.entries) - seen:
            self._forget(key)
        dues = [e.due for e in self.entries.values()]
        return max(0.0, min(dues) - clock) if dues else MAX_TICK_SECONDS

    def _forget(self, key: Key) -> None:
        entry = self.entries.pop(key)
        if entry.task is not None:
            entry.task.cancel()
        metrics.forget_health(*key)

    async def _probe(self, key: Key, entry: _Entry) -> None:
        try:
            namespace, service, port = _target(entry.body, entry.check)
            host, real_port = self.address(namespace, service, port)
            timeout = float(entry.check.timeout_seconds)
            async with self._limit:
                if entry.check.type == "TCP":
                    result = await probe_tcp(host, real_port, timeout)
                else:
                    if self._session is None:
                        # A fresh connection per probe: a kept-alive one would say nothing about
                        # whether the service still accepts connections.
                        self._session = aiohttp.ClientSession(
                            connector=aiohttp.TCPConnector(force_close=True)
                        )
                    result = await probe_http(self._session, host, real_port, entry.check.http_path, timeout)
            await self._record(key, entry, result)
        except asyncio.CancelledError:
            raise
        except Exception:  # one service's trouble must not stop the others' checks
            log.exception("health check of %s/%s failed", *key)
        finally:
            entry.task = None

    async def _record(self, key: Key, entry: _Entry, result: ProbeResult) -> None:
        metrics.HEALTH_PROBE_SECONDS.labels(key[0], key[1], "success" if result.ok else "failure").observe(
            result.seconds
        )
        entry.state, transition = observe(entry.state, result, entry.check.failure_threshold)
        if entry.state.health is not Health.UNKNOWN:
            metrics.SERVICE_UP.labels(*key).set(1 if entry.state.health is Health.HEALTHY else 0)
        if transition is not None:
            log.info("%s/%s: %s", key[0], key[1], transition.message)
            await self._write(key, entry, transition)

    async def _write(self, key: Key, entry: _Entry, transition: Transition | None) -> None:
        try:
            health = entry.state.health
            last = entry.state.last
            message = transition.message if transition else (last.detail if last else "")
            if self.kube is None:
                if transition is not None:
                    self.transitions.append((key, transition))
                entry.written = health
                return
            if not self.gate.may_write():
                return  # no longer the leader: the next one probes and writes for itself
            now = self.now()

            def change(conditions: Conditions, generation: int | None) -> Conditions:
                return set_condition(
                    conditions,
                    CONDITION,
                    health is Health.HEALTHY,
                    "HealthCheckPassed" if health is Health.HEALTHY else "HealthCheckFailed",
                    message,
                    now,
                    generation,
                )

            try:
                current = await merge_condition(self.kube, PLURAL, key[0], key[1], change)
            except ApiException as exc:
                log.warning("could not write Healthy of %s/%s: %s %s", key[0], key[1], exc.status, exc.reason)
                return
            entry.written = health
            if current is not None and transition is not None:
                warn = transition.health is Health.UNHEALTHY
                await post_event(
                    self.kube, current, transition.reason, message, "Warning" if warn else "Normal"
                )
        finally:
            if transition is None:
                entry.task = None


def _status_text(health: Health) -> str:
    return "True" if health is Health.HEALTHY else "False"


async def run_health_checks(
    settings: Settings,
    kube: Kube,
    list_services: Callable[[], Iterable[Mapping[str, Any]]],
    *,
    address: Address = service_address,
    gate: Gate = ALWAYS,
) -> None:
    """Probe every HeadyService with spec.healthCheck, forever (cancel the task to stop).

    list_services: the current HeadyService bodies (metadata with namespace, name, generation;
    spec; status with conditions), e.g. the operator's informer cache; called about once a
    second, so it must be cheap and must not do I/O.
    """
    del settings  # every knob is per service (spec.healthCheck); kept for a uniform signature
    checks = HealthChecks(kube, list_services, address=address, gate=gate)
    try:
        while True:
            # Only the leader probes (and writes Healthy); a standby starts when it is elected.
            delay = checks.tick() if gate.may_write() else 0.5
            await asyncio.sleep(min(max(delay, 0.05), MAX_TICK_SECONDS))
    finally:
        await checks.close()
