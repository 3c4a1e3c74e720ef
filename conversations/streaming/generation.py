"""Generating an answer: a task on the server's event loop, not tied to any HTTP request.

It reads deltas from the provider with timeouts, retries with backoff only before the first
token, appends each delta to the message's live stream in the hub, checkpoints the text to
the database every few seconds and ends with exactly one final write.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import random
import secrets
import time
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass, field
from uuid import UUID

from asgiref.sync import async_to_sync, sync_to_async
from django.conf import settings
from django.core.files.storage import default_storage
from django.utils import timezone

from conversations import branches, metrics
from conversations.live_markdown import LiveMarkdown
from conversations.models import Attachment, Message
from conversations.prepared import PreparedUpdate
from conversations.providers import (
    ChatTurn,
    ProviderError,
    StreamResult,
    Thinking,
    Usage,
    catalog,
)
from conversations.providers.base import TurnFile
from conversations.streaming import reading, titling
from conversations.streaming.hub import LiveStream
from conversations.streaming.runtime import get_runtime
from conversations.streaming.usage import record_usage

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    status: str
    error: str = ""
    error_id: str = ""


class GenerationTimeout(Exception):
    def __init__(self, user_message: str) -> None:
        super().__init__(user_message)
        self.user_message = user_message


def launch_generation(message: Message) -> LiveStream:
    """Open the live stream now (so a reader can attach at once) and start the task."""
    runtime = get_runtime()
    hub, relay = runtime.hub, runtime.relay
    existing = hub.get(str(message.pk))
    if existing is not None and not existing.is_mirror:
        return existing  # already generated here
    if existing is not None and relay is not None:
        # A mirror: a reader came in the instant between the send's commit and this launch
        # (relay._launched_soon) and took the answer for another process's. Its readers
        # stay; it is ours.
        stream = relay.adopt(existing)
    else:
        stream = hub.open(str(message.pk))
    if relay is not None:
        relay.track(stream)
    stream.task = hub.loop.create_task(
        generate_reply(message, stream=stream),
        name=f"generate-{message.pk}",
        # A fresh context: the request's (and its sync-thread executor) ends before we do.
        context=contextvars.Context(),
    )
    return stream


def start_generation(message: Message) -> None:
    """From a request's thread (sync views): the task belongs to the server's event loop.

    Runs once the send has committed (sending.py): a launch that fails (the server is
    stopping) ends the answer in an error the user can retry, never a spinner.
    """
    try:
        async_to_sync(_launch)(message)
    except Exception:
        outcome = _failure(
            NOT_STARTED_MESSAGE, {"message_id": str(message.pk)}, "not launched", exc=True
        )
        Message.objects.filter(pk=message.pk, status__in=Message.LIVE_STATUSES).update(
            status=outcome.status,
            error=outcome.error,
            error_id=outcome.error_id,
            finish_reason=outcome.status,
            updated_at=timezone.now(),
        )


async def _launch(message: Message) -> None:
    launch_generation(message)


async def generate_reply(message: Message, *, stream: LiveStream) -> None:
    message_id = str(message.pk)
    chat = settings.CHAT
    log_ids: dict[str, str] = {"message_id": message_id}
    outcome = Outcome(status=Message.Status.ERROR)
    result = StreamResult()
    timings = Timings()
    runtime = get_runtime()
    checkpoints, watchdog = runtime.checkpoints, runtime.watchdog
    metrics.ANSWERS_STARTED.inc()
    checkpoints.add(message_id, stream)
    watchdog.watch(message_id, stream)
    try:
        turns, log_ids = await _load_context(message)
        provider = catalog.provider_for(
            message.provider, message.model, temperature=message.conversation.temperature
        )
        async with asyncio.timeout(chat["TOTAL_TIMEOUT"]):
            first, deltas = await _start_with_retries(provider, turns, result, log_ids)
            timings.first_token = time.monotonic()
            # aclosing: a stop closes the provider's stream at once, cancelling the request.
            async with aclosing(deltas):
                append, think = stream.append, stream.think
                (think if first.__class__ is Thinking else append)(first)
                # The hot loop: nothing else per delta. The idle watchdog and the checkpoint
                # writer look at the stream now and then, for every answer of the process.
                # Reasoning deltas (a str subclass) go to their own buffer: one identity
                # check, paid for by the methods bound above.
                async for delta in deltas:
                    if delta.__class__ is Thinking:
                        think(delta)
                    else:
                        append(delta)
        outcome = Outcome(status=Message.Status.COMPLETE)
    except asyncio.CancelledError:
        if watchdog.cut(message_id):
            this_task = asyncio.current_task()
            assert this_task is not None
            this_task.uncancel()
            metrics.PROVIDER_ERRORS.labels("idle_timeout").inc()
            outcome = _failure(IDLE_MESSAGE, log_ids, "timeout")
        elif stream.stop_requested:
            outcome = Outcome(status=Message.Status.STOPPED)
            log.info("generation stopped", extra=log_ids)
        else:  # the server is shutting down: recovery offers a retry
            outcome = Outcome(status=Message.Status.INTERRUPTED)
            await _finish(message, stream, outcome, result, timings)
            raise
    except TimeoutError:
        metrics.PROVIDER_ERRORS.labels("total_timeout").inc()
        outcome = _failure("The answer took too long and was cut off.", log_ids, "total timeout")
    except GenerationTimeout as exc:
        metrics.PROVIDER_ERRORS.labels("first_token_timeout").inc()
        outcome = _failure(exc.user_message, log_ids, "timeout")
    except ProviderError as exc:
        metrics.PROVIDER_ERRORS.labels(metrics.provider_error_kind(str(exc))).inc()
        outcome = _failure(exc.user_message, log_ids, f"provider error: {exc}")
    except Exception:
        outcome = _failure("Something went wrong while answering.", log_ids, "crashed", exc=True)
    finally:
        watchdog.unwatch(message_id)
        checkpoints.remove(message_id)
    await _finish(message, stream, outcome, result, timings)
    if outcome.status == Message.Status.COMPLETE:
        titling.title_after_answer(message, stream)


async def _start_with_retries(
    provider, turns: list[ChatTurn], result: StreamResult, log_ids: dict[str, str]
) -> tuple[str, AsyncGenerator[str]]:
    """The provider's first delta and the rest of its stream, retrying failures (and a first
    token that does not come) before anything was streamed; after it, errors are final."""
    chat = settings.CHAT
    attempts = max(1, chat["RETRY_ATTEMPTS"])
    attempt = 0
    while True:
        deltas = provider.stream(turns, result)
        try:
            async with asyncio.timeout(chat["FIRST_TOKEN_TIMEOUT"]):
                return await anext(deltas, ""), deltas
        except TimeoutError:
            error: Exception = GenerationTimeout("The model did not start answering in time.")
            retry_after = None
        except ProviderError as exc:
            if not exc.retryable:
                await deltas.aclose()
                raise
            error, retry_after = exc, exc.retry_after
        except BaseException:  # a stop, or a bug: the request is closed either way
            await deltas.aclose()
            raise
        await deltas.aclose()
        attempt += 1
        if attempt >= attempts:
            raise error  # counted with the answer's outcome
        metrics.PROVIDER_ERRORS.labels(
            "first_token_timeout"
            if isinstance(error, GenerationTimeout)
            else metrics.provider_error_kind(str(error))
        ).inc()
        delay = backoff_delay(attempt - 1, retry_after=retry_after)
        log.warning(
            "provider failed before the first token; retrying",
            extra={**log_ids, "attempt": attempt, "delay": round(delay, 2), "err": str(error)},
        )
        await asyncio.sleep(delay)


def backoff_delay(attempt: int, *, retry_after: float | None = None) -> float:
    """Exponential backoff with full jitter, never sooner than the server's Retry-After."""
    chat = settings.CHAT
    ceiling = min(chat["RETRY_MAX_DELAY"], chat["RETRY_BASE_DELAY"] * 2**attempt)
    delay = random.uniform(0, ceiling)
    if retry_after is not None:
        delay = max(delay, min(retry_after, 60.0))
    return delay


def _failure(
    user_message: str, log_ids: dict[str, str], what: str, *, exc: bool = False
) -> Outcome:
    error_id = secrets.token_hex(4)
    log.error(f"generation failed: {what}", extra={**log_ids, "error_id": error_id}, exc_info=exc)
    return Outcome(status=Message.Status.ERROR, error=user_message, error_id=error_id)


IDLE_MESSAGE = "The model stopped sending in the middle of the answer."
NOT_STARTED_MESSAGE = "The answer could not be started."


@dataclass
class Timings:
    """When a generation started and got its first token (monotonic seconds)."""

    started: float = field(default_factory=time.monotonic)
    first_token: float | None = None

    def saved(self) -> dict[str, int | None]:
        def ms(at: float) -> int:
            return round(1000 * (at - self.started))

        first = None if self.first_token is None else ms(self.first_token)
        return {"first_token_ms": first, "duration_ms": ms(time.monotonic())}


def _count_answer(outcome: Outcome, usage: Usage, timings: Timings) -> None:
    """The answer's metrics, once, at its end: never per token."""
    metrics.ANSWERS.labels(outcome.status).inc()
    ended = time.monotonic()
    metrics.DURATION.observe(ended - timings.started)
    if timings.first_token is not None:
        metrics.FIRST_TOKEN.observe(timings.first_token - timings.started)
    if usage.prompt_tokens:
        metrics.TOKENS.labels("prompt").inc(usage.prompt_tokens)
    if usage.completion_tokens:
        metrics.TOKENS.labels("completion").inc(usage.completion_tokens)


async def _finish(
    message: Message,
    stream: LiveStream,
    outcome: Outcome,
    result: StreamResult,
    timings: Timings,
) -> None:
    """The one final write, then wake every reader so it renders the final state.

    A stop that arrives now has nothing left to stop (Runtime.stop_here sees `finishing`),
    and whatever happens, the stream is closed: no reader is left waiting on it.
    """
    stream.finishing = True
    message_id = str(message.pk)
    usage = result.usage
    runtime = get_runtime()
    try:
        # A complete answer's bubble is rendered once, here, for every reader of this process
        # (none followed it: nobody to render it for); its live Markdown is brought up to
        # date on the loop, where readers use it.
        complete = outcome.status == Message.Status.COMPLETE
        view = stream.markdown() if complete and stream.followed else None
        await _final_write(message, stream, outcome, usage, timings, view)
        try:
            if runtime.relay is not None:
                await runtime.relay.publish_end(stream, outcome.status)
        except Exception:
            log.exception("relay end failed", extra={"message_id": message_id})
    finally:
        runtime.hub.close(stream)


# Every answer's last write: prepared (prepared.py). Only a streaming answer is written: one
# deleted, or swept as stale meanwhile, is not brought back.
_FINAL_WRITE = PreparedUpdate(
    lambda pk: Message.objects.filter(pk=pk, status=Message.Status.STREAMING),
    pk=Message._meta.pk,
)


@sync_to_async
def _final_write(
    message: Message,
    stream: LiveStream,
    outcome: Outcome,
    usage: Usage,
    timings: Timings,
    view: LiveMarkdown | None,
) -> None:
    """The answer's final state, the usage it adds (what quotas count) and, for a complete
    answer, its final bubble for the readers here (`view`: its live Markdown), in one thread
    hop. Not one transaction: a failed usage row or render is logged, never costs the answer."""
    message_id = str(message.pk)
    final = {
        "content": stream.text,
        "reasoning": stream.reasoning,
        "status": outcome.status,
        "error": outcome.error,
        "error_id": outcome.error_id,
        "finish_reason": usage.finish_reason or outcome.status,
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        **timings.saved(),
        "updated_at": timezone.now(),
    }
    try:
        written = _FINAL_WRITE.update(pk=message_id, values=final)
        if not written:  # deleted, or swept as stale: say so rather than pass silently
            log.warning("final write found no streaming answer", extra={"message_id": message_id})
    except Exception:
        written = 0
        log.exception("final write failed", extra={"message_id": message_id})
    _count_answer(outcome, usage, timings)
    if not written:
        return
    try:  # the user's usage of the day, once per answer
        record_usage(
            user_id=message.conversation.owner_id,
            model=f"{message.provider}/{message.model}",
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
        )
    except Exception:
        log.exception("usage not recorded", extra={"message_id": message_id})
    if view is None:
        return
    try:  # the message as just written: the same bubble a reader would read and render
        for name, value in final.items():
            setattr(message, name, value)
        stream.final_event = reading.bubble_event(message, view=view)
    except Exception:
        log.exception("final bubble not rendered", extra={"message_id": message_id})


def _files_of(message_ids: list[UUID]) -> dict[UUID, tuple[TurnFile, ...]]:
    """The files of the context's messages that have some (none: no query), without those
    a moderator hid. An image's bytes are read from the storage here, off the event loop."""
    found: dict[UUID, list[TurnFile]] = {}
    if not message_ids:
        return {}
    for attachment in Attachment.objects.filter(message_id__in=message_ids, hidden=False):
        data = b""
        if attachment.is_image:
            with default_storage.open(attachment.storage_name, "rb") as handle:
                data = handle.read()
        found.setdefault(attachment.message_id, []).append(  # type: ignore[arg-type]
            TurnFile(
                name=attachment.name,
                content_type=attachment.content_type,
                size=attachment.size,
                kind=attachment.kind,
                data=data,
                text=attachment.text,
            )
        )
    return {pk: tuple(files) for pk, files in found.items()}


@sync_to_async
def _load_context(message: Message) -> tuple[list[ChatTurn], dict[str, str]]:
    """The turns sent to the model: system prompt, then visible history before this answer.

    `message` comes from the send, with its conversation and question already loaded.
    """
    conversation = message.conversation
    log_ids = {
        "message_id": str(message.pk),
        "conversation_id": str(conversation.pk),
        "user_id": str(conversation.owner_id),
    }
    # The path from the root to the question this answers: never another branch.
    rows = branches.context_path(message.parent_id, limit=settings.CHAT["CONTEXT_MESSAGES"])
    files = _files_of([row.id for row in rows if row.attachment_count])
    turns = [ChatTurn(row.role, row.content, files.get(row.id, ())) for row in rows]
    if conversation.system_prompt:
        turns.insert(0, ChatTurn("system", conversation.system_prompt))
    return turns, log_ids
