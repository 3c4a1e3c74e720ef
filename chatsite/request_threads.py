"""Django's ASGI handler, with the app's sync middleware run as under WSGI, on reused threads.

Two costs of Django's ASGI handler that this app, whose middleware is all sync, need not pay:

- The middleware stack is built for an async handler: the innermost sync middleware hops
  back to the event loop to resolve the URL, which hops to a thread again for a sync view.
  Built as under WSGI, the whole stack and a sync view run in one hop to a thread. (An async
  view runs on the loop, through async_to_sync, as it does now from a sync middleware.)
- asgiref starts a thread for each request's sync code, and at its end one more to join it.
  Here a request borrows a one-thread executor from an idle list and gives it back: the same
  guarantee (one request at a time on a thread, all of a request's sync code on that one
  thread: asgiref's ThreadSensitiveContext with an executor), without the thread starts. A
  thread keeps its database connection object between requests, as a WSGI server's threads
  do; Django's request_finished closes it (or gives it back to the pool).

A request whose client left while its view runs waits for its view before it ends (its
request_finished runs on the view's thread); other requests have threads of their own.
A task started by a request must not outlive it and then call sync code: asgiref refuses
that (RuntimeError) rather than run it on a thread another request may hold. Background
tasks start in a fresh context (streaming/runtime.py, generation.py).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.core.handlers.asgi import ASGIHandler
from django.db import connections

IDLE_THREADS = 64  # kept for the next requests; more, at a peak, end after it


class RequestThread(ThreadPoolExecutor):
    """One thread, that knows when every call handed to it has returned."""

    def __init__(self) -> None:
        super().__init__(max_workers=1, thread_name_prefix="django-request")
        self._lock = threading.Lock()
        self._running = 0

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        with self._lock:
            self._running += 1
        try:
            future = super().submit(fn, *args, **kwargs)
        except BaseException:
            self._returned(None)
            raise
        future.add_done_callback(self._returned)
        return future

    def _returned(self, _future: Future[Any] | None) -> None:
        with self._lock:
            self._running -= 1

    @property
    def idle(self) -> bool:
        with self._lock:
            return self._running == 0


class ReusedThreadsASGIHandler(ASGIHandler):
    _middleware_chain: Callable[..., Any]

    def __init__(self) -> None:
        super().__init__()
        self._idle: list[RequestThread] = []  # touched on the event loop only

    def load_middleware(self, is_async: bool = False) -> None:
        super().load_middleware(is_async=False)
        self._middleware_chain = sync_to_async(self._middleware_chain, thread_sensitive=True)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        try:
            thread = self._idle.pop()
        except IndexError:
            thread = RequestThread()
        try:
            async with ThreadSensitiveContext(executor=thread):
                await self.handle(scope, receive, send)
        except BaseException:
            # Cancelled (a server's timeout, its shutdown): request_finished may not have
            # run, so the thread's connection goes back before the thread is let go.
            thread.submit(connections.close_all)
            raise
        finally:
            if thread.idle and len(self._idle) < IDLE_THREADS:
                self._idle.append(thread)
            else:
                thread.shutdown(wait=False)  # its thread ends


def get_asgi_application() -> ReusedThreadsASGIHandler:
    """django.core.asgi.get_asgi_application, with this handler."""
    import django

    django.setup(set_prefix=False)
    return ReusedThreadsASGIHandler()
