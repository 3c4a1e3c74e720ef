"""export_conversations / import_conversations: formats, filters, round trip, bad input."""

from __future__ import annotations

import csv
import gzip
import io
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from conversations.branches import Tree
from conversations.models import Conversation, Message
from conversations.selectors import transcript
from conversations.services import importing
from tests.conftest import make_user
from tests.trees import add_branches, link_as_one_path

T0 = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)


def add_conversation(owner, title, turns, *, at, hidden=False, system_prompt=""):
    conversation = Conversation.objects.create(
        owner=owner, title=title, provider="fake", model="fake-model", system_prompt=system_prompt
    )
    question = None
    for index, (role, content, extra) in enumerate(turns):
        message = Message.objects.create(
            conversation=conversation,
            seq=index + 1,
            role=role,
            content=content,
            client_id=uuid.uuid4() if role == "user" else None,
            reply_to=question if role == "assistant" else None,
            **extra,
        )
        question = message if role == "user" else question
        moment = at + timedelta(minutes=index, microseconds=index * 1001)
        Message.objects.filter(pk=message.pk).update(created_at=moment, updated_at=moment)
    link_as_one_path(conversation)
    Conversation.objects.filter(pk=conversation.pk).update(
        created_at=at, updated_at=at + timedelta(hours=1), hidden=hidden
    )
    return conversation


@pytest.fixture
def chats(alice, bob):
    answer = {
        "prompt_tokens": 12,
        "completion_tokens": 30,
        "finish_reason": "stop",
        "first_token_ms": 420,
        "duration_ms": 1020,
    }
    return {
        "tea": add_conversation(
            alice,
            'Tea & <script>alert("x")</script>',
            [
                ("user", "How do I brew tea? ✓ 🍵", {}),
                (
                    "assistant",
                    "**Steep** 3 min\n\n```py\nprint('hi')\n```",
                    {**answer, "reasoning": "Green or <b>black</b>?\nEither: 3 min."},
                ),
                ("user", 'Line one\r\nline two, with "quotes", commas\tand tabs', {}),
                (
                    "assistant",
                    "Partial answer",
                    {"status": "error", "error": "The model failed.", "error_id": "ab12cd34"},
                ),
            ],
            at=T0,
            system_prompt="Answer briefly.\nAlways.",
        ),
        "secrets": add_conversation(
            alice,
            "Hidden bits",
            [
                ("user", "visible question", {}),
                ("assistant", "hidden answer", {"hidden": True, "moderation_reason": "rude"}),
                ("user", "flagged question", {"flagged": True, "moderation_reason": "spam"}),
            ],
            at=T0 + timedelta(days=10),
        ),
        "empty": add_conversation(alice, "Empty", [], at=T0 + timedelta(days=15)),
        "bob": add_conversation(
            bob,
            "Bob's chat",
            [("user", "hi from bob", {}), ("assistant", "hello bob", answer)],
            at=T0 + timedelta(days=22),
        ),
        "banned": add_conversation(
            bob, "Hidden conversation", [("user", "bad stuff", {})], at=T0, hidden=True
        ),
    }


def export(*args: str) -> str:
    out, err = io.StringIO(), io.StringIO()
    call_command("export_conversations", *args, stdout=out, stderr=err)
    assert err.getvalue() == ""  # not a terminal: no progress bar
    return out.getvalue()


def records(*args: str) -> list[dict]:
    return [json.loads(line) for line in export(*args).splitlines()]


def titles(rows: list[dict]) -> set[str]:
    return {row["title"] for row in rows if row["type"] == "conversation"}


def contents(rows: list[dict]) -> set[str]:
    return {row["content"] for row in rows if row["type"] == "message"}


def run_import(path) -> tuple[str, str, CommandError | None]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("import_conversations", str(path), stdout=out, stderr=err)
    except CommandError as exc:
        return out.getvalue(), err.getvalue(), exc
    return out.getvalue(), err.getvalue(), None


def write_lines(tmp_path, lines: list[str | bytes], name: str = "in.jsonl"):
    path = tmp_path / name
    path.write_bytes(b"".join((x if isinstance(x, bytes) else x.encode()) + b"\n" for x in lines))
    return path


# Round trip -----------------------------------------------------------------------------------


def test_export_import_export_gives_identical_output_in_every_format(chats, tmp_path):
    before = {fmt: export("--include-hidden", "--format", fmt) for fmt in importing_formats()}
    dump = write_lines(tmp_path, before["jsonl"].splitlines())
    Conversation.objects.all().delete()

    out, err, failed = run_import(dump)

    assert failed is None, err
    assert "conversations: 5 created" in out and "messages: 10 created" in out
    after = {fmt: export("--include-hidden", "--format", fmt) for fmt in importing_formats()}
    assert after == before


def importing_formats() -> tuple[str, ...]:
    return ("jsonl", "json", "csv", "markdown")


def test_importing_the_same_file_twice_creates_nothing_new(chats, tmp_path):
    dump = write_lines(tmp_path, export("--include-hidden").splitlines())
    counts = (Conversation.objects.count(), Message.objects.count())

    first, _, _ = run_import(dump)
    second, _, failed = run_import(dump)

    assert failed is None
    for report in (first, second):
        assert "conversations: 0 created, 5 already present, 0 failed" in report
        assert "messages: 0 created, 10 already present" in report
    assert (Conversation.objects.count(), Message.objects.count()) == counts


def test_import_completes_a_conversation_exported_in_parts(chats, tmp_path):
    """A --since export carries only newer messages: importing the older part, then the newer,
    gives the whole conversation with the answer still linked to its question."""
    tea = str(chats["tea"].pk)
    middle = (T0 + timedelta(minutes=2)).isoformat()
    older = export("--conversation", tea, "--until", middle)
    newer = export("--conversation", tea, "--since", middle)
    whole = export("--conversation", tea)
    Conversation.objects.filter(pk=tea).delete()

    run_import(write_lines(tmp_path, older.splitlines(), "older.jsonl"))
    out, _, failed = run_import(write_lines(tmp_path, newer.splitlines(), "newer.jsonl"))

    assert failed is None
    assert "1 already present" in out and "messages: 2 created" in out
    assert export("--conversation", tea) == whole


# Branches -------------------------------------------------------------------------------------


def tree_of(conversation: Conversation) -> tuple[dict, object]:
    """Every message's (seq, parent, reply_to) and the conversation's current leaf."""
    rows = conversation.messages.values_list("id", "seq", "parent_id", "reply_to_id")
    current_leaf = Conversation.objects.get(pk=conversation.pk).current_leaf_id
    return {pk: rest for pk, *rest in rows}, current_leaf


def shown(conversation: Conversation) -> list[tuple]:
    """What the page shows: the path's messages with their versions."""
    messages, _ = transcript(Conversation.objects.get(pk=conversation.pk))
    return [(m.pk, m.seq, m.content, m.versions) for m in messages]


def test_round_trip_keeps_every_branch_its_parents_and_the_shown_one(
    conversation, alice_client, tmp_path
):
    made = add_branches(conversation)
    before = (tree_of(conversation), shown(conversation))
    files = {fmt: export("--format", fmt) for fmt in importing_formats()}
    dump = write_lines(tmp_path, files["jsonl"].splitlines())
    Conversation.objects.all().delete()

    out, err, failed = run_import(dump)

    assert failed is None, err
    assert "messages: 7 created" in out
    assert (tree_of(conversation), shown(conversation)) == before
    assert [content for _, _, content, _ in before[1]] == [
        "q1",
        "a1",
        "q2 edited",
        "a2 regenerated",
    ]
    page = alice_client.get(f"/c/{conversation.pk}/").text
    assert "a2 regenerated" in page and "a2 to the edit" not in page and "2 / 2" in page
    assert {fmt: export("--format", fmt) for fmt in importing_formats()} == files
    # The branch before the edit is one switch away, as it was.
    alice_client.post(f"/c/{conversation.pk}/m/{made['q2'].pk}/show")
    assert [content for _, _, content, _ in shown(conversation)] == ["q1", "a1", "q2", "a2"]


def test_every_format_carries_the_tree_and_markdown_marks_the_branches(conversation):
    made = add_branches(conversation)
    ids = {name: str(message.pk) for name, message in made.items()}
    rows = records()
    text = export("--format", "markdown")
    table = list(csv.DictReader(io.StringIO(export("--format", "csv"))))

    (record,) = [row for row in rows if row["type"] == "conversation"]
    parents = {row["id"]: row["parent"] for row in rows if row["type"] == "message"}
    assert record["current_leaf"] == ids["a2_regenerated"]
    assert parents == {
        ids["q1"]: None,
        ids["a1"]: ids["q1"],
        ids["q2"]: ids["a1"],
        ids["a2"]: ids["q2"],
        ids["q2_edited"]: ids["a1"],
        ids["a2_to_edit"]: ids["q2_edited"],
        ids["a2_regenerated"]: ids["q2_edited"],
    }
    assert {row["message_id"]: row["message_parent"] or None for row in table} == parents
    assert {row["conversation_current_leaf"] for row in table} == {ids["a2_regenerated"]}
    headings = [line for line in text.splitlines() if line.startswith("## ")]
    assert [heading.split(" (")[1:] for heading in headings] == [
        [],
        [],
        ["version 1 of 2, not on the shown branch)"],
        ["not on the shown branch)"],
        ["version 2 of 2, follows #2)"],
        ["version 1 of 2, not on the shown branch)"],
        ["version 2 of 2, follows #5)"],
    ]


def test_a_file_from_before_branches_imports_as_one_path_with_replaced_answers_as_versions(
    alice, tmp_path
):
    """A failed answer retried, then regenerated: three answers to q1, in seq order."""
    chat = str(uuid.uuid4())
    q1, failed_answer, replaced, kept, q2, a2 = (uuid.uuid4() for _ in range(6))
    answer = {"role": "assistant", "reply_to": str(q1)}
    rows = [
        (q1, {}),
        (failed_answer, {**answer, "status": "error"}),
        (replaced, answer),
        (kept, answer),
        (q2, {}),
        (a2, {"role": "assistant", "reply_to": str(q2)}),
    ]
    lines = []
    for seq, (pk, fields) in enumerate(rows, start=1):
        record = json.loads(message_line(chat, seq, id=str(pk), **fields))
        del record["parent"]  # version 1 had none
        lines.append(json.dumps(record))
    path = write_lines(tmp_path, [OLD_HEADER, conversation_line(chat), *lines])

    _, err, failed = run_import(path)

    assert failed is None, err
    imported = Conversation.objects.get(pk=chat)
    parents, current_leaf = tree_of(imported)
    assert {pk: parent for pk, (_, parent, _) in parents.items()} == {
        q1: None,
        failed_answer: q1,
        replaced: q1,
        kept: q1,
        q2: kept,
        a2: q2,
    }
    assert current_leaf == a2
    assert [
        (pk, versions and (versions.index, versions.count))
        for pk, _, _, versions in shown(imported)
    ] == [
        (q1, None),
        (kept, (3, 3)),
        (q2, None),
        (a2, None),
    ]


def test_without_hidden_messages_a_message_below_one_follows_its_nearest_shown_ancestor(
    conversation, tmp_path
):
    made = add_branches(conversation)
    Message.objects.filter(pk=made["a1"].pk).update(hidden=True)
    Message.objects.filter(pk=made["a2_regenerated"].pk).update(hidden=True)
    dump = export()
    rows = [json.loads(line) for line in dump.splitlines()]

    (record,) = [row for row in rows if row["type"] == "conversation"]
    parents = {row["id"]: row["parent"] for row in rows if row["type"] == "message"}
    assert str(made["a1"].pk) not in parents and str(made["a2_regenerated"].pk) not in parents
    assert parents[str(made["q2"].pk)] == parents[str(made["q2_edited"].pk)] == str(made["q1"].pk)
    assert record["current_leaf"] == str(made["q2_edited"].pk)
    # The file holds together: it imports as the tree of what it carries.
    Conversation.objects.all().delete()
    _, err, failed = run_import(write_lines(tmp_path, dump.splitlines()))
    assert failed is None, err
    assert Tree.of(conversation).parent[made["q2"].pk] == made["q1"].pk


# Formats --------------------------------------------------------------------------------------


def test_jsonl_starts_with_a_versioned_header_and_keeps_seq_order(chats):
    rows = records("--user", "alice@example.com")

    assert rows[0] == {"type": "header", "schema": "streamchat.conversations", "version": 2}
    tea = [r for r in rows if r["type"] == "message" and r["conversation"] == str(chats["tea"].pk)]
    assert [r["seq"] for r in tea] == [1, 2, 3, 4]
    assert tea[1]["reply_to"] == tea[0]["id"] and tea[1]["prompt_tokens"] == 12
    assert tea[3]["status"] == "error" and tea[3]["error_id"] == "ab12cd34"


def test_json_is_one_document_with_the_messages_inside_their_conversation(chats):
    document = json.loads(export("--format", "json"))

    assert (document["schema"], document["version"]) == ("streamchat.conversations", 2)
    by_title = {c["title"]: c for c in document["conversations"]}
    assert [m["seq"] for m in by_title["Bob's chat"]["messages"]] == [1, 2]
    assert by_title["Empty"]["messages"] == []


def test_csv_has_one_row_per_message_and_one_for_an_empty_conversation(chats):
    rows = list(
        csv.DictReader(io.StringIO(export("--format", "csv", "--user", "alice@example.com")))
    )

    assert {row["schema_version"] for row in rows} == {"2"}
    empty = [row for row in rows if row["conversation_title"] == "Empty"]
    assert len(empty) == 1 and empty[0]["message_id"] == ""
    tea = [row for row in rows if row["conversation_id"] == str(chats["tea"].pk)]
    assert tea[2]["message_content"] == 'Line one\r\nline two, with "quotes", commas\tand tabs'
    assert len(rows) == 4 + 2 + 1  # the hidden answer is left out by default


def test_an_answers_reasoning_travels_in_every_format_and_imports_back(chats, tmp_path):
    thought = "Green or <b>black</b>?\nEither: 3 min."
    tea = str(chats["tea"].pk)
    rows = records("--conversation", tea)
    table = list(csv.DictReader(io.StringIO(export("--format", "csv", "--conversation", tea))))
    text = export("--format", "markdown", "--conversation", tea)

    assert [r["reasoning"] for r in rows if r["type"] == "message"] == ["", thought, "", ""]
    assert [r["message_reasoning"] for r in table] == ["", thought, "", ""]
    assert "**Thinking**\n\n> Green or <b>black</b>?\n> Either: 3 min.\n\n**Steep**" in text
    Conversation.objects.all().delete()
    _, err, failed = run_import(write_lines(tmp_path, export_lines(rows)))
    assert failed is None, err
    answer = Message.objects.get(conversation_id=tea, seq=2)
    assert (answer.reasoning, answer.content) == (
        thought,
        "**Steep** 3 min\n\n```py\nprint('hi')\n```",
    )


def test_a_file_without_the_reasoning_key_imports_with_none(chats, tmp_path):
    rows = records("--conversation", str(chats["tea"].pk))
    for row in rows:
        row.pop("reasoning", None)  # a file written before the key existed
    Conversation.objects.all().delete()

    _, err, failed = run_import(write_lines(tmp_path, export_lines(rows)))

    assert failed is None, err
    assert set(Message.objects.values_list("reasoning", flat=True)) == {""}


def export_lines(rows: list[dict]) -> list[str]:
    return [json.dumps(row, ensure_ascii=False) for row in rows]


def test_markdown_reads_as_a_transcript(chats):
    text = export("--format", "markdown", "--conversation", str(chats["tea"].pk))

    assert text.startswith("<!-- streamchat.conversations version 2 -->")
    assert '# Tea & <script>alert("x")</script>' in text
    assert text.index("## 1. user") < text.index("## 2. assistant") < text.index("## 4. assistant")
    assert "(error)" in text and "> Answer briefly.\n> Always." in text


def test_output_file_ending_in_gz_is_gzip_and_nothing_partial_is_left(chats, tmp_path):
    target = tmp_path / "all.jsonl.gz"

    export("--output", str(target))

    with gzip.open(target, "rt", encoding="utf-8") as stream:
        assert stream.read() == export()
    assert [p.name for p in tmp_path.iterdir()] == ["all.jsonl.gz"]


def test_progress_bar_goes_to_stderr_only_when_it_is_a_terminal(chats):
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    out, terminal = io.StringIO(), Terminal()
    call_command("export_conversations", stdout=out, stderr=terminal)

    assert "8/8 messages" in terminal.getvalue()
    assert "messages" not in export().splitlines()[0]  # and never in the data


# Filters --------------------------------------------------------------------------------------


def test_hidden_messages_and_conversations_are_left_out_unless_asked_for(chats):
    default, everything = records(), records("--include-hidden")

    assert "hidden answer" not in contents(default) and "bad stuff" not in contents(default)
    assert "Hidden conversation" not in titles(default)
    assert {"hidden answer", "bad stuff"} <= contents(everything)
    assert "Hidden conversation" in titles(everything)


def test_user_filter_exports_only_that_users_conversations(chats):
    assert titles(records("--user", "BOB@example.com")) == {"Bob's chat"}
    both = records("--user", "bob@example.com", "--user", "alice@example.com")
    assert titles(both) == {
        'Tea & <script>alert("x")</script>',
        "Hidden bits",
        "Empty",
        "Bob's chat",
    }


def test_conversation_filter_exports_only_those_conversations(chats):
    rows = records("--conversation", str(chats["bob"].pk), "--conversation", str(chats["empty"].pk))

    assert titles(rows) == {"Bob's chat", "Empty"}
    assert contents(rows) == {"hi from bob", "hello bob"}


def test_since_and_until_keep_messages_created_in_that_window(chats):
    since = records("--since", (T0 + timedelta(days=10)).date().isoformat())
    until = records("--until", (T0 + timedelta(minutes=1)).isoformat())
    window = records("--since", "2026-01-20", "--until", "2026-01-21")

    assert titles(since) == {"Hidden bits", "Bob's chat"}  # an empty conversation has no activity
    assert contents(until) == {"How do I brew tea? ✓ 🍵"}
    assert contents(window) == {"visible question", "flagged question"}


def test_unknown_user_is_an_error_not_an_empty_export(chats):
    with pytest.raises(CommandError, match=r"no user with email nobody@example\.com"):
        export("--user", "nobody@example.com")


# Bad input ------------------------------------------------------------------------------------

HEADER = '{"type":"header","schema":"streamchat.conversations","version":2}'
OLD_HEADER = HEADER.replace('"version":2', '"version":1')  # before branches: no parent


def conversation_line(conversation_id: str, owner: str = "alice@example.com", **extra) -> str:
    record = {
        "type": "conversation",
        "id": conversation_id,
        "owner": owner,
        "title": "Imported",
        "created_at": "2026-02-01T10:00:00+00:00",
        "updated_at": "2026-02-01T11:00:00+00:00",
        **extra,
    }
    return json.dumps(record)


def message_line(conversation_id: str, seq: int, **extra) -> str:
    record = {
        "type": "message",
        "id": str(uuid.uuid4()),
        "conversation": conversation_id,
        "seq": seq,
        "parent": None,
        "role": "user",
        "content": f"message {seq}",
        "created_at": "2026-02-01T10:00:00+00:00",
        "updated_at": "2026-02-01T10:00:00+00:00",
        **extra,
    }
    return json.dumps(record)


def test_bad_lines_are_reported_by_number_and_their_conversation_is_not_half_imported(
    alice, tmp_path
):
    good, bad, also_good = (str(uuid.uuid4()) for _ in range(3))
    path = write_lines(
        tmp_path,
        [
            HEADER,
            conversation_line(good),  # 2
            message_line(good, 1),
            conversation_line(bad),  # 4
            message_line(bad, 1),  # 5: valid, but its conversation fails
            message_line(bad, 2, role="moderator"),  # 6
            "{not json",  # 7
            conversation_line(also_good),  # 8
            message_line(also_good, 1),
        ],
    )

    out, err, failed = run_import(path)

    assert failed is not None
    assert "line 6: role: must be one of" in err and "line 7: not JSON" in err
    assert "conversations: 2 created, 0 already present, 1 failed" in out
    assert set(Conversation.objects.values_list("id", flat=True)) == {
        uuid.UUID(good),
        uuid.UUID(also_good),
    }
    assert Message.objects.filter(conversation_id=bad).count() == 0


@pytest.mark.parametrize(
    ("line", "error"),
    [
        (b'{"type":"message","seq":NaN}', "NaN is not a number JSON allows"),
        (b"[" * 100_000 + b"]" * 100_000, "JSON nested too deeply"),
        (b"\xff\xfe binary \x00 garbage", "not UTF-8"),
        (b'["an", "array"]', "not a JSON object"),
        (b'{"type":"attachment"}', "unknown record type 'attachment'"),
        (HEADER.encode(), "a second header"),
        ("MSG:content=\u0000", "content: contains a NUL character"),
        ('MSG:content="\\ud800"', "content: contains an unpaired surrogate"),
        ("MSG:seq=-1", "seq: must be an integer from 1"),
        ("MSG:seq=99999999999", "seq: must be an integer from 1"),
        ("MSG:seq=true", "seq: must be an integer"),
        ('MSG:created_at="2026-02-01T10:00:00"', "created_at: must carry a UTC offset"),
        ('MSG:created_at="yesterday"', "created_at: must be an ISO 8601"),
        ('MSG:id="../../etc/passwd"', "id: must be a UUID"),
        (
            'MSG:conversation="00000000-0000-0000-0000-000000000000"',
            "a message must follow its conversation",
        ),
        ('MSG:hidden="yes"', "hidden: must be true or false"),
        ('MSG:status="streaming!"', "status: must be one of"),
    ],
)
def test_hostile_lines_are_refused_with_their_line_number(alice, tmp_path, line, error):
    target = str(uuid.uuid4())
    if isinstance(line, str):  # MSG:field=json-value: a message line with one field replaced
        name, value = line[4:].split("=", 1)
        record = json.loads(message_line(target, 1))
        record[name] = json.loads(value) if value != "\u0000" else value
        line = json.dumps(record).encode()
    path = write_lines(tmp_path, [HEADER, conversation_line(target), line])

    _, err, failed = run_import(path)

    assert failed is not None
    assert f"line 3: {error}" in err
    assert not Conversation.objects.filter(pk=target).exists()


def test_an_overlong_line_is_skipped_without_being_read_whole(alice, tmp_path, monkeypatch):
    monkeypatch.setattr(importing, "MAX_LINE_BYTES", 1000)
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    path = write_lines(
        tmp_path,
        [
            HEADER,
            conversation_line(first),
            message_line(first, 1, content="x" * 5000),
            conversation_line(second),
            message_line(second, 1),
        ],
    )

    out, err, _ = run_import(path)

    assert "line 3: longer than 1000 bytes" in err
    assert list(Conversation.objects.values_list("id", flat=True)) == [uuid.UUID(second)]
    assert "1 created" in out


@pytest.mark.parametrize(
    ("lines", "error"),
    [
        ([], "line 1: empty file"),
        ([conversation_line(str(uuid.uuid4()))], "line 1: the first line must be"),
        (
            [HEADER.replace('"version":2', '"version":3'), conversation_line(str(uuid.uuid4()))],
            "line 1: schema version 3; this server reads 1 and 2",
        ),
    ],
)
def test_a_file_without_our_header_imports_nothing(alice, tmp_path, lines, error):
    path = write_lines(tmp_path, lines)

    _, err, failed = run_import(path)

    assert failed is not None and error in err
    assert Conversation.objects.count() == 0


def test_an_import_cannot_write_into_another_users_conversation(chats, tmp_path):
    """The file claims Bob's conversation for Alice: refused, and Bob's stays as it was."""
    bobs = str(chats["bob"].pk)
    path = write_lines(tmp_path, [HEADER, conversation_line(bobs), message_line(bobs, 3)])

    _, err, failed = run_import(path)

    assert failed is not None and "line 2: conversation" in err and "another user" in err
    assert chats["bob"].messages.count() == 2


def test_an_import_cannot_move_a_message_between_conversations(chats, tmp_path):
    stolen = chats["tea"].messages.get(seq=1)
    target = str(uuid.uuid4())
    path = write_lines(
        tmp_path,
        [
            HEADER,
            conversation_line(target, "bob@example.com"),
            message_line(target, 1, id=str(stolen.pk)),
        ],
    )

    _, err, _ = run_import(path)

    assert "line 3: message" in err and "exists in another conversation" in err
    stolen.refresh_from_db()
    assert stolen.conversation_id == chats["tea"].pk
    assert not Conversation.objects.filter(pk=target).exists()


def test_a_taken_seq_or_duplicate_message_fails_the_whole_conversation(chats, tmp_path):
    tea = str(chats["tea"].pk)
    fresh = str(uuid.uuid4())
    twice = message_line(fresh, 1)
    path = write_lines(
        tmp_path,
        [
            HEADER,
            conversation_line(tea, title="ignored"),
            message_line(tea, 5),
            message_line(tea, 2),  # 4: seq 2 is another message's
            conversation_line(fresh),
            twice,
            twice.replace('"seq": 1', '"seq": 2'),  # 7: the same id again
        ],
    )

    _, err, _ = run_import(path)

    assert "line 4: seq 2 is already taken" in err and "line 7: message" in err
    assert chats["tea"].messages.count() == 4  # seq 5 was rolled back with it
    assert not Conversation.objects.filter(pk=fresh).exists()


def test_owners_are_matched_by_email_and_unknown_ones_reported(alice, tmp_path):
    carol = make_user("Carol@Example.com")
    mine, nobodys = str(uuid.uuid4()), str(uuid.uuid4())
    path = write_lines(
        tmp_path,
        [
            HEADER,
            conversation_line(mine, "carol@example.COM"),
            conversation_line(nobodys, "ghost@example.com"),
        ],
    )

    _, err, _ = run_import(path)

    assert Conversation.objects.get(pk=mine).owner == carol
    assert "line 3: no user with email ghost@example.com" in err


def test_a_broken_gzip_file_is_a_clear_error(alice, tmp_path):
    path = tmp_path / "broken.jsonl.gz"
    path.write_bytes(gzip.compress((HEADER + "\n").encode())[:-12])

    with pytest.raises(CommandError, match="could not read"):
        call_command("import_conversations", str(path), stdout=io.StringIO())


def branch_lines(conversation_id: str, **changes) -> tuple[list[str], list[dict]]:
    """A question, its answer and an edited question; `changes` replace record fields:
    `third_parent="..."` the third message's parent."""
    q1 = json.loads(message_line(conversation_id, 1))
    a1 = json.loads(message_line(conversation_id, 2, role="assistant", parent=q1["id"]))
    q2 = json.loads(message_line(conversation_id, 3, parent=a1["id"]))
    q2["parent"] = changes.get("third_parent", q2["parent"])
    rows = [q1, a1, q2]
    return [HEADER, conversation_line(conversation_id), *(json.dumps(r) for r in rows)], rows


@pytest.mark.parametrize(
    ("parent", "error"),
    [
        ("unknown", "is neither in this file nor in the conversation"),
        ("other conversation", "is a message of another conversation"),
        ("later", "has seq 4, not lower than this message's 3"),
        ("itself", "has seq 3, not lower than this message's 3"),
    ],
)
def test_a_bad_parent_is_a_clear_error_and_nothing_is_stored(chats, tmp_path, parent, error):
    target = str(uuid.uuid4())
    lines, rows = branch_lines(target)
    later = json.loads(message_line(target, 4, role="assistant", parent=rows[2]["id"]))
    rows[2]["parent"] = {
        "unknown": str(uuid.uuid4()),
        "other conversation": str(chats["tea"].messages.get(seq=1).pk),
        "later": later["id"],
        "itself": rows[2]["id"],
    }[parent]
    path = write_lines(tmp_path, [*lines[:2], *(json.dumps(r) for r in [*rows, later])])

    _, err, failed = run_import(path)

    assert failed is not None
    assert f"line 5: parent {rows[2]['parent']} {error}" in err and "not imported" in err
    assert not Conversation.objects.filter(pk=target).exists()
    assert not Message.objects.filter(conversation_id=target).exists()


def test_a_message_of_this_version_without_a_parent_key_is_refused(alice, tmp_path):
    target = str(uuid.uuid4())
    record = json.loads(message_line(target, 1))
    del record["parent"]
    path = write_lines(tmp_path, [HEADER, conversation_line(target), json.dumps(record)])

    _, err, failed = run_import(path)

    assert failed is not None and "line 3: parent: missing" in err
    assert not Conversation.objects.filter(pk=target).exists()


def test_a_current_leaf_the_file_does_not_carry_shows_the_latest_message(alice, tmp_path):
    """An --until export can leave the leaf out; the page then shows the latest message."""
    target = str(uuid.uuid4())
    lines, rows = branch_lines(target)
    lines[1] = conversation_line(target, current_leaf=str(uuid.uuid4()))

    _, err, failed = run_import(write_lines(tmp_path, lines))

    assert failed is None, err
    assert str(Conversation.objects.get(pk=target).current_leaf_id) == rows[2]["id"]


def test_an_answer_exported_mid_stream_imports_as_interrupted_with_retry(alice, tmp_path):
    conversation = str(uuid.uuid4())
    path = write_lines(
        tmp_path,
        [
            HEADER,
            conversation_line(conversation),
            message_line(conversation, 1),
            message_line(conversation, 2, role="assistant", status="streaming", content="half"),
        ],
    )
    run_import(path)
    answer = Message.objects.get(conversation_id=conversation, seq=2)
    # Nothing generates it here: it must not spin, nor count as a live answer of alice's.
    assert (answer.status, answer.content) == ("interrupted", "half")


def test_a_conversations_temperature_is_exported_and_imported(alice, tmp_path):
    conversation = add_conversation(alice, "Warm", [("user", "hi", {})], at=T0)
    conversation.temperature = 0.7
    conversation.save()
    exported = export("--format", "jsonl")
    records = [json.loads(line) for line in exported.splitlines()]
    assert [r["temperature"] for r in records if r["type"] == "conversation"] == [0.7]
    conversation.delete()

    _, _, failed = run_import(write_lines(tmp_path, exported.splitlines()))

    assert failed is None
    assert Conversation.objects.get().temperature == 0.7


@pytest.mark.parametrize("value", [3, -0.5, "warm", True])
def test_a_temperature_out_of_range_is_refused_with_its_line(alice, tmp_path, value):
    target = str(uuid.uuid4())
    path = write_lines(tmp_path, [HEADER, conversation_line(target, temperature=value)])

    _, err, failed = run_import(path)

    assert failed is not None
    assert "line 2: temperature: must be a number from 0 to 2, or null" in err
    assert not Conversation.objects.exists()
