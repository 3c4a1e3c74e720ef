"""One Redis connection pool per process for Django's cache.

Django keeps a cache object per thread, and each makes its own connection pool; under ASGI
every request runs in a new thread, so every request opened (and abandoned) a new Redis
connection, with redis-py's handshake, just to count a rate limit.
"""

from __future__ import annotations

import threading
from typing import Any

import redis

_lock = threading.Lock()
_pools: dict[tuple[str, tuple[tuple[str, str], ...]], redis.ConnectionPool] = {}


class SharedConnectionPool(redis.ConnectionPool):
    """`CACHES[...]["OPTIONS"]["pool_class"]`: the same pool for the same URL and options."""

    @classmethod
    def from_url(cls, url: str, **options: Any) -> redis.ConnectionPool:
        # By value: Django passes a new (unhashable) DriverInfo with each cache object.
        key = (url, tuple(sorted((name, repr(value)) for name, value in options.items())))
        with _lock:
            pool = _pools.get(key)
            if pool is None:
                pool = _pools[key] = redis.ConnectionPool.from_url(url, **options)
            return pool
