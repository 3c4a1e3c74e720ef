"""CPU per SQL statement of a send, through the ORM and without it, in the same run.

    .venv/bin/python -m bench.querycost      # about 30 seconds

A chat start runs 13 statements (the session, the user, the conversation, the send's
transaction, the model's context, the final write, the final bubble). This times the
send's own reads three ways on the same connection: as the app writes them (the ORM), the
same SQL through Django's cursor, and through psycopg directly. The difference is the
price of building SQL per call; the last column is the floor any Python code pays for a
round trip. Uses its own database (`bench_startcost`, recreated) and no server.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.run import add_service_arguments, app_env, prepare_database, python_speed

CALLS = 2000
ROUNDS = 3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_service_arguments(parser, database="bench_startcost", env="BENCH_STARTCOST_DATABASE_URL")
    args = parser.parse_args()
    args.interval = 0.02  # the provider's pace: no answers are generated here
    env = app_env(args)
    with tempfile.TemporaryDirectory(prefix="querycost-") as work:
        seed = prepare_database(args, env, Path(work), slots=1, heavy=False)
    os.environ.update(env)
    import django

    django.setup()
    print(f"querycost: Python loop {python_speed()} ms (host speed)")
    print(f"{'statement':<34} {'ORM':>8} {'Django cursor':>14} {'psycopg':>8}  (us CPU each)")
    for name, ways in _statements(seed["slots"][0]["conversation"]).items():
        figures = [_cpu_per_call(way) for way in ways]
        print(f"{name:<34} {figures[0]:>8.0f} {figures[1]:>14.0f} {figures[2]:>8.0f}")


def _statements(conversation_id: str) -> dict[str, tuple[Callable[[], object], ...]]:
    """Each of the send's reads, written the app's way, as SQL for Django's cursor, and for
    psycopg (the same SQL, on the connection Django opened)."""
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.db.models import Max

    from conversations.models import Conversation, Message

    conversation = Conversation.objects.get(pk=conversation_id)
    owner = conversation.owner_id
    live = tuple(Message.LIVE_STATUSES)
    sql = {
        "next seq (max)": (
            "SELECT MAX(seq) FROM conversations_message WHERE conversation_id = %s",
            [conversation.pk],
        ),
        "live answers (count)": (
            "SELECT COUNT(*) FROM conversations_message m JOIN conversations_conversation c "
            "ON m.conversation_id = c.id WHERE c.owner_id = %s AND m.role = 'assistant' "
            "AND m.status = ANY(%s)",
            [owner, list(live)],
        ),
        "owner active (by pk)": (
            "SELECT is_active FROM auth_user WHERE id = %s LIMIT 1",
            [owner],
        ),
    }
    orm = {
        "next seq (max)": lambda: conversation.messages.aggregate(top=Max("seq"))["top"],
        "live answers (count)": lambda: Message.objects.filter(
            conversation__owner_id=owner, role=Message.Role.ASSISTANT, status__in=live
        ).count(),
        "owner active (by pk)": lambda: (
            get_user_model().objects.filter(pk=owner).values_list("is_active", flat=True).first()
        ),
    }
    connection.ensure_connection()
    raw = connection.connection

    def on(cursor: Callable[[], Any], query: str, params: list) -> Callable[[], object]:
        def run() -> object:
            with cursor() as open_cursor:
                open_cursor.execute(query, params)
                return open_cursor.fetchone()

        return run

    return {
        name: (orm[name], on(connection.cursor, *sql[name]), on(raw.cursor, *sql[name]))
        for name in sql
    }


def _cpu_per_call(call: Callable[[], object]) -> float:
    """Microseconds of this process's CPU per call, best of a few rounds."""
    call()
    best = float("inf")
    for _ in range(ROUNDS):
        started = time.process_time()
        for _ in range(CALLS):
            call()
        best = min(best, time.process_time() - started)
    return 1e6 * best / CALLS


if __name__ == "__main__":
    main()
