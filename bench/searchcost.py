"""Search's cost on PostgreSQL: server time per search beside the plain conversation list,
and what the index costs a send and an answer's final write, in the same run.

    .venv/bin/python -m bench.searchcost      # about 3 minutes; run on an idle machine

Seeds its own database (`bench_search`, recreated) with bulk_create: one account owning
10,000 conversations and 200,000 messages (the worst case for one user's search: everything
is theirs) and another with 500 conversations and 10,000 messages its searches must skip.
Text is drawn from a 5,000-word vocabulary with Zipf frequencies, so some words are in most
messages and some in a handful. Times `search.search()` (the SQL, loading the rows, the
snippets) and the whole htmx request through Django's test client (middleware, session,
template), median and p95 of ROUNDS, beside the sidebar's first page of conversations
(`matches`: messages of both accounts with the words).
Then the writes: the final UPDATE of a 2,000-character answer and a user message's INSERT,
with the search column and indexes, and again after dropping them.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
from collections.abc import Callable

from bench.run import python_speed, recreate_database

ROUNDS = 30
WRITES = 300
VOCABULARY = 5_000
RARE = "quetzalcoatl"  # planted in RARE_COUNT messages
RARE_COUNT = 12


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--database-url",
        default=os.environ.get(
            "BENCH_SEARCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/bench_search"
        ),
    )
    parser.add_argument("--conversations", type=int, default=10_000)
    parser.add_argument("--messages", type=int, default=200_000)
    args = parser.parse_args()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "chatsite.settings",
        "DJANGO_DEBUG": "0",
        "DATABASE_URL": args.database_url,
        "DATABASE_POOL": "0",
        "LOG_LEVEL": "WARNING",
    }
    env.pop("REDIS_URL", None)
    recreate_database(args.database_url, env)
    os.environ.update(env)
    import django

    django.setup()
    print(f"searchcost: Python loop {python_speed()} ms (host speed); load {_load()}")
    started = time.perf_counter()
    searcher, _other = _seed(args.conversations, args.messages)
    print(f"seeded in {time.perf_counter() - started:.0f} s (bulk_create, then VACUUM ANALYZE)")
    _reads(searcher)
    _writes()
    print(f"load at the end {_load()}")


def _load() -> str:
    return " ".join(f"{figure:.2f}" for figure in os.getloadavg())


def _words() -> tuple[list[str], list[float]]:
    rng = random.Random(7)
    letters = "abcdefghijklmnopqrstuvwxyz"
    words: list[str] = []
    seen: set[str] = set()
    while len(words) < VOCABULARY:
        word = "".join(rng.choice(letters) for _ in range(rng.randint(3, 9)))
        if word not in seen and word != RARE:
            seen.add(word)
            words.append(word)
    weights = [1 / (rank + 1) for rank in range(VOCABULARY)]
    return words, weights


def _seed(conversations: int, messages: int):
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction

    from conversations.models import Conversation, Message

    rng = random.Random(11)
    words, weights = _words()
    User = get_user_model()
    with transaction.atomic():
        searcher = User.objects.create_user("searcher", "searcher@example.com", "x")
        other = User.objects.create_user("other", "other@example.com", "x")
        rare_at = set(rng.sample(range(messages), RARE_COUNT))
        for owner, count, total in (
            (searcher, conversations, messages),
            (other, conversations // 20, messages // 20),
        ):
            chats = Conversation.objects.bulk_create(
                (
                    Conversation(owner=owner, title=" ".join(rng.choices(words, weights, k=4)))
                    for _ in range(count)
                ),
                batch_size=5000,
            )
            per_chat = total // count
            batch: list[Message] = []
            n = 0
            for chat in chats:
                parent = None
                for seq in range(1, per_chat + 1):
                    role = Message.Role.USER if seq % 2 else Message.Role.ASSISTANT
                    length = rng.randint(8, 30) if role == Message.Role.USER else 60
                    text = rng.choices(words, weights, k=length)
                    if owner == searcher and n in rare_at:
                        text[len(text) // 2] = RARE
                    message = Message(conversation=chat, seq=seq, role=role, content=" ".join(text))
                    message.parent = parent
                    parent = message
                    batch.append(message)
                    n += 1
                if len(batch) >= 5000:
                    Message.objects.bulk_create(batch)
                    batch = []
            Message.objects.bulk_create(batch)
    from conversations import search_index

    with connection.cursor() as cursor:
        started = time.perf_counter()
        cursor.execute(search_index.POSTGRES_FORWARD[1])  # what the migration does to them
        print(f"indexing them as the migration does: {time.perf_counter() - started:.1f} s")
        cursor.execute("VACUUM ANALYZE")
    return searcher, other


def _timed(call: Callable[[], object]) -> tuple[float, float]:
    call()  # warm: plans cached, pages in memory
    times = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        call()
        times.append(1000 * (time.perf_counter() - started))
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.95) - 1]


def _reads(searcher) -> None:
    from django.db import connection
    from django.test import Client

    from conversations import search
    from conversations.selectors import conversation_page

    words, _weights = _words()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM conversations_message m JOIN conversations_conversation c"
            " ON c.id = m.conversation_id WHERE c.owner_id = %s",
            [searcher.pk],
        )
        (owned,) = cursor.fetchone()
        cursor.execute("SELECT count(*) FROM conversations_message")
        (total,) = cursor.fetchone()
    print(f"searcher owns {owned:,} of {total:,} messages")
    client = Client()
    client.force_login(searcher)
    htmx = {"HX-Request": "true"}
    cases: dict[str, str] = {
        f"rare word ({RARE_COUNT} messages)": RARE,
        "word ranked 2,000th": words[2000],
        "word ranked 200th": words[200],
        "word ranked 20th": words[20],
        "most common word": words[0],
        "two common words": f"{words[0]} {words[1]}",
        "three words, last a prefix": f"{words[5]} {words[50]} {words[30][:3]}",
        "no match": "zzzzzzzz",
    }
    print(f"{'query (median / p95 ms)':<34} {'matches':>8} {'search()':>16} {'htmx GET':>16}")

    def row(label: str, matches: object, inner: Callable[[], object], outer: Callable[[], object]):
        a, b = _timed(inner), _timed(outer)
        print(f"{label:<34} {matches!s:>8} {a[0]:>8.1f} / {a[1]:>5.1f} {b[0]:>8.1f} / {b[1]:>5.1f}")

    def fresh_then_search() -> object:
        """Ten answers finished since the last search (inserted untimed), then the search
        that indexes them."""
        nonlocal fresh
        with connection.cursor() as cursor:
            for _ in range(10):
                fresh += 1
                cursor.execute(*_insert(chat_id, 10_000 + fresh, "assistant", fresh_text))
        started = time.perf_counter()
        search.search(searcher, words[200])
        return time.perf_counter() - started

    fresh = 0
    fresh_text = " ".join(words[:300:3])
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id FROM conversations_conversation WHERE owner_id = %s LIMIT 1", [searcher.pk]
        )
        (chat_id,) = cursor.fetchone()
    fresh_then_search()
    fresh_times = sorted(1000 * fresh_then_search() for _ in range(ROUNDS))
    row(
        "baseline: sidebar's first page",
        "-",
        lambda: list(conversation_page(searcher, 1)),
        lambda: client.get("/?page=1", headers=htmx),
    )
    for label, query in cases.items():
        terms = search.terms_of(query)
        assert terms is not None
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM conversations_message WHERE search_vector @@ to_tsquery"
                "('simple', %s)",
                [search._tsquery(terms)],
            )
            (matches,) = cursor.fetchone()
        row(
            label,
            matches,
            lambda q=query: search.search(searcher, q),
            lambda q=query: client.get("/search", {"q": q}, headers=htmx),
        )
    median, p95 = statistics.median(fresh_times), fresh_times[int(ROUNDS * 0.95) - 1]
    print(f"{'ranked 200th, 10 answers new':<34} {'':>8} {median:>8.1f} / {p95:>5.1f}")


def _insert(conversation_id: object, seq: int, role: str, content: str) -> tuple[str, list]:
    """A finished message's INSERT for the cursor, and its values: every column, the rest at
    the model's defaults, so the statement keeps up with the migrations (a list written out
    here fell behind the model's new NOT NULL columns)."""
    from django.db import connection

    from conversations.models import Message

    message = Message(conversation_id=conversation_id, seq=seq, role=role, content=content)
    fields = Message._meta.concrete_fields
    columns = ", ".join(connection.ops.quote_name(field.column) for field in fields)
    values = [field.get_db_prep_save(field.pre_save(message, True), connection) for field in fields]
    marks = ", ".join(["%s"] * len(fields))
    return f"INSERT INTO {Message._meta.db_table} ({columns}) VALUES ({marks})", values


def _writes() -> None:
    """An answer's final write and a send's user message, with the index and without."""
    from django.db import connection

    rng = random.Random(3)
    words, weights = _words()
    answer = " ".join(rng.choices(words, weights, k=330))[:2000]
    with connection.cursor() as cursor:
        cursor.execute("SELECT id, conversation_id FROM conversations_message LIMIT %s", [WRITES])
        rows = cursor.fetchall()
        cursor.execute("SELECT max(seq) FROM conversations_message")
        (top,) = cursor.fetchone()

    def final_writes() -> float:
        total = 0.0
        with connection.cursor() as cursor:
            for pk, _conversation in rows:
                cursor.execute(
                    "UPDATE conversations_message SET status = 'streaming', content = ''"
                    " WHERE id = %s",
                    [pk],
                )
                started = time.perf_counter()
                cursor.execute(
                    "UPDATE conversations_message SET content = %s, status = 'complete',"
                    " updated_at = now() WHERE id = %s",
                    [answer, pk],
                )
                total += time.perf_counter() - started
        return 1e6 * total / len(rows)

    def inserts(offset: int) -> float:
        total = 0.0
        with connection.cursor() as cursor:
            for i, (_pk, conversation) in enumerate(rows):
                statement = _insert(conversation, top + offset + i, "user", answer[:300])
                started = time.perf_counter()
                cursor.execute(*statement)
                total += time.perf_counter() - started
        return 1e6 * total / len(rows)

    def conversation_bumps() -> float:
        """What every send does to its conversation (updated_at): the title's index too."""
        total = 0.0
        with connection.cursor() as cursor:
            for _pk, conversation in rows:
                started = time.perf_counter()
                cursor.execute(
                    "UPDATE conversations_conversation SET updated_at = now() WHERE id = %s",
                    [conversation],
                )
                total += time.perf_counter() - started
        return 1e6 * total / len(rows)

    def measure(offset: int) -> tuple[float, float, float]:
        return final_writes(), inserts(offset), conversation_bumps()

    from conversations import search_index

    indexed = measure(1)
    with connection.cursor() as cursor:
        for sql in search_index.POSTGRES_BACKWARD:
            cursor.execute(sql)
        cursor.execute("VACUUM ANALYZE")
    without = measure(1 + WRITES)
    with connection.cursor() as cursor:
        for sql in search_index.POSTGRES_FORWARD:
            cursor.execute(sql)
        cursor.execute("VACUUM ANALYZE")
    again = measure(1 + 2 * WRITES)  # indexed again: the order of the runs is not the cause
    print(f"{'write (us each, mean of ' + str(WRITES) + ')':<34} {'indexed':>8} {'without':>8}"
          f" {'indexed again':>14}")  # fmt: skip
    labels = ("answer's final write (2,000 chars)", "user message insert (300 chars)",
              "conversation updated_at bump")  # fmt: skip
    for n, label in enumerate(labels):
        print(f"{label:<34} {indexed[n]:>8.0f} {without[n]:>8.0f} {again[n]:>14.0f}")


if __name__ == "__main__":
    main()
