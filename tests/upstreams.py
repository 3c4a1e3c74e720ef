"""Fake model servers: real HTTP on localhost, so a provider's official SDK runs unmodified
(its SSE decoder, its errors, its connection handling).

Each provider's tests describe the wire format in a `ScriptedReply` subclass (its stream
frames and its error body); the server here plays the replies in order over chunked
HTTP/1.1 and can fail the ways real servers do: an error status, a dropped connection, a
silence mid-stream or before the response.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class ScriptedReply:
    """One scripted answer: `deltas` are the answer's text pieces, in their own frames;
    `reasoning` the model's thinking before it, in the frames its API sends that in."""

    status: int = 200
    deltas: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    error: str = ""  # the error body's message for a non-200 status
    break_after: int | None = None  # drop the connection after this many deltas
    hang_after: int | None = None  # go silent after this many deltas (for 10 s)
    pause: float = 0.0  # between frames
    stall: float = 0.0  # before the response's status line
    usage: tuple[int, int] = (11, 3)

    def frames(self) -> Iterator[bytes]:
        """The stream's bytes, one SSE event each."""
        raise NotImplementedError

    @property
    def lead(self) -> int:
        """How many frames come before the first delta's."""
        raise NotImplementedError

    def error_body(self) -> dict:
        raise NotImplementedError


class ScriptedServer:
    """An HTTP server on a free localhost port; plays `replies` in order, the last repeats."""

    def __init__(self, first: ScriptedReply) -> None:
        self.replies: list[ScriptedReply] = [first]
        self.requests: list[dict] = []
        # GET /v1/models: the model list (None: answer 503), and how often it was asked.
        self.models: list[str] | None = ["test-model-7b"]
        self.model_lists = 0
        self.disconnects = 0  # streams the client closed before the end
        self.lock = threading.Lock()
        self.http = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.http.daemon_threads = True
        self.http.fake = self  # type: ignore[attr-defined]
        self.thread = threading.Thread(
            target=self.http.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.http.server_address[1]}"

    def take(self, request: dict) -> ScriptedReply:
        with self.lock:
            reply = self.replies[min(len(self.requests), len(self.replies) - 1)]
            self.requests.append(request)
            return reply

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # chunked streaming, as real servers do

    def log_message(self, format: str, *args: object) -> None:
        pass  # quiet

    def do_GET(self) -> None:
        """The model list, in a shape both SDKs read (each takes the fields it knows)."""
        fake: ScriptedServer = self.server.fake  # type: ignore[attr-defined]
        with fake.lock:
            fake.model_lists += 1
            models = fake.models
        self.close_connection = True
        if not self.path.split("?")[0].endswith("/models") or models is None:
            status, payload = (404 if models is not None else 503), {"error": {"message": "no"}}
        else:
            data = [
                {
                    "id": name,
                    "object": "model",
                    "created": 0,
                    "owned_by": "test",
                    "type": "model",
                    "display_name": name,
                    "created_at": "2025-01-01T00:00:00Z",
                }
                for name in models
            ]
            status = 200
            payload = {"object": "list", "data": data, "has_more": False}
            payload |= {"first_id": models[0] if models else None, "last_id": None}
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        fake: ScriptedServer = self.server.fake  # type: ignore[attr-defined]
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        reply = fake.take(
            {
                "path": self.path,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": body,
            }
        )
        self.close_connection = True
        if reply.stall:
            time.sleep(reply.stall)
        if reply.status != 200:
            payload = json.dumps(reply.error_body()).encode()
            self.send_response(reply.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for index, frame in enumerate(reply.frames()):
                if reply.break_after is not None and index >= reply.lead + reply.break_after:
                    return  # the connection drops: no terminating chunk
                if reply.pause and index:
                    time.sleep(reply.pause)
                if reply.hang_after is not None and index == reply.lead + reply.hang_after:
                    time.sleep(10)
                self._write_chunk(frame)
            self._write_chunk(b"")
        except (BrokenPipeError, ConnectionResetError):
            fake.disconnects += 1

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()
