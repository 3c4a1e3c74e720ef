"""A send is stored once however often it arrives; seq numbers stay distinct and gap-free."""

from __future__ import annotations

import asyncio
import re
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection, connections

from conversations.models import Conversation
from conversations.services.sending import SEND_WHILE_LIVE, AnswerInProgress, send_message
from tests.fakes import Hang, words
from tests.streams import send_data, wait_until_final

pytestmark = pytest.mark.django_db(transaction=True)

HTMX = {"HX-Request": "true"}


@pytest.fixture
def no_rate_limits(settings):
    settings.CHAT = {**settings.CHAT, "CONCURRENT_STREAMS": 100, "MESSAGES_PER_MINUTE": 1000}


def shown_message_ids(response) -> list[str]:
    return re.findall(r'<article id="msg-([0-9a-f-]+)"', response.content.decode())


async def rows(conversation: Conversation) -> list[tuple[int, str]]:
    return [(m.seq, m.role) async for m in conversation.messages.order_by("seq")]


async def finish_all(conversation: Conversation) -> None:
    """Let every answer end before the test database is flushed."""
    async for answer in conversation.messages.filter(role="assistant"):
        await wait_until_final(answer.pk)


async def test_same_client_id_sent_twice_stores_one_send_and_shows_it_again(
    alice_async, conversation, provider
):
    data = send_data("Only once, please", uuid.uuid4())
    first = await alice_async.post(f"/c/{conversation.pk}/messages", data, headers=HTMX)
    second = await alice_async.post(f"/c/{conversation.pk}/messages", data, headers=HTMX)

    assert first.status_code == second.status_code == 200
    assert await rows(conversation) == [(1, "user"), (2, "assistant")]
    user_message = await conversation.messages.aget(role="user")
    answer = await conversation.messages.aget(role="assistant")
    assert (
        shown_message_ids(first)
        == shown_message_ids(second)
        == [
            str(user_message.pk),
            str(answer.pk),
        ]
    )
    await finish_all(conversation)
    assert len(provider.calls) == 1  # the repeat did not ask the model again


async def test_same_client_id_sent_concurrently_stores_one_send(
    alice_async, conversation, provider
):
    provider.scripts = [words("one answer", pause=0.02)]
    data = send_data("Double click", uuid.uuid4())
    url = f"/c/{conversation.pk}/messages"

    responses = await asyncio.gather(*(alice_async.post(url, data, headers=HTMX) for _ in range(3)))

    assert [r.status_code for r in responses] == [200, 200, 200]
    assert await rows(conversation) == [(1, "user"), (2, "assistant")]
    shown = {tuple(shown_message_ids(r)) for r in responses}
    assert len(shown) == 1 and len(next(iter(shown))) == 2
    await finish_all(conversation)
    assert len(provider.calls) == 1


async def test_repeat_after_the_answer_finished_shows_the_finished_answer(
    alice_async, conversation, provider
):
    data = send_data("Hi", uuid.uuid4())
    await alice_async.post(f"/c/{conversation.pk}/messages", data, headers=HTMX)
    await finish_all(conversation)

    again = await alice_async.post(f"/c/{conversation.pk}/messages", data, headers=HTMX)

    assert again.status_code == 200
    body = again.content.decode()
    assert "<strong>there</strong>" in body and "sse-connect" not in body
    assert await rows(conversation) == [(1, "user"), (2, "assistant")]


async def test_concurrent_sends_with_different_client_ids_store_one_and_refuse_the_rest(
    alice_async, conversation, provider, no_rate_limits
):
    """One answer at a time per conversation: the first send under the lock is stored, the
    others find its answer being written and are refused (409), storing nothing."""
    url = f"/c/{conversation.pk}/messages"
    sends = [send_data(f"Message {n}") for n in range(5)]

    responses = await asyncio.gather(*(alice_async.post(url, d, headers=HTMX) for d in sends))

    assert sorted(r.status_code for r in responses) == [200] + [409] * 4
    assert await rows(conversation) == [(1, "user"), (2, "assistant")]
    refused = [r.content.decode() for r in responses if r.status_code == 409]
    assert set(refused) == {SEND_WHILE_LIVE}
    await finish_all(conversation)


async def test_a_send_while_an_answer_is_written_is_refused_and_a_repeat_still_answers(
    alice_async, conversation, provider
):
    provider.scripts = [[Hang()], words("Second answer.")]
    url = f"/c/{conversation.pk}/messages"
    first = send_data("First", uuid.uuid4())
    assert (await alice_async.post(url, first, headers=HTMX)).status_code == 200

    refused = await alice_async.post(url, send_data("Second"), headers=HTMX)
    repeat = await alice_async.post(url, first, headers=HTMX)  # a retry of the first send

    assert refused.status_code == 409
    assert refused["Content-Type"].startswith("text/plain")
    assert refused.content.decode() == SEND_WHILE_LIVE
    assert not await conversation.messages.filter(content="Second").aexists()
    assert repeat.status_code == 200  # idempotency comes first: the stored pair again
    assert await rows(conversation) == [(1, "user"), (2, "assistant")]
    answer = await conversation.messages.aget(role="assistant")
    assert shown_message_ids(repeat)[1] == str(answer.pk)

    # Once the answer is stopped, the same text goes through.
    stop = await alice_async.post(f"/c/{conversation.pk}/m/{answer.pk}/stop", headers=HTMX)
    assert stop.status_code < 400
    await wait_until_final(answer.pk)
    again = await alice_async.post(url, send_data("Second"), headers=HTMX)
    assert again.status_code == 200
    assert await rows(conversation) == [
        (1, "user"),
        (2, "assistant"),
        (3, "user"),
        (4, "assistant"),
    ]
    await finish_all(conversation)


@pytest.fixture
def racing_connections() -> None:
    if connection.vendor == "sqlite":
        # The in-memory test database fails a locked table at once instead of waiting (the real,
        # file-backed database waits); and on SQLite BEGIN IMMEDIATE serializes writers anyway.
        pytest.skip("needs a database server for truly concurrent connections")


def send_from_threads(conversation: Conversation, client_ids: list[uuid.UUID]) -> list:
    """Each send on its own thread and database connection, released together; a send
    refused because an answer is being written gives its AnswerInProgress."""
    barrier = threading.Barrier(len(client_ids))

    def send(client_id: uuid.UUID):
        try:
            barrier.wait(timeout=10)
            return send_message(
                conversation=conversation, content="Race", client_id=client_id, launch=None
            )
        except AnswerInProgress as refusal:
            return refusal
        finally:
            connections.close_all()

    with ThreadPoolExecutor(len(client_ids)) as pool:
        return list(pool.map(send, client_ids))


def test_same_client_id_racing_at_the_database_stores_one_send(
    conversation, no_rate_limits, provider, racing_connections
):
    client_id = uuid.uuid4()
    results = send_from_threads(conversation, [client_id] * 4)

    assert conversation.messages.count() == 2
    assert {(r.user_message.pk, r.assistant_message.pk) for r in results} == {
        tuple(conversation.messages.order_by("seq").values_list("pk", flat=True))
    }
    assert sum(r.created for r in results) == 1


def test_different_sends_racing_at_the_database_store_one(
    conversation, no_rate_limits, provider, racing_connections
):
    """Under the sender's lock the later sends see the first one's answer being written."""
    outcomes: list[object] = []
    for result in send_from_threads(conversation, [uuid.uuid4() for _ in range(4)]):
        outcomes.append(result if isinstance(result, AnswerInProgress) else result.created)

    assert outcomes.count(True) == 1
    assert sum(isinstance(o, AnswerInProgress) for o in outcomes) == 3
    assert list(conversation.messages.order_by("seq").values_list("seq", flat=True)) == [1, 2]
