"""Rate limits. Counters live in the cache (Redis when configured): they hold across processes."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import DEFAULT_CACHE_ALIAS, caches
from redis.exceptions import RedisError

from chatsite.redis_cache import SharedRedisCache

log = logging.getLogger(__name__)


@dataclass
class RateLimited(Exception):
    message: str
    retry_after: int  # seconds


def check_send_allowed(*, user_id: int, live: int) -> None:
    """Raise RateLimited when the user may not start another answer right now. `live`: the
    user's answers being written, read under their lock (sending.Position)."""
    chat = settings.CHAT
    if live >= chat["CONCURRENT_STREAMS"]:
        raise RateLimited(
            f"You already have {live} answers streaming. Wait for one to finish or stop it.",
            retry_after=5,
        )
    _hit_window(
        key=f"rl:send:{user_id}",
        limit=chat["MESSAGES_PER_MINUTE"],
        window=60,
        what="messages per minute",
    )


def check_upload_allowed(*, user_id: int) -> None:
    """Raise RateLimited when the user uploads faster than CHAT_UPLOADS_PER_MINUTE: each
    upload is read, sniffed and stored before any send names it."""
    _hit_window(
        key=f"rl:upload:{user_id}",
        limit=settings.CHAT["UPLOADS_PER_MINUTE"],
        window=60,
        what="uploads per minute",
    )


def _hit_window(*, key: str, limit: int, window: int, what: str) -> None:
    """Fixed window counter: one atomic increment per hit."""
    now = int(time.time())
    bucket = now - now % window
    try:
        count = _count_hit(f"{key}:{bucket}", timeout=window + 5)
    except RedisError:
        # Open, not closed: a Redis outage must not stop every user's sends. The limit on
        # answers streaming at once (from the database) still holds.
        log.warning("rate limit store unavailable; hit not counted", exc_info=True)
        return
    if count > limit:
        retry_after = max(1, bucket + window - now)
        raise RateLimited(
            f"Limit of {limit} {what} reached. Try again in {retry_after} s.",
            retry_after=retry_after,
        )


def _count_hit(key: str, *, timeout: int) -> int:
    backend = caches[DEFAULT_CACHE_ALIAS]
    if isinstance(backend, SharedRedisCache):
        return backend.incr_expiring(key, timeout=timeout)  # one round trip, not three
    backend.add(key, 0, timeout=timeout)
    try:
        return backend.incr(key)
    except ValueError:  # expired between add and incr
        backend.set(key, 1, timeout=timeout)
        return 1
