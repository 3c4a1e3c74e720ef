"""Low-rate control events between server processes, over the Channels layer.

Every process listens on one group; a stop request is broadcast there and the process that
runs the generation cancels it. Tokens never travel this way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from chatsite.outages import Outage
from conversations.streaming.layer import group_send

log = logging.getLogger(__name__)

CONTROL_GROUP = "chat-control"
RENEW_SECONDS = 3600
RETRY_SECONDS = 1.0


def stop_after_commit(message_ids: list[str]) -> None:
    """From sync code: stop these answers once the current transaction commits."""

    async def stop_all() -> None:
        results = await asyncio.gather(
            *(broadcast_stop(message_id) for message_id in message_ids), return_exceptions=True
        )
        if failed := [m for m, r in zip(message_ids, results, strict=True) if r is not None]:
            # The change itself is committed; those answers end on their own (or time out).
            log.error("stop requests not sent", extra={"message_ids": failed})

    if message_ids:
        transaction.on_commit(async_to_sync(stop_all))


async def broadcast_stop(message_id: str) -> None:
    await group_send(CONTROL_GROUP, {"type": "chat.stop", "message_id": str(message_id)})


async def listen(*, stop: Callable[[str], object]) -> None:
    """This process's listener (its runtime runs it): `stop` for each stop request heard.
    Forever, whatever Redis does: a listener that died would lose every stop sent to this
    process through another one."""
    layer = get_channel_layer()
    # The layer's default prefix: channels-redis reads every channel of a process through
    # one key and one receive lock, so a channel with a prefix of its own would hold that
    # lock while blocking on a key nobody else's messages reach (sync sockets, /healthz).
    channel = await layer.new_channel()
    outage = Outage("control channel", log)
    while True:
        renew = asyncio.timeout(RENEW_SECONDS)
        try:
            # Group membership expires (channels' group_expiry, a day by default), and a
            # Redis that restarted forgot it: renew it.
            await layer.group_add(CONTROL_GROUP, channel)
            outage.recovered()
            async with renew:
                while True:
                    event = await layer.receive(channel)
                    if event.get("type") == "chat.stop":
                        stop(event["message_id"])
        except Exception as exc:
            if isinstance(exc, TimeoutError) and renew.expired():
                continue
            outage.failed()
            await asyncio.sleep(RETRY_SECONDS)
