"""Reading SSE responses and waiting for answers, as the browser would."""

from __future__ import annotations

import asyncio
import html
import re
import uuid
from collections.abc import Awaitable, Callable

from conversations.models import Message


def send_data(content: str = "Hi there", client_id: uuid.UUID | None = None) -> dict[str, str]:
    return {"content": content, "client_id": str(client_id or uuid.uuid4())}


async def asgi_get(
    app, url: str, *, headers=(), leave: Callable[[], Awaitable[object]] | None = None
) -> tuple[int, dict[bytes, bytes], str]:
    """One GET through an ASGI app, as a server hands it over: (status, headers, body);
    status 0 when nothing was sent. `leave`: once the request is in, the client goes away
    (a closed tab) when that returns."""
    path, _, query = url.partition("?")
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "",
        "query_string": query.encode(), "headers": [(b"host", b"testserver"), *headers],
        "client": ("127.0.0.1", 50000), "server": ("testserver", 80),
    }  # fmt: skip
    messages: list[dict] = []
    done = asyncio.Event()
    requested = False

    async def receive() -> dict:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await (done.wait() if leave is None else leave())
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        messages.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body"):
            done.set()

    await app(scope, receive, send)
    if not messages:
        return 0, {}, ""
    start, body = messages[0], b"".join(m.get("body", b"") for m in messages[1:])
    return start["status"], {k.lower(): v for k, v in start["headers"]}, body.decode()


async def wait_until_final(message_id, timeout: float = 5.0) -> Message:
    """Poll the database until the answer is no longer live."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        message = await Message.objects.aget(pk=message_id)
        if not message.is_live:
            return message
        if loop.time() > deadline:
            raise AssertionError(f"message still {message.status} after {timeout}s")
        await asyncio.sleep(0.02)


async def live_answer(conversation, **fields) -> Message:
    """A question and its answer, still streaming (in this process or another)."""
    await Message.objects.acreate(conversation=conversation, seq=1, role="user", content="hi")
    return await Message.objects.acreate(
        conversation=conversation, seq=2, role="assistant", status="streaming", **fields
    )


async def read_events(response, *, limit: int = 10_000) -> list[dict[str, str]]:
    """Parse an SSE response into events ({"event", "id", "data"}), comments skipped."""
    events: list[dict[str, str]] = []
    buffer = ""
    async for chunk in response.streaming_content:
        buffer += chunk.decode() if isinstance(chunk, bytes) else chunk
        while "\n\n" in buffer:
            block, buffer = buffer.split("\n\n", 1)
            event = parse_block(block)
            if event:
                events.append(event)
            if len(events) >= limit:
                return events
    return events


def parse_block(block: str) -> dict[str, str] | None:
    fields: dict[str, list[str]] = {}
    for line in block.split("\n"):
        if not line or line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        fields.setdefault(name, []).append(value[1:] if value.startswith(" ") else value)
    if "event" not in fields:
        return None
    return {
        "event": fields["event"][0],
        "id": fields.get("id", [""])[0],
        "data": "\n".join(fields.get("data", [])),
    }


class OtherProcess:
    """Plays another server process that generates answers: its own hub and Redis relay,
    publishing as the real one does (each answer's stream and the shared `frames`)."""

    def __init__(self) -> None:
        from conversations.streaming.hub import StreamHub
        from conversations.streaming.redis_relay import RedisRelay

        self.hub = StreamHub(tick_seconds=0.01)
        self.relay = RedisRelay(self.hub)
        self.streams: dict[str, object] = {}

    def _stream(self, message_id: object):
        key = str(message_id)
        if key not in self.streams:
            stream = self.streams[key] = self.hub.open(key)
            self.relay.track(stream)
        return self.streams[key]

    async def say(self, message_id: object, text: str) -> None:
        stream = self._stream(message_id)
        stream.append(text)
        await self.relay.publish([stream])
        await self.relay.flush()

    async def think(self, message_id: object, text: str) -> None:
        stream = self._stream(message_id)
        stream.think(text)
        await self.relay.publish([stream])
        await self.relay.flush()

    async def end(self, message_id: object, status: str = "complete") -> None:
        await self.relay.publish_end(self._stream(message_id), status)

    async def close(self) -> None:
        tasks = [self.hub._ticker, self.hub._heartbeat, self.relay._writer]
        for task in tasks:
            if task is not None:
                task.cancel()
        await asyncio.gather(*(t for t in tasks if t is not None), return_exceptions=True)
        await self.relay.commands.aclose()
        await self.relay.blocking.aclose()


TAIL = re.compile(r'<div class="md-tail" id="[^"]*">')
TAIL_ENDS = ("</p></div>", "</code></pre></div>")
# A live answer with no text yet, as its page shows it.
EMPTY = (
    '<div class="md-tail" id="msg-x-tail"><p class="md-tail-text" id="msg-x-tail-text"></p></div>'
)


def shown_html(events: list[dict[str, str]], body: str = EMPTY) -> str:
    """The live answer's body after these events, swapped as the page's htmx does: a snapshot
    replaces it, `blocks` replaces the open tail (the body's last element), `token` extends it."""
    for event in events:
        kind, data = event["event"], event["data"]
        if kind == "snapshot":
            body = data
        elif kind == "blocks":
            tail = list(TAIL.finditer(body))
            assert tail, f"no tail to replace in {body!r}"
            body = body[: tail[-1].start()] + data
        elif kind == "token":
            end = next(end for end in TAIL_ENDS if body.endswith(end))
            body = body[: -len(end)] + data + end
    return body


def shown_text(events: list[dict[str, str]], body: str = EMPTY) -> str:
    """The text a reader sees of a live answer after these events (markup dropped)."""
    return html.unescape(re.sub(r"<[^>]+>", "", shown_html(events, body)))


def view_html(text: str, message_id: object) -> str:
    """What a reader shows once it has followed a live answer's text up to here."""
    from conversations.live_markdown import LiveMarkdown

    view = LiveMarkdown()
    view.feed(text)
    return view.html(str(message_id))


def offset_of(event: dict[str, str]) -> int:
    """The answer's characters an event id accounts for ("offset.blocks", or the final offset)."""
    return int(event["id"].partition(".")[0])
