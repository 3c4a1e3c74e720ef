"""From a message's live stream (or its saved state) to SSE events, resumable at any offset.

Event ids are character offsets into the answer (and its reasoning). A reader with
Last-Event-ID gets exactly what follows it; a reader without one (a page reload, a new
EventSource) first gets a `snapshot` of the text so far, then the live deltas.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from html import escape

from asgiref.sync import sync_to_async
from django.db import connections
from django.template.loader import render_to_string

from conversations import branches, metrics
from conversations.live_markdown import LiveMarkdown
from conversations.models import Message
from conversations.prepared import PreparedModel
from conversations.streaming import recovery, sse
from conversations.streaming.hub import LiveStream
from conversations.streaming.runtime import get_runtime

RETRY_MS = 1000  # the browser's reconnect delay
LAUNCH_GRACE_SECONDS = 1.0
LAUNCH_GRACE_CHECKS = 20


def render_message(message: Message, *, view: LiveMarkdown | None = None) -> str:
    """The message's bubble; with the live view that streamed it, its blocks are reused."""
    context: dict[str, object] = {"message": message}
    if view is not None and message.role == Message.Role.ASSISTANT:
        context["content_html"] = view.final_html(message.content)
    return render_to_string("conversations/detail.html#message", context)


# Every answer's last event reads it: prepared, as compiling the join cost more than running it.
_SAVED_ANSWER = PreparedModel(
    lambda pk: Message.objects.select_related("conversation").filter(pk=pk), pk=Message._meta.pk
)


@sync_to_async
def final_event(message_id: str, view: LiveMarkdown | None = None) -> str:
    """The saved answer, rendered: one trip to a thread, whose connection is let go after.
    `view`: the answer's live Markdown, when this reader followed it to the end."""
    try:
        message = _SAVED_ANSWER.first(pk=message_id)
        if message is None:  # its conversation was deleted: the bubble goes away
            return sse.frame("done", "", event_id=0)
        return bubble_event(message, view=view)
    finally:
        release_connections()


def bubble_event(message: Message, *, view: LiveMarkdown | None = None) -> str:
    """A finished answer's last event: `done` (or `error`) with its bubble, which keeps the
    version switcher the live one had (a regenerate's)."""
    event = "error" if message.status == Message.Status.ERROR else "done"
    if not message.only_version:
        branches.with_versions(message)
    return sse.frame(event, render_message(message, view=view), event_id=len(message.content))


async def stream_events(message: Message, *, last_event_id: str | None) -> AsyncGenerator[str]:
    message_id = str(message.pk)
    yield sse.retry_hint(RETRY_MS)

    if not message.is_live or message.hidden:  # a moderator hid it: not a single token
        yield await final_event(message_id)
        return

    stream = await served_from(message_id)
    if stream is None:
        # Nobody generates it: one process, not in its hub after the launch's instant (a
        # restart killed it). With Redis, served_from mirrors it; the sweep decides there.
        await sync_to_async(recovery.interrupt_if_orphaned)(message)
        yield await final_event(message_id)
        return

    await sync_to_async(release_connections)()  # the request's thread: its connection
    metrics.OPEN_STREAMS.inc()
    try:
        async for event in live_events(stream, last_event_id=last_event_id):
            yield event
    finally:
        metrics.OPEN_STREAMS.dec()
        get_runtime().reader_left(message_id)


async def served_from(message_id: str) -> LiveStream | None:
    """Where a live answer is read from: the stream of the generation in this process, or,
    with Redis, a local mirror of the process that generates it (this reader counted until
    `Runtime.reader_left`). None when neither: nobody generates it.

    A reader can come in the instant between a send's commit and its launch (a page loaded
    then, a live-sync socket catching up, a repeated send answered with it): without Redis,
    that instant is waited out, lest the answer be taken for an orphan under its generator;
    with Redis the mirror is made at once, and the launch adopts it (generation.py).
    """
    runtime = get_runtime()
    stream = runtime.hub.get(message_id)
    if stream is not None and not stream.is_mirror:
        return stream
    if runtime.relay is not None:
        return await runtime.relay.follow(message_id)
    await sync_to_async(release_connections)()  # not held through the wait
    for _ in range(LAUNCH_GRACE_CHECKS):
        await asyncio.sleep(LAUNCH_GRACE_SECONDS / LAUNCH_GRACE_CHECKS)
        if (stream := runtime.hub.get(message_id)) is not None:
            return stream
    return None


async def live_events(stream: LiveStream, *, last_event_id: str | None) -> AsyncGenerator[str]:
    """A live answer's events from the reader's position to the end (after the retry hint).

    The answer travels as Markdown (live_markdown.py): a `blocks` event carries finished
    blocks as HTML with the open tail that replaces the old one, a `token` event the tail's
    new text. An event id is "offset.blocks": the characters of the answer and the finished
    blocks the reader has, then ".reasoning" once there is reasoning: its characters the
    reader has. A reader who comes back with it gets the blocks it lacks and the tail whole,
    and the reasoning past its offset, never a character twice; one without it gets a
    `snapshot` of everything (a `thinking-snapshot` first, for the reasoning).

    The reasoning travels as escaped text (`thinking` events append to it): escaping is per
    character, so pieces escaped apart join up, and the final bubble renders it through the
    one renderer.
    """
    message_id = stream.message_id
    reader = _Reader(message_id)
    position = _parse_position(last_event_id)
    if position is None:
        if stream.reasoning_length:
            yield reader.thinking(stream, snapshot=True)
        if stream.length:
            yield reader.snapshot(stream.markdown())
        else:  # the page shows the empty answer: its first text is a token
            reader.saw(LiveMarkdown())
    else:
        reader.offset, reader.blocks, reader.reasoning = position
    heard = stream.progress  # for a mirror: how far it was when its generator last showed life
    while True:
        await stream.wait(reader.offset, reader.reasoning)
        grew = stream.reasoning_length > reader.reasoning
        if grew:
            yield reader.thinking(stream)
        if stream.length > reader.offset:
            grew = True
            if (event := reader.next_event(stream.markdown())) is not None:
                yield event
        if grew:
            continue
        if stream.finished or (
            # A mirror silent since the last heartbeat: has its generator died? (If so, the
            # answer is now marked interrupted.) One that grew is alive: no query.
            stream.is_mirror and stream.progress == heard and not await still_live(message_id)
        ):
            if stream.final_event is not None and not stream.stop_requested:
                yield stream.final_event  # its generator's render, made with the final write
            else:
                yield await final_event(message_id, stream.markdown())
            return
        heard = stream.progress
        yield sse.comment()


class _Reader:
    """What one reader's page shows of a live answer, to send it only what it lacks."""

    def __init__(self, message_id: str) -> None:
        self.message_id = message_id
        self.offset = 0  # characters of the answer taken in
        self.blocks = 0  # finished blocks shown
        self.reasoning = 0  # characters of the reasoning shown
        self.epoch: int | None = None  # the tail shown (None: unknown, sent whole next)
        self.shown = 0  # characters of that tail's escaped text shown

    def thinking(self, stream: LiveStream, *, snapshot: bool = False) -> str:
        """The reasoning the reader lacks (all of it, to replace what the page shows)."""
        reasoning = stream.reasoning
        text = reasoning if snapshot else reasoning[self.reasoning :]
        self.reasoning = len(reasoning)
        event = "thinking-snapshot" if snapshot else "thinking"
        return sse.frame(event, escape(text, quote=False), event_id=self._event_id())

    def snapshot(self, view: LiveMarkdown) -> str:
        self.saw(view)
        return sse.frame("snapshot", view.html(self.message_id), event_id=self._event_id())

    def next_event(self, view: LiveMarkdown) -> str | None:
        if self.blocks > len(view.blocks):  # cannot happen for one text; never show a gap
            return self.snapshot(view)
        if self.blocks < len(view.blocks) or self.epoch != view.epoch:
            data = "".join(view.blocks[self.blocks :]) + view.tail_html(self.message_id)
            event = "blocks"
        elif len(view.display) > self.shown:
            data, event = view.display[self.shown :], "token"
        else:  # only a marker that the next characters decide: nothing to show yet
            self.offset = view.length
            return None
        self.saw(view)
        return sse.frame(event, data, event_id=self._event_id())

    def saw(self, view: LiveMarkdown) -> None:
        self.offset, self.blocks = view.length, len(view.blocks)
        self.epoch, self.shown = view.epoch, len(view.display)

    def _event_id(self) -> str:
        if self.reasoning:
            return f"{self.offset}.{self.blocks}.{self.reasoning}"
        return f"{self.offset}.{self.blocks}"


def release_connections() -> None:
    """Close this thread's database connections (back to the pool, if there is one).

    Django keeps a request's connection until the response ends: for a stream, minutes.
    One per open stream ran PostgreSQL out of connections (max_connections, 100 by default)
    at about 100 streams. The final event opens one again for a moment.
    """
    for connection in connections.all(initialized_only=True):
        if not connection.in_atomic_block:  # a caller's transaction (a test's) is not ours
            connection.close()


@sync_to_async
def still_live(message_id: str) -> bool:
    """For a mirror: does the database still say its answer is being generated?"""
    try:
        message = Message.objects.get(pk=message_id)
        return message.is_live and not recovery.interrupt_if_orphaned(message)
    finally:
        release_connections()


def _parse_position(last_event_id: str | None) -> tuple[int, int, int] | None:
    """(offset, blocks, reasoning) from an event id; None without a usable one (then: a
    snapshot)."""
    parts = (last_event_id or "").split(".")
    if len(parts) == 2:
        parts.append("0")
    if len(parts) != 3 or not all(part.isdigit() for part in parts):
        return None
    offset, blocks, reasoning = (int(part) for part in parts)
    return offset, blocks, reasoning
