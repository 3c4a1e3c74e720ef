"""Tokens across server processes: a Redis Stream per in-flight answer.

The generating process appends each frame's new text (one pipelined XADD per dirty stream
per frame, from the hub's ticker) and an end marker after the final database write; the
stream expires a little later (the database keeps the final text). A process asked to
relay an answer it does not generate mirrors that stream into a local LiveStream, so its
SSE readers use the same code path as local ones. One reader task per process follows
every mirrored key with a single XREAD BLOCK on one connection.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging

import redis.asyncio as redis
from django.conf import settings

from conversations.services.hub import LiveStream, StreamHub

log = logging.getLogger(__name__)

EXPIRE_AFTER_END = 120  # seconds a finished answer's stream stays readable
EXPIRE_WHILE_LIVE = 3600  # a crashed generator's stream does not stay forever
MAX_ENTRIES = 20_000
BLOCK_MS = 100
END = "end"


def enabled() -> bool:
    return bool(settings.REDIS_URL)


def stream_key(message_id: str) -> str:
    return f"{settings.REDIS_PREFIX}:tokens:{message_id}"


class RedisRelay:
    """One per event loop: the publisher for local generations and the follower for others."""

    def __init__(self, hub: StreamHub) -> None:
        self.hub = hub
        # Two connections at most: one for the blocking XREAD, one for writes and XRANGE.
        self.commands = redis.from_url(settings.REDIS_URL, decode_responses=True)
        self.blocking = redis.from_url(settings.REDIS_URL, decode_responses=True, max_connections=1)
        self.published: dict[str, int] = {}  # message id -> offset already in Redis
        self.followed: dict[str, tuple[LiveStream, str]] = {}  # id -> (mirror, last entry id)
        self._reader: asyncio.Task | None = None

    # -- publishing (the generating process) -------------------------------------------
    def track(self, stream: LiveStream) -> None:
        self.published[stream.message_id] = 0

    async def publish(self, streams: list[LiveStream]) -> None:
        """Append what each stream gained since the last frame: one round trip per frame."""
        pipe = self.commands.pipeline(transaction=False)
        queued = False
        for stream in streams:
            offset = self.published.get(stream.message_id)
            if offset is None or stream.length <= offset:
                continue
            key = stream_key(stream.message_id)
            pipe.xadd(key, {"o": offset, "t": stream.read_from(offset)}, maxlen=MAX_ENTRIES)
            pipe.expire(key, EXPIRE_WHILE_LIVE)
            self.published[stream.message_id] = stream.length
            queued = True
        if queued:
            await pipe.execute()

    async def publish_end(self, stream: LiveStream, status: str) -> None:
        await self.publish([stream])
        self.published.pop(stream.message_id, None)
        key = stream_key(stream.message_id)
        pipe = self.commands.pipeline(transaction=False)
        pipe.xadd(key, {END: status}, maxlen=MAX_ENTRIES)
        pipe.expire(key, EXPIRE_AFTER_END)
        await pipe.execute()

    # -- following (any other process) -------------------------------------------------
    async def follow(self, message_id: str) -> LiveStream | None:
        """A local mirror of an answer generated elsewhere, or None if Redis has no stream."""
        mirrored = self.hub.get(message_id)
        if mirrored is not None:
            return mirrored
        entries = await self.commands.xrange(stream_key(message_id))
        if not entries:
            return None
        mirrored = self.hub.get(message_id)  # another reader may have won the race
        if mirrored is not None:
            return mirrored
        mirror = self.hub.open(message_id)
        last_id = "0-0"
        for entry_id, fields in entries:
            last_id = entry_id
            if self._apply(mirror, fields):
                return mirror
        self.followed[message_id] = (mirror, last_id)
        self._ensure_reader()
        return mirror

    def _apply(self, mirror: LiveStream, fields: dict[str, str]) -> bool:
        """Apply one entry; true when it ended the stream."""
        if END in fields:
            self.followed.pop(mirror.message_id, None)
            self.hub.close(mirror)
            return True
        offset, text = int(fields["o"]), fields["t"]
        if offset + len(text) > mirror.length:  # entries are contiguous; skip what we have
            mirror.append(text[mirror.length - offset :])
        return False

    def _ensure_reader(self) -> None:
        if self._reader is None or self._reader.done():
            self._reader = self.hub.loop.create_task(
                self._read_forever(), name="redis-relay-reader", context=contextvars.Context()
            )

    async def _read_forever(self) -> None:
        while self.followed:
            streams = {stream_key(mid): last for mid, (_, last) in self.followed.items()}
            try:
                batches = await self.blocking.xread(streams, block=BLOCK_MS)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("redis relay read failed; retrying")
                await asyncio.sleep(0.5)
                continue
            for key, entries in batches or []:
                message_id = key.rsplit(":", 1)[1]
                followed = self.followed.get(message_id)
                if followed is None:
                    continue
                mirror = followed[0]
                for entry_id, fields in entries:
                    self.followed[message_id] = (mirror, entry_id)
                    if self._apply(mirror, fields):
                        break


_relays: dict[asyncio.AbstractEventLoop, RedisRelay] = {}


def get_relay(hub: StreamHub) -> RedisRelay | None:
    if not enabled():
        return None
    relay = _relays.get(hub.loop)
    if relay is None:
        for old_loop in [old for old in _relays if old.is_closed()]:
            del _relays[old_loop]
        relay = _relays[hub.loop] = RedisRelay(hub)
    return relay
