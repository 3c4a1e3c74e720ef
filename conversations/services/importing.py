"""Conversations in from a JSONL export (schema in docs/export-schema.md).

Every line is checked before anything is written; owners are found by email; ids are kept, so
importing the same file twice creates nothing the second time; each conversation is written
in one transaction, so a bad line costs its own conversation and never leaves half of one.
Lines are read at most MAX_LINE_BYTES at a time: a hostile file cannot make us hold more.

The message tree comes back exactly: each message's `parent` (one of its conversation's, with
a lower seq, so there is no cycle) and the conversation's `current_leaf`. A version 1 file,
written before branches, has neither: each conversation becomes one path, by the rule
migration 0003 applied to the database (`branches.one_path`).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO
from uuid import UUID

from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import DatabaseError, transaction
from django.db.models import Field, Model, TextChoices

from conversations.branches import one_path
from conversations.models import Attachment, Conversation, Message
from conversations.services import attachments as attaching
from conversations.services.export import SCHEMA, SCHEMA_VERSION

READABLE_VERSIONS = (1, SCHEMA_VERSION)  # 1: before branches, no parent or current_leaf

MAX_LINE_BYTES = 8 * 1024 * 1024
MAX_REPORTED_ERRORS = 1000
BATCH = 500
MAX_SEQ = 2_147_483_647  # PositiveIntegerField on every database

Record = dict[str, Any]
NumberedLine = tuple[int, bytes | None]  # None: the line was too long and was skipped


class InvalidRecord(ValueError):
    pass


@dataclass
class LineError:
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass
class ImportReport:
    conversations_created: int = 0
    conversations_present: int = 0
    conversations_failed: int = 0
    messages_created: int = 0
    messages_present: int = 0
    attachments_created: int = 0
    lines: int = 0
    error_count: int = 0
    errors: list[LineError] = field(default_factory=list)  # the first MAX_REPORTED_ERRORS

    def error(self, line: int, message: str) -> None:
        self.error_count += 1
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append(LineError(line, message))

    def summary(self) -> str:
        files = f"attachments: {self.attachments_created} created; "
        return (
            f"conversations: {self.conversations_created} created, "
            f"{self.conversations_present} already present, {self.conversations_failed} failed; "
            f"messages: {self.messages_created} created, {self.messages_present} already present; "
            f"{files if self.attachments_created else ''}"
            f"{self.error_count} error(s) in {self.lines} line(s)"
        )


def read_lines(stream: BinaryIO) -> Iterator[NumberedLine]:
    """Numbered lines of a binary stream, none longer than MAX_LINE_BYTES in memory."""
    number = 0
    while line := stream.readline(MAX_LINE_BYTES + 1):
        number += 1
        if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
            while line and not line.endswith(b"\n"):  # skip the rest without keeping it
                line = stream.readline(MAX_LINE_BYTES + 1)
            yield number, None
        else:
            yield number, line


def import_conversations(
    lines: Iterable[NumberedLine],
    *,
    progress: Callable[[int], None] | None = None,
    files_dir: Path | None = None,
) -> ImportReport:
    """With `files_dir` (export_conversations --with-files), the messages' attachments are
    restored from the files there, each checked as an upload is; without it, they are left
    out (the messages are imported without them)."""
    report = ImportReport()
    owners = _Owners(files_dir)
    block: _Block | None = None
    header_seen = False
    version = SCHEMA_VERSION
    for number, raw in lines:
        report.lines = number
        if progress is not None and number % 1000 == 0:
            progress(number)
        if raw is not None and not raw.strip():
            continue
        try:
            if raw is None:
                raise InvalidRecord(f"longer than {MAX_LINE_BYTES} bytes")
            record = _parse(raw)
            if not header_seen:
                version = _check_header(record)
                header_seen = True
                continue
            kind = record.get("type")
            if kind == "conversation":
                _finish(block, report, owners)
                block = _Block(number, _uuid_or_none(record.get("id")), version)
                block.conversation = _validate(record, CONVERSATION_SPECS[version])
            elif kind == "message":
                message = _validate(record, MESSAGE_SPECS[version])
                if block is not None and block.id is None:
                    continue  # follows a conversation record without a readable id: failed
                if block is None or message["conversation_id"] != block.id:
                    raise InvalidRecord("a message must follow its conversation's record")
                block.messages.append((number, message))
            elif kind == "header":
                raise InvalidRecord("a second header")
            else:
                raise InvalidRecord(f"unknown record type {kind!r}")
        except InvalidRecord as exc:
            if not header_seen:
                report.error(number, f"{exc}; not a {SCHEMA} export, nothing imported")
                return report
            report.error(number, str(exc))
            if block is not None:
                block.failed = True
    if not header_seen:
        report.error(max(report.lines, 1), "empty file: no header, nothing imported")
        return report
    _finish(block, report, owners)
    if progress is not None:
        progress(report.lines)
    return report


@dataclass
class _Block:
    """One conversation record and the message records that follow it."""

    line: int
    id: UUID | None
    version: int
    conversation: Record | None = None
    messages: list[tuple[int, Record]] = field(default_factory=list)
    failed: bool = False


class _Conflict(Exception):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line


def _finish(block: _Block | None, report: ImportReport, owners: _Owners) -> None:
    if block is None:
        return
    if block.failed or block.conversation is None:
        report.conversations_failed += 1
        return
    try:
        with transaction.atomic():
            created, messages_created, messages_present = _write(block, owners)
    except _Conflict as exc:
        owners.drop_stored()  # the rows were rolled back: so are the files stored for them
        report.error(exc.line, f"{exc}; conversation not imported")
    except DatabaseError as exc:
        owners.drop_stored()
        report.error(block.line, f"the database refused it ({str(exc)[:200]}); not imported")
    else:
        report.attachments_created += len(owners.stored)
        owners.stored.clear()
        if created:
            report.conversations_created += 1
        else:
            report.conversations_present += 1
        report.messages_created += messages_created
        report.messages_present += messages_present
        return
    report.conversations_failed += 1


def _write(block: _Block, owners: _Owners) -> tuple[bool, int, int]:
    values = dict(block.conversation or {})
    conversation_id: UUID = values["id"]  # validated (block.id may be None)
    owner = owners.get(values.pop("owner"), block.line)
    current_leaf_id: UUID | None = values.pop("current_leaf_id", None)
    current_owner = (
        Conversation.objects.filter(pk=conversation_id).values_list("owner_id", flat=True).first()
    )
    created = current_owner is None
    if created:
        created_at, updated_at = values.pop("created_at"), values.pop("updated_at")
        Conversation(owner=owner, **values).save(force_insert=True)
    elif current_owner != owner.pk:
        raise _Conflict(
            block.line, f"conversation {conversation_id} exists and belongs to another user"
        )

    # What the conversation already holds: ids are idempotence, seqs and client_ids unique.
    held = list(
        Message.objects.filter(conversation_id=conversation_id).values_list(
            "id", "seq", "client_id", "role", "reply_to_id"
        )
    )
    held_ids = {row[0] for row in held}
    seqs = {row[1]: row[0] for row in held}
    client_ids = {row[2]: row[0] for row in held if row[2] is not None}
    file_ids = {message["id"] for _, message in block.messages}
    elsewhere = _ids_in_other_conversations(file_ids - held_ids, conversation_id)
    known = file_ids | held_ids
    # A parent's seq: the stored one for a message already held, else the file's.
    seq_of = {message["id"]: message["seq"] for _, message in block.messages}
    seq_of.update((row[0], row[1]) for row in held)
    unknown_parents: list[tuple[int, UUID]] = []

    new: list[Message] = []
    restoring: list[tuple[int, UUID, list[Record]]] = []
    timestamps: list[tuple[datetime, datetime]] = []
    present = 0
    seen: set[UUID] = set()
    for line, message in block.messages:
        message_id = message["id"]
        if message_id in seen:
            raise _Conflict(line, f"message {message_id} appears twice")
        seen.add(message_id)
        if message_id in elsewhere:
            raise _Conflict(line, f"message {message_id} exists in another conversation")
        if message_id in held_ids:
            present += 1
            continue
        if seqs.setdefault(message["seq"], message_id) != message_id:
            raise _Conflict(line, f"seq {message['seq']} is already taken in this conversation")
        client_id = message["client_id"]
        if client_id is not None and client_ids.setdefault(client_id, message_id) != message_id:
            raise _Conflict(line, f"client_id {client_id} is already used in this conversation")
        fields = dict(message)
        files = fields.pop("attachments")
        if files and owners.files_dir is not None:
            restoring.append((line, message_id, files))
            fields["attachment_count"] = len(files)
        if fields["reply_to_id"] not in known:
            fields["reply_to_id"] = None  # answers a message this file does not carry
        parent_id = fields.get("parent_id")
        if parent_id is not None:
            if parent_id not in seq_of:
                unknown_parents.append((line, parent_id))
            elif seq_of[parent_id] >= message["seq"]:
                raise _Conflict(
                    line,
                    f"parent {parent_id} has seq {seq_of[parent_id]}, not lower than this"
                    f" message's {message['seq']}: a message follows an earlier one",
                )
        if fields["status"] in Message.LIVE_STATUSES:
            # It was streaming when exported; nothing generates it here. Offer a retry.
            fields["status"] = Message.Status.INTERRUPTED
        timestamps.append((fields.pop("created_at"), fields.pop("updated_at")))
        new.append(Message(**fields))
    if unknown_parents:
        _refuse_unknown_parents(unknown_parents, conversation_id)
    if block.version == 1:
        _link_as_one_path(new, held)

    Message.objects.bulk_create(new, batch_size=BATCH)
    # auto_now_add/auto_now stamped "now" on insert: put the exported times back.
    for row, (row_created, row_updated) in zip(new, timestamps, strict=True):
        row.created_at, row.updated_at = row_created, row_updated
    Message.objects.bulk_update(new, ["created_at", "updated_at"], batch_size=BATCH)
    for line, message_id, files in restoring:
        _restore_files(line, message_id, files, owner, owners)
    changes: dict[str, object] = {}
    if created:
        changes.update(created_at=created_at, updated_at=updated_at)
    if new:
        # The branch the file shows; else (a version 1 file, an --until export that left the
        # leaf out) the latest message, as the page shows a conversation without a leaf.
        latest = seqs[max(seqs)]
        changes["current_leaf_id"] = current_leaf_id if current_leaf_id in known else latest
    if changes:
        Conversation.objects.filter(pk=conversation_id).update(**changes)
    return created, len(new), present


_FILE_NAME = re.compile(r"[0-9a-f-]{36}(\.[a-z0-9]{1,10})?")


def _restore_files(
    line: int, message_id: UUID, files: list[Record], owner: Any, owners: _Owners
) -> None:
    """A message's attachments from the export's files, each checked as an upload is and
    stored under a new generated name (any failure fails the conversation)."""
    assert owners.files_dir is not None
    if Attachment.objects.filter(pk__in=[f["id"] for f in files]).exists():
        raise _Conflict(line, "an attachment of this message exists elsewhere")
    rows = []
    for file in files:
        path = owners.files_dir / file["file"]
        if not path.is_file():
            raise _Conflict(line, f"attachment file {file['file']} is not in {owners.files_dir}")
        data = path.read_bytes()
        name = attaching.display_name(file["name"])
        try:
            checked = attaching.sniff(data, name=name)
        except attaching.AttachmentRefused as exc:
            raise _Conflict(line, f"attachment {file['file']}: {exc}") from None
        stored = default_storage.save(
            f"attachments/{owner.pk}/{uuid.uuid4().hex}{checked.extension}", ContentFile(data)
        )
        owners.stored.append(stored)
        rows.append(
            Attachment(
                id=file["id"],
                owner=owner,
                message_id=message_id,
                kind=checked.kind,
                name=name,
                content_type=checked.content_type,
                size=len(data),
                storage_name=stored,
                text=checked.text,
                width=checked.width,
                height=checked.height,
                hidden=file["hidden"],
            )
        )
    Attachment.objects.bulk_create(rows)


def _attachments(value: object) -> list[Record]:
    if not isinstance(value, list):
        raise InvalidRecord("not a list")
    found = []
    for item in value:
        if not isinstance(item, dict):
            raise InvalidRecord("an attachment must be an object")
        file = item.get("file")
        if not isinstance(file, str) or not _FILE_NAME.fullmatch(file):
            raise InvalidRecord("an attachment's file must be the name the export gave it")
        found.append(
            {
                "id": _uuid(item.get("id")),
                "name": _text(200)(item.get("name", "")),
                "file": file,
                "hidden": _bool(item.get("hidden", False)),
            }
        )
    return found


def _refuse_unknown_parents(parents: list[tuple[int, UUID]], conversation_id: UUID) -> None:
    line, parent_id = parents[0]
    if _ids_in_other_conversations({parent_id}, conversation_id):
        raise _Conflict(line, f"parent {parent_id} is a message of another conversation")
    raise _Conflict(
        line,
        f"parent {parent_id} is neither in this file nor in the conversation"
        " (a --since export needs the earlier messages imported first)",
    )


def _link_as_one_path(new: list[Message], held: list[tuple]) -> None:
    """A version 1 file's messages, before branches: parents by `branches.one_path` over
    the conversation in seq order (what it holds already and what the file adds)."""
    rows = [(row[1], row[0], row[3], row[4]) for row in held]
    rows += [(m.seq, m.pk, m.role, m.reply_to_id) for m in new]
    rows.sort(key=lambda row: row[0])
    parents = one_path(row[1:] for row in rows)
    for message in new:
        message.parent_id = parents[message.pk]


def _ids_in_other_conversations(ids: set[UUID], conversation_id: UUID) -> set[UUID]:
    found: set[UUID] = set()
    pending = list(ids)
    for start in range(0, len(pending), BATCH):
        found.update(
            Message.objects.filter(id__in=pending[start : start + BATCH])
            .exclude(conversation_id=conversation_id)
            .values_list("id", flat=True)
        )
    return found


class _Owners:
    """Owners by email (case-insensitive), looked up once per email; and where the files
    of the import are read from, with those stored for the conversation being written."""

    def __init__(self, files_dir: Path | None = None) -> None:
        self.cache: dict[str, list[Any]] = {}
        self.files_dir = files_dir
        self.stored: list[str] = []

    def drop_stored(self) -> None:
        for name in self.stored:
            default_storage.delete(name)
        self.stored.clear()

    def get(self, email: str, line: int):
        key = email.lower()
        if key not in self.cache:
            if len(self.cache) > 10_000:
                self.cache.clear()
            self.cache[key] = list(
                get_user_model().objects.filter(email__iexact=email).order_by("pk")[:2]
            )
        users = self.cache[key]
        if not users:
            raise _Conflict(line, f"no user with email {email}")
        if len(users) > 1:
            raise _Conflict(line, f"several users have the email {email}")
        return users[0]


# Parsing and validation ---------------------------------------------------------------------


def _parse(raw: bytes) -> Record:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRecord("not UTF-8 text") from None
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise InvalidRecord("JSON nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise InvalidRecord(f"not JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(value, dict):
        raise InvalidRecord("not a JSON object")
    return value


def _refuse_constant(name: str) -> None:
    raise InvalidRecord(f"{name} is not a number JSON allows")


def _check_header(record: Record) -> int:
    if record.get("type") != "header" or record.get("schema") != SCHEMA:
        raise InvalidRecord(f"the first line must be the {SCHEMA} header record")
    version = record.get("version")
    if version not in READABLE_VERSIONS or isinstance(version, bool):
        readable = " and ".join(str(v) for v in READABLE_VERSIONS)
        raise InvalidRecord(f"schema version {version!r}; this server reads {readable}")
    assert isinstance(version, int)
    return version


def _uuid_or_none(value: object) -> UUID | None:
    try:
        return _uuid(value)
    except InvalidRecord:
        return None


REQUIRED = object()


def _uuid(value: object) -> UUID:
    if not isinstance(value, str):
        raise InvalidRecord("must be a UUID string")
    try:
        return UUID(value)
    except ValueError:
        raise InvalidRecord("must be a UUID string") from None


def _optional_uuid(value: object) -> UUID | None:
    return None if value is None else _uuid(value)


def _text(limit: int | None = None) -> Callable[[object], str]:
    def check(value: object) -> str:
        if not isinstance(value, str):
            raise InvalidRecord("must be a string")
        if limit is not None and len(value) > limit:
            raise InvalidRecord(f"longer than {limit} characters")
        if "\x00" in value:
            raise InvalidRecord("contains a NUL character")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidRecord("contains an unpaired surrogate") from None
        return value

    return check


def _limit(model: type[Model], name: str) -> int:
    field = model._meta.get_field(name)
    assert isinstance(field, Field) and field.max_length is not None, name
    return field.max_length


def _email(value: object) -> str:
    email = _text(254)(value)
    if "@" not in email:
        raise InvalidRecord("must be an email address")
    return email


def _bool(value: object) -> bool:
    if not isinstance(value, bool):
        raise InvalidRecord("must be true or false")
    return value


def _count(value: object, *, low: int = 0, nullable: bool = True) -> int | None:
    if value is None and nullable:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= MAX_SEQ:
        raise InvalidRecord(f"must be an integer from {low} to {MAX_SEQ}")
    return value


def _temperature(value: object) -> float | None:
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value <= 2:
        raise InvalidRecord("must be a number from 0 to 2, or null")
    return float(value)


def _rating(value: object) -> str:
    if value not in ("", *Message.Rating.values):
        raise InvalidRecord(f'must be one of "", {", ".join(Message.Rating.values)}')
    return str(value)


def _optional_datetime(value: object) -> datetime | None:
    return None if value is None else _datetime(value)


def _datetime(value: object) -> datetime:
    if not isinstance(value, str):
        raise InvalidRecord("must be an ISO 8601 date and time")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidRecord("must be an ISO 8601 date and time") from None
    if parsed.tzinfo is None:
        raise InvalidRecord("must carry a UTC offset")
    return parsed


def _choice(choices: type[TextChoices]) -> Callable[[object], str]:
    allowed = set(choices.values)

    def check(value: object) -> str:
        if value not in allowed:
            raise InvalidRecord(f"must be one of {', '.join(sorted(allowed))}")
        return str(value)

    return check


# Record key -> (model field, check, default or REQUIRED). Unknown keys are ignored.
CONVERSATION_SPEC: dict[str, tuple[str, Callable[[object], object], object]] = {
    "id": ("id", _uuid, REQUIRED),
    "owner": ("owner", _email, REQUIRED),
    "title": ("title", _text(_limit(Conversation, "title")), ""),
    "provider": ("provider", _text(_limit(Conversation, "provider")), ""),
    "model": ("model", _text(_limit(Conversation, "model")), ""),
    "system_prompt": ("system_prompt", _text(), ""),
    "temperature": ("temperature", _temperature, None),
    "archived": ("archived", _bool, False),
    "hidden": ("hidden", _bool, False),
    "current_leaf": ("current_leaf_id", _optional_uuid, None),
    "created_at": ("created_at", _datetime, REQUIRED),
    "updated_at": ("updated_at", _datetime, REQUIRED),
}
MESSAGE_SPEC: dict[str, tuple[str, Callable[[object], object], object]] = {
    "id": ("id", _uuid, REQUIRED),
    "conversation": ("conversation_id", _uuid, REQUIRED),
    "seq": ("seq", lambda v: _count(v, low=1, nullable=False), REQUIRED),
    "role": ("role", _choice(Message.Role), REQUIRED),
    "status": ("status", _choice(Message.Status), Message.Status.COMPLETE),
    "content": ("content", _text(), ""),
    "reasoning": ("reasoning", _text(), ""),  # optional: files from before it have none
    "client_id": ("client_id", _optional_uuid, None),
    "reply_to": ("reply_to_id", _optional_uuid, None),
    "parent": ("parent_id", _optional_uuid, REQUIRED),  # null: the first message
    "provider": ("provider", _text(_limit(Message, "provider")), ""),
    "model": ("model", _text(_limit(Message, "model")), ""),
    "error": ("error", _text(), ""),
    "error_id": ("error_id", _text(_limit(Message, "error_id")), ""),
    "finish_reason": ("finish_reason", _text(_limit(Message, "finish_reason")), ""),
    "prompt_tokens": ("prompt_tokens", _count, None),
    "completion_tokens": ("completion_tokens", _count, None),
    "first_token_ms": ("first_token_ms", _count, None),
    "duration_ms": ("duration_ms", _count, None),
    "flagged": ("flagged", _bool, False),
    "hidden": ("hidden", _bool, False),
    "moderation_reason": ("moderation_reason", _text(), ""),
    "rating": ("rating", _rating, ""),
    "rating_comment": ("rating_comment", _text(), ""),
    "rated_at": ("rated_at", _optional_datetime, None),
    "created_at": ("created_at", _datetime, REQUIRED),
    "updated_at": ("updated_at", _datetime, REQUIRED),
    # Optional: restored from the export's files (--with-files DIR), else left out.
    "attachments": ("attachments", _attachments, []),
}


# Version 1 (before branches) has neither key: its conversations become one path each.
CONVERSATION_SPECS = {
    1: {k: v for k, v in CONVERSATION_SPEC.items() if k != "current_leaf"},
    SCHEMA_VERSION: CONVERSATION_SPEC,
}
MESSAGE_SPECS = {
    1: {k: v for k, v in MESSAGE_SPEC.items() if k != "parent"},
    SCHEMA_VERSION: MESSAGE_SPEC,
}


def _validate(record: Record, spec: dict[str, tuple[str, Callable[[object], object], object]]):
    values: Record = {}
    for key, (name, check, default) in spec.items():
        if key not in record:
            if default is REQUIRED:
                raise InvalidRecord(f"{key}: missing")
            values[name] = default
            continue
        try:
            values[name] = check(record[key])
        except InvalidRecord as exc:
            raise InvalidRecord(f"{key}: {exc}") from None
    return values
