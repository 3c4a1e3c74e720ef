"""Answers whose upstream went silent after their first delta are cut, by one task per
process rather than a timer per token."""

from __future__ import annotations

import asyncio
import contextvars
from dataclasses import dataclass

from django.conf import settings

from conversations.streaming.hub import LiveStream


@dataclass
class Watched:
    task: asyncio.Task
    stream: LiveStream
    length: int  # its progress (answer and reasoning) as last seen
    since: float  # when that length was first seen (no earlier than the text grew to it)


class IdleWatchdog:
    """One per event loop: cancels answers whose upstream went silent after its first delta.

    It replaces an asyncio.timeout around every delta, one timer per token per stream, which
    was the hottest line of the process under load (docs/performance.md). It looks at every
    answer's length a few times per IDLE_TIMEOUT, so the cut comes late by at most two looks,
    never early.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.watched: dict[str, Watched] = {}
        self.fired: set[str] = set()
        self.task: asyncio.Task | None = None

    @property
    def tasks(self) -> list[asyncio.Task]:
        return [self.task] if self.task is not None else []

    def watch(self, message_id: str, stream: LiveStream) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.watched[message_id] = Watched(task, stream, length=0, since=self.loop.time())
        if self.task is None or self.task.done():
            self.task = self.loop.create_task(
                self._watch(), name="idle-watchdog", context=contextvars.Context()
            )

    def unwatch(self, message_id: str) -> None:
        self.watched.pop(message_id, None)
        self.fired.discard(message_id)

    def cut(self, message_id: str) -> bool:
        """True when the watchdog (not a stop, not a shutdown) cancelled this answer."""
        return message_id in self.fired

    async def _watch(self) -> None:
        while self.watched:
            idle = settings.CHAT["IDLE_TIMEOUT"]
            await asyncio.sleep(min(1.0, idle / 4))
            now = self.loop.time()
            for message_id, watched in list(self.watched.items()):
                if watched.stream.progress != watched.length:
                    watched.length, watched.since = watched.stream.progress, now
                    continue
                # Silence before the first delta is the first-token timeout's business.
                silent = watched.length and now - watched.since >= idle
                if silent and message_id not in self.fired:
                    self.fired.add(message_id)
                    watched.task.cancel()
