"""ArenaSession watch events, straight to the arena controller."""

from __future__ import annotations

from typing import Any

import kopf

from heady_operator.arena import ArenaController
from heady_operator.models.common import GROUP, VERSION
from heady_operator.state.cluster import ClusterState


def _controller(memo: kopf.Memo) -> ArenaController:
    controller: ArenaController = memo["arena"]
    return controller


@kopf.on.event(GROUP, VERSION, "arenasessions")
async def arena_event(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    state: ClusterState | None = memo.get("state")
    if state is not None and body.get("metadata", {}).get("namespace") not in state.scope:
        return  # another shard's session
    _controller(memo).on_session(str(event.get("type") or "ADDED"), body)
