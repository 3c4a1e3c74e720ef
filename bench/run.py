"""How many live chat streams one process holds, and how fast it starts them.

    .venv/bin/python -m bench            # the full run, about 15 minutes
    .venv/bin/python -m bench --quick    # a smoke run, under 2 minutes

Starts the real app (PostgreSQL, Redis, sessions, the paced provider) pinned to core 0 under
each server, and a bare ASGI SSE server (bench/bare.py) for comparison; the load client
(bench/client.py) runs in its own process pinned to core 1. Loopback only. Each step runs a
fixed time. Writes a table to stdout, and JSON + a PNG plot to bench/results/.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
HOST = "127.0.0.1"  # loopback only, always
SERVER_CPU, CLIENT_CPU = 0, 1


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run, under 2 minutes")
    parser.add_argument("--servers", default="daphne,uvicorn", help="daphne,uvicorn,granian")
    parser.add_argument("--steps", default="100,500,1000,2000", help="concurrent streams")
    parser.add_argument(
        "--modes", default="streams,starts,pages,relay", help="streams,starts,pages,relay"
    )
    parser.add_argument(
        "--bare-servers", default="uvicorn", help="servers to run the bare baseline under"
    )
    parser.add_argument("--no-bare", action="store_true", help="skip the bare ASGI baseline")
    parser.add_argument(
        "--answers",
        default="plain",
        help="plain,markdown: the app's answers as plain words, as Markdown-heavy text, or both "
        "in turn at each step (the same numbered tokens)",
    )
    parser.add_argument("--posts-in-flight", type=int, default=32, help="ramp back-pressure")
    parser.add_argument("--interval", type=float, default=0.02, help="seconds per token (50/s)")
    parser.add_argument("--plateau", type=float, default=5.0, help="seconds all N are open")
    # Well under the start rate (the starts mode measures that), so a step measures holding
    # N streams rather than starting them: at 60/s starts alone took the whole core.
    parser.add_argument("--ramp-rate", type=float, default=20.0, help="stream starts per s")
    parser.add_argument(
        "--bare-ramp-rate", type=float, default=120.0, help="the same for the bare server"
    )
    parser.add_argument(
        "--start-rates", default="10,20,30,40,50,60,80,100,150,200", help="sends per s"
    )
    parser.add_argument("--start-seconds", type=float, default=4.0)
    parser.add_argument("--relay-streams", type=int, default=1000)
    parser.add_argument("--relay-server", default="uvicorn")
    add_service_arguments(parser, database="bench_streams", env="BENCH_DATABASE_URL")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"))
    parser.add_argument("--label", default="", help="a note stored with the results")
    parser.add_argument(
        "--profile", action="store_true", help="record each server with py-spy (folded stacks)"
    )
    args = parser.parse_args()
    if args.quick:
        args.steps = "100,500"
        args.plateau = 3.0
        args.ramp_rate = 100.0
        args.bare_ramp_rate = 200.0
        args.start_rates = "20,40,60"
        args.start_seconds = 2.0
        args.relay_streams = 200
        if args.modes == parser.get_default("modes"):
            args.modes = "streams,starts"
    return args


# -- processes ---------------------------------------------------------------------------


def add_service_arguments(parser: argparse.ArgumentParser, *, database: str, env: str) -> None:
    """Where the app's PostgreSQL database (dropped and made anew) and Redis are."""
    parser.add_argument("--no-redis", action="store_true", help="no REDIS_URL for the app")
    parser.add_argument(
        "--database-url",
        default=os.environ.get(env, f"postgres://postgres@{HOST}:5432/{database}"),
    )
    parser.add_argument(
        "--redis-url", default=os.environ.get("BENCH_REDIS_URL", f"redis://{HOST}:6379/0")
    )


def py_spy(out: Path | str, *target: str) -> list[str]:
    """py-spy recording `target` (--pid N, or -- and a command) as folded stacks, sampling
    only threads that hold the GIL (CPU, not waits)."""
    return [str(BIN / "py-spy"), "record", "--format", "raw", "--rate", "200", "--gil",
            "-o", str(out), *target]  # fmt: skip


def python_speed() -> float:
    """ms for a fixed pure-Python loop, best of 5: hosts differ (the same code ran 1.6x slower
    on one day's host than the day before's), so runs compare only beside this figure."""
    best = math.inf
    for _ in range(5):
        started, total = time.process_time(), 0
        for i in range(2_000_000):
            total += i
        best = min(best, time.process_time() - started)
    return round(1000 * best, 1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def pinned(cpu: int):
    def pin() -> None:
        os.sched_setaffinity(0, {cpu})
        os.setpgrp()  # our own process group: stopping it never touches anything else

    return pin


def server_command(kind: str, app: str, port: int) -> list[str]:
    if kind == "daphne":
        # An explicit backlog: Twisted's default of 50 would drop connections in a burst.
        endpoint = f"tcp:port={port}:interface={HOST}:backlog=4096"
        return [str(BIN / "daphne"), "-e", endpoint, app]
    if kind == "uvicorn":
        return [
            str(BIN / "uvicorn"), app, "--host", HOST, "--port", str(port),
            "--loop", "uvloop", "--http", "httptools", "--lifespan", "off",
            "--no-access-log", "--log-level", "warning", "--backlog", "4096",
        ]  # fmt: skip
    if kind == "granian":
        return [
            str(BIN / "granian"), "--interface", "asginl", "--host", HOST, "--port", str(port),
            "--workers", "1", "--loop", "uvloop", "--no-ws", "--log-level", "warning",
            "--backlog", "4096", "--backpressure", "20000", app,
        ]  # fmt: skip
    raise SystemExit(f"unknown server {kind}")


class Server:
    profile = False  # --profile: py-spy records each server while it runs

    def __init__(self, kind: str, app: str, env: dict[str, str], log_dir: Path, name: str):
        self.kind, self.port = kind, free_port()
        self.profile_path = log_dir / f"{name}.folded"
        self.profiler: subprocess.Popen | None = None
        self.log = open(log_dir / f"{name}.log", "ab")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(
            server_command(kind, app, self.port),
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            preexec_fn=pinned(SERVER_CPU),
        )

    def wait_ready(self, path: str, timeout: float = 40.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(
                    f"{self.kind} exited with {self.proc.returncode}: see {self.log.name}"
                )
            try:
                with urllib.request.urlopen(f"http://{HOST}:{self.port}{path}", timeout=5) as r:
                    if r.status == 200:
                        self._start_profiler()
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise SystemExit(f"{self.kind} not ready after {timeout}s: see {self.log.name}")

    def _start_profiler(self) -> None:
        if self.profile:
            self.profiler = subprocess.Popen(
                py_spy(self.profile_path, "--pid", str(self.proc.pid), "--nonblocking"),
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=pinned(CLIENT_CPU),
            )  # fmt: skip

    def stop(self) -> None:
        if self.profiler is not None:
            self.profiler.send_signal(signal.SIGINT)
            self.profiler.wait(30)
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


@contextmanager
def servers(specs: list[tuple[str, str, dict[str, str], str]], log_dir: Path, ready: str):
    started: list[Server] = []
    try:
        for kind, app, env, name in specs:
            started.append(Server(kind, app, env, log_dir, name))
        for server in started:
            server.wait_ready(ready)
        yield started
    finally:
        for server in started:
            server.stop()


def client_config(mode: str, seed: dict, started: list[Server], **extra) -> dict:
    """What the load client needs: where to send (the first server), whom to watch, as whom."""
    return {
        "mode": mode,
        "post_port": started[0].port,
        "server_pids": [server.proc.pid for server in started],
        "csrf": seed["csrf"],
        **extra,
    }


def run_client(config: dict, work: Path, name: str, timeout: float) -> dict:
    config_path, out_path = work / f"{name}.config.json", work / f"{name}.result.json"
    config_path.write_text(json.dumps(config))
    proc = subprocess.run(
        [sys.executable, "-m", "bench.client", str(config_path), "--out", str(out_path)],
        cwd=ROOT,
        preexec_fn=pinned(CLIENT_CPU),
        timeout=timeout,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise SystemExit(f"client failed ({name}):\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return json.loads(out_path.read_text())


# -- the database --------------------------------------------------------------------------


def admin_url(database_url: str) -> tuple[str, str]:
    base, _, name = database_url.rpartition("/")
    return f"{base}/postgres", name


def recreate_database(database_url: str, env: dict[str, str]) -> None:
    """Drop the benchmark's database, make it anew and migrate it (`env`: the app's)."""
    admin, name = admin_url(database_url)
    if not name.startswith("bench"):
        raise SystemExit(f"refusing to recreate database {name!r}: its name must start with bench")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    manage = [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"]
    subprocess.run(manage, cwd=ROOT, env=env, check=True)


def prepare_database(
    args, env: dict[str, str], work: Path, slots: int, *, heavy: bool = True
) -> dict:
    recreate_database(args.database_url, env)
    seed_path = work / "seed.json"
    subprocess.run(
        [
            *(sys.executable, "-m", "bench.seed", "--slots", str(slots), "--out", str(seed_path)),
            # Without the heavy account's pages (bench.startcost): one of each is enough.
            *(() if heavy else ("--heavy-conversations", "1", "--heavy-messages", "1")),
        ],
        cwd=ROOT,
        env=env,
        check=True,
    )
    return json.loads(seed_path.read_text())


def reset_live(args) -> None:
    """Answers a stopped server left live would count against the per-user stream limit."""
    with psycopg.connect(args.database_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE conversations_message SET status = 'interrupted' "
            "WHERE status IN ('pending', 'streaming')"
        )


def writes_for(args, message_ids: list[str]) -> dict:
    """Rows written per assistant message, as the database logged them (bench/seed.py)."""
    if not message_ids:
        return {}
    with psycopg.connect(args.database_url) as conn:
        rows = conn.execute(
            "SELECT count(*) FILTER (WHERE op = 'INSERT'), count(*) FILTER (WHERE op = 'UPDATE') "
            "FROM bench_writes WHERE tbl = 'conversations_message' AND row_id = ANY(%s::uuid[]) "
            "GROUP BY row_id",
            (message_ids,),
        ).fetchall()
        statuses = dict(
            conn.execute(
                "SELECT status, count(*) FROM conversations_message "
                "WHERE id = ANY(%s::uuid[]) GROUP BY status",
                (message_ids,),
            ).fetchall()
        )
    per_message = [ins + upd for ins, upd in rows]
    return {
        "writes_per_answer": sum(per_message) / len(per_message) if per_message else 0.0,
        "writes_per_answer_max": max(per_message, default=0),
        "updates_per_answer": sum(upd for _, upd in rows) / len(rows) if rows else 0.0,
        "final_status": statuses,
    }


# -- the runs ------------------------------------------------------------------------------


def app_env(args) -> dict[str, str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "chatsite.settings",
        "DJANGO_DEBUG": "0",
        "DATABASE_URL": args.database_url,
        "REDIS_PREFIX": "bench",
        "CHAT_PROVIDER": "paced",
        "DEMO_TOKEN_INTERVAL": str(args.interval),
        "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
        # The limits are still checked on every send (same cost); they just never bite.
        "CHAT_MESSAGES_PER_MINUTE": "1000",
        "CHAT_CONCURRENT_STREAMS": "10",
    }
    env.pop("REDIS_URL", None)
    if not args.no_redis:
        env["REDIS_URL"] = args.redis_url
    return env


def stream_step(args, seed, work, server_kind, target, n, env, answers="plain") -> dict:
    app = "chatsite.asgi:application" if target == "app" else "bench.bare:app"
    ready = "/healthz" if target == "app" else "/"
    name = f"streams-{target}-{answers}-{server_kind}-{n}"
    if target == "app":
        reset_live(args)
    load_before = os.getloadavg()
    with servers([(server_kind, app, env, name)], work, ready) as started:
        config = client_config(
            "streams",
            seed,
            started,
            slots=seed["slots"],
            streams=n,
            interval=args.interval,
            plateau=args.plateau,
            ramp_rate=args.ramp_rate if target == "app" else args.bare_ramp_rate,
            posts_in_flight=args.posts_in_flight,
            answers=answers,
        )
        budget = 1.5 * n / args.ramp_rate + args.plateau + 60
        result = run_client(config, work, name, timeout=budget + 30)
    ids = result.pop("message_ids", [])
    if target == "app":
        result.update(writes_for(args, ids))
    result.update(
        server=server_kind,
        target=target if answers == "plain" else f"{target} {answers}",
        answers=answers,
        loadavg_before=load_before[0],
    )
    result["loadavg_after"] = os.getloadavg()[0]
    print(format_row(result), flush=True)
    return result


def relay_step(args, seed, work, env) -> dict:
    n, kind = args.relay_streams, args.relay_server
    name = f"relay-{kind}-{n}"
    reset_live(args)
    specs = [(kind, "chatsite.asgi:application", env, f"{name}-{side}") for side in ("gen", "rel")]
    with servers(specs, work, "/healthz") as started:  # POST to the first, stream from the second
        config = client_config(
            "streams",
            seed,
            started,
            stream_port=started[1].port,
            slots=seed["slots"],
            streams=n,
            interval=args.interval,
            plateau=args.plateau,
            ramp_rate=args.ramp_rate,
            posts_in_flight=args.posts_in_flight,
        )
        result = run_client(
            config, work, name, timeout=1.5 * n / args.ramp_rate + args.plateau + 90
        )
    result.update(writes_for(args, result.pop("message_ids", [])))
    result.update(server=f"{kind} x2 via Redis", target="relay", loadavg_before=os.getloadavg()[0])
    print(format_row(result), flush=True)
    return result


def starts_run(args, seed, work, kind, env) -> dict:
    reset_live(args)
    name = f"starts-{kind}"
    with servers([(kind, "chatsite.asgi:application", env, name)], work, "/healthz") as started:
        config = client_config(
            "starts",
            seed,
            started,
            slots=seed["slots"],
            rates=[float(r) for r in args.start_rates.split(",")],
            duration=args.start_seconds,
        )
        rates = len(config["rates"])
        result = run_client(config, work, name, timeout=rates * (args.start_seconds + 15) + 30)
    steps = result["steps"]
    good = [s for s in steps if s["ttft_p99"] < 0.5 and s["errors"] == 0]
    best = max(good, key=lambda s: s["achieved_per_s"], default=None)
    summary = {
        "server": kind,
        "steps": steps,
        "max_starts_per_s_p99_under_500ms": best["achieved_per_s"] if best else 0.0,
        "cpu_ms_per_send": best["cpu_ms_per_send"] if best else math.nan,
    }
    print(
        f"starts {kind}: {summary['max_starts_per_s_p99_under_500ms']:.0f}/s with TTFT p99"
        f" < 500 ms, {summary['cpu_ms_per_send']:.1f} ms CPU per send",
        flush=True,
    )
    for step in steps:
        print(
            f"  rate {step['rate']:>5.0f}/s  achieved {step['achieved_per_s']:6.1f}/s  "
            f"TTFT p50 {ms(step['ttft_p50'])} p99 {ms(step['ttft_p99'])}  errors {step['errors']}"
            f"  CPU {step['server_cpu_pct']:.0f}%  {step['cpu_ms_per_send']:.1f} ms/send",
            flush=True,
        )
    return summary


def pages_run(args, seed, work, kind, env) -> dict:
    name = f"pages-{kind}"
    with servers([(kind, "chatsite.asgi:application", env, name)], work, "/healthz") as started:
        config = client_config("pages", seed, started, heavy=seed["heavy"], repeat=30)
        result = run_client(config, work, name, timeout=120)
    for page, figures in result["pages"].items():
        print(
            f"  {page:<42} p50 {figures['p50_ms']:6.1f} ms  p99 {figures['p99_ms']:6.1f} ms  "
            f"CPU {figures['cpu_ms']:5.1f} ms  {figures['articles']} bubbles  "
            f"{figures['bytes'] // 1024} KiB",
            flush=True,
        )
    return result["pages"]


# -- output --------------------------------------------------------------------------------


def ms(seconds: float) -> str:
    return "   inf" if not math.isfinite(seconds) else f"{1000 * seconds:6.0f}"


HEADER = (
    f"{'target':<22} {'N':>5} {'deliv':>6} {'ontime':>6} {'ttft50':>6} {'ttft99':>6} "
    f"{'late50':>6} {'late99':>6} {'lateMx':>6} {'clk99':>6} {'ev/tok':>6} {'err':>4} {'cut':>4} "
    f"{'cpu%':>5} "
    f"{'rssMB':>6} {'KB/str':>6} {'wr/msg':>6}"
)


def format_row(r: dict) -> str:
    name = f"{r['target']} {r['server']}"
    writes = r.get("writes_per_answer")
    # "cut": still streaming when the step's time was up (the server started it too late).
    cut = r.get("error_kinds", {}).get("timeout", 0)
    return (
        f"{name:<22} {r['streams']:>5} {100 * r['delivered']:>5.1f}% {100 * r['on_time']:>5.1f}% "
        f"{ms(r['ttft_p50'])} {ms(r['ttft_p99'])} {ms(r['late_p50'])} {ms(r['late_p99'])} "
        f"{ms(r['late_max'])} {ms(r.get('clock_p99', math.nan))} {r['events_per_token']:>6.2f} "
        f"{r['errors'] - cut:>4} {cut:>4} "
        f"{r['server_cpu_pct']:>5.0f} {r['server_rss'] / 2**20:>6.0f} "
        f"{r['bytes_per_stream'] / 1024:>6.1f} {'' if writes is None else f'{writes:.1f}':>6}"
    )


RATIO_KEYS = [
    ("delivered", "deliv"), ("on_time", "ontime"), ("ttft_p50", "ttft50"),
    ("ttft_p99", "ttft99"), ("late_p50", "late50"), ("late_p99", "late99"),
    ("late_max", "lateMx"), ("clock_p99", "clk99"), ("events_per_token", "ev/tok"),
    ("server_cpu_pct", "cpu%"),
    ("server_rss", "rssMB"), ("bytes_per_stream", "KB/str"),
]  # fmt: skip


def ratio_row(app: dict, bare: dict) -> str:
    parts = []
    for key, label in RATIO_KEYS:
        a, b = app.get(key, math.nan), bare.get(key, math.nan)
        parts.append(f"{label} {a / b:.2f}x" if b and math.isfinite(b) else f"{label} -")
    return "    vs bare: " + "  ".join(parts)


def table(results: list[dict]) -> str:
    """Each app row, then its ratios to the bare server (under the same server if run); a
    Markdown row's ratios to the plain answers of the same step."""
    lines = [HEADER]
    bare = {(r["server"], r["streams"]): r for r in results if r["target"] == "bare"}
    plain = {(r["server"], r["streams"]): r for r in results if r["target"] == "app"}
    for r in results:
        lines.append(format_row(r))
        if r.get("answers", "plain") != "plain" and (
            base := plain.get((r["server"], r["streams"]))
        ):
            lines.append(ratio_row(r, base).replace("vs bare", "vs plain"))
        if r["target"] != "app":
            continue
        base = bare.get((r["server"], r["streams"]))
        base = base or next((b for (_, n), b in bare.items() if n == r["streams"]), None)
        if base is not None:
            lines.append(ratio_row(r, base).replace("vs bare", f"vs bare {base['server']}"))
    return "\n".join(lines)


def plot(results: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    series: dict[str, list[dict]] = {}
    for r in results:
        series.setdefault(f"{r['target']} {r['server']}", []).append(r)
    for index, (name, rows) in enumerate(sorted(series.items())):
        rows.sort(key=lambda r: r["streams"])
        xs = [r["streams"] for r in rows]
        color = f"C{index}"
        for key, style in (("clock_p50", ":"), ("clock_p99", "-"), ("late_p99", "--")):
            ys = [max(1.0, 1000 * r[key]) if math.isfinite(r[key]) else None for r in rows]
            label = f"{name} {key.replace('clock_', 'clock ').replace('late_', 'first-token ')}"
            ax.plot(xs, ys, style, color=color, marker="o", label=label)
    ax.axhline(100, color="grey", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("concurrent streams (one core)")
    ax.set_ylabel("token lateness, ms")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, ncol=2)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)


# -- main ----------------------------------------------------------------------------------


def main() -> None:
    args = parse_args()
    started = time.monotonic()
    kinds = [k for k in args.servers.split(",") if k]
    steps = [int(n) for n in args.steps.split(",") if n]
    modes = set(args.modes.split(","))
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"bench-{stamp}-", dir=out))
    env = app_env(args)
    Server.profile = args.profile
    machine = {
        "cpus": os.cpu_count(),
        "loadavg_start": os.getloadavg(),
        "python": sys.version.split()[0],
        "python_loop_ms": python_speed(),
        "redis": not args.no_redis,
        "label": args.label,
    }
    print(
        f"bench: load average {machine['loadavg_start']}, Python loop "
        f"{machine['python_loop_ms']} ms (host speed), logs in {work}",
        flush=True,
    )
    slots = max([*steps, args.relay_streams if "relay" in modes else 0, 100])
    seed = prepare_database(args, env, work, slots)
    print(f"bench: seeded {len(seed['slots'])} users and conversations", flush=True)

    results: dict = {"machine": machine, "args": vars(args), "streams": [], "starts": []}
    if "streams" in modes:
        print(HEADER, flush=True)
        bare_kinds = [] if args.no_bare else args.bare_servers.split(",")
        for kind in kinds:
            for target in ["app"] + (["bare"] if kind in bare_kinds else []):
                for n in steps:
                    for answers in args.answers.split(",") if target == "app" else ["plain"]:
                        results["streams"].append(
                            stream_step(args, seed, work, kind, target, n, env, answers)
                        )
    if "relay" in modes:
        if args.no_redis or not (ROOT / "conversations" / "streaming" / "redis_relay.py").exists():
            results["relay"] = "skipped: needs REDIS_URL and conversations/streaming/redis_relay.py"
            print(f"relay: {results['relay']}", flush=True)
        else:
            results["relay"] = relay_step(args, seed, work, env)
    if "starts" in modes:
        for kind in kinds:
            results["starts"].append(starts_run(args, seed, work, kind, env))
    if "pages" in modes:
        print("pages (sequential, loopback round trip):", flush=True)
        results["pages"] = pages_run(args, seed, work, kinds[-1], env)

    machine["loadavg_end"] = os.getloadavg()
    machine["python_loop_ms_end"] = python_speed()  # the host may have changed speed meanwhile
    results["elapsed_s"] = time.monotonic() - started
    json_path = out / f"bench-{stamp}.json"
    json_path.write_text(json.dumps(results, indent=1))
    (out / "latest.json").write_text(json.dumps(results, indent=1))
    print()
    print(table(results["streams"]))
    if results["streams"]:
        title = (
            f"{stamp}  {1 / args.interval:.0f} tokens/s per stream, load "
            f"{machine['loadavg_start'][0]:.2f}/{machine['loadavg_end'][0]:.2f}"
        )
        plot(results["streams"], out / f"bench-{stamp}.png", title)
        plot(results["streams"], out / "latest.png", title)
    print(
        f"\nbench: {results['elapsed_s']:.0f} s, load average {machine['loadavg_end']}, "
        f"Python loop {machine['python_loop_ms_end']} ms, "
        f"results in {json_path}",
        flush=True,
    )


if __name__ == "__main__":
    main()
