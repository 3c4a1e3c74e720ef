"""Tokens across server processes, through Redis.

The generating process appends each frame's new text and, after the final database write,
an end marker: the hub's ticker hands the streams that grew to one writer task per process,
which writes everything queued since its last round with one script call. The round goes
to a Redis Stream per answer (read from the start by a process that begins to follow it;
it expires a little later, the database keeps the final text) and, as one entry, to the
`frames` stream that every process shares.

A process asked to relay an answer it does not generate mirrors it into a local LiveStream,
so its SSE readers use the same code path as local ones: it catches up from the answer's
own stream, then one reader task per process follows `frames` with a single XREAD BLOCK,
one entry per writer round whatever the number of answers. (An XREAD over one key per
answer was most of the follower's time: docs/performance.md.) Text
that does not join up with the mirror (entries trimmed from `frames` while the follower
lagged) is fetched again from the answer's stream.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import time
from typing import cast

import redis as redis_sync
import redis.asyncio as redis
from django.conf import settings

from chatsite.outages import Outage
from conversations import metrics
from conversations.streaming.hub import LiveStream, StreamHub

log = logging.getLogger(__name__)

EXPIRE_AFTER_END = 120  # seconds a finished answer's stream stays readable
EXPIRE_WHILE_LIVE = 3600  # a crashed generator's stream does not stay forever
FRAMES_KEEP_MS = 20_000  # how far back `frames` goes, however many processes write to it
FRAMES_PER_READ = 500
BLOCK_MS = 100
SOCKET_TIMEOUT = 2.0  # seconds
COMMAND_CONNECTIONS = 4
END = "end"
REASONING = "reasoning"  # an entry's kind in a mirror's queue: reasoning, not answer text
# A stream's entries as redis-py returns them with decode_responses=True (its types say
# bytes or str, and maybe None).
Entries = list[tuple[str, dict[str, str]]]

# One round of the writer in one command: an XADD per answer whose reasoning grew (fields
# `ro`, `r`) and per answer whose text grew (`o`, `t`), the expiry set with its first entry,
# the end markers, then the whole round as one entry of `frames`: a
# pipeline of an XADD per answer cost redis-py 25 times as much CPU to pack and parse
# (docs/performance.md). An answer's stream is not trimmed (its expiry and
# CHAT_TOTAL_TIMEOUT bound it: a follower must be able to read it from the start); `frames`
# keeps the last 20 s. The keys are made here from the prefix, not passed one by one: like
# the rest of our Redis use, it needs a plain (not clustered) Redis.
PUBLISH_BATCH = """
local batch = cjson.decode(ARGV[1])
local prefix = ARGV[2]
for _, item in ipairs(batch[3]) do
  local key = prefix .. item[1]
  redis.call('XADD', key, '*', 'ro', item[2], 'r', item[3])
  if item[2] == 0 then redis.call('EXPIRE', key, ARGV[3]) end
end
for _, item in ipairs(batch[1]) do
  local key = prefix .. item[1]
  redis.call('XADD', key, '*', 'o', item[2], 't', item[3])
  if item[2] == 0 then redis.call('EXPIRE', key, ARGV[3]) end
end
for _, item in ipairs(batch[2]) do
  local key = prefix .. item[1]
  redis.call('XADD', key, '*', 'end', item[2])
  redis.call('EXPIRE', key, ARGV[4])
end
local now = redis.call('TIME')
local oldest = (tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)) - ARGV[6]
redis.call('XADD', ARGV[5], 'MINID', '~', string.format('%d', oldest), '*', 'b', ARGV[1])
return #batch[1] + #batch[2] + #batch[3]
"""


def enabled() -> bool:
    return bool(settings.REDIS_URL)


def stream_key(message_id: str) -> str:
    return f"{settings.REDIS_PREFIX}:tokens:{message_id}"


def frames_key() -> str:
    return f"{settings.REDIS_PREFIX}:frames"


class RedisRelay:
    """One per event loop, in its runtime: the publisher for local generations and the
    follower for others."""

    def __init__(self, hub: StreamHub) -> None:
        self.hub = hub
        # A small bounded pool for writes and XRANGE (a burst waits for a connection rather
        # than failing with MaxConnectionsError), and one connection for the blocking XREAD.
        self.commands = redis.Redis(
            connection_pool=redis.BlockingConnectionPool.from_url(
                settings.REDIS_URL,
                decode_responses=True,
                max_connections=COMMAND_CONNECTIONS,
                timeout=SOCKET_TIMEOUT,
                socket_timeout=SOCKET_TIMEOUT,
                socket_connect_timeout=SOCKET_TIMEOUT,
            )
        )
        self._publish_batch = self.commands.register_script(PUBLISH_BATCH)
        # Its reads block BLOCK_MS at most: a Redis silent for longer is gone, and the reader
        # tries again rather than wait on it forever.
        self.blocking = redis.from_url(
            settings.REDIS_URL,
            decode_responses=True,
            max_connections=1,
            socket_timeout=SOCKET_TIMEOUT,
            socket_connect_timeout=SOCKET_TIMEOUT,
        )
        self.published: dict[str, int] = {}  # message id -> offset already in Redis
        self.published_reasoning: dict[str, int] = {}  # the same, for the reasoning
        # What the writer task has to write next: streams that grew, and end markers, each
        # with the future its publisher awaits.
        self._grown: set[LiveStream] = set()
        self._ending: list[tuple[LiveStream, str]] = []
        self._waiting: list[asyncio.Future[None]] = []  # resolved once the next round is in
        self._work = asyncio.Event()
        self._writer: asyncio.Task | None = None
        self.followed: dict[str, LiveStream] = {}  # message id -> its mirror
        # Mirrors catching up from their answer's stream, with what `frames` brought meanwhile:
        # (offset, end status or REASONING or None, text).
        self._catching_up: dict[str, tuple[LiveStream, list[tuple[int, str | None, str]]]] = {}
        self._catch_ups: set[asyncio.Task] = set()
        self._positioned = asyncio.Event()  # the reader knows where `frames` ends
        self.readers: dict[str, int] = {}  # id -> SSE readers attached to its mirror
        self._frames_read = "$"  # the last `frames` entry the reader has seen
        self._reader: asyncio.Task | None = None
        # Logged once per outage, not once per round (ten a second per answer).
        self._write_outage = Outage("redis relay write", log)
        self._read_outage = Outage("redis relay read", log)

    @property
    def tasks(self) -> list[asyncio.Task]:
        return [t for t in (self._writer, self._reader) if t is not None] + list(self._catch_ups)

    async def aclose(self) -> None:
        await self.commands.aclose()
        await self.blocking.aclose()

    # -- publishing (the generating process) -------------------------------------------
    def track(self, stream: LiveStream) -> None:
        self.published[stream.message_id] = 0
        self.published_reasoning[stream.message_id] = 0

    async def publish(self, streams: list[LiveStream]) -> None:
        """Hand what grew this frame to the writer; the ticker never waits for Redis."""
        self._grown.update(streams)
        self._wake_writer()

    async def publish_end(self, stream: LiveStream, status: str) -> None:
        """Its last text and the end marker; returns once both are in Redis."""
        self._ending.append((stream, status))
        await self.flush()

    async def flush(self) -> None:
        """Return once everything handed to the writer so far is in Redis (or raise why not)."""
        written = self.hub.loop.create_future()
        self._waiting.append(written)
        self._wake_writer()
        await written

    def _wake_writer(self) -> None:
        self._work.set()
        if self._writer is None or self._writer.done():
            self._writer = self.hub.loop.create_task(
                self._write_forever(), name="redis-relay-writer", context=contextvars.Context()
            )

    async def _write_forever(self) -> None:
        """The process's one writer: each round writes everything queued since the last in
        one command (a group commit), so a thousand answers ending together, or a frame
        in which a thousand grew, cost a round trip, and publishers never queue on a lock."""
        while True:
            await self._work.wait()
            self._work.clear()
            grown, self._grown = self._grown, set()
            ending, self._ending = self._ending, []
            waiting, self._waiting = self._waiting, []
            try:
                await self._write(grown, ending)
            except asyncio.CancelledError:  # the server is stopping
                for written in waiting:
                    written.cancel()
                raise
            except Exception as error:
                self._write_outage.failed(answers=len(grown))
                for written in waiting:
                    written.set_exception(error)
            else:
                self._write_outage.recovered()
                for written in waiting:
                    written.set_result(None)

    async def _write(self, grown: set[LiveStream], ending: list[tuple[LiveStream, str]]) -> None:
        texts: list[tuple[str, int, str]] = []  # (message id, offset, new text)
        thoughts: list[tuple[str, int, str]] = []  # the same for the reasoning
        sent: dict[str, int] = {}  # message id -> offset before this write
        thought: dict[str, int] = {}  # the same for the reasoning
        for stream in [*grown, *(stream for stream, _ in ending)]:
            offset = self.published.get(stream.message_id)
            if offset is not None and stream.length > offset:
                texts.append((stream.message_id, offset, stream.read_from(offset)))
                sent[stream.message_id] = offset
                self.published[stream.message_id] = stream.length
            offset = self.published_reasoning.get(stream.message_id)
            if offset is not None and stream.reasoning_length > offset:
                thoughts.append((stream.message_id, offset, stream.reasoning[offset:]))
                thought[stream.message_id] = offset
                self.published_reasoning[stream.message_id] = stream.reasoning_length
        ends = [(stream.message_id, status) for stream, status in ending]
        if not texts and not ends and not thoughts:
            return
        try:
            async with asyncio.timeout(SOCKET_TIMEOUT * 2):
                await self._publish_batch(
                    args=[
                        # A lone surrogate cannot be UTF-8. Providers mend it (providers/text.py);
                        # one that slips through is replaced in this copy, not failing the round.
                        json.dumps([texts, ends, thoughts], ensure_ascii=False).encode(
                            "utf-8", "replace"
                        ),
                        stream_key(""),
                        EXPIRE_WHILE_LIVE,
                        EXPIRE_AFTER_END,
                        frames_key(),
                        FRAMES_KEEP_MS,
                    ],
                    client=self.commands,
                )
        except BaseException:
            # Send that text again next time: a follower skips what it already has, but
            # could not bridge a gap.
            for message_id, offset in sent.items():
                if message_id in self.published:
                    self.published[message_id] = offset
            for message_id, offset in thought.items():
                if message_id in self.published_reasoning:
                    self.published_reasoning[message_id] = offset
            raise
        finally:
            for stream, _ in ending:
                self.published.pop(stream.message_id, None)
                self.published_reasoning.pop(stream.message_id, None)

    # -- following (any other process) -------------------------------------------------
    async def follow(self, message_id: str) -> LiveStream:
        """A local mirror of a live answer generated by another process.

        The answer's stream may not exist yet (no token so far): `frames` brings its text.
        """
        mirrored = self.hub.get(message_id)
        if mirrored is not None:
            if mirrored.is_mirror:
                self.readers[message_id] = self.readers.get(message_id, 0) + 1
            return mirrored
        self.readers[message_id] = 1
        mirror = self.hub.open(message_id)
        self.followed[message_id] = mirror
        if self._reader is None or self._reader.done():  # claimed here, before any await
            self._positioned.clear()
            self._reader = self.hub.loop.create_task(
                self._read_forever(), name="redis-relay-reader", context=contextvars.Context()
            )
        arrived = self._start_catch_up(mirror)
        # What `frames` holds from the reader's position on, it brings; what came before,
        # the catch-up reads from the answer's stream.
        await self._positioned.wait()
        await self._catch_up(mirror, arrived)
        return mirror

    def adopt(self, mirror: LiveStream) -> LiveStream:
        """The mirror of an answer this process turns out to generate: it stops being
        followed (`frames` would bring back our own text), and its readers read it as
        generated here (they no longer count on the relay)."""
        self._unfollow(mirror)
        if self._catching_up.get(mirror.message_id, (None,))[0] is mirror:
            del self._catching_up[mirror.message_id]
        self.readers.pop(mirror.message_id, None)
        return mirror

    def release(self, message_id: str) -> None:
        """A reader left; the last one lets go of the mirror (a reader who comes back
        later starts a new one from the Redis Stream, which still holds the whole answer)."""
        remaining = self.readers.get(message_id, 1) - 1
        if remaining > 0:
            self.readers[message_id] = remaining
            return
        self.readers.pop(message_id, None)
        mirror = self.followed.pop(message_id, None)
        if mirror is not None:
            self.hub.close(mirror)

    def _start_catch_up(self, mirror: LiveStream) -> list[tuple[int, str | None, str]]:
        """From now on, what `frames` brings for this mirror waits in the returned list."""
        arrived: list[tuple[int, str | None, str]] = []
        self._catching_up[mirror.message_id] = (mirror, arrived)
        return arrived

    async def _catch_up(self, mirror: LiveStream, arrived: list) -> None:
        """The answer's whole stream so far, then what `frames` brought meanwhile."""
        message_id = mirror.message_id
        caught_up: list[tuple[int, str | None, str]] = []
        try:
            entries = cast(Entries, await self.commands.xrange(stream_key(message_id)))
            for _, fields in entries:
                if "r" in fields:
                    caught_up.append((int(fields["ro"]), REASONING, fields["r"]))
                else:
                    caught_up.append(
                        (int(fields.get("o", 0)), fields.get(END), fields.get("t", ""))
                    )
        except Exception:
            log.exception("redis relay catch-up failed", extra={"message_id": message_id})
        finally:
            if self._catching_up.get(message_id, (None,))[0] is mirror:
                del self._catching_up[message_id]
        for offset, status, text in [*caught_up, *arrived]:
            if mirror.finished:
                break
            self._take(mirror, offset, status, text)

    def _take(self, mirror: LiveStream, offset: int, status: str | None, text: str) -> None:
        """One entry for a mirror: its end marker (a status), text from `offset`, or (status
        REASONING) reasoning from `offset`."""
        if status is None:
            self._apply(mirror, offset, text)
        elif status == REASONING:
            self._apply(mirror, offset, text, reasoning=True)
        else:
            self._end(mirror)

    def _apply(
        self, mirror: LiveStream, offset: int, text: str, *, reasoning: bool = False
    ) -> None:
        """Append the new part of one entry; entries are contiguous, so one that starts past
        the mirror's end means some were lost: catch up from the answer's stream."""
        length = mirror.reasoning_length if reasoning else mirror.length
        if offset > length:
            if mirror.message_id not in self._catching_up:
                arrived = self._start_catch_up(mirror)
                task = self.hub.loop.create_task(
                    self._catch_up(mirror, arrived), context=contextvars.Context()
                )
                self._catch_ups.add(task)  # the loop keeps only a weak reference
                task.add_done_callback(self._catch_ups.discard)
        elif offset + len(text) > length:
            (mirror.think if reasoning else mirror.append)(text[length - offset :])

    def _end(self, mirror: LiveStream) -> None:
        self._unfollow(mirror)
        self.hub.close(mirror)

    def _unfollow(self, mirror: LiveStream) -> None:
        if self.followed.get(mirror.message_id) is mirror:  # not a newer mirror of the answer
            del self.followed[mirror.message_id]

    async def _read_forever(self) -> None:
        while self.followed and not self._positioned.is_set():
            try:
                last = cast(Entries, await self.commands.xrevrange(frames_key(), count=1))
            except Exception:
                self._read_outage.failed()
                await asyncio.sleep(0.5)
                continue
            self._read_outage.recovered()
            self._frames_read = last[0][0] if last else "0-0"
            self._positioned.set()
        while self.followed:
            try:
                batches = cast(
                    list[tuple[str, Entries]],
                    await self.blocking.xread(
                        {frames_key(): self._frames_read}, block=BLOCK_MS, count=FRAMES_PER_READ
                    ),
                )
            except asyncio.CancelledError:
                raise
            except Exception:
                self._read_outage.failed()
                await asyncio.sleep(0.5)
                continue
            self._read_outage.recovered()
            for _, entries in batches or []:
                if entries:  # once per read, not per entry: how late the newest one is
                    metrics.RELAY_LAG.observe(entry_age(entries[-1][0]))
                for entry_id, fields in entries:
                    self._frames_read = entry_id
                    try:
                        self._deliver(*json.loads(fields["b"]))
                    except Exception:  # one bad entry must not stop every mirror
                        log.exception("redis relay: unreadable frame", extra={"id": entry_id})

    def _deliver(self, texts: list, ends: list, thoughts: list | tuple = ()) -> None:
        """One writer round of some process: the parts for answers mirrored here."""
        for message_id, offset, text in thoughts:
            self._receive(message_id, offset, REASONING, text)
        for message_id, offset, text in texts:
            self._receive(message_id, offset, None, text)
        for message_id, status in ends:
            self._receive(message_id, 0, status, "")

    def _receive(self, message_id: str, offset: int, status: str | None, text: str) -> None:
        if (mirror := self.followed.get(message_id)) is None:
            return
        if (catching_up := self._catching_up.get(message_id)) and catching_up[0] is mirror:
            catching_up[1].append((offset, status, text))  # applied after the catch-up
        else:
            self._take(mirror, offset, status, text)


def entry_age(entry_id: str) -> float:
    """Seconds since Redis added a stream entry: its id is Redis's clock in ms (so this is
    as exact as the app's and Redis's clocks agree: NTP)."""
    return max(0.0, time.time() - int(entry_id.partition("-")[0]) / 1000)


def joined_text(entries: list[tuple[int, str]]) -> str:
    """An answer's text from its stream's (offset, text) entries, in order; an entry sent
    again after a failed write overlaps what came before, and only its new part counts."""
    text = ""
    for offset, part in entries:
        if offset > len(text):
            break  # a gap: what follows cannot be placed
        if offset + len(part) > len(text):
            text += part[len(text) - offset :]
    return text


_sync_clients: dict[str, redis_sync.Redis] = {}  # by URL; a thread-safe pool each


def published_text(message_id: str) -> tuple[str, str]:
    """From sync code: the text and reasoning of the answer as its generator published them
    (recovery asks it of a dead process's answer); "" when Redis has none or cannot be
    reached."""
    if not enabled():
        return "", ""
    client = _sync_clients.get(settings.REDIS_URL)
    if client is None:
        client = _sync_clients[settings.REDIS_URL] = redis_sync.Redis.from_url(
            settings.REDIS_URL,
            decode_responses=True,
            socket_timeout=SOCKET_TIMEOUT,
            socket_connect_timeout=SOCKET_TIMEOUT,
        )
    try:
        entries = cast(Entries, client.xrange(stream_key(message_id)))
    except redis_sync.RedisError:
        log.warning("redis relay: published text unreadable", extra={"message_id": message_id})
        return "", ""
    return (
        joined_text([(int(f["o"]), f["t"]) for _, f in entries if "t" in f]),
        joined_text([(int(f["ro"]), f["r"]) for _, f in entries if "r" in f]),
    )
