"""The coordination.k8s.io/v1 Lease calls of leader election: read, create, replace (optimistically).

A replace carries the resourceVersion the record was read at, so of two replicas that both
decide to take an expired Lease the apiserver lets exactly one through; the other gets a 409
(`Conflict`) and reads again next round. Failures are returned, never raised: the election loop
decides what an unwritten round means (for a leader: the fencing deadline keeps running).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from heady_operator.kube.client import Kube
from heady_operator.kube.resize import api_message
from heady_operator.planning.leadership import LeaseRecord

log = logging.getLogger(__name__)


class LeaseConflict(Exception):
    """Someone else wrote the Lease since it was read (or created it first)."""


class LeaseApi:
    def __init__(self, kube: Kube, namespace: str, name: str, timeout: float) -> None:
        self.api = client.CoordinationV1Api(kube.api)
        self.namespace = namespace
        self.name = name
        # One request may take at most this long: a renewal that hangs must not outlive the deadline.
        self.timeout = timeout

    async def read(self) -> LeaseRecord | None:
        """The Lease now (None: it does not exist). Raises ApiException/OSError on other failures."""
        try:
            lease = await self.api.read_namespaced_lease(
                self.name, self.namespace, _request_timeout=self.timeout
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return _record(lease)

    async def create(self, record: LeaseRecord) -> LeaseRecord:
        try:
            lease = await self.api.create_namespaced_lease(
                self.namespace,
                self._body(record),  # type: ignore[arg-type]
                _request_timeout=self.timeout,
            )
        except ApiException as exc:
            if exc.status == 409:
                raise LeaseConflict(api_message(exc)) from exc
            raise
        return _record(lease)

    async def replace(self, record: LeaseRecord) -> LeaseRecord:
        try:
            lease = await self.api.replace_namespaced_lease(
                self.name,
                self.namespace,
                self._body(record),  # type: ignore[arg-type]
                _request_timeout=self.timeout,
            )
        except ApiException as exc:
            if exc.status == 409:
                raise LeaseConflict(api_message(exc)) from exc
            raise
        return _record(lease)

    def _body(self, record: LeaseRecord) -> dict[str, Any]:
        metadata: dict[str, Any] = {"name": self.name, "namespace": self.namespace}
        if record.resource_version:
            metadata["resourceVersion"] = record.resource_version
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": metadata,
            "spec": {
                "holderIdentity": record.holder or None,
                "leaseDurationSeconds": record.lease_duration_seconds,
                "acquireTime": _micro(record.acquire_time),
                "renewTime": _micro(record.renew_time),
                "leaseTransitions": record.transitions,
            },
        }


def _micro(value: datetime | None) -> str | None:
    """A MicroTime: RFC 3339 with microseconds, in UTC."""
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _record(lease: Any) -> LeaseRecord:
    spec = lease.spec
    return LeaseRecord(
        holder=spec.holder_identity or "",
        lease_duration_seconds=int(spec.lease_duration_seconds or 0),
        acquire_time=spec.acquire_time,
        renew_time=spec.renew_time,
        transitions=int(spec.lease_transitions or 0),
        resource_version=str(lease.metadata.resource_version or ""),
    )


__all__ = ["LeaseApi", "LeaseConflict"]
