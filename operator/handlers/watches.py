"""Watch events in, straight to the escalation controller: no logic here, no waiting.

These are kopf `on.event` handlers on purpose: they run for every watch event as it arrives,
without the consistency wait and progress bookkeeping of change-detecting handlers.
"""

from __future__ import annotations

from typing import Any

import kopf

from heady_operator.escalation import EscalationController
from heady_operator.models.common import GROUP, VERSION


def _type(event: kopf.RawEvent) -> str:
    # kopf reports objects from the initial listing with type None.
    return str(event.get("type") or "ADDED")


def _controller(memo: kopf.Memo) -> EscalationController:
    controller: EscalationController = memo["controller"]
    return controller


@kopf.on.event(GROUP, VERSION, "headyservices")
async def headyservice_event(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    _controller(memo).on_service(_type(event), body)


@kopf.on.event(GROUP, VERSION, "attentionsignals")
async def attention_event(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    _controller(memo).on_signal(_type(event), body)


@kopf.on.event("apps", "v1", "deployments")
async def deployment_event(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    _controller(memo).on_workload(_type(event), {**body, "kind": "Deployment"})


@kopf.on.event("apps", "v1", "statefulsets")
async def statefulset_event(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    _controller(memo).on_workload(_type(event), {**body, "kind": "StatefulSet"})


@kopf.on.event("", "v1", "pods")
async def pod_event(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    _controller(memo).on_pod(_type(event), body)


@kopf.on.event("", "v1", "nodes")
async def node_event(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    _controller(memo).on_node(_type(event), body)
