"""CPU per SQL statement of a send, through the ORM and without it, in the same run.

    .venv/bin/python -m bench.querycost      # about 30 seconds

A chat start runs 13 statements (the session, the user, the conversation, the send's
transaction, the model's context, the final write, the final bubble). This times reads of
a start four ways on the same connection: through the ORM, prepared (the queryset compiled
once, conversations/prepared.py, as the app runs the session, conversation and lock reads),
the same SQL through Django's cursor, and through psycopg directly. The ORM's excess is the
price of building SQL per call; the last column is the floor any Python code pays for a
round trip. All run inside one transaction (the lock needs one). Uses its own database
(`bench_startcost`, recreated) and no server.
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
    from django.db import transaction

    print(f"{'statement':<30} {'ORM':>6} {'prepared':>9} {'Django cursor':>14} {'psycopg':>8}")
    with transaction.atomic():
        for name, ways in _statements(seed["slots"][0]["conversation"]).items():
            orm, prepared, cursor, psycopg = (_cpu_per_call(way) for way in ways)
            print(f"{name:<30} {orm:>6.0f} {prepared:>9.0f} {cursor:>14.0f} {psycopg:>8.0f}")
    print("(microseconds of CPU per call, best of 3 rounds of 2000)")


def _statements(conversation_id: str) -> dict[str, tuple[Callable[[], object], ...]]:
    """The app's own prepared reads, each run through the ORM (its queryset) and prepared; its
    compiled SQL through Django's cursor, and through psycopg (on the connection Django
    opened)."""
    from django.contrib.sessions.models import Session
    from django.db import connection
    from django.utils import timezone

    from conversations import selectors, sessions
    from conversations.models import Conversation
    from conversations.prepared import PreparedModel
    from conversations.services import sending

    conversation = Conversation.objects.get(pk=conversation_id)
    owner = conversation.owner_id
    session_key = Session.objects.values_list("session_key", flat=True).first() or "none"
    # name: (the statement, the values it runs with)
    statements: dict[str, tuple[Any, dict[str, Any]]] = {
        "session (key, unexpired)": (
            sessions._LIVE_SESSION,
            {"key": session_key, "now": timezone.now()},
        ),
        "conversation (id and owner)": (
            selectors._CONVERSATION,
            {"pk": conversation.pk, "owner": owner},
        ),
        "sender's lock (active, quota)": (sending._LOCK_USER, {"pk": owner}),
    }
    connection.ensure_connection()
    raw = connection.connection

    def on(cursor: Callable[[], Any], queryset: Any) -> Callable[[], object]:
        query, params = queryset.query.get_compiler(using="default").as_sql()

        def run() -> object:
            with cursor() as open_cursor:
                open_cursor.execute(query, params)
                return open_cursor.fetchall()

        return run

    def ways(statement: Any, values: dict[str, Any]) -> tuple[Callable[[], object], ...]:
        queryset = statement.build(**values)
        run = statement.all if isinstance(statement, PreparedModel) else statement.rows
        return (
            lambda: list(statement.build(**values)),
            lambda: run(**values),
            on(connection.cursor, queryset),
            on(raw.cursor, queryset),
        )

    return {name: ways(*spec) for name, spec in statements.items()}


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
