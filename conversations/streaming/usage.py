"""The usage an answer adds, at its final write: what quotas (services/quotas.py) count and
"Your usage" shows. Once per answer, never per token."""

from __future__ import annotations

import datetime as dt

from django.db import IntegrityError
from django.db.models import F
from django.utils import timezone

from conversations.models import UsageDay


async def arecord_usage(
    *, user_id: int, model: str, prompt_tokens: int | None, completion_tokens: int | None
) -> None:
    """Add one answer to today's usage row of its user and model (one UPDATE; an INSERT for
    the day's first answer with that model)."""
    day = timezone.now().astimezone(dt.UTC).date()
    prompt, completion = prompt_tokens or 0, completion_tokens or 0
    row = UsageDay.objects.filter(user_id=user_id, day=day, model=model)
    change = {
        "answers": F("answers") + 1,
        "prompt_tokens": F("prompt_tokens") + prompt,
        "completion_tokens": F("completion_tokens") + completion,
    }
    if await row.aupdate(**change):
        return
    try:
        await UsageDay.objects.acreate(
            user_id=user_id,
            day=day,
            model=model,
            answers=1,
            prompt_tokens=prompt,
            completion_tokens=completion,
        )
    except IntegrityError:  # another answer made the row meanwhile
        await row.aupdate(**change)
