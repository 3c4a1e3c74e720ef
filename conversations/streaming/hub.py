"""The in-process stream hub: per in-flight message, a buffer of deltas and waiting readers.

Tokens never go through the Channels layer (docs/architecture.md says why). Appending is O(1);
readers are woken by ONE process-wide ticker at most once per frame, so each SSE event
carries every delta of its frame and no stream owns a timer.
"""

from __future__ import annotations

import asyncio
import bisect
import contextvars
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from django.conf import settings

from conversations.live_markdown import LiveMarkdown

log = logging.getLogger(__name__)

FRAME_HOOK_TIMEOUT = 1.0  # seconds
# A delta is a small string plus its offset, ~100 bytes apiece (docs/performance.md): past
# this many, the chunks are joined into one.
COMPACT_AT = 64


@dataclass(eq=False)
class LiveStream:
    message_id: str
    chunks: list[str] = field(default_factory=list)
    starts: list[int] = field(default_factory=list)  # offset of each chunk, for bisect
    length: int = 0
    # The model's reasoning, apart from the answer (and never in `text`): appended by
    # think(), joined when read.
    thoughts: list[str] = field(default_factory=list)
    reasoning_length: int = 0
    finished: bool = False
    stop_requested: bool = False
    finishing: bool = False  # the generator is writing the final state
    # The finished answer's `done` event, rendered once by its generator with the final
    # write (generation._final_write): its readers here need no query. None: they read it.
    final_event: str | None = None
    task: asyncio.Task | None = None
    _waiters: list[asyncio.Future] = field(default_factory=list)
    _on_dirty: Callable[[LiveStream], None] | None = None
    _markdown: LiveMarkdown | None = None

    def append(self, delta: str) -> None:
        if not delta:
            return
        if len(self.chunks) >= COMPACT_AT:
            self.chunks, self.starts = [self.text], [0]
        self.starts.append(self.length)
        self.chunks.append(delta)
        self.length += len(delta)
        if self._on_dirty is not None:
            self._on_dirty(self)

    def think(self, delta: str) -> None:
        """A reasoning delta: kept apart from the answer's text, woken like it."""
        if not delta:
            return
        self.thoughts.append(delta)
        self.reasoning_length += len(delta)
        if self._on_dirty is not None:
            self._on_dirty(self)

    @property
    def text(self) -> str:
        return "".join(self.chunks)

    @property
    def reasoning(self) -> str:
        # Joined once per read, at most once per frame: reasoning is a few pieces of text.
        if len(self.thoughts) > 1:
            self.thoughts = ["".join(self.thoughts)]
        return self.thoughts[0] if self.thoughts else ""

    @property
    def progress(self) -> int:
        """Characters in all, answer and reasoning: what grows while the model is alive."""
        return self.length + self.reasoning_length

    def read_from(self, offset: int) -> str:
        """Everything after character `offset`."""
        if offset >= self.length:
            return ""
        index = bisect.bisect_right(self.starts, offset) - 1
        head = self.chunks[index][offset - self.starts[index] :]
        return head + "".join(self.chunks[index + 1 :])

    def markdown(self) -> LiveMarkdown:
        """The answer so far as finished blocks and an open tail, brought up to date on demand:
        once per stream whatever its readers (none while nobody reads)."""
        if self._markdown is None:
            self._markdown = LiveMarkdown()
        if self._markdown.length < self.length:
            self._markdown.feed(self.read_from(self._markdown.length))
        return self._markdown

    @property
    def followed(self) -> bool:
        """Whether a reader follows it here (and so may want its final bubble): one waits
        for it, or one has read its Markdown."""
        return bool(self._waiters) or self._markdown is not None

    @property
    def is_mirror(self) -> bool:
        """Another process generates this answer; this stream follows it through Redis."""
        return self.task is None

    def finish(self) -> None:
        """Called after the final state is in the database: wake every reader now."""
        self.finished = True
        self.wake()

    async def wait(self, offset: int, reasoning: int = 0) -> None:
        """Return once there is text past `offset` (or reasoning past `reasoning`), the
        stream finished, or the hub's heartbeat came by (then the reader sends a keep-alive
        comment).

        No timer per wait: at 1,000 streams that was a timer armed and cancelled per event.
        """
        if self.finished or self.length > offset or self.reasoning_length > reasoning:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        finally:
            if waiter in self._waiters:  # the reader left (a wake empties the list)
                self._waiters.remove(waiter)

    def wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)


class StreamHub:
    """One per event loop (i.e. per server process), in its runtime (runtime.py)."""

    def __init__(self, tick_seconds: float) -> None:
        self.tick_seconds = tick_seconds
        self.loop = asyncio.get_running_loop()
        self.streams: dict[str, LiveStream] = {}
        self._dirty: set[LiveStream] = set()
        self._has_dirty = asyncio.Event()
        self._ticker = self.loop.create_task(
            self._tick_forever(), name="stream-hub-ticker", context=contextvars.Context()
        )
        self._heartbeat = self.loop.create_task(
            self._beat_forever(), name="stream-hub-heartbeat", context=contextvars.Context()
        )
        self.ticks = 0  # frames that woke at least one stream (for benchmarks)
        # Called once per frame with the streams that grew (the Redis relay publishes them).
        self.on_frame: Callable[[list[LiveStream]], Awaitable[None]] | None = None

    @property
    def tasks(self) -> list[asyncio.Task]:
        return [self._ticker, self._heartbeat]

    def open(self, message_id: str) -> LiveStream:
        stream = LiveStream(message_id=message_id, _on_dirty=self._mark_dirty)
        self.streams[message_id] = stream
        return stream

    def get(self, message_id: str) -> LiveStream | None:
        return self.streams.get(str(message_id))

    def close(self, stream: LiveStream) -> None:
        stream.finish()
        self._dirty.discard(stream)
        if self.streams.get(stream.message_id) is stream:
            del self.streams[stream.message_id]

    def _mark_dirty(self, stream: LiveStream) -> None:
        self._dirty.add(stream)
        self._has_dirty.set()

    async def _tick_forever(self) -> None:
        while True:
            await self._has_dirty.wait()
            await asyncio.sleep(self.tick_seconds)
            dirty, self._dirty = self._dirty, set()
            self._has_dirty.clear()
            self.ticks += 1
            for stream in dirty:
                stream.wake()
            if self.on_frame is not None:
                try:
                    # Bounded: a stalled hook (Redis) must cost a frame, not freeze the ticker.
                    async with asyncio.timeout(FRAME_HOOK_TIMEOUT):
                        await self.on_frame(list(dirty))
                except Exception:
                    log.exception("frame hook failed")

    async def _beat_forever(self) -> None:
        """Every HEARTBEAT_SECONDS, wake every waiting reader: quiet streams send a comment
        (proxies keep them open), and mirrors check that their answer is still alive."""
        while True:
            await asyncio.sleep(settings.CHAT["HEARTBEAT_SECONDS"])
            for stream in list(self.streams.values()):
                stream.wake()
