"""The load generator: a separate process, on its own core, doing what the browser does.

For each stream: an authenticated htmx POST of a message (session cookie, CSRF header), then
the SSE stream named by the returned bubble's `sse-connect`, read to its `done`. HTTP/1.1 is
spoken by a small asyncio protocol (keep-alive for POSTs, chunked bodies): a general client
library costs several times the CPU per event, and the client must never be the bottleneck.

Modes (bench.run writes the JSON config, reads the JSON result from --out):
- streams: N streams started at a fixed rate, each long enough that all N are open together
  for a plateau; token lateness is measured on the tokens due in that plateau.
- starts: open-loop sends at rising rates, time to first token per send, until p99 > 1 s.
- pages: sequential page loads (long conversation, conversation list), round-trip times.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlencode

import numpy as np
import psutil

ON_TIME_SECONDS = 0.25  # a token later than this against its own clock counts as late
_SSE_CONNECT = re.compile(rb'sse-connect="([^"]+)"')
_TAG = re.compile(rb"<[^>]+>")
_TOKEN = re.compile(rb"\bt(\d+)\b")


# -- HTTP/1.1 ----------------------------------------------------------------------------


@dataclass
class Response:
    status: int
    headers: dict[bytes, bytes]
    body: bytes


class HttpConnection(asyncio.Protocol):
    """One connection, sequential requests; a streamed body goes to `on_data` as it arrives."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.state = "idle"
        self.remaining = 0
        self.status = 0
        self.headers: dict[bytes, bytes] = {}
        self.body: list[bytes] = []
        self.on_data: Callable[[bytes, float], None] | None = None
        self.on_head: Callable[[int], None] | None = None
        self.waiter: asyncio.Future[Response] | None = None
        self.lost = False

    @classmethod
    async def open(cls, host: str, port: int) -> HttpConnection:
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(cls, host, port)
        return protocol

    def connection_made(self, transport) -> None:
        self.transport = transport

    def connection_lost(self, exc) -> None:
        self.lost = True
        if self.state == "until_close":
            self._complete()
        elif self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError(f"connection lost in {self.state}"))

    @property
    def usable(self) -> bool:
        return not self.lost and self.transport is not None and not self.transport.is_closing()

    def request(
        self,
        raw: bytes,
        *,
        on_data: Callable[[bytes, float], None] | None = None,
        on_head: Callable[[int], None] | None = None,
    ) -> asyncio.Future[Response]:
        assert self.transport is not None and self.state == "idle"
        self.waiter = asyncio.get_running_loop().create_future()
        self.on_data, self.on_head = on_data, on_head
        self.state, self.body = "head", []
        self.transport.write(raw)
        return self.waiter

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        self.buffer += data
        buf = self.buffer
        while buf:
            state = self.state
            if state == "head":
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    return
                lines = bytes(buf[:end]).split(b"\r\n")
                del buf[: end + 4]
                self.status = int(lines[0].split(b" ", 2)[1])
                self.headers = {}
                for line in lines[1:]:
                    name, _, value = line.partition(b":")
                    self.headers[name.strip().lower()] = value.strip()
                if self.on_head is not None:
                    self.on_head(self.status)
                if self.headers.get(b"transfer-encoding", b"").lower() == b"chunked":
                    self.state = "size"
                elif b"content-length" in self.headers:
                    self.remaining = int(self.headers[b"content-length"])
                    self.state = "length"
                    if not self.remaining:
                        self._complete()
                else:
                    self.state = "until_close"
            elif state == "size":
                end = buf.find(b"\r\n")
                if end < 0:
                    return
                size = int(bytes(buf[:end]).split(b";")[0], 16)
                del buf[: end + 2]
                self.state, self.remaining = ("trailer", 0) if size == 0 else ("chunk", size)
            elif state in ("chunk", "length", "until_close"):
                take = len(buf) if state == "until_close" else min(self.remaining, len(buf))
                self._deliver(bytes(buf[:take]), now)
                del buf[:take]
                self.remaining -= take
                if state != "until_close" and self.remaining == 0:
                    if state == "chunk":
                        self.state = "chunk_end"
                    else:
                        self._complete()
            elif state == "chunk_end":
                if len(buf) < 2:
                    return
                del buf[:2]
                self.state = "size"
            elif state == "trailer":
                end = buf.find(b"\r\n")
                if end < 0:
                    return
                del buf[: end + 2]
                if end == 0:
                    self._complete()
            else:  # bytes while idle: the server misbehaves
                buf.clear()

    def _deliver(self, data: bytes, now: float) -> None:
        if self.on_data is not None:
            self.on_data(data, now)
        else:
            self.body.append(data)

    def _complete(self) -> None:
        self.state = "idle"
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(Response(self.status, self.headers, b"".join(self.body)))
        if self.headers.get(b"connection", b"").lower() == b"close":
            self.close()


class Pool:
    """Keep-alive connections for short requests, as a browser reuses its connection."""

    IDLE_SECONDS = 4.0  # servers close idle keep-alive connections (uvicorn after 5 s)

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.idle: list[tuple[HttpConnection, float]] = []

    async def fetch(self, raw: bytes) -> Response:
        now = time.monotonic()
        conn = None
        while self.idle and conn is None:
            candidate, since = self.idle.pop()
            if candidate.usable and now - since < self.IDLE_SECONDS:
                conn = candidate
            else:
                candidate.close()
        if conn is not None:
            try:
                return self._keep(conn, await conn.request(raw))
            except ConnectionError:
                pass  # closed by the server as we sent: once more on a fresh connection
        conn = await HttpConnection.open(self.host, self.port)
        return self._keep(conn, await conn.request(raw))

    def _keep(self, conn: HttpConnection, response: Response) -> Response:
        if conn.usable:
            self.idle.append((conn, time.monotonic()))
        return response

    def close(self) -> None:
        for conn, _ in self.idle:
            conn.close()


def request_bytes(method: str, path: str, *, host: str, headers: dict[str, str], body=b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if body or method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


# -- one chat stream ---------------------------------------------------------------------


@dataclass
class Stream:
    tokens: int
    # If set: the answer is sized when it is sent, to end then (at `interval` per token),
    # so all of a step's answers end together however fast the server starts them.
    end_at: float = 0.0
    interval: float = 0.0
    t_post: float = 0.0
    t_posted: float = 0.0  # the POST's response: the answer's upstream has just started
    t_first: float = 0.0
    t_done: float = 0.0
    message_id: str = ""
    error: str = ""
    next_token: int = 0
    token_events: int = 0
    gaps: int = 0
    events: list[tuple[float, int, int]] = field(default_factory=list)  # (arrival, first, last)
    _pending: bytes = b""
    done: bool = False
    first_token: asyncio.Future | None = None

    def feed(self, data: bytes, now: float) -> None:
        pending = self._pending + data
        *blocks, self._pending = pending.split(b"\n\n")
        for block in blocks:
            self._event(block, now)

    def _event(self, block: bytes, now: float) -> None:
        kind = b""
        data: list[bytes] = []
        for line in block.split(b"\n"):
            if line.startswith(b"event: "):
                kind = line[7:]
            elif line.startswith(b"data: "):
                data.append(line[6:])
        if kind in (b"token", b"snapshot", b"blocks"):
            # A snapshot or a blocks event is HTML (live_markdown.py): the numbered tokens are
            # in its text, among a Markdown answer's bullets and punctuation.
            numbers = _TOKEN.findall(_TAG.sub(b" ", b" ".join(data)))
            if not numbers:
                return
            first, last = int(numbers[0]), int(numbers[-1])
            if first != self.next_token:
                self.gaps += 1
            if last < self.next_token:
                return  # nothing new
            first = max(first, self.next_token)
            self.token_events += 1
            if not self.events:
                self.t_first = now
                if self.first_token is not None and not self.first_token.done():
                    self.first_token.set_result(None)
            self.events.append((now, first, last))
            self.next_token = last + 1
        elif kind == b"done":
            self.done, self.t_done = True, now
            if not self.events:  # finished before we connected: all of it arrives at once
                self.t_first = now
                if self.first_token is not None and not self.first_token.done():
                    self.first_token.set_result(None)
        elif kind == b"error":
            self.error = self.error or "error event"


class Target:
    """Where and as whom: the server(s) and one account's credentials."""

    def __init__(self, config: dict) -> None:
        self.host = "127.0.0.1"
        self.post_port = config["post_port"]
        self.stream_port = config.get("stream_port") or self.post_port
        self.csrf = config["csrf"]
        # The paced provider lays the tokens out as Markdown when the prompt says so.
        self.style = ", markdown" if config.get("answers") == "markdown" else ""
        self.pool = Pool(self.host, self.post_port)
        # Sends waiting for their response at once: past the server's start rate the ramp
        # slows down instead of queueing thousands of POSTs (and measuring only the queue).
        self.sending = asyncio.Semaphore(config.get("posts_in_flight", 1_000_000))

    def headers(self, session: str) -> dict[str, str]:
        return {"Cookie": f"sessionid={session}; csrftoken={self.csrf}"}

    async def run_stream(
        self, stream: Stream, slot: dict, *, deadline: float, until_first: bool = False
    ) -> None:
        """POST a message, then follow its SSE stream to `done` (or only to the first token)."""
        stream.t_post = time.monotonic()
        headers = {
            **self.headers(slot["session"]),
            "X-CSRFToken": self.csrf,
            "HX-Request": "true",
            "Content-Type": "application/x-www-form-urlencoded",
        }
        path = f"/c/{slot['conversation']}/messages"
        conn: HttpConnection | None = None
        try:
            async with asyncio.timeout(max(0.1, deadline - time.monotonic())):
                async with self.sending:
                    stream.t_post = time.monotonic()  # time to first token counts from here
                    if stream.end_at:
                        left = (stream.end_at - stream.t_post) / stream.interval
                        stream.tokens = max(stream.tokens, math.ceil(left))
                    form = urlencode(
                        {
                            "content": f"Benchmark, tokens={stream.tokens}{self.style}",
                            "client_id": str(uuid.uuid4()),
                        }
                    ).encode()
                    raw = request_bytes("POST", path, host=self.host, headers=headers, body=form)
                    response = await self.pool.fetch(raw)
                stream.t_posted = time.monotonic()
                match = _SSE_CONNECT.search(response.body)
                if response.status != 200 or match is None:
                    stream.error = f"POST {response.status}"
                    return
                url = match.group(1).decode()
                stream.message_id = url.rstrip("/").split("/")[-2]
                conn = await HttpConnection.open(self.host, self.stream_port)
                stream.first_token = asyncio.get_running_loop().create_future()
                status: list[int] = []
                raw = request_bytes(
                    "GET",
                    url,
                    host=self.host,
                    headers={**self.headers(slot["session"]), "Accept": "text/event-stream"},
                )
                finished = conn.request(raw, on_data=stream.feed, on_head=status.append)
                if until_first:
                    await asyncio.wait(
                        [finished, stream.first_token], return_when=asyncio.FIRST_COMPLETED
                    )
                    if not stream.first_token.done():
                        stream.error = f"stream {status[0] if status else '?'} without tokens"
                    return
                await finished
                if status and status[0] != 200:
                    stream.error = f"stream {status[0]}"
                elif not stream.done:
                    stream.error = stream.error or "stream ended without done"
        except TimeoutError:
            stream.error = "timeout"
        except (ConnectionError, OSError) as exc:
            stream.error = f"connection: {type(exc).__name__}"
        finally:
            if conn is not None:
                conn.close()


# -- sampling the server -------------------------------------------------------------------


class Sampler:
    """CPU seconds and RSS of the server process trees, and of this client, twice a second."""

    def __init__(self, pids: list[int]) -> None:
        self.procs = [psutil.Process(pid) for pid in pids]
        self.me = psutil.Process()
        self.samples: list[tuple[float, float, float, float]] = []  # t, cpu, rss, client cpu
        self.task: asyncio.Task | None = None

    def sample(self) -> tuple[float, float, float, float]:
        cpu = rss = 0.0
        for root in self.procs:
            for proc in [root, *root.children(recursive=True)]:
                try:
                    times = proc.cpu_times()
                    cpu += times.user + times.system
                    rss += proc.memory_info().rss
                except psutil.NoSuchProcess:
                    pass
        mine = self.me.cpu_times()
        row = (time.monotonic(), cpu, rss, mine.user + mine.system)
        self.samples.append(row)
        return row

    def start(self) -> None:
        async def loop() -> None:
            while True:
                self.sample()
                await asyncio.sleep(0.5)

        self.task = asyncio.get_running_loop().create_task(loop())

    def window(self, start: float, end: float) -> dict[str, float]:
        """CPU % of one core (server, client) and peak RSS between two instants."""
        inside = [s for s in self.samples if start <= s[0] <= end]
        if len(inside) < 2:
            before = [s for s in self.samples if s[0] <= start] or self.samples[:1]
            after = [s for s in self.samples if s[0] >= end] or self.samples[-1:]
            inside = [before[-1], after[0]]
        first, last = inside[0], inside[-1]
        span = max(1e-6, last[0] - first[0])
        return {
            "server_cpu_pct": 100 * (last[1] - first[1]) / span,
            "server_cpu_s": last[1] - first[1],
            "server_rss": max(s[2] for s in inside),
            "client_cpu_pct": 100 * (last[3] - first[3]) / span,
        }


# -- modes ---------------------------------------------------------------------------------


async def warm_up(target: Target, slots: list[dict], count: int) -> None:
    """A few short answers first: lazy imports, template compilation, connection set-up."""
    deadline = time.monotonic() + 20
    streams = [Stream(tokens=5) for _ in range(count)]
    await asyncio.gather(
        *(target.run_stream(s, slots[-1 - i], deadline=deadline) for i, s in enumerate(streams))
    )
    failed = [s.error for s in streams if s.error]
    if failed:
        raise SystemExit(f"warm-up failed: {failed[:3]}")


async def mode_streams(config: dict, target: Target, sampler: Sampler) -> dict:
    n, interval, plateau = config["streams"], config["interval"], config["plateau"]
    ramp = n / config["ramp_rate"]
    slots = config["slots"]
    await warm_up(target, slots, config.get("warmup", 5))
    await asyncio.sleep(1.0)
    idle = sampler.sample()
    start = time.monotonic() + 0.2
    # Every answer ends at start + ramp + plateau; one sent late (the server could not start
    # them that fast) still lasts `plateau`, so the step stays bounded and the overlap shrinks.
    end_at = start + ramp + plateau
    deadline = end_at + ramp / 2 + plateau + config.get("grace", 8.0)
    minimum = math.ceil(plateau / interval)
    streams = [Stream(tokens=minimum, end_at=end_at, interval=interval) for _ in range(n)]

    async def one(i: int) -> None:
        await asyncio.sleep(max(0.0, start + i * ramp / n - time.monotonic()))
        await target.run_stream(streams[i], slots[i], deadline=deadline)

    await asyncio.gather(*(one(i) for i in range(n)))
    end = time.monotonic()
    result = stream_figures(streams, interval=interval, started=start)
    window = sampler.window(result.pop("plateau_start_t"), result.pop("plateau_end_t"))
    result.update(window)
    result.update(
        streams=n,
        tokens_per_answer=round(sum(s.tokens for s in streams) / n),
        ramp_s=ramp,
        wall_s=end - start,
        server_rss_idle=idle[2],
        bytes_per_stream=(window["server_rss"] - idle[2]) / n,
        message_ids=[s.message_id for s in streams if s.message_id],
    )
    return result


def stream_figures(streams: list[Stream], *, interval: float, started: float) -> dict:
    ok = [s for s in streams if s.t_first]
    errors: dict[str, int] = {}
    for s in streams:
        if s.error:
            errors[s.error] = errors.get(s.error, 0) + 1
    expected = sum(s.tokens for s in streams)
    received = sum(s.next_token for s in streams)  # contiguous from 0 (gaps are counted)
    events = sum(s.token_events for s in streams)
    ttft = np.array([s.t_first - s.t_post for s in ok]) if ok else np.array([math.inf])
    if ok:
        plateau_start = max(s.t_first for s in ok)
        plateau_end = min(s.t_first + (s.tokens - 1) * interval for s in ok)
    else:
        plateau_start = plateau_end = started
    if plateau_end - plateau_start < 1.0:  # no real plateau (overload): take every token
        plateau_start, plateau_end = -math.inf, math.inf
    late_parts: list[np.ndarray] = []
    clock_parts: list[np.ndarray] = []  # against the upstream's own clock (from the POST)
    due_in_plateau = 0
    finite = math.isfinite(plateau_start)
    for s in ok:
        lo, hi = 0, s.tokens - 1
        if finite:
            lo = max(lo, math.ceil((plateau_start - s.t_first) / interval))
            hi = min(hi, math.floor((plateau_end - s.t_first) / interval))
        if hi < lo:
            continue
        due_in_plateau += hi - lo + 1
        if not s.events:  # all of it came in the final frame: none delivered as a token
            continue
        arr = np.array(s.events, dtype=np.float64)
        first = arr[:, 1].astype(np.int64)
        counts = arr[:, 2].astype(np.int64) - first + 1
        starts = np.cumsum(counts) - counts
        arrival = np.repeat(arr[:, 0], counts)
        index = np.repeat(first - starts, counts) + np.arange(int(counts.sum()))
        mask = (index >= lo) & (index <= hi)
        late_parts.append(np.maximum(0.0, arrival[mask] - s.t_first - index[mask] * interval))
        clock_parts.append(np.maximum(0.0, arrival[mask] - s.t_posted - index[mask] * interval))
    late = np.concatenate(late_parts) if late_parts else np.array([math.inf])
    clock = np.concatenate(clock_parts) if clock_parts else np.array([math.inf])
    on_time = int((clock <= ON_TIME_SECONDS).sum())
    return {
        "delivered": received / expected if expected else 0.0,
        "on_time": on_time / due_in_plateau if due_in_plateau else 0.0,
        "ttft_p50": float(np.percentile(ttft, 50)),
        "ttft_p99": float(np.percentile(ttft, 99)),
        "late_p50": float(np.percentile(late, 50)),
        "late_p99": float(np.percentile(late, 99)),
        "late_max": float(late.max()),
        "clock_p50": float(np.percentile(clock, 50)),
        "clock_p99": float(np.percentile(clock, 99)),
        "clock_max": float(clock.max()),
        "events_per_token": events / received if received else 0.0,
        "errors": sum(errors.values()),
        "error_kinds": errors,
        "gaps": sum(s.gaps for s in streams),
        "plateau_s": (plateau_end - plateau_start) if finite else 0.0,
        "plateau_start_t": plateau_start if finite else started,
        "plateau_end_t": plateau_end if finite else time.monotonic(),
        "late_hist": _histogram(clock),
    }


def _histogram(late: np.ndarray) -> dict[str, int]:
    """Token counts by lateness band, for reading the tail."""
    edges = [0.0, 0.05, 0.1, 0.15, 0.25, 0.5, 1.0, 2.0, math.inf]
    counts, _ = np.histogram(late[np.isfinite(late)], bins=edges)
    return {f"<={edge:g}s": int(c) for edge, c in zip(edges[1:], counts, strict=True)}


async def mode_starts(config: dict, target: Target, sampler: Sampler) -> dict:
    """Open-loop sends at rising rates; each: POST, stream, first token (then read to done)."""
    slots = config["slots"]
    await warm_up(target, slots, 5)
    steps = []
    cursor = 0
    for rate in config["rates"]:
        duration = config["duration"]
        count = max(1, int(rate * duration))
        start = time.monotonic() + 0.1
        deadline = start + duration + 10
        streams = [Stream(tokens=config.get("tokens", 10)) for _ in range(count)]

        async def one(i: int, stream: Stream, slot: dict, start=start, rate=rate, dl=deadline):
            await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
            await target.run_stream(stream, slot, deadline=dl)

        before = sampler.sample()
        await asyncio.gather(
            *(one(i, s, slots[(cursor + i) % len(slots)]) for i, s in enumerate(streams))
        )
        after = sampler.sample()  # every send of the step and its whole answer, no more
        cursor += count
        end = time.monotonic()
        ok = [s for s in streams if s.t_first and not s.error]
        ttft = np.array([s.t_first - s.t_post for s in ok]) if ok else np.array([math.inf])
        window = sampler.window(start, end)
        last_first = max((s.t_first for s in ok), default=end)
        kinds: dict[str, int] = {}
        for s in streams:
            if s.error:
                kinds[s.error] = kinds.get(s.error, 0) + 1
        step = {
            "rate": rate,
            "sent": count,
            "ok": len(ok),
            "errors": count - len(ok),
            "error_kinds": kinds,
            "achieved_per_s": len(ok) / max(1e-6, last_first - start),
            "ttft_p50": float(np.percentile(ttft, 50)),
            "ttft_p99": float(np.percentile(ttft, 99)) if len(ok) == count else math.inf,
            # Not the sampled window, whose 0.5 s edges made it vary by 20% between runs.
            "cpu_ms_per_send": 1000 * (after[1] - before[1]) / max(1, len(ok)),
            **window,
        }
        steps.append(step)
        print(json.dumps({k: step[k] for k in ("rate", "ok", "ttft_p50", "ttft_p99")}), flush=True)
        if step["ttft_p99"] > config.get("stop_p99", 1.0):
            break
        await asyncio.sleep(1.0)
    return {"steps": steps}


async def mode_pages(config: dict, target: Target, sampler: Sampler) -> dict:
    heavy = config["heavy"]
    headers = target.headers(heavy["session"])
    htmx = {**headers, "HX-Request": "true"}
    conversation = heavy["conversation"]
    pages = {
        "long conversation, first page": (f"/c/{conversation}/", headers),
        "long conversation, load earlier (htmx)": (
            f"/c/{conversation}/?before={heavy['messages'] - 100}",
            htmx,
        ),
        "conversation list, first page": ("/", headers),
        "conversation list, page 100 (htmx)": ("/?page=100", htmx),
    }
    results = {}
    for name, (path, page_headers) in pages.items():
        raw = request_bytes("GET", path, host=target.host, headers=page_headers)
        times, sizes = [], []
        for _ in range(3):  # warm
            await target.pool.fetch(raw)
        before = sampler.sample()
        for _ in range(config.get("repeat", 30)):
            t0 = time.monotonic()
            response = await target.pool.fetch(raw)
            times.append(time.monotonic() - t0)
            sizes.append(len(response.body))
            if response.status != 200:
                raise SystemExit(f"{name}: HTTP {response.status}")
        after = sampler.sample()
        results[name] = {
            "path": path,
            "p50_ms": 1000 * float(np.percentile(times, 50)),
            "p99_ms": 1000 * float(np.percentile(times, 99)),
            "cpu_ms": 1000 * (after[1] - before[1]) / len(times),
            "bytes": int(np.mean(sizes)),
            "articles": response.body.count(b"<article"),
        }
    return {"pages": results}


async def main_async(config: dict) -> dict:
    target = Target(config)
    sampler = Sampler(config["server_pids"])
    sampler.start()
    try:
        mode = {"streams": mode_streams, "starts": mode_starts, "pages": mode_pages}
        return await mode[config["mode"]](config, target, sampler)
    finally:
        target.pool.close()
        if sampler.task is not None:
            sampler.task.cancel()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("config")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    with open(args.config) as f:
        config = json.load(f)
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # pragma: no cover
        runner = asyncio.run
    result = runner(main_async(config))
    with open(args.out, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()
