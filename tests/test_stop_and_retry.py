"""Stop, retry and regenerate: new answers get the next seq; history keeps the old ones."""

from __future__ import annotations

import asyncio

import pytest

from conversations.models import Message
from conversations.streaming import control
from tests.fakes import Delta, Sleep, fatal, words
from tests.streams import read_events, send_data, wait_until_final

pytestmark = pytest.mark.django_db(transaction=True)


async def send(client, conversation, content: str = "Hello", client_id=None) -> Message:
    response = await client.post(
        f"/c/{conversation.pk}/messages",
        send_data(content, client_id),
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 200, response.content
    return await Message.objects.filter(conversation=conversation, role="assistant").alatest("seq")


async def wait_for_text(message_id, text: str) -> None:
    from conversations.streaming.runtime import get_runtime

    for _ in range(200):
        stream = get_runtime().hub.get(str(message_id))
        if stream is not None and text in stream.text:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{text!r} never streamed")


def slow_script() -> list:
    return [Delta("Once upon"), Sleep(0.05), Delta(" a time"), Sleep(5), Delta(" NEVER SENT")]


async def test_stop_keeps_partial_text_and_cancels_the_provider(
    alice_async, conversation, provider
):
    provider.scripts = [slow_script()]
    assistant = await send(alice_async, conversation)
    await wait_for_text(assistant.pk, "a time")

    response = await alice_async.post(
        f"/c/{conversation.pk}/m/{assistant.pk}/stop", headers={"HX-Request": "true"}
    )
    assert response.status_code == 204
    final = await wait_until_final(assistant.pk, timeout=2)
    assert final.status == Message.Status.STOPPED
    assert final.content == "Once upon a time"
    assert provider.closed == 1 and provider.yielded == 2  # nothing more was paid for


async def test_every_reader_sees_the_stopped_state(alice_async, conversation, provider):
    provider.scripts = [slow_script()]
    assistant = await send(alice_async, conversation)
    url = f"/c/{conversation.pk}/m/{assistant.pk}/stream"
    tabs = [asyncio.ensure_future(read_events(await alice_async.get(url))) for _ in range(2)]
    await wait_for_text(assistant.pk, "a time")
    await alice_async.post(f"/c/{conversation.pk}/m/{assistant.pk}/stop")
    for events in await asyncio.gather(*tabs):
        assert events[-1]["event"] == "done"
        assert "Stopped" in events[-1]["data"] and "Once upon a time" in events[-1]["data"]


async def test_stop_broadcast_reaches_the_generating_process(alice_async, conversation, provider):
    """What another server process does: it has no local task, so it broadcasts."""
    provider.scripts = [slow_script()]
    assistant = await send(alice_async, conversation)
    await wait_for_text(assistant.pk, "a time")
    await control.broadcast_stop(str(assistant.pk))
    final = await wait_until_final(assistant.pk, timeout=2)
    assert final.status == Message.Status.STOPPED


async def test_stopping_a_finished_answer_changes_nothing(alice_async, conversation, provider):
    assistant = await send(alice_async, conversation)
    final = await wait_until_final(assistant.pk)
    await alice_async.post(f"/c/{conversation.pk}/m/{assistant.pk}/stop")
    again = await Message.objects.aget(pk=assistant.pk)
    assert (again.status, again.content) == (final.status, final.content)


async def test_retry_after_error_adds_a_new_answer_and_keeps_the_failed_one(
    alice_async, conversation, provider
):
    provider.scripts = [[fatal()], words("Second try worked")]
    failed = await send(alice_async, conversation, "Question")
    await wait_until_final(failed.pk)

    response = await alice_async.post(
        f"/c/{conversation.pk}/m/{failed.pk}/retry", headers={"HX-Request": "true"}
    )
    assert response.status_code == 200
    retry = await Message.objects.filter(conversation=conversation).alatest("seq")
    assert retry.seq == 3 and retry.pk != failed.pk
    final = await wait_until_final(retry.pk)
    assert final.content == "Second try worked"
    rows = [(m.seq, m.role, m.status) async for m in conversation.messages.order_by("seq")]
    assert rows == [
        (1, "user", "complete"),
        (2, "assistant", "error"),
        (3, "assistant", "complete"),
    ]
    assert retry.reply_to_id == failed.reply_to_id
    # The failed answer was not sent to the model as history.
    assert [t.role for t in provider.calls[-1]] == ["user"]
    # The new answer takes the failed one's place, which stays as its version 1 of 2.
    assert retry.parent_id == failed.parent_id
    body = response.content.decode()
    assert f'id="msg-{retry.pk}"' in body and f'id="msg-{failed.pk}"' not in body
    assert "2 / 2" in body


async def test_double_retry_makes_one_new_answer(alice_async, conversation, provider):
    provider.scripts = [[fatal()], words("Only once")]
    failed = await send(alice_async, conversation)
    await wait_until_final(failed.pk)
    url = f"/c/{conversation.pk}/m/{failed.pk}/retry"
    await asyncio.gather(alice_async.post(url), alice_async.post(url))
    assert await conversation.messages.acount() == 3
    await wait_until_final((await conversation.messages.alatest("seq")).pk)
    assert len(provider.calls) == 2  # one generation for the retry, whoever clicked second


async def test_regenerate_replaces_the_answer_in_the_models_context(
    alice_async, conversation, provider
):
    provider.scripts = [words("First answer"), words("Better answer"), words("Follow-up")]
    first = await send(alice_async, conversation, "Question one")
    await wait_until_final(first.pk)
    await alice_async.post(f"/c/{conversation.pk}/m/{first.pk}/retry")
    regenerated = await Message.objects.filter(conversation=conversation).alatest("seq")
    await wait_until_final(regenerated.pk)
    assert [t.content for t in provider.calls[1]] == ["Question one"]

    followup = await send(alice_async, conversation, "Question two")
    await wait_until_final(followup.pk)
    assert [t.content for t in provider.calls[2]] == [
        "Question one",
        "Better answer",
        "Question two",
    ]


async def test_only_the_last_answer_can_be_retried(alice_async, conversation, provider):
    provider.scripts = [[fatal()], words("later")]
    failed = await send(alice_async, conversation, "one")
    await wait_until_final(failed.pk)
    later = await send(alice_async, conversation, "two")
    await wait_until_final(later.pk)
    response = await alice_async.post(f"/c/{conversation.pk}/m/{failed.pk}/retry")
    assert response.status_code == 409
    # Plain text: the page shows it as the reason (it never shows an HTML body).
    assert response["Content-Type"].startswith("text/plain")
    assert response.content.decode() == "Only the last answer can be retried."
    assert await conversation.messages.acount() == 4


async def test_an_answer_a_moderator_hid_cannot_be_retried(alice_async, conversation, provider):
    provider.scripts = [words("something hidden"), words("a fresh answer")]
    answer = await send(alice_async, conversation, "one")
    await wait_until_final(answer.pk)
    await Message.objects.filter(pk=answer.pk).aupdate(hidden=True)

    response = await alice_async.post(f"/c/{conversation.pk}/m/{answer.pk}/retry")

    assert response.status_code == 409 and "moderator hid" in response.content.decode()
    assert await conversation.messages.acount() == 2


async def test_resend_of_a_failed_send_reuses_the_client_id_and_never_duplicates(
    alice_async, conversation, provider
):
    """The browser's retry button posts the same client_id again."""
    import uuid

    client_id = uuid.uuid4()
    first = await send(alice_async, conversation, "Are you there?", client_id)
    again = await send(alice_async, conversation, "Are you there?", client_id)
    assert first.pk == again.pk
    assert await conversation.messages.acount() == 2


async def test_stop_during_the_final_write_leaves_nothing_spinning(
    alice_async, conversation, provider
):
    import time

    from asgiref.sync import sync_to_async

    from conversations.streaming.runtime import get_runtime

    provider.scripts = [[Delta("All of it"), Sleep(0.1)]]
    assistant = await send(alice_async, conversation)
    await wait_for_text(assistant.pk, "All of it")
    # Keep the database worker busy, so the final write waits while Stop is pressed.
    blocker = asyncio.ensure_future(sync_to_async(time.sleep)(0.6))
    await asyncio.sleep(0.3)
    stream = get_runtime().hub.get(str(assistant.pk))
    assert stream is not None and stream.finishing

    assert get_runtime().stop_here(str(assistant.pk))
    await blocker
    final = await wait_until_final(assistant.pk)
    assert (final.status, final.content) == ("complete", "All of it")
    await asyncio.sleep(0.05)
    assert get_runtime().hub.get(str(assistant.pk)) is None  # closed: no reader waits forever
