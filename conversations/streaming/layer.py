"""Sending on the Channels layer with a bound on how long a send may wait.

channels-redis reads with a 15 s socket timeout (longer than its 5 s blocking receive), so
a Redis that hangs (a partition, a paused host) held every send, and the request behind it,
for 15 s. A send is a low-rate notice (live sync, a stop): past the bound it is given up
and logged by the caller; the tabs catch up when their socket reconnects.
"""

from __future__ import annotations

import asyncio

from channels.layers import get_channel_layer

SEND_TIMEOUT = 2.0  # seconds


async def group_send(group: str, event: dict[str, str]) -> None:
    async with asyncio.timeout(SEND_TIMEOUT):
        await get_channel_layer().group_send(group, event)
