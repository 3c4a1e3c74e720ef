"""The one SSE frame builder, and the headers every SSE response carries."""

from __future__ import annotations

CONTENT_TYPE = "text/event-stream"
# Proxies must neither cache nor buffer a stream (nginx reads X-Accel-Buffering).
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def frame(event: str, data: str, *, event_id: int | str | None = None) -> str:
    head = f"event: {event}\n" if event_id is None else f"event: {event}\nid: {event_id}\n"
    if "\n" in data or "\r" in data:
        # A bare CR would end an SSE line: it travels as a character reference instead.
        data = data.replace("\r", "&#13;").replace("\n", "\ndata: ")
    return f"{head}data: {data}\n\n"


def comment(text: str = "ping") -> str:
    return f": {text}\n\n"


def retry_hint(milliseconds: int) -> str:
    return f"retry: {milliseconds}\n\n"
