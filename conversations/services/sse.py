"""The one SSE frame builder, and the headers every SSE response carries."""

from __future__ import annotations

from django.utils.html import escape

CONTENT_TYPE = "text/event-stream"
# Proxies must neither cache nor buffer a stream (nginx reads X-Accel-Buffering).
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def frame(event: str, data: str, *, event_id: int | None = None) -> str:
    lines = [f"event: {event}"]
    if event_id is not None:
        lines.append(f"id: {event_id}")
    # A bare CR would end an SSE line: it travels as a character reference instead.
    lines.extend(f"data: {line}" for line in data.replace("\r", "&#13;").split("\n"))
    return "\n".join(lines) + "\n\n"


def text_frame(event: str, text: str, *, event_id: int) -> str:
    """Model text for the browser to insert as HTML: escaped, so it can only ever be text."""
    return frame(event, escape(text), event_id=event_id)


def comment(text: str = "ping") -> str:
    return f": {text}\n\n"


def retry_hint(milliseconds: int) -> str:
    return f"retry: {milliseconds}\n\n"
