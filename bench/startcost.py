"""CPU per chat start, measured in one process: a figure steady enough to compare two versions.

    .venv/bin/python -m bench.startcost                 # 3 rounds of 300 starts, about 1 minute
    .venv/bin/python -m bench.startcost --rounds 6      # more rounds for a closer median
    .venv/bin/python -m bench.startcost --profile out   # py-spy stacks, out-1.folded, ...

`python -m bench` measures starts over HTTP against a server pinned to a core, and its figures
move by 20% or more between runs on a noisy host. Here the real ASGI app runs in this process
(PostgreSQL, Redis, sessions, the paced provider) and a few concurrent clients call it
directly: each start is the browser's htmx POST, then its signed stream URL followed to
`done`, so the send, the generation, its final write and the final bubble all count; only
the HTTP server's parsing does not. The figure is this process's CPU time over the starts
(every thread). Compare two versions by taking rounds of each in turn.
"""

from __future__ import annotations

import argparse
import asyncio
import html
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlencode

from bench.run import (
    HOST,
    ROOT,
    add_service_arguments,
    app_env,
    prepare_database,
    py_spy,
    python_speed,
)

TOKENS = 10


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--starts", type=int, default=300, help="per round")
    parser.add_argument("--concurrency", type=int, default=16)
    add_service_arguments(parser, database="bench_startcost", env="BENCH_STARTCOST_DATABASE_URL")
    # 50 tokens/s, as `python -m bench`: each stream is followed while it is live, so its
    # bubble is the one its generator rendered (a faster answer, done before its reader came,
    # would be read and rendered again, which no browser does).
    parser.add_argument("--interval", type=float, default=0.02, help="seconds per token")
    parser.add_argument(
        "--profile", metavar="PREFIX", help="record each round with py-spy: PREFIX-N.folded"
    )
    args = parser.parse_args()

    env = app_env(args)
    with tempfile.TemporaryDirectory(prefix="startcost-") as work:
        prepare_database(args, env, Path(work), slots=args.concurrency * 25, heavy=False)
        seed_path = Path(work) / "seed.json"
        figures = []
        print(f"startcost: Python loop {python_speed()} ms (host speed)", flush=True)
        for round_ in range(args.rounds):
            # A fresh process per round: imports and warm-up are not counted, nor carried over.
            command = [sys.executable, "-m", "bench.startcost", "--measure", str(seed_path)]
            if args.profile:  # sampling costs CPU too: compare profiled rounds only to each other
                command = py_spy(f"{args.profile}-{round_ + 1}.folded", "--", *command)
            done = subprocess.run(
                command,
                cwd=ROOT,
                env={
                    **env,
                    "STARTCOST_STARTS": str(args.starts),
                    "STARTCOST_C": str(args.concurrency),
                },
                capture_output=True,
                text=True,
            )
            if done.returncode:
                raise SystemExit(f"round {round_ + 1} failed:\n{done.stdout}{done.stderr}")
            lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
            result = json.loads(lines[-1])  # py-spy writes lines of its own
            figures.append(result["cpu_ms"])
            print(
                f"round {round_ + 1}: {result['cpu_ms']:.2f} ms CPU per start "
                f"({result['per_second']:.1f} starts/s, {args.concurrency} at a time)",
                flush=True,
            )
    print(f"median {statistics.median(figures):.2f} ms CPU per start over {args.rounds} rounds")


# -- the measuring process ------------------------------------------------------------------


async def _call(app, method: str, path: str, *, query: bytes = b"", body: bytes = b"", headers=()):
    """One request through the ASGI app; returns (status, body)."""
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
        "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "",
        "query_string": query, "headers": [(b"host", HOST.encode()), *headers],
        "client": (HOST, 50000), "server": (HOST, 8000),
    }  # fmt: skip
    sent_body = False
    finished = asyncio.Event()
    messages: list[dict] = []

    async def receive() -> dict:
        nonlocal sent_body
        if not sent_body:
            sent_body = True
            return {"type": "http.request", "body": body, "more_body": False}
        await finished.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        messages.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body"):
            finished.set()

    await app(scope, receive, send)
    return messages[0]["status"], b"".join(m.get("body", b"") for m in messages[1:]).decode()


async def _start(app, seed: dict, slot: dict, session_cookie: str, csrf_cookie: str) -> None:
    """What the browser does: the htmx POST, then the bubble's stream to `done`."""
    cookie = f"{session_cookie}={slot['session']}; {csrf_cookie}={seed['csrf']}".encode()
    form = {"content": f"tokens={TOKENS} hello", "client_id": str(uuid.uuid4())}
    status, page = await _call(
        app,
        "POST",
        f"/c/{slot['conversation']}/messages",
        body=urlencode(form).encode(),
        headers=[
            (b"cookie", cookie),
            (b"x-csrftoken", seed["csrf"].encode()),
            (b"hx-request", b"true"),
            (b"content-type", b"application/x-www-form-urlencoded"),
            (b"origin", f"http://{HOST}".encode()),
        ],
    )
    if status != 200:
        raise SystemExit(f"send failed: {status} {page[:300]}")
    path, _, query = html.unescape(re.search(r'sse-connect="([^"]+)"', page)[1]).partition("?")
    status, events = await _call(
        app, "GET", path, query=query.encode(), headers=[(b"cookie", cookie)]
    )
    if status != 200 or "event: done" not in events:
        raise SystemExit(f"stream failed: {status} {events[-300:]}")


async def _measure(seed: dict) -> dict:
    from django.conf import settings

    from chatsite.asgi import application

    slots = seed["slots"]
    starts, concurrency = int(os.environ["STARTCOST_STARTS"]), int(os.environ["STARTCOST_C"])
    names = (settings.SESSION_COOKIE_NAME, settings.CSRF_COOKIE_NAME)

    async def client(index: int, count: int) -> None:
        for n in range(count):  # each client keeps to its own users: the live-answer limit
            slot = slots[(index + n * concurrency) % len(slots)]
            await _start(application, seed, slot, *names)

    await asyncio.gather(*(client(i, 2) for i in range(concurrency)))  # warm-up
    await asyncio.sleep(0.5)
    per_client = starts // concurrency
    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(client(i, per_client) for i in range(concurrency)))
    await asyncio.sleep(0.3)  # the last final writes
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    total = per_client * concurrency
    return {"cpu_ms": 1000 * cpu / total, "per_second": total / wall}


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--measure":
        import uvloop

        print(json.dumps(uvloop.run(_measure(json.loads(Path(sys.argv[2]).read_text())))))
    else:
        main()
