"""Every API call the escalation loop makes, behind one object (a fake one in unit tests).

Every write asks the leadership gate right before it is sent: a replica that is not the leader,
or a leader past its fencing deadline, sends nothing (a resize fails as `NotLeader`, the others
report "not written").

Resizes go through their own client (connection pool); status, Events and signal clean-up
through another, so paperwork never holds a connection a resize is waiting for.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from kubernetes_asyncio.client.exceptions import ApiException

from heady_operator.config import Settings
from heady_operator.kube.client import Kube
from heady_operator.kube.events import EventRecorder
from heady_operator.kube.objects import Pod
from heady_operator.kube.resize import NOT_LEADER, ResizeFailed, api_message, resize_pod
from heady_operator.kube.status import delete_object, patch_status
from heady_operator.kube.tunnel import write_tunnel_config
from heady_operator.planning.leadership import ALWAYS, Gate
from heady_operator.planning.tunnel import TunnelConfig

log = logging.getLogger(__name__)


class KubeEscalationApi:
    def __init__(self, resizes: Kube, reports: Kube, settings: Settings, gate: Gate = ALWAYS) -> None:
        self.gate = gate
        self.resizes = resizes
        self.reports = reports
        self.settings = settings
        self.events = EventRecorder(reports)

    async def resize(self, namespace: str, name: str, body: dict[str, Any]) -> Pod:
        if not self.gate.may_write():
            raise ResizeFailed(NOT_LEADER, "this replica is not the leader")
        return await resize_pod(self.resizes, namespace, name, body)

    async def patch_status(self, plural: str, namespace: str, name: str, status: dict[str, Any]) -> bool:
        """False when the object is gone; other failures are logged and reported as not written."""
        if not self.gate.may_write():
            return False
        try:
            await patch_status(self.reports, plural, namespace, name, status)
            return True
        except ApiException as exc:
            if exc.status != 404:
                log.warning("status patch of %s %s/%s failed: %s", plural, namespace, name, api_message(exc))
            return False
        except OSError as exc:
            log.warning("status patch of %s %s/%s failed: %s", plural, namespace, name, exc)
            return False

    async def post_event(
        self, obj: Mapping[str, Any], reason: str, message: str, type_: str = "Normal"
    ) -> None:
        if self.gate.may_write():
            await self.events.post(obj, reason, message, type_)

    async def delete_signal(self, namespace: str, name: str) -> None:
        if not self.gate.may_write():
            return
        try:
            await delete_object(self.reports, "attentionsignals", namespace, name)
        except ApiException as exc:
            if exc.status != 404:
                log.warning("could not delete expired signal %s/%s: %s", namespace, name, api_message(exc))
        except OSError as exc:
            log.warning("could not delete expired signal %s/%s: %s", namespace, name, exc)

    async def write_tunnel(self, config: TunnelConfig) -> bool:
        if not self.gate.may_write():
            return False
        try:
            await write_tunnel_config(self.reports, self.settings, config)
            return True
        except (ApiException, OSError) as exc:
            log.warning("could not write the cloudflared ConfigMap: %s", exc)
            return False
