"""The floor to compare against: a bare ASGI SSE server, no Django, no database.

Same URLs and wire format as the app, so the same load client drives it: a POST starts a
paced answer (numbered tokens on their own clock, as conversations/providers/paced.py) and
returns a bubble whose `sse-connect` names the stream; the stream relays it through the same
shape of hub as the app (a buffer per answer, one process-wide 40 ms ticker), then `done`.
What the app costs beyond this is the price of auth, sessions, the ORM and templates.

    uvicorn bench.bare:app  |  daphne bench.bare:app  |  granian --interface asginl bench.bare:app
"""

from __future__ import annotations

import asyncio
import os
import re
import uuid
from urllib.parse import parse_qs

INTERVAL = float(os.environ.get("DEMO_TOKEN_INTERVAL", "0.02"))
TICK = float(os.environ.get("CHAT_TICK_SECONDS", "0.04"))
_LENGTH = re.compile(r"\btokens=(\d+)")


class Answer:
    def __init__(self) -> None:
        self.chunks: list[str] = []
        self.length = 0
        self.finished = False
        self.waiters: list[asyncio.Future] = []


answers: dict[str, Answer] = {}
_dirty: set[Answer] = set()
_has_dirty: asyncio.Event | None = None


def _wake(answer: Answer) -> None:
    waiters, answer.waiters = answer.waiters, []
    for waiter in waiters:
        if not waiter.done():
            waiter.set_result(None)


async def _ticker() -> None:
    assert _has_dirty is not None
    while True:
        await _has_dirty.wait()
        await asyncio.sleep(TICK)
        dirty = list(_dirty)
        _dirty.clear()
        _has_dirty.clear()
        for answer in dirty:
            _wake(answer)


def _ensure_ticker() -> asyncio.Event:
    global _has_dirty
    if _has_dirty is None:
        _has_dirty = asyncio.Event()
        asyncio.get_running_loop().create_task(_ticker())
    return _has_dirty


async def _generate(answer_id: str, count: int) -> None:
    answer = answers[answer_id]
    has_dirty = _ensure_ticker()
    loop = asyncio.get_running_loop()
    start = loop.time()
    for index in range(count):
        delay = start + index * INTERVAL - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        token = f" t{index}" if index else "t0"
        answer.chunks.append(token)
        answer.length += len(token)
        _dirty.add(answer)
        has_dirty.set()
    answer.finished = True
    _wake(answer)
    await asyncio.sleep(30)  # late readers still find it, then it goes
    answers.pop(answer_id, None)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


async def app(scope, receive, send) -> None:
    if scope["type"] != "http":
        return
    path: str = scope["path"]
    if scope["method"] == "POST" and path.endswith("/messages"):
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        content = parse_qs(body.decode()).get("content", [""])[0]
        match = _LENGTH.search(content)
        answer_id = str(uuid.uuid4())
        answers[answer_id] = Answer()
        asyncio.get_running_loop().create_task(
            _generate(answer_id, int(match.group(1)) if match else 200)
        )
        html = f'<article hx-ext="sse" sse-connect="/bare/m/{answer_id}/stream"></article>'
        await _respond(send, 200, b"text/html; charset=utf-8", html.encode())
    elif path.startswith("/bare/m/") and path.endswith("/stream"):
        answer = answers.get(path.split("/")[3])
        if answer is None:
            await _respond(send, 404, b"text/plain", b"no such answer")
            return
        await _stream(answer, send)
    else:
        await _respond(send, 200, b"text/plain", b"ok")


async def _stream(answer: Answer, send) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")],
        }
    )
    offset = index = 0  # characters and chunks sent so far
    loop = asyncio.get_running_loop()
    await send({"type": "http.response.body", "body": b"retry: 1000\n\n", "more_body": True})
    while True:
        if answer.length > offset:
            text = "".join(answer.chunks[index:])
            index = len(answer.chunks)
            offset += len(text)
            frame = f"event: token\nid: {offset}\ndata: {_escape(text)}\n\n"
            await send({"type": "http.response.body", "body": frame.encode(), "more_body": True})
        elif answer.finished:
            frame = f"event: done\nid: {offset}\ndata: <article>done</article>\n\n"
            await send({"type": "http.response.body", "body": frame.encode(), "more_body": False})
            return
        else:
            waiter = loop.create_future()
            answer.waiters.append(waiter)
            await waiter


async def _respond(send, status: int, content_type: bytes, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
