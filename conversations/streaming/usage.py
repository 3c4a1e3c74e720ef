"""The usage an answer adds, at its final write: what quotas (services/quotas.py) count and
"Your usage" shows. Once per answer, never per token."""

from __future__ import annotations

import datetime as dt

from django.db import connection
from django.utils import timezone

from conversations.models import UsageDay

_TABLE = UsageDay._meta.db_table
# One statement on PostgreSQL and SQLite alike (both have the upsert), in place of an UPDATE
# through the ORM and, for the day's first answer, an INSERT after it: every answer pays it,
# in the same thread hop as its final write (generation._final_write).
_UPSERT = (
    f"INSERT INTO {_TABLE} (user_id, day, model, answers, prompt_tokens, completion_tokens)"
    " VALUES (%s, %s, %s, 1, %s, %s)"
    " ON CONFLICT (user_id, day, model) DO UPDATE SET"
    f" answers = {_TABLE}.answers + 1,"
    f" prompt_tokens = {_TABLE}.prompt_tokens + excluded.prompt_tokens,"
    f" completion_tokens = {_TABLE}.completion_tokens + excluded.completion_tokens"
)


def record_usage(
    *, user_id: int, model: str, prompt_tokens: int | None, completion_tokens: int | None
) -> None:
    """Add one answer to today's (UTC) usage row of its user and model."""
    day = timezone.now().astimezone(dt.UTC).date()
    with connection.cursor() as cursor:
        cursor.execute(_UPSERT, [user_id, day, model, prompt_tokens or 0, completion_tokens or 0])
