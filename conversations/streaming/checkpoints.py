"""Partial answers saved every few seconds, all of a process's in one statement."""

from __future__ import annotations

import asyncio
import contextvars
import logging
from concurrent.futures import ThreadPoolExecutor
from uuid import UUID

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from conversations import metrics
from conversations.models import Message
from conversations.streaming.hub import LiveStream

log = logging.getLogger(__name__)

# The rounds' own thread. In the one thread that every generation's sync work shares
# (sync_to_async's default), a round over 1,000 answers held it while each answer starting
# meanwhile waited to read its context, its first token late by that much.
_THREAD = ThreadPoolExecutor(max_workers=1, thread_name_prefix="checkpoints")


class CheckpointWriter:
    """One per event loop: every CHECKPOINT_SECONDS, the text (and reasoning) of each answer
    that grew since its last checkpoint, all in one transaction. A crash loses at most that window.

    Nothing happens per delta, and the token loop never waits for the database (awaiting
    each write in the loop stalled every stream of the process behind one slow commit:
    docs/performance.md); a slow database only spaces the batches out.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.streams: dict[str, LiveStream] = {}
        # message id -> its progress (answer and reasoning) in its last checkpoint
        self.written: dict[str, int] = {}
        self.task: asyncio.Task | None = None

    @property
    def tasks(self) -> list[asyncio.Task]:
        return [self.task] if self.task is not None else []

    def add(self, message_id: str, stream: LiveStream) -> None:
        self.streams[message_id] = stream
        self.written[message_id] = 0
        if self.task is None or self.task.done():
            self.task = self.loop.create_task(
                self._write_forever(), name="checkpoint-writer", context=contextvars.Context()
            )

    def remove(self, message_id: str) -> None:
        self.streams.pop(message_id, None)
        self.written.pop(message_id, None)

    async def _write_forever(self) -> None:
        while self.streams:
            await asyncio.sleep(settings.CHAT["CHECKPOINT_SECONDS"])
            texts = {}
            for message_id, stream in list(self.streams.items()):
                if stream.progress > self.written[message_id]:
                    self.written[message_id] = stream.progress
                    texts[message_id] = (stream.text, stream.reasoning)
            if texts:
                try:
                    with metrics.CHECKPOINT_WRITE.time():
                        await _in_own_thread(texts)
                except Exception:
                    log.exception("checkpoint write failed", extra={"messages": len(texts)})


@sync_to_async(thread_sensitive=False, executor=_THREAD)
def _in_own_thread(texts: dict[str, tuple[str, str]]) -> None:
    connection.close_if_unusable_or_obsolete()  # a database restart: the next round reconnects
    write_checkpoints(texts)


def write_checkpoints(texts: dict[str, tuple[str, str]]) -> None:
    """One round of checkpoints in one transaction: each answer's (text, reasoning) so far,
    the same UPDATE for every answer, sent
    with executemany (psycopg pipelines it), and only while the answer is still streaming
    (its final write may already have landed).

    Not the ORM's bulk_update: its CASE per row cost 15 times the CPU, holding the GIL while
    the event loop waited (docs/performance.md).
    """
    pk = Message._meta.pk
    # Concrete fields (get_field may also return a relation, which has no column).
    fields = {
        field.name: field
        for field in Message._meta.concrete_fields
        if field.name in ("content", "reasoning", "updated_at", "status", pk.name)
    }
    column = {
        name: connection.ops.quote_name(field.column or name) for name, field in fields.items()
    }
    sql = (
        f"UPDATE {connection.ops.quote_name(Message._meta.db_table)}"
        f" SET {column['content']} = %s, {column['reasoning']} = %s,"
        f" {column['updated_at']} = %s"
        f" WHERE {column[pk.name]} = %s AND {column['status']} = %s"
    )
    now = fields["updated_at"].get_db_prep_value(timezone.now(), connection)
    streaming = fields["status"].get_db_prep_value(Message.Status.STREAMING, connection)
    rows = [
        (text, reasoning, now, pk.get_db_prep_value(UUID(message_id), connection), streaming)
        for message_id, (text, reasoning) in texts.items()
    ]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.executemany(sql, rows)
