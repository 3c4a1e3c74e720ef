"""Each endpoint's model list, fetched off the request path and cached per process.

A page never waits on an endpoint: it shows the cached list and, for one not fetched yet or
grown stale, starts a fetch in a background thread (one per endpoint at a time). Only a
choice of model that is not in the cache waits, at most `CHAT_MODEL_LIST_TIMEOUT`. A fetch
that fails is remembered for a shorter time than one that worked, so an endpoint that comes
back shows its models again within `CHAT_MODEL_LIST_RETRY` seconds.

The fetch uses the SDK's synchronous client in a thread of its own: a model list is a
one-off request, and the answer's asynchronous clients belong to the server's event loop.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from django.conf import settings

from conversations.providers.catalog import DEMO_MODELS, Endpoint

log = logging.getLogger(__name__)

State = Literal["unknown", "up", "down"]


@dataclass
class _Entry:
    models: tuple[str, ...] | None = None  # the last list that came back
    state: State = "unknown"
    expires: float = 0.0
    fetching: threading.Event | None = None  # set when the fetch under way ends


_entries: dict[str, _Entry] = {}
_lock = threading.Lock()


def models_of(endpoint: Endpoint, *, wait: bool) -> tuple[str, ...] | None:
    """The endpoint's models, or None when it does not answer (or, not waiting, has not
    answered yet). A stale list is returned while a fresh one is fetched."""
    if endpoint.is_demo:
        return DEMO_MODELS if endpoint.kind == "demo" else (endpoint.default_model,)
    entry, done = _refresh_if_stale(endpoint)
    if wait and done is not None and entry.state == "unknown":
        done.wait(settings.CHAT["MODEL_LIST_TIMEOUT"] + 1)
    return entry.models if entry.state == "up" else None


def state_of(endpoint: Endpoint) -> State:
    if endpoint.is_demo:
        return "up"
    return _entries.get(endpoint.id, _Entry()).state


def _refresh_if_stale(endpoint: Endpoint) -> tuple[_Entry, threading.Event | None]:
    with _lock:
        entry = _entries.setdefault(endpoint.id, _Entry())
        if entry.fetching is None and entry.expires <= time.monotonic():
            entry.fetching = threading.Event()
            threading.Thread(
                target=_fetch_into, args=(endpoint, entry), name=f"models-{endpoint.id}"
            ).start()
        return entry, entry.fetching


def _fetch_into(endpoint: Endpoint, entry: _Entry) -> None:
    chat = settings.CHAT
    try:
        models: tuple[str, ...] | None = fetch(endpoint, timeout=chat["MODEL_LIST_TIMEOUT"])
    except Exception as exc:  # any failure leaves the models unavailable, never the page
        # The exception's text, not its traceback: an SDK error can carry the request.
        log.warning(
            "model list failed",
            extra={"endpoint": endpoint.id, "err": f"{type(exc).__name__}: {_safe(exc, endpoint)}"},
        )
        state: State = "down"
        models, ttl = entry.models, chat["MODEL_LIST_RETRY"]
    else:
        state, ttl = "up", chat["MODEL_LIST_TTL"]
    with _lock:
        entry.models, entry.state = models, state
        entry.expires = time.monotonic() + ttl
        done, entry.fetching = entry.fetching, None
    if done is not None:
        done.set()


def fetch(endpoint: Endpoint, *, timeout: float) -> tuple[str, ...]:
    """The model ids the endpoint lists, sorted (a network call)."""
    if endpoint.kind == "anthropic":
        import anthropic

        with anthropic.Anthropic(
            api_key=endpoint.api_key or "not-needed",
            base_url=endpoint.base_url or None,
            max_retries=0,
            timeout=timeout,
        ) as client:
            return tuple(sorted(m.id for m in client.models.list(limit=1000)))
    import openai

    with openai.OpenAI(
        api_key=endpoint.api_key or "not-needed",
        base_url=endpoint.base_url or None,
        max_retries=0,
        timeout=timeout,
    ) as client:
        return tuple(sorted(m.id for m in client.models.list()))


def _safe(exc: Exception, endpoint: Endpoint) -> str:
    text = str(exc)
    return text.replace(endpoint.api_key, "[redacted]") if endpoint.api_key else text


def forget() -> None:
    with _lock:
        _entries.clear()


def wait_listed(endpoints: Iterable[Endpoint]) -> None:
    """Until each endpoint's list is fresh: fetched if it was stale, and waited for (at most
    the fetch's timeout) whether it comes back or fails."""
    deadline = time.monotonic() + settings.CHAT["MODEL_LIST_TIMEOUT"] + 1
    for endpoint in endpoints:
        if endpoint.is_demo:
            continue
        _entry, done = _refresh_if_stale(endpoint)
        if done is not None:
            done.wait(max(0.0, deadline - time.monotonic()))
