"""Django's Redis cache with one client, so one connection pool, per process, that fails open.

Django keeps a cache object per thread, and each builds its own client and connection pool;
under ASGI every request runs in a new thread, so every request opened (and abandoned) a new
Redis connection, with redis-py's handshake, just to count a rate limit.

The cache holds rate-limit counters only (ours and allauth's login limit): while Redis is
out of reach it answers as an empty cache that stores nothing, so signing in keeps working
(allauth's login answered 500) and nothing is counted. After a failure it does not try
Redis again for RETRY_SECONDS: a Redis that hangs costs one timeout, not one per call.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.redis import RedisCache, RedisCacheClient
from django.utils.functional import cached_property
from redis.exceptions import RedisError

from chatsite.outages import Outage

log = logging.getLogger(__name__)

RETRY_SECONDS = 5.0

_lock = threading.Lock()
_clients: dict[tuple[tuple[str, ...], str], RedisCacheClient] = {}
_outage = Outage("cache (rate limits not counted)", log)
_last_failure = 0.0


def _fail_open(default: Any, call: Callable[..., Any], *args: Any) -> Any:
    global _last_failure
    if _outage.ongoing and time.monotonic() - _last_failure < RETRY_SECONDS:
        return default
    try:
        result = call(*args)
    except RedisError:
        _last_failure = time.monotonic()
        _outage.failed()
        return default
    _outage.recovered()
    return result


class SharedRedisCache(RedisCache):
    # Set by RedisCache.__init__; not in django-stubs.
    _servers: list[str]
    _options: dict[str, Any]
    _class: type[RedisCacheClient]

    # allauth's lock is an `add` that must succeed: True lets the request through.
    def add(self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: Any = None):
        return _fail_open(True, super().add, key, value, timeout, version)

    def get(self, key: Any, default: Any = None, version: Any = None) -> Any:
        return _fail_open(default, super().get, key, default, version)

    def set(self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: Any = None):
        _fail_open(None, super().set, key, value, timeout, version)

    def delete(self, key: Any, version: Any = None) -> bool:
        return _fail_open(False, super().delete, key, version)

    @cached_property
    def _cache(self) -> RedisCacheClient:
        key = (tuple(self._servers), repr(sorted(self._options.items())))
        with _lock:
            client = _clients.get(key)
            if client is None:  # redis-py's pools are thread-safe: one serves every thread
                client = _clients[key] = self._class(self._servers, **self._options)
            return client

    def incr_expiring(self, key: str, *, timeout: int) -> int:
        """Add one to a counter that expires `timeout` s after its first hit, in one round
        trip (Django's add + incr takes three: SET NX, EXISTS, INCRBY)."""
        key = self.make_and_validate_key(key)
        # MULTI: the key cannot expire between the two, leaving a counter without an expiry.
        pipe = self._cache.get_client(key, write=True).pipeline(transaction=True)
        pipe.set(key, 0, ex=timeout, nx=True)  # the window starts with its first hit
        pipe.incr(key)
        _, count = pipe.execute()
        return count
