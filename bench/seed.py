"""Fills the benchmark database: users with sessions, conversations, and a heavy account.

Run by bench.run under the benchmark's environment (its own database). Writes a JSON file
the load client reads: one slot (session cookie, conversation) per concurrent stream, and
the heavy account's conversation with many messages for the page timings.

It also installs a trigger that logs every row written to the message and conversation
tables, so writes per assistant message are counted by the database, not by reading code.
"""

from __future__ import annotations

import argparse
import json
import os
import uuid
from datetime import timedelta

import django

WRITE_LOG_SQL = """
CREATE TABLE IF NOT EXISTS bench_writes (
    tbl text NOT NULL, row_id uuid NOT NULL, op text NOT NULL,
    at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX IF NOT EXISTS bench_writes_row ON bench_writes (row_id);
CREATE OR REPLACE FUNCTION bench_log_write() RETURNS trigger AS $$
BEGIN
    INSERT INTO bench_writes (tbl, row_id, op) VALUES (TG_TABLE_NAME, NEW.id, TG_OP);
    RETURN NULL;
END $$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS bench_log_message ON conversations_message;
CREATE TRIGGER bench_log_message AFTER INSERT OR UPDATE ON conversations_message
    FOR EACH ROW EXECUTE FUNCTION bench_log_write();
DROP TRIGGER IF EXISTS bench_log_conversation ON conversations_conversation;
CREATE TRIGGER bench_log_conversation AFTER INSERT OR UPDATE ON conversations_conversation
    FOR EACH ROW EXECUTE FUNCTION bench_log_write();
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--slots", type=int, required=True)
    parser.add_argument("--heavy-conversations", type=int, default=10_000)
    parser.add_argument("--heavy-messages", type=int, default=2_000)
    # Questions edited once (an older version with its answer beside the one shown).
    parser.add_argument("--heavy-branch-points", type=int, default=200)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")
    django.setup()

    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password
    from django.contrib.sessions.backends.db import SessionStore
    from django.contrib.sessions.models import Session
    from django.db import connection, transaction
    from django.middleware.csrf import _get_new_csrf_string
    from django.utils import timezone

    from conversations.models import Conversation, Message

    User = get_user_model()
    password = make_password("bench-password-not-secret")  # hashed once, shared by all
    with transaction.atomic():
        users = User.objects.bulk_create(
            User(username=f"bench{i}", email=f"bench{i}@example.com", password=password)
            for i in range(args.slots + 1)
        )
        heavy, users = users[-1], users[:-1]
        conversations = Conversation.objects.bulk_create(
            Conversation(owner=user, title=f"bench {i}", provider="paced", model="paced")
            for i, user in enumerate(users)
        )
        sessions = [_session(user, SessionStore) for user in [*users, heavy]]
        Session.objects.bulk_create(
            Session(session_key=key, session_data=data, expire_date=expiry)
            for key, data, expiry in sessions
        )

        # The heavy account: many conversations, one of them long (the page timings).
        now = timezone.now()
        heavy_conversations = Conversation.objects.bulk_create(
            Conversation(owner=heavy, title=f"old chat {i}", provider="paced", model="paced")
            for i in range(args.heavy_conversations)
        )
        long_chat = heavy_conversations[-1]
        messages = _long_chat(Message, long_chat, args.heavy_messages, args.heavy_branch_points)
        for message in messages:
            message.created_at = now - timedelta(minutes=args.heavy_messages - message.seq)
        Message.objects.bulk_create(messages, batch_size=1000)
        if messages:
            long_chat.current_leaf = messages[-1]
            long_chat.save(update_fields=["current_leaf"])
        Conversation.objects.filter(pk=long_chat.pk).update(updated_at=now + timedelta(hours=1))

    with connection.cursor() as cursor:
        cursor.execute(WRITE_LOG_SQL)
        cursor.execute("TRUNCATE bench_writes")
        cursor.execute("VACUUM ANALYZE")  # fresh statistics, as on a database in service

    csrf = _get_new_csrf_string()
    data = {
        "csrf": csrf,
        "slots": [
            {"session": key, "conversation": str(conv.pk)}
            for (key, _, _), conv in zip(sessions, conversations, strict=False)
        ],
        "heavy": {
            "session": sessions[-1][0],
            "conversation": str(long_chat.pk),
            "conversations": args.heavy_conversations,
            "messages": args.heavy_messages,
        },
    }
    with open(args.out, "w") as f:
        json.dump(data, f)


def _session(user, store_class) -> tuple[str, str, object]:
    """A logged-in session row, as django.contrib.auth.login would leave it."""
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY

    store = store_class()
    payload = {
        SESSION_KEY: str(user.pk),
        BACKEND_SESSION_KEY: settings.AUTHENTICATION_BACKENDS[0],
        HASH_SESSION_KEY: user.get_session_auth_hash(),
    }
    key = uuid.uuid4().hex
    return key, store.encode(payload), store.get_expiry_date()


def _long_chat(message_model, conversation, count: int, branch_points: int) -> list:
    """`count` messages, questions and answers in turn, `branch_points` of the questions
    edited: each such step stores an older version (and its answer) before the one shown."""
    Role = message_model.Role
    pairs = count // 2
    every = max(1, (pairs - branch_points) // branch_points) if branch_points else 0
    messages: list = []
    parent = None

    def add(role, parent):
        answers = parent if role == Role.ASSISTANT else None
        message = message_model(
            conversation=conversation,
            seq=len(messages) + 1,
            role=role,
            content=_sample_text(len(messages) + 1),
            status=message_model.Status.COMPLETE,
            parent=parent,
            reply_to=answers,
        )
        messages.append(message)
        return message

    pair = 0
    while len(messages) + 2 <= count:
        if every and pair % every == 0 and len(messages) + 4 <= count:
            add(Role.ASSISTANT, add(Role.USER, parent))  # the version not shown
        question = add(Role.USER, parent)
        parent = add(Role.ASSISTANT, question)
        pair += 1
    return messages


def _sample_text(seq: int) -> str:
    if seq % 2:
        return f"Question {seq}: how do I stream tokens to many browsers at once?"
    return (
        f"**Answer {seq}.** Keep one buffer per answer and wake readers once per frame.\n\n"
        "```python\nasync def relay(stream):\n    async for text in stream:\n"
        "        yield text\n```\n\n- one ticker per process\n- no ORM work per token\n"
    )


if __name__ == "__main__":
    main()
