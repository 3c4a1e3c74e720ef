"""From a message's live stream (or its saved state) to SSE events, resumable at any offset.

Event ids are character offsets into the answer. A reader with Last-Event-ID gets exactly
what follows it; a reader without one (a page reload, a new EventSource) first gets a
`snapshot` of the text so far, then the live deltas.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

from asgiref.sync import sync_to_async
from django.db import connections
from django.template.loader import render_to_string

from conversations import branches
from conversations.models import Message
from conversations.streaming import recovery, sse
from conversations.streaming.hub import LiveStream
from conversations.streaming.runtime import get_runtime

RETRY_MS = 1000  # the browser's reconnect delay
LAUNCH_GRACE_SECONDS = 1.0
LAUNCH_GRACE_CHECKS = 20


def render_message(message: Message) -> str:
    return render_to_string("conversations/detail.html#message", {"message": message})


@sync_to_async
def final_event(message_id: str) -> str:
    """The saved answer, rendered: one trip to a thread, whose connection is let go after."""
    try:
        try:
            message = Message.objects.select_related("conversation").get(pk=message_id)
        except Message.DoesNotExist:  # its conversation was deleted: the bubble goes away
            return sse.frame("done", "", event_id=0)
        event = "error" if message.status == Message.Status.ERROR else "done"
        # The final bubble keeps the version switcher the live one had (a regenerate's).
        html = render_message(branches.with_versions(message))
        return sse.frame(event, html, event_id=len(message.content))
    finally:
        release_connections()


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
    try:
        async for event in live_events(stream, last_event_id=last_event_id):
            yield event
    finally:
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
    """A live answer's events from the reader's offset to the end (after the retry hint)."""
    message_id = stream.message_id
    offset = _parse_offset(last_event_id)
    if last_event_id is None and stream.length:
        offset = stream.length
        yield sse.text_frame("snapshot", stream.read_from(0), event_id=offset)
    heard = stream.length  # for a mirror: its length when its generator last showed life
    while True:
        await stream.wait(offset)
        if stream.length > offset:
            text = stream.read_from(offset)
            offset += len(text)
            yield sse.text_frame("token", text, event_id=offset)
        elif stream.finished or (
            # A mirror silent since the last heartbeat: has its generator died? (If so, the
            # answer is now marked interrupted.) One that grew is alive: no query.
            stream.is_mirror and stream.length == heard and not await still_live(message_id)
        ):
            yield await final_event(message_id)
            return
        else:
            heard = stream.length
            yield sse.comment()


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


def _parse_offset(last_event_id: str | None) -> int:
    try:
        return max(0, int(last_event_id or 0))
    except ValueError:
        return 0
