"""Conversations out as a file: the one exporter behind the command, the admin action and
the users' "download my data" page.

Conversations and their messages are read as two streams in the same order (conversation
id, then `seq`) with `.iterator()` (a server-side cursor on PostgreSQL) and merged here, so
memory stays flat whatever the size. The output is deterministic (no export time in it): the
same rows always give the same bytes. Schema: docs/export-schema.md.

Every message of every branch is exported, with its `parent`; each conversation with its
`current_leaf` (the branch its page shows). Where hidden messages are left out, a message
below one names the nearest message above it that the file carries, so the file's tree holds
together; the Markdown transcript marks where each message sits among the branches.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator, Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any
from uuid import UUID

from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.core.files.storage import default_storage
from django.db.models import Exists, OuterRef, Q, QuerySet

from conversations.branches import Tree, branch_notes
from conversations.models import Attachment, Conversation, Message

SCHEMA = "streamchat.conversations"
# 2: messages form a tree (`parent`, `current_leaf`). The importer still reads 1 (one path).
SCHEMA_VERSION = 2
FORMATS = ("jsonl", "json", "csv", "markdown")
CONTENT_TYPES = {
    "jsonl": "application/x-ndjson; charset=utf-8",
    "json": "application/json; charset=utf-8",
    "csv": "text/csv; charset=utf-8",
    "markdown": "text/markdown; charset=utf-8",
}
EXTENSIONS = {"jsonl": "jsonl", "json": "json", "csv": "csv", "markdown": "md"}

# Record fields in schema order (docs/export-schema.md), mapped from model fields.
CONVERSATION_FIELDS = {
    "id": "id",
    "owner": "owner__email",
    "title": "title",
    "provider": "provider",
    "model": "model",
    "system_prompt": "system_prompt",
    "temperature": "temperature",
    # The name of the preset it started from (null: none, or deleted since). The presets
    # themselves are user-level data, outside this conversation-centred schema.
    "preset": "preset__name",
    "archived": "archived",
    "hidden": "hidden",
    "current_leaf": "current_leaf_id",
    "created_at": "created_at",
    "updated_at": "updated_at",
}
MESSAGE_FIELDS = {
    "id": "id",
    "conversation": "conversation_id",
    "seq": "seq",
    "role": "role",
    "status": "status",
    "content": "content",
    "reasoning": "reasoning",
    "client_id": "client_id",
    "reply_to": "reply_to_id",
    "parent": "parent_id",
    "provider": "provider",
    "model": "model",
    "error": "error",
    "error_id": "error_id",
    "finish_reason": "finish_reason",
    "prompt_tokens": "prompt_tokens",
    "completion_tokens": "completion_tokens",
    "first_token_ms": "first_token_ms",
    "duration_ms": "duration_ms",
    "flagged": "flagged",
    "hidden": "hidden",
    "moderation_reason": "moderation_reason",
    "rating": "rating",
    "rating_comment": "rating_comment",
    "rated_at": "rated_at",
    "created_at": "created_at",
    "updated_at": "updated_at",
}
# A message's files, as the optional key `attachments` of its record (JSON Lines and JSON):
# their metadata, and `file`, the name the bytes have beside the export (--with-files DIR).
ATTACHMENT_FIELDS = ("id", "name", "kind", "content_type", "size", "hidden")
ROWS_PER_FETCH = 2000
CHUNK_CHARS = 64 * 1024

Record = dict[str, Any]


@dataclass(frozen=True, kw_only=True)
class Selection:
    """Which conversations, and which of their messages, an export contains."""

    conversations: QuerySet[Conversation]
    since: datetime | None = None
    until: datetime | None = None
    include_hidden: bool = False

    def message_filter(self) -> Q:
        q = Q()
        if not self.include_hidden:
            q &= Q(hidden=False)
        if self.since is not None:
            q &= Q(created_at__gte=self.since)
        if self.until is not None:
            q &= Q(created_at__lt=self.until)
        return q

    def conversation_rows(self) -> QuerySet:
        qs = self.conversations
        if not self.include_hidden:
            qs = qs.filter(hidden=False)
        if self.since is not None or self.until is not None:
            # A date window keeps the conversations active in it (they have a message there).
            window = Message.objects.filter(Q(conversation=OuterRef("pk")) & self.message_filter())
            qs = qs.filter(Exists(window))
        return qs.order_by("id").values_list(*CONVERSATION_FIELDS.values())

    def message_rows(self) -> QuerySet:
        conversation_ids = self.conversation_rows().order_by().values_list("id")
        return (
            Message.objects.filter(self.message_filter(), conversation__in=conversation_ids)
            .order_by("conversation_id", "seq")
            .values_list(*MESSAGE_FIELDS.values())
        )

    def count_messages(self) -> int:
        return self.message_rows().order_by().count()

    def hidden_rows(self) -> QuerySet | None:
        """(conversation, id, parent) of the messages left out for being hidden, if any are:
        their children name the nearest ancestor the file carries instead."""
        if self.include_hidden:
            return None
        conversation_ids = self.conversation_rows().order_by().values_list("id")
        return (
            Message.objects.filter(hidden=True, conversation__in=conversation_ids)
            .order_by("conversation_id")
            .values_list("conversation_id", "id", "parent_id")
        )

    def attachment_rows(self) -> QuerySet:
        """(conversation, message, *ATTACHMENT_FIELDS, storage name) of the files of the
        messages exported, in the walk's order; hidden ones only with `include_hidden`."""
        conversation_ids = self.conversation_rows().order_by().values_list("id")
        q = Q(message__conversation__in=conversation_ids)
        if not self.include_hidden:
            q &= Q(hidden=False, message__hidden=False)
        if self.since is not None:
            q &= Q(message__created_at__gte=self.since)
        if self.until is not None:
            q &= Q(message__created_at__lt=self.until)
        return (
            Attachment.objects.filter(q)
            .order_by("message__conversation_id", "message__seq", "created_at", "id")
            .values_list(
                "message__conversation_id", "message_id", *ATTACHMENT_FIELDS, "storage_name"
            )
        )

    def tree_rows(self) -> QuerySet:
        """(conversation, id, parent, seq) of every message of the selected conversations,
        hidden or outside the dates too: the tree their pages show, for the Markdown notes."""
        conversation_ids = self.conversation_rows().order_by().values_list("id")
        return (
            Message.objects.filter(conversation__in=conversation_ids)
            .order_by("conversation_id", "seq")
            .values_list("conversation_id", "id", "parent_id", "seq")
        )


def select(
    *,
    conversations: QuerySet[Conversation] | None = None,
    owner: User | None = None,
    emails: Sequence[str] = (),
    conversation_ids: Sequence[UUID] = (),
    since: datetime | None = None,
    until: datetime | None = None,
    include_hidden: bool = False,
) -> Selection:
    """The filters shared by the command, the admin and the user's own download."""
    qs = Conversation.objects.all() if conversations is None else conversations
    if owner is not None:
        qs = qs.filter(owner=owner)
    if emails:
        by_email = Q()
        for email in emails:
            by_email |= Q(owner__email__iexact=email)
        qs = qs.filter(by_email)
    if conversation_ids:
        qs = qs.filter(id__in=conversation_ids)
    return Selection(conversations=qs, since=since, until=until, include_hidden=include_hidden)


def export_chunks(
    selection: Selection,
    fmt: str = "jsonl",
    *,
    progress: Callable[[int], None] | None = None,
    files_dir: Path | None = None,
) -> Generator[str]:
    """The export as text chunks of about CHUNK_CHARS; `progress(messages_so_far)` now and then.
    With `files_dir`, each exported attachment's bytes are written there as its `file`."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; choose from {', '.join(FORMATS)}")
    walk = _Walk(selection, progress, files_dir)
    writer = {"jsonl": _jsonl, "json": _json, "csv": _csv, "markdown": _markdown}[fmt]
    yield from _chunked(writer(walk))
    walk.finish()


async def aexport_chunks(chunks: Generator[str]) -> AsyncIterator[str]:
    """For StreamingHttpResponse under ASGI, which would otherwise read a sync iterator whole
    into memory: chunk by chunk, each read in the request's one sync thread (its cursor)."""
    step = sync_to_async(_next_or_none, thread_sensitive=True)
    try:
        while (chunk := await step(chunks)) is not None:
            yield chunk
    finally:
        await sync_to_async(chunks.close, thread_sensitive=True)()


def _next_or_none(chunks: Iterator[str]) -> str | None:
    return next(chunks, None)


def filename(fmt: str, stem: str = "streamchat-export") -> str:
    return f"{stem}.{EXTENSIONS[fmt]}"


def header_record() -> Record:
    return {"type": "header", "schema": SCHEMA, "version": SCHEMA_VERSION}


CONVERSATION_KEYS = ("type", *CONVERSATION_FIELDS)
MESSAGE_KEYS = ("type", *MESSAGE_FIELDS)


class _Walk:
    """Each conversation with its messages, from two cursors in the same order.

    Records hold the database's values (UUID, datetime): each writer turns them into text, the
    JSON ones in the C encoder's `default` hook, which is most of the speed at a million rows.
    """

    def __init__(
        self,
        selection: Selection,
        progress: Callable[[int], None] | None,
        files_dir: Path | None = None,
    ) -> None:
        self.selection = selection
        self.progress = progress
        self.files_dir = files_dir
        self.files = _PerConversation(selection.attachment_rows())
        self.messages_seen = 0
        hidden = selection.hidden_rows()
        self.hidden = _PerConversation(hidden) if hidden is not None else None
        self.trees = _PerConversation(selection.tree_rows())
        self.stored_leaf: UUID | None = None  # the current conversation's, before lifting

    def __iter__(self) -> Iterator[tuple[Record, Iterator[Record]]]:
        messages = self.selection.message_rows().iterator(chunk_size=ROWS_PER_FETCH)
        pending = next(messages, None)

        def messages_of(conversation_id: UUID, lifted: Lifted) -> Iterator[Record]:
            nonlocal pending
            files = self._files_of(conversation_id)
            # The two queries see the database a moment apart: messages whose conversation the
            # second no longer has (deleted meanwhile) sort before the next one and are
            # skipped, never filed under the wrong conversation.
            while pending is not None and pending[1] <= conversation_id:
                row, pending = pending, next(messages, None)
                if row[1] == conversation_id:
                    self._count()
                    record = dict(zip(MESSAGE_KEYS, ("message", *row), strict=True))
                    if lifted and record["parent"] in lifted:
                        record["parent"] = _carried(record["parent"], lifted)
                    if record["id"] in files:
                        record["attachments"] = files[record["id"]]
                    yield record

        conversations = self.selection.conversation_rows().iterator(chunk_size=ROWS_PER_FETCH)
        for row in conversations:
            record = dict(zip(CONVERSATION_KEYS, ("conversation", *row), strict=True))
            lifted: Lifted = dict(self.hidden.of(row[0])) if self.hidden is not None else {}
            self.stored_leaf = record["current_leaf"]
            if lifted and self.stored_leaf in lifted:
                record["current_leaf"] = _carried(self.stored_leaf, lifted)
            yield record, messages_of(row[0], lifted)

    def _files_of(self, conversation_id: UUID) -> dict[UUID, list[Record]]:
        """The conversation's attachment records by message (their bytes written beside
        the export when asked)."""
        found: dict[UUID, list[Record]] = {}
        for message_id, *values, storage_name in self.files.of(conversation_id):
            record = dict(zip(ATTACHMENT_FIELDS, values, strict=True))
            record["file"] = f"{record['id']}{PurePosixPath(storage_name).suffix}"
            found.setdefault(message_id, []).append(record)
            if self.files_dir is not None:
                with default_storage.open(storage_name, "rb") as source:
                    (self.files_dir / record["file"]).write_bytes(source.read())
        return found

    def tree_of(self, conversation_id: UUID) -> Tree:
        """The conversation's whole tree (read only by the writers that ask)."""
        return Tree(self.trees.of(conversation_id))

    def _count(self) -> None:
        self.messages_seen += 1
        if self.progress is not None and self.messages_seen % 1000 == 0:
            self.progress(self.messages_seen)

    def finish(self) -> None:
        if self.progress is not None:
            self.progress(self.messages_seen)


Lifted = dict[UUID, UUID | None]  # a left-out message's id: its parent


def _carried(pk: UUID | None, lifted: Lifted) -> UUID | None:
    """The nearest of `pk` and its ancestors that the file carries."""
    while pk is not None and pk in lifted:
        pk = lifted[pk]
    return pk


class _PerConversation:
    """Another cursor in the walk's order (conversation id first), opened when first asked:
    the rows of one conversation at a time, so memory holds no more than those."""

    def __init__(self, rows: QuerySet) -> None:
        self.rows = rows
        self._cursor: Iterator[tuple[Any, ...]] | None = None
        self._pending: tuple[Any, ...] | None = None

    def of(self, conversation_id: UUID) -> list[Any]:
        if self._cursor is None:
            self._cursor = self.rows.iterator(chunk_size=ROWS_PER_FETCH)
            self._pending = next(self._cursor, None)
        found = []
        while self._pending is not None and self._pending[0] <= conversation_id:
            row, self._pending = self._pending, next(self._cursor, None)
            if row[0] == conversation_id:
                found.append(row[1:])
        return found


def _text(value: object) -> object:
    """JSON's view of the values the database returns that JSON has no type for."""
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not exportable")


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=_text)
_dumps = _ENCODER.encode


def _jsonl(walk: _Walk) -> Iterator[str]:
    yield _dumps(header_record()) + "\n"
    for conversation, messages in walk:
        yield _dumps(conversation) + "\n"
        for message in messages:
            yield _dumps(message) + "\n"


def _json(walk: _Walk) -> Iterator[str]:
    """One document: schema, version, then "conversations", each with its "messages"."""
    yield _dumps({"schema": SCHEMA, "version": SCHEMA_VERSION})[:-1] + ',"conversations":['
    separator = "\n"
    for conversation, messages in walk:
        yield separator + _dumps(conversation)[:-1] + ',"messages":['
        inner = "\n"
        for message in messages:
            yield inner + _dumps(message)
            inner = ",\n"
        yield "]}"
        separator = ",\n"
    yield "\n]}\n"


CSV_COLUMNS = (
    "schema_version",
    *(f"conversation_{name}" for name in CONVERSATION_FIELDS),
    *(f"message_{name}" for name in MESSAGE_FIELDS if name != "conversation"),
)


def _csv(walk: _Walk) -> Iterator[str]:
    """One row per message with its conversation's columns; a conversation without messages
    is one row with empty message columns."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")

    def row(values: Iterable[object]) -> str:
        writer.writerow(values)
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    empty_message = [""] * (len(MESSAGE_FIELDS) - 1)
    yield row(CSV_COLUMNS)
    for conversation, messages in walk:
        head = [SCHEMA_VERSION, *(_csv_value(v) for k, v in conversation.items() if k != "type")]
        wrote = False
        for message in messages:
            wrote = True
            yield row(
                head
                + [
                    _csv_value(v)
                    for k, v in message.items()
                    if k not in ("type", "conversation", "attachments")
                ]
            )
        if not wrote:
            yield row(head + empty_message)


def _csv_value(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, UUID | datetime):
        return _text(value)
    return value


def _markdown(walk: _Walk) -> Iterator[str]:
    """For people, not for import: one section per conversation, one per message."""
    yield f"<!-- {SCHEMA} version {SCHEMA_VERSION} -->\n"
    for conversation, messages in walk:
        title = conversation["title"] or "New conversation"
        yield (
            f"\n# {title}\n\n"
            f"- id: `{conversation['id']}`\n- owner: {conversation['owner']}\n"
            f"- created: {_text(conversation['created_at'])}\n"
            f"- updated: {_text(conversation['updated_at'])}\n"
        )
        if conversation["provider"] or conversation["model"]:
            yield f"- model: {conversation['provider']} {conversation['model']}\n"
        if conversation["preset"]:
            yield f"- preset: {conversation['preset']}\n"
        if conversation["hidden"]:
            yield "- hidden by a moderator\n"
        if conversation["system_prompt"]:
            yield "\n**System prompt**\n\n" + _quote(conversation["system_prompt"]) + "\n"
        tree = walk.tree_of(conversation["id"])
        placed = branch_notes(tree, tree.path_to(tree.shown_leaf(walk.stored_leaf)))
        for message in messages:
            notes = [message["status"]] if message["status"] != "complete" else []
            notes += placed.get(message["id"], [])
            notes += [name for name in ("flagged", "hidden") if message[name]]
            suffix = f" ({', '.join(notes)})" if notes else ""
            when = _text(message["created_at"])
            yield f"\n## {message['seq']}. {message['role']} · {when}{suffix}\n\n"
            if message["reasoning"]:
                yield "**Thinking**\n\n" + _quote(message["reasoning"]) + "\n\n"
            yield f"{message['content']}\n"
            for file in message.get("attachments", ()):
                yield f"\n- file: {file['name']} ({file['content_type']}, {file['size']} bytes)\n"


def _quote(text: str) -> str:
    return "\n".join(f"> {line}" for line in text.split("\n"))


def _chunked(parts: Iterable[str]) -> Iterator[str]:
    pending: list[str] = []
    size = 0
    for part in parts:
        pending.append(part)
        size += len(part)
        if size >= CHUNK_CHARS:
            yield "".join(pending)
            pending, size = [], 0
    if pending:
        yield "".join(pending)
