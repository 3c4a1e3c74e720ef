"""Titles written by the model after the first answer (CHAT_MODEL_TITLES), never in its way."""

from __future__ import annotations

import asyncio
import logging

import pytest

from conversations.models import Conversation, Message
from conversations.streaming import titling
from conversations.streaming.runtime import get_runtime
from tests.fakes import Delta, Sleep, fatal, words
from tests.streams import send_data, wait_until_final

pytestmark = pytest.mark.django_db(transaction=True)

QUESTION = "How do I brew **green** tea?"


@pytest.fixture
def conversation(alice):
    """Untitled: its first message names it."""
    return Conversation.objects.create(owner=alice)


@pytest.fixture
def model_titles(settings):
    settings.CHAT = {**settings.CHAT, "MODEL_TITLES": True}


async def ask(client, conversation, content: str = QUESTION) -> Message:
    response = await client.post(
        f"/c/{conversation.pk}/messages", send_data(content), headers={"HX-Request": "true"}
    )
    assert response.status_code == 200
    answer = await Message.objects.filter(conversation=conversation, role="assistant").alatest(
        "seq"
    )
    return await wait_until_final(answer.pk)


async def titles_settled() -> None:
    """Every answer's generation over (the title call, if any, starts as it ends), then
    every title call."""
    hub = get_runtime().hub
    for _ in range(200):
        if not hub.streams:
            break
        await asyncio.sleep(0.01)
    await asyncio.gather(*titling._pending)


async def title_of(conversation: Conversation) -> str:
    return (await Conversation.objects.aget(pk=conversation.pk)).title


@pytest.mark.usefixtures("model_titles")
async def test_the_model_titles_the_conversation_after_its_first_answer(
    alice_async, conversation, provider
):
    provider.scripts = [words("Steep it at 80 °C."), [Delta('"Brewing **green** tea."')]]
    answer = await ask(alice_async, conversation)
    assert answer.status == Message.Status.COMPLETE
    assert answer.content == "Steep it at 80 °C."  # the title call changed nothing of it
    await titles_settled()
    assert await title_of(conversation) == "Brewing green tea"
    title_call = provider.calls[1]
    assert title_call[0].role == "system" and "title" in title_call[0].content
    assert QUESTION in title_call[1].content and "Steep it at 80 °C." in title_call[1].content
    page = (await alice_async.get(f"/c/{conversation.pk}/")).content.decode()
    assert "Brewing green tea" in page


@pytest.mark.usefixtures("model_titles")
async def test_a_rename_while_the_model_writes_the_title_wins(alice_async, conversation, provider):
    provider.scripts = [words("Steep it."), [Sleep(0.3), Delta("Green tea")]]
    await ask(alice_async, conversation)
    await alice_async.post(f"/c/{conversation.pk}/rename", {"title": "Mine"})
    await titles_settled()
    assert await title_of(conversation) == "Mine"


@pytest.mark.usefixtures("model_titles")
async def test_a_failed_title_call_keeps_the_title_from_the_first_message(
    alice_async, conversation, provider, caplog
):
    provider.scripts = [words("Steep it."), [fatal("no titles today")]]
    with caplog.at_level(logging.WARNING, logger="conversations.streaming.titling"):
        answer = await ask(alice_async, conversation)
        await titles_settled()
    assert answer.status == Message.Status.COMPLETE
    assert await title_of(conversation) == "How do I brew green tea?"
    assert "could not title" in caplog.text


@pytest.mark.usefixtures("model_titles")
async def test_only_the_first_answer_asks_for_a_title(alice_async, conversation, provider):
    provider.scripts = [words("Steep it."), [Delta("Green tea")], words("Two minutes.")]
    await ask(alice_async, conversation)
    await titles_settled()
    await ask(alice_async, conversation, "And for how long?")
    await titles_settled()
    assert len(provider.calls) == 3  # answer, title, answer: no second title
    assert await title_of(conversation) == "Green tea"


@pytest.mark.usefixtures("model_titles")
async def test_a_rambling_title_is_cut_to_one_plain_line(alice_async, conversation, provider):
    provider.scripts = [words("Steep it."), [Delta("# Tea\n\nA " + "very " * 60 + "long title")]]
    await ask(alice_async, conversation)
    await titles_settled()
    assert await title_of(conversation) == "Tea"


async def test_without_the_setting_no_title_is_asked(alice_async, conversation, provider):
    provider.scripts = [words("Steep it."), [Delta("Green tea")]]
    await ask(alice_async, conversation)
    await titles_settled()
    assert len(provider.calls) == 1
    assert await title_of(conversation) == "How do I brew green tea?"
