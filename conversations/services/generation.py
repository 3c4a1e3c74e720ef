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
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass

from asgiref.sync import sync_to_async
from django.conf import settings
from django.utils import timezone

from conversations.models import Message
from conversations.providers import ChatTurn, ProviderError, StreamResult, get_provider
from conversations.services import control, recovery, redis_relay
from conversations.services.hub import LiveStream, get_hub

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
    hub = get_hub()
    control.ensure_listening()
    recovery.ensure_janitor()
    existing = hub.get(str(message.pk))
    if existing is not None:
        return existing
    stream = hub.open(str(message.pk))
    relay = redis_relay.get_relay(hub)
    if relay is not None:
        relay.track(stream)
        hub.on_frame = relay.publish
    stream.task = hub.loop.create_task(
        generate_reply(message_id=str(message.pk), stream=stream),
        name=f"generate-{message.pk}",
        # A fresh context: the request's (and its sync-thread executor) ends before we do.
        context=contextvars.Context(),
    )
    return stream


def stop_local(message_id: str) -> bool:
    """Cancel the generation if this process runs it."""
    try:
        stream = get_hub().get(message_id)
    except RuntimeError:  # no running loop
        return False
    if stream is None or stream.task is None or stream.task.done():
        return False
    stream.stop_requested = True
    stream.task.cancel()
    return True


async def request_stop(message: Message) -> None:
    """Stop an answer wherever it is being generated."""
    if not stop_local(str(message.pk)):
        await control.broadcast_stop(str(message.pk))


async def generate_reply(*, message_id: str, stream: LiveStream) -> None:
    chat = settings.CHAT
    log_ids: dict[str, str] = {"message_id": message_id}
    outcome = Outcome(status=Message.Status.ERROR)
    result = StreamResult()
    checkpoint = _Checkpointer(message_id, stream, chat["CHECKPOINT_SECONDS"])
    try:
        turns, log_ids = await _load_context(message_id)
        provider = get_provider()
        async with asyncio.timeout(chat["TOTAL_TIMEOUT"]):
            # aclosing: a stop closes the provider's stream at once, cancelling the request.
            async with aclosing(_deltas_with_retries(provider, turns, result, log_ids)) as deltas:
                async for delta in deltas:
                    stream.append(delta)
                    await checkpoint.maybe()
        outcome = Outcome(status=Message.Status.COMPLETE)
    except asyncio.CancelledError:
        if stream.stop_requested:
            outcome = Outcome(status=Message.Status.STOPPED)
            log.info("generation stopped", extra=log_ids)
        else:  # the server is shutting down: recovery offers a retry
            outcome = Outcome(status=Message.Status.INTERRUPTED)
            await _finish(message_id, stream, outcome, result)
            raise
    except TimeoutError:
        outcome = _failure("The answer took too long and was cut off.", log_ids, "total timeout")
    except GenerationTimeout as exc:
        outcome = _failure(exc.user_message, log_ids, "timeout")
    except ProviderError as exc:
        outcome = _failure(exc.user_message, log_ids, f"provider error: {exc}")
    except Exception:
        outcome = _failure("Something went wrong while answering.", log_ids, "crashed", exc=True)
    await _finish(message_id, stream, outcome, result)


async def _deltas_with_retries(
    provider, turns: list[ChatTurn], result: StreamResult, log_ids: dict[str, str]
) -> AsyncIterator[str]:
    """The provider's deltas, retrying failures that happen before the first token."""
    chat = settings.CHAT
    attempts = max(1, chat["RETRY_ATTEMPTS"])
    for attempt in range(attempts):
        deltas = provider.stream(turns, result)
        try:
            try:
                async with asyncio.timeout(chat["FIRST_TOKEN_TIMEOUT"]):
                    first = await anext(deltas)
            except StopAsyncIteration:
                return
            except TimeoutError:
                error: Exception = GenerationTimeout("The model did not start answering in time.")
                retry_after = None
            except ProviderError as exc:
                if not exc.retryable:
                    raise
                error, retry_after = exc, exc.retry_after
            else:
                yield first
                while True:
                    try:
                        async with asyncio.timeout(chat["IDLE_TIMEOUT"]):
                            delta = await anext(deltas)
                    except StopAsyncIteration:
                        return
                    except TimeoutError:
                        raise GenerationTimeout(
                            "The model stopped sending in the middle of the answer."
                        ) from None
                    except ProviderError as exc:
                        exc.retryable = False  # text was streamed: keep it, do not retry
                        raise
                    yield delta
        finally:
            await deltas.aclose()
        if attempt + 1 >= attempts:
            raise error
        delay = backoff_delay(attempt, retry_after=retry_after)
        log.warning(
            "provider failed before the first token; retrying",
            extra={**log_ids, "attempt": attempt + 1, "delay": round(delay, 2), "err": str(error)},
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


class _Checkpointer:
    """Writes the partial text every few seconds: a crash loses at most that window."""

    def __init__(self, message_id: str, stream: LiveStream, interval: float) -> None:
        self.message_id = message_id
        self.stream = stream
        self.interval = interval
        self.loop = asyncio.get_running_loop()
        self.last_time = self.loop.time()
        self.last_length = 0
        self.writes = 0

    async def maybe(self) -> None:
        now = self.loop.time()
        if now - self.last_time < self.interval or self.stream.length == self.last_length:
            return
        self.last_time, self.last_length = now, self.stream.length
        self.writes += 1
        await Message.objects.filter(pk=self.message_id, status=Message.Status.STREAMING).aupdate(
            content=self.stream.text, updated_at=timezone.now()
        )


async def _finish(
    message_id: str, stream: LiveStream, outcome: Outcome, result: StreamResult
) -> None:
    """The one final write, then wake every reader so it renders the final state."""
    usage = result.usage
    try:
        await Message.objects.filter(pk=message_id, status=Message.Status.STREAMING).aupdate(
            content=stream.text,
            status=outcome.status,
            error=outcome.error,
            error_id=outcome.error_id,
            finish_reason=usage.finish_reason or outcome.status,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            updated_at=timezone.now(),
        )
    except Exception:
        log.exception("final write failed", extra={"message_id": message_id})
    hub = get_hub()
    relay = redis_relay.get_relay(hub)
    try:
        if relay is not None:
            await relay.publish_end(stream, outcome.status)
    except Exception:
        log.exception("relay end failed", extra={"message_id": message_id})
    finally:
        hub.close(stream)


@sync_to_async
def _load_context(message_id: str) -> tuple[list[ChatTurn], dict[str, str]]:
    """The turns sent to the model: system prompt, then visible history before this answer."""
    message = Message.objects.select_related("conversation", "reply_to").get(pk=message_id)
    conversation = message.conversation
    log_ids = {
        "message_id": message_id,
        "conversation_id": str(conversation.pk),
        "user_id": str(conversation.owner_id),
    }
    # History up to the user message this answers; failed answers and answers that a
    # regenerate replaced are not part of the conversation the model sees.
    answered_seq = message.reply_to.seq if message.reply_to_id else message.seq - 1
    history = list(
        conversation.messages.filter(seq__lte=answered_seq, hidden=False)
        .exclude(role=Message.Role.ASSISTANT, status__in=Message.RETRYABLE_STATUSES)
        .exclude(content="")
        .order_by("-seq")[: settings.CHAT["CONTEXT_MESSAGES"]]
    )
    latest_answer: set[object] = set()
    turns = []
    for past in history:  # newest first: the first answer seen per question is the latest
        if past.role == Message.Role.ASSISTANT:
            if past.reply_to_id in latest_answer:
                continue
            latest_answer.add(past.reply_to_id)
        turns.append(ChatTurn(past.role, past.content))
    turns.reverse()
    if conversation.system_prompt:
        turns.insert(0, ChatTurn("system", conversation.system_prompt))
    return turns, log_ids
