"""Waiting for a wake-up or a deadline, whichever comes first."""

from __future__ import annotations

import asyncio
import contextlib


async def wake_or_timeout(event: asyncio.Event, seconds: float) -> None:
    # asyncio.timeout, not wait_for: wait_for on 3.11 can leave a cancelled caller hanging
    # when the inner wait is cancelled at the same moment.
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(max(0.0, seconds)):
            await event.wait()
