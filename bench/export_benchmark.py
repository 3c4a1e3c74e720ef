"""Export benchmark: time and peak memory of `manage.py export_conversations` on PostgreSQL.

Not a test. It seeds its own database (never the app's) with N messages, server-side
(`INSERT ... SELECT generate_series`, a few seconds per million rows), then runs the export
command in a subprocess exactly as an operator would, and reports wall time, throughput and
the subprocess's peak RSS (the kernel's high-water mark, VmHWM). The exporter reads through
server-side cursors, so the peak must stay flat (under 150 MB) whatever N is.

    .venv/bin/python -m bench.export_benchmark                      # 100,000 messages
    .venv/bin/python -m bench.export_benchmark --messages 100000 1000000
    .venv/bin/python -m bench.export_benchmark --format csv --messages 1000000

Options: --database-url (an admin URL; the benchmark creates and uses the database named
in it, default streamchat_export_bench), --per-conversation, --format, --keep-output.
Results are printed and saved to bench/results/export-<time>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse, urlunparse

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/streamchat_export_bench"
LIMIT_MB = 150
HIDDEN_EVERY = 97  # every 97th message is hidden: the default export leaves it out

# Conversation ids are derived from their number, so each message finds its conversation
# without a join: message m is #((m-1) % per + 1) of conversation ((m-1) // per + 1).
SEED_SQL = [
    """TRUNCATE conversations_moderationaction, conversations_message,
                conversations_conversation, auth_user CASCADE""",
    """INSERT INTO auth_user (password, is_superuser, username, first_name, last_name, email,
                              is_staff, is_active, date_joined)
       SELECT '!', false, 'bench' || u, '', '', 'bench' || u || '@example.com', false, true, now()
       FROM generate_series(1, %(users)s) AS u""",
    """INSERT INTO conversations_conversation (id, owner_id, title, provider, model,
           system_prompt, archived, hidden, created_at, updated_at)
       SELECT md5('conversation' || c)::uuid, (SELECT min(id) FROM auth_user) + c %% %(users)s,
              'Benchmark conversation ' || c, 'paced', 'paced-1', '', false, false,
              timestamptz '2026-01-01 00:00+00' + interval '1 minute' * c, now()
       FROM generate_series(1, %(conversations)s) AS c""",
    """INSERT INTO conversations_message (id, conversation_id, seq, role, content, status,
           provider, model, error, error_id, finish_reason, prompt_tokens, completion_tokens,
           flagged, hidden, moderation_reason, created_at, updated_at)
       SELECT gen_random_uuid(), md5('conversation' || ((m - 1) / %(per)s + 1))::uuid,
              (m - 1) %% %(per)s + 1,
              CASE WHEN (m - 1) %% %(per)s %% 2 = 0 THEN 'user' ELSE 'assistant' END,
              'Message ' || m || ': ' || repeat(md5(m::text), 6)
                  || E'\\nwith "quotes", a second line and unicode ✓',
              'complete', 'paced', 'paced-1', '', '', 'stop', 20, 80,
              false, m %% %(hidden_every)s = 0, '',
              timestamptz '2026-01-01 00:00+00' + interval '1 second' * m,
              timestamptz '2026-01-01 00:00+00' + interval '1 second' * m
       FROM generate_series(1, %(messages)s) AS m""",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, nargs="+", default=[100_000])
    parser.add_argument("--per-conversation", type=int, default=50)
    parser.add_argument("--format", default="jsonl", choices=["jsonl", "json", "csv", "markdown"])
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    parser.add_argument("--keep-output", action="store_true")
    args = parser.parse_args()

    _create_database(args.database_url)
    env = {
        **os.environ,
        "DATABASE_URL": args.database_url,
        "DJANGO_ENV": "",
        "LOG_LEVEL": "WARNING",
    }
    env.pop("REDIS_URL", None)  # the export needs only the database
    _manage(env, "migrate", "--noinput", "-v", "0")

    runs = []
    for messages in args.messages:
        seeded = _seed(args.database_url, messages=messages, per=args.per_conversation)
        run = _export(env, fmt=args.format, keep=args.keep_output)
        run.update(seeded, format=args.format)
        run["messages_per_second"] = round(run["messages_exported"] / run["seconds"])
        if args.format == "jsonl":  # header + conversations + messages, one line each
            expected = 1 + run["conversations"] + run["messages_exported"]
            assert run["records"] == expected, (run["records"], expected)
        runs.append(run)
        print(
            f"{run['messages_in_db']:>10,} messages ({run['conversations']:,} conversations): "
            f"{run['seconds']:.1f} s, {run['messages_per_second']:,.0f} messages/s, "
            f"peak RSS {run['peak_rss_mb']:.1f} MB, output {run['output_mb']:.0f} MB, "
            f"{run['messages_exported']:,} exported",
            flush=True,
        )
    worst = max(run["peak_rss_mb"] for run in runs)
    verdict = "under" if worst < LIMIT_MB else "OVER"
    print(f"peak RSS at most {worst:.1f} MB: {verdict} the {LIMIT_MB} MB budget")
    results = ROOT / "bench" / "results"
    results.mkdir(parents=True, exist_ok=True)
    target = results / f"export-{time.strftime('%Y%m%d-%H%M%S')}.json"
    target.write_text(json.dumps({"runs": runs, "limit_mb": LIMIT_MB}, indent=2))
    print(f"saved {target.relative_to(ROOT)}")
    if worst >= LIMIT_MB:
        sys.exit(1)


def _create_database(url: str) -> None:
    parts = urlparse(url)
    name = parts.path.lstrip("/")
    admin_url = urlunparse(parts._replace(path="/postgres"))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def _manage(env: dict[str, str], *command: str) -> None:
    subprocess.run([sys.executable, "manage.py", *command], cwd=ROOT, env=env, check=True)


def _seed(url: str, *, messages: int, per: int) -> dict[str, int]:
    started = time.perf_counter()
    params = {
        "users": 100,
        "conversations": -(-messages // per),
        "per": per,
        "messages": messages,
        "hidden_every": HIDDEN_EVERY,
    }
    with psycopg.connect(url, autocommit=True) as conn:
        with conn.transaction():
            for statement in SEED_SQL:
                conn.execute(statement, params)
        conn.execute("VACUUM ANALYZE")
        total = conn.execute("SELECT count(*) FROM conversations_message").fetchone()[0]
        visible = conn.execute(
            "SELECT count(*) FROM conversations_message WHERE NOT hidden"
        ).fetchone()[0]
    return {
        "messages_in_db": total,
        "messages_exported": visible,
        "conversations": params["conversations"],
        "seed_seconds": round(time.perf_counter() - started, 1),
    }


def _export(env: dict[str, str], *, fmt: str, keep: bool) -> dict[str, float | int | str]:
    output = Path(tempfile.mkdtemp(prefix="streamchat-export-")) / f"export.{fmt}"
    command = [sys.executable, "manage.py", "export_conversations", "--format", fmt]
    started = time.perf_counter()
    process = subprocess.Popen([*command, "--output", str(output)], cwd=ROOT, env=env)
    peak_kb = 0
    while process.poll() is None:
        peak_kb = max(peak_kb, _high_water_kb(process.pid))
        time.sleep(0.05)
    seconds = time.perf_counter() - started
    if process.returncode:
        raise SystemExit(f"export failed with exit status {process.returncode}")
    records = _count_lines(output) if fmt == "jsonl" else -1
    size = output.stat().st_size
    if keep:
        print(f"output kept at {output}")
    else:
        output.unlink()
        output.parent.rmdir()
    return {
        "seconds": round(seconds, 2),
        "peak_rss_mb": round(peak_kb / 1024, 1),
        "output_mb": round(size / 2**20, 1),
        "records": records,
    }


def _high_water_kb(pid: int) -> int:
    """VmHWM: the most resident memory the process has had, as the kernel counts it."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def _count_lines(path: Path) -> int:
    count = 0
    with open(path, "rb") as stream:
        while block := stream.read(1 << 20):
            count += block.count(b"\n")
    return count


if __name__ == "__main__":
    main()
