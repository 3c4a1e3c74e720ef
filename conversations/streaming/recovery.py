"""No spinner forever: answers left live by a dead process are marked interrupted."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import timedelta

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from conversations.models import Message
from conversations.streaming import redis_relay

log = logging.getLogger(__name__)

INTERRUPTED_TEXT = "The server restarted before this answer finished."


def interrupt_stale(*, older_than: float | None = None) -> int:
    """Mark live answers with no checkpoint for `older_than` seconds as interrupted.

    With 0, every live answer is taken as dead: right for a single process at start-up.
    """
    if older_than is None:
        older_than = settings.CHAT["STALE_STREAM_SECONDS"]
    count = _interrupt(Message.objects.all(), older_than=older_than)
    if count:
        log.warning("marked %d stale streams interrupted", count)
    return count


def interrupt_if_orphaned(message: Message) -> bool:
    """For a live answer that this process is not generating; true when it was marked."""
    if not message.is_live:
        return False
    # One process: not in our hub means nobody generates it. Several: wait for staleness.
    older_than = settings.CHAT["STALE_STREAM_SECONDS"] if settings.REDIS_URL else 0
    return bool(_interrupt(Message.objects.filter(pk=message.pk), older_than=older_than))


def _interrupt(messages: QuerySet[Message], *, older_than: float) -> int:
    """Each one's text (and reasoning) becomes the longest its generator left: its last
    checkpoint, or what it had published to Redis since (up to a checkpoint interval more).
    Readers resumed from Redis already hold that text: the final state must not take it
    back."""
    cutoff = timezone.now() - timedelta(seconds=older_than)
    stale = messages.filter(status__in=Message.LIVE_STATUSES, updated_at__lte=cutoff)
    interrupted = 0
    for message_id, checkpoint, reasoning in stale.values_list("pk", "content", "reasoning"):
        published, published_reasoning = redis_relay.published_text(str(message_id))
        text = published if len(published) > len(checkpoint) else checkpoint
        if len(published_reasoning) > len(reasoning):
            reasoning = published_reasoning
        interrupted += stale.filter(pk=message_id).update(
            content=text,
            reasoning=reasoning,
            status=Message.Status.INTERRUPTED,
            error=INTERRUPTED_TEXT,
            finish_reason="interrupted",
            updated_at=timezone.now(),
        )
    return interrupted


async def sweep_forever(generating_here: Callable[[], list[str]]) -> None:
    """The janitor (the runtime runs one per process): now and then, a sweep, since another
    process may have died."""
    interval = max(5.0, settings.CHAT["STALE_STREAM_SECONDS"] / 3)
    while True:
        await asyncio.sleep(interval)
        try:
            await sync_to_async(sweep)(generating_here=generating_here())
        except Exception:
            log.exception("stale stream sweep failed")


def sweep(*, generating_here: list[str]) -> int:
    """One round of the janitor.

    First a heartbeat for the answers this process generates: before their first token (a
    cold model, retries) nothing else writes them, and other processes' janitors must not
    take them for dead. Then the answers nobody has touched for STALE_STREAM_SECONDS.
    """
    if generating_here:
        Message.objects.filter(pk__in=generating_here, status__in=Message.LIVE_STATUSES).update(
            updated_at=timezone.now()
        )
    return interrupt_stale()
