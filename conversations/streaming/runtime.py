"""The streaming engine of one event loop: everything a server process runs in the
background for its answers, made and started in one place.

A server runs one loop, so one runtime; the tests run a loop per test, so one each (a
closed loop's runtime is dropped). What it owns:
- the hub (buffers, the frame ticker, the heartbeat) and, with REDIS_URL, the Redis relay,
  which publishes every frame the ticker hands it and mirrors other processes' answers;
- the idle watchdog and the checkpoint writer, shared by every answer of the process;
- the janitor, which marks answers a dead process left live as interrupted;
- the control listener, which stops the answers this process generates when another
  process asks.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging

from django.conf import settings

from conversations.streaming import control, recovery, redis_relay
from conversations.streaming.checkpoints import CheckpointWriter
from conversations.streaming.hub import StreamHub
from conversations.streaming.watchdog import IdleWatchdog

log = logging.getLogger(__name__)


class Runtime:
    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.hub = StreamHub(settings.CHAT["TICK_SECONDS"])
        self.relay = redis_relay.RedisRelay(self.hub) if redis_relay.enabled() else None
        if self.relay is not None:
            self.hub.on_frame = self.relay.publish
        self.watchdog = IdleWatchdog(self.loop)
        self.checkpoints = CheckpointWriter(self.loop)
        self._tasks = [
            self._start(recovery.sweep_forever(self.generating_here), "stale-stream-janitor"),
            self._start(control.listen(stop=self.stop_here), "chat-control-listener"),
        ]

    def _start(self, work, name: str) -> asyncio.Task:
        # A fresh context: not the request's (and its sync-thread executor) that made us.
        return self.loop.create_task(work, name=name, context=contextvars.Context())

    def generating_here(self) -> list[str]:
        return [s.message_id for s in self.hub.streams.values() if not s.is_mirror]

    def stop_here(self, message_id: str) -> bool:
        """Cancel the answer's generation if this process runs it."""
        stream = self.hub.get(message_id)
        task = stream.task if stream is not None else None  # None: a mirror
        if stream is None or task is None or task.done():
            return False
        if stream.finishing:  # the final write is under way: the answer is ending anyway
            # ... but what stopped it (a moderator's hide) may change its final bubble:
            # its readers read it from the database.
            stream.stop_requested = True
            stream.final_event = None
            return True
        stream.stop_requested = True
        task.cancel()
        return True

    async def request_stop(self, message_id: str) -> None:
        """Stop an answer wherever it is being generated."""
        if not self.stop_here(message_id):
            await control.broadcast_stop(message_id)

    def reader_left(self, message_id: str) -> None:
        """A reader of the answer left: the last reader of a mirror lets go of it (for an
        answer generated here, nothing to do)."""
        if self.relay is not None:
            self.relay.release(message_id)

    async def close(self) -> None:
        """Stop the background work (the ASGI server's shutdown, a test's end): answers
        still generating are cancelled and end as interrupted, offered for retry."""
        generating = [s.task for s in self.hub.streams.values() if s.task is not None]
        tasks = [*self._tasks, *generating, *self.hub.tasks, *self.watchdog.tasks]
        tasks += self.checkpoints.tasks + (self.relay.tasks if self.relay else [])
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.relay is not None:
            await self.relay.aclose()


_runtimes: dict[asyncio.AbstractEventLoop, Runtime] = {}


def get_runtime() -> Runtime:
    """The running loop's runtime, made and started on first use."""
    loop = asyncio.get_running_loop()
    runtime = _runtimes.get(loop)
    if runtime is None:
        for old_loop in [old for old in _runtimes if old.is_closed()]:
            del _runtimes[old_loop]
        runtime = _runtimes[loop] = Runtime()
    return runtime


async def close_runtime() -> None:
    """At shutdown: the running loop's runtime, if it was ever made."""
    runtime = _runtimes.pop(asyncio.get_running_loop(), None)
    if runtime is not None:
        await runtime.close()
