"""Prometheus metrics, served at /metrics (metrics_views.py).

Each is moved once per answer, per request or per writer round, never per token: the hot
loop in generation.generate_reply is untouched, and tokens are counted from the answer's
usage at its final write.

With several server processes, set PROMETHEUS_MULTIPROC_DIR (an empty directory, the same
for every process, emptied before they start): prometheus-client then keeps each process's
values in files there and /metrics, in whichever process answers, adds them up. Without it,
/metrics shows the answering process only.
"""

from __future__ import annotations

import atexit
import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

SECONDS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
FAST_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

OPEN_STREAMS = Gauge(
    "streamchat_open_streams",
    "SSE streams of live answers being served to readers.",
    multiprocess_mode="livesum",
)
ANSWERS_STARTED = Counter("streamchat_answers_started", "Answers whose generation started.")
ANSWERS = Counter(
    "streamchat_answers",
    "Answers ended, by final status (complete, stopped, error...).",
    ["status"],
)
FIRST_TOKEN = Histogram(
    "streamchat_answer_first_token_seconds",
    "From the start of an answer's generation to its first token.",
    buckets=SECONDS,
)
DURATION = Histogram(
    "streamchat_answer_duration_seconds",
    "From the start of an answer's generation to its final write.",
    buckets=SECONDS,
)
TOKENS = Counter(
    "streamchat_tokens",
    "Tokens of ended answers as the provider reported them, by kind (prompt, completion).",
    ["kind"],
)
PROVIDER_ERRORS = Counter(
    "streamchat_provider_errors",
    "Provider failures by kind, those retried before the first token included.",
    ["kind"],
)
RELAY_LAG = Histogram(
    "streamchat_relay_lag_seconds",
    "From a writer round's XADD (its Redis entry id) to another process reading it.",
    buckets=FAST_SECONDS,
)
CHECKPOINT_WRITE = Histogram(
    "streamchat_checkpoint_write_seconds",
    "One round of checkpoint writes (every live answer of the process, one transaction).",
    buckets=FAST_SECONDS,
)
HTTP_LATENCY = Histogram(
    "streamchat_http_request_duration_seconds",
    "Django requests, until the response (its headers, for a stream), by route (URL name).",
    ["route", "method", "status"],
    buckets=FAST_SECONDS,
)

# ProviderError's detail starts with one of these (providers/errors.py); the label stays bounded.
_KINDS = (
    "rate limited",
    "auth failed",
    "server error",
    "request rejected",
    "connection failed",
    "stream broke",
)


def provider_error_kind(detail: str) -> str:
    for kind in _KINDS:
        if detail.startswith(kind):
            return kind.replace(" ", "_")
    return "other"


if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    # The open streams of a process that ends (normally: SIGTERM included) end with it.
    atexit.register(mark_process_dead, os.getpid())


def exposition() -> tuple[bytes, str]:
    """The text format: every process's values when PROMETHEUS_MULTIPROC_DIR is set."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
