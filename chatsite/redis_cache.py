"""Django's Redis cache with one client, so one connection pool, per process.

Django keeps a cache object per thread, and each builds its own client and connection pool;
under ASGI every request runs in a new thread, so every request opened (and abandoned) a new
Redis connection, with redis-py's handshake, just to count a rate limit.
"""

from __future__ import annotations

import threading

from django.core.cache.backends.redis import RedisCache, RedisCacheClient
from django.utils.functional import cached_property

_lock = threading.Lock()
_clients: dict[tuple[tuple[str, ...], str], RedisCacheClient] = {}


class SharedRedisCache(RedisCache):
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
