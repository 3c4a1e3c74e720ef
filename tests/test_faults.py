"""Every failure ends in a clear, recoverable state: nothing lost, nothing duplicated."""

from __future__ import annotations

import asyncio
import logging
import socket
import time

import pytest

from conversations.models import Message
from conversations.streaming import generation
from tests.fakes import Delta, Hang, Sleep, fatal, retryable, words
from tests.streams import read_events, send_data, wait_until_final

pytestmark = pytest.mark.django_db(transaction=True)


async def send(client, conversation, content: str = "Hello") -> Message:
    response = await client.post(
        f"/c/{conversation.pk}/messages", send_data(content), headers={"HX-Request": "true"}
    )
    assert response.status_code == 200, response.content
    return await Message.objects.filter(conversation=conversation, role="assistant").alatest("seq")


async def messages_of(conversation) -> list[tuple[int, str, str]]:
    return [
        (m.seq, m.role, m.status)
        async for m in Message.objects.filter(conversation=conversation).order_by("seq")
    ]


async def test_error_before_first_token_is_retried_with_backoff(
    alice_async, conversation, provider
):
    provider.scripts = [[retryable()], [retryable()], words("third time lucky")]
    assistant = await send(alice_async, conversation)
    final = await wait_until_final(assistant.pk)
    assert final.status == Message.Status.COMPLETE
    assert final.content == "third time lucky"
    assert len(provider.calls) == 3
    assert await messages_of(conversation) == [
        (1, "user", "complete"),
        (2, "assistant", "complete"),
    ]


async def test_retries_are_bounded_and_end_in_a_clear_error(alice_async, conversation, provider):
    provider.scripts = [[retryable("upstream reset")]]
    assistant = await send(alice_async, conversation)
    final = await wait_until_final(assistant.pk)
    assert final.status == Message.Status.ERROR
    assert len(provider.calls) == 3  # CHAT_RETRY_ATTEMPTS
    assert final.error == "The model could not answer."
    assert len(final.error_id) == 8
    assert "upstream reset" not in final.error  # details are for the log only


async def test_non_retryable_error_is_not_retried(alice_async, conversation, provider):
    provider.scripts = [[fatal(user_message="The model server rejected the request.")]]
    assistant = await send(alice_async, conversation)
    final = await wait_until_final(assistant.pk)
    assert final.status == Message.Status.ERROR
    assert final.error == "The model server rejected the request."
    assert len(provider.calls) == 1


async def test_retry_after_is_honoured_before_retrying(alice_async, conversation, provider, caplog):
    provider.scripts = [[retryable("429", retry_after=0.3)], words("ok")]
    with caplog.at_level(logging.WARNING, logger="conversations.streaming.generation"):
        assistant = await send(alice_async, conversation)
        final = await wait_until_final(assistant.pk)
    assert final.status == Message.Status.COMPLETE
    retry = next(r for r in caplog.records if "retrying" in r.getMessage())
    assert retry.delay == 0.3  # the server's Retry-After, not the 0.01 s backoff


def test_backoff_is_exponential_with_full_jitter(settings):
    settings.CHAT = {**settings.CHAT, "RETRY_BASE_DELAY": 1.0, "RETRY_MAX_DELAY": 8.0}
    samples = {
        attempt: [generation.backoff_delay(attempt) for _ in range(300)] for attempt in range(5)
    }
    for attempt, values in samples.items():
        ceiling = min(8.0, 2**attempt)
        assert all(0 <= v <= ceiling for v in values)
        assert max(values) > ceiling * 0.8 and min(values) < ceiling * 0.2  # spread over [0, cap]
    assert generation.backoff_delay(0, retry_after=5) >= 5


async def test_error_mid_stream_keeps_the_partial_text(alice_async, conversation, provider):
    provider.scripts = [[Delta("Half an "), Delta("answer"), Sleep(0.05), retryable("reset")]]
    assistant = await send(alice_async, conversation)
    final = await wait_until_final(assistant.pk)
    assert final.status == Message.Status.ERROR
    assert final.content == "Half an answer"
    assert len(provider.calls) == 1  # text was streamed: no retry, no duplicate text


async def test_hang_before_first_token_times_out_clearly(
    alice_async, conversation, provider, settings
):
    settings.CHAT = {**settings.CHAT, "FIRST_TOKEN_TIMEOUT": 0.2, "RETRY_ATTEMPTS": 2}
    provider.scripts = [[Hang()]]
    assistant = await send(alice_async, conversation)
    final = await wait_until_final(assistant.pk)
    assert final.status == Message.Status.ERROR
    assert final.error == "The model did not start answering in time."
    assert len(provider.calls) == 2
    assert provider.closed == 2  # each hung request was closed, not leaked


async def test_hang_mid_stream_times_out_and_keeps_the_text(
    alice_async, conversation, provider, settings
):
    settings.CHAT = {**settings.CHAT, "IDLE_TIMEOUT": 0.2}
    provider.scripts = [[Delta("So far so good"), Hang()]]
    assistant = await send(alice_async, conversation)
    final = await wait_until_final(assistant.pk)
    assert final.status == Message.Status.ERROR
    assert final.content == "So far so good"
    assert final.error == "The model stopped sending in the middle of the answer."


async def test_a_slow_first_token_is_not_taken_for_an_idle_stream(
    alice_async, conversation, provider, settings
):
    """Before the first delta only the first-token timeout counts, however short the idle
    timeout is."""
    settings.CHAT = {**settings.CHAT, "IDLE_TIMEOUT": 0.1, "FIRST_TOKEN_TIMEOUT": 2}
    provider.scripts = [[Sleep(0.5), Delta("worth"), Delta(" the wait")]]
    assistant = await send(alice_async, conversation)
    final = await wait_until_final(assistant.pk)
    assert (final.status, final.content) == (Message.Status.COMPLETE, "worth the wait")


async def test_total_timeout_cuts_off_a_slow_trickle(alice_async, conversation, provider, settings):
    settings.CHAT = {**settings.CHAT, "TOTAL_TIMEOUT": 0.4}
    provider.scripts = [words("a b c d e f g h i j k l m n o p", pause=0.05)]
    assistant = await send(alice_async, conversation)
    final = await wait_until_final(assistant.pk)
    assert final.status == Message.Status.ERROR
    assert final.content and len(final.content) < len("a b c d e f g h i j k l m n o p")
    assert "too long" in final.error


async def test_slow_trickle_within_limits_completes(alice_async, conversation, provider):
    provider.scripts = [words("slow but steady wins", pause=0.15)]
    assistant = await send(alice_async, conversation)
    final = await wait_until_final(assistant.pk)
    assert (final.status, final.content) == ("complete", "slow but steady wins")


async def test_error_event_tells_the_user_and_offers_retry(alice_async, conversation, provider):
    provider.scripts = [[fatal(user_message="The model server rejected the request.")]]
    assistant = await send(alice_async, conversation)
    events = await read_events(
        await alice_async.get(f"/c/{conversation.pk}/m/{assistant.pk}/stream")
    )
    assert events[-1]["event"] == "error"
    assert "The model server rejected the request." in events[-1]["data"]
    assert "Retry" in events[-1]["data"]
    assert "Traceback" not in events[-1]["data"]


async def test_failures_are_logged_with_ids_and_error_id(
    alice_async, conversation, provider, caplog
):
    provider.scripts = [[fatal("secret upstream detail")]]
    with caplog.at_level(logging.ERROR, logger="conversations.streaming.generation"):
        assistant = await send(alice_async, conversation)
        final = await wait_until_final(assistant.pk)
    record = next(r for r in caplog.records if r.getMessage().startswith("generation failed"))
    assert record.message_id == str(assistant.pk)
    assert record.conversation_id == str(conversation.pk)
    assert record.user_id == str(conversation.owner_id)
    assert record.error_id == final.error_id
    assert "secret upstream detail" in record.getMessage()


# ---- Redis out of reach ------------------------------------------------------------------


@pytest.fixture
def silent_redis(settings):
    """The cache's Redis behind a network partition: connections open (the kernel's backlog
    takes them) and nothing ever answers. redis-py's own default waits 5 s (forever before
    redis-py 6), and the send then failed."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    settings.CACHES = {
        "default": {
            "BACKEND": "chatsite.redis_cache.SharedRedisCache",
            "LOCATION": f"redis://127.0.0.1:{listener.getsockname()[1]}/0",
            "OPTIONS": settings.REDIS_SOCKET_OPTIONS,
        }
    }
    yield
    listener.close()


async def test_a_send_goes_through_when_the_rate_limit_store_does_not_answer(
    alice_async, conversation, provider, silent_redis, caplog
):
    provider.scripts = [words("answered anyway")]
    started = time.monotonic()

    answer = await asyncio.wait_for(send(alice_async, conversation), 10)

    assert time.monotonic() - started < 3  # the cache's 1 s timeout, not redis-py's 5 s
    assert (await wait_until_final(answer.pk)).content == "answered anyway"
    assert "rate limit store unavailable" in caplog.text


def test_the_development_log_line_carries_the_ids():
    from chatsite.logging import PlainFormatter

    record = logging.makeLogRecord(
        {"name": "conversations", "levelname": "ERROR", "msg": "generation failed: timeout",
         "message_id": "m-1", "error_id": "3fa9c2d1"}
    )  # fmt: skip

    line = PlainFormatter().format(record)

    assert line.endswith("generation failed: timeout message_id=m-1 error_id=3fa9c2d1")
