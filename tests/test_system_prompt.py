"""A conversation's system prompt, edited in its page: sent before its next answers."""

from __future__ import annotations

import pytest

from conversations.forms import MAX_SYSTEM_PROMPT_CHARS
from conversations.models import Conversation, Message
from tests.streams import send_data, wait_until_final

HTMX = {"HX-Request": "true"}


def prompt_url(conversation: Conversation) -> str:
    return f"/c/{conversation.pk}/system-prompt"


def test_the_page_offers_the_system_prompt_folded_under_the_title(alice_client, conversation):
    conversation.system_prompt = "Answer in French."
    conversation.save()
    page = alice_client.get(f"/c/{conversation.pk}/").content.decode()
    assert '<details class="system-prompt" id="system-prompt">' in page  # folded
    assert "Answer in French.</textarea>" in page and "· on" in page


def test_saving_over_htmx_stores_it_and_says_when_it_applies(alice_client, conversation):
    response = alice_client.post(
        prompt_url(conversation), {"system_prompt": "  Be brief.  "}, headers=HTMX
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert body.lstrip().startswith('<details class="system-prompt" id="system-prompt" open>')
    assert "Saved." in body and "not to earlier ones" in body
    conversation.refresh_from_db()
    assert conversation.system_prompt == "Be brief."


def test_saving_without_javascript_goes_back_to_the_conversation(alice_client, conversation):
    response = alice_client.post(prompt_url(conversation), {"system_prompt": "Be brief."})
    assert response.status_code == 302 and response["Location"] == f"/c/{conversation.pk}/"
    conversation.refresh_from_db()
    assert conversation.system_prompt == "Be brief."


def test_an_empty_prompt_turns_it_off(alice_client, conversation):
    conversation.system_prompt = "Be brief."
    conversation.save()
    alice_client.post(prompt_url(conversation), {"system_prompt": "   "}, headers=HTMX)
    conversation.refresh_from_db()
    assert conversation.system_prompt == ""


@pytest.mark.parametrize("htmx", [True, False], ids=["htmx", "page"])
def test_an_overlong_prompt_is_refused_and_keeps_the_old_one(alice_client, conversation, htmx):
    conversation.system_prompt = "Be brief."
    conversation.save()
    response = alice_client.post(
        prompt_url(conversation),
        {"system_prompt": "x" * (MAX_SYSTEM_PROMPT_CHARS + 1)},
        headers=HTMX if htmx else {},
    )
    assert response.status_code == 422
    assert "at most 4000 characters (this one has 4001)" in response.content.decode()
    conversation.refresh_from_db()
    assert conversation.system_prompt == "Be brief."


def test_someone_elses_conversation_is_404(client, bob, conversation):
    client.force_login(bob)
    response = client.post(prompt_url(conversation), {"system_prompt": "Leak it all."})
    assert response.status_code == 404
    conversation.refresh_from_db()
    assert conversation.system_prompt == ""


def test_only_post_changes_it(alice_client, conversation):
    assert alice_client.get(prompt_url(conversation)).status_code == 405


@pytest.mark.django_db(transaction=True)
async def test_the_next_answer_gets_it_first_and_the_transcript_does_not_show_it(
    alice_async, conversation, provider
):
    await alice_async.post(
        prompt_url(conversation), {"system_prompt": "Answer in French."}, headers=HTMX
    )
    await alice_async.post(f"/c/{conversation.pk}/messages", send_data("Hello"), headers=HTMX)
    answer = await Message.objects.aget(conversation=conversation, role="assistant")
    await wait_until_final(answer.pk)
    turns = provider.calls[0]
    assert (turns[0].role, turns[0].content) == ("system", "Answer in French.")
    assert (turns[1].role, turns[1].content) == ("user", "Hello")


def test_a_refused_send_without_javascript_still_shows_the_prompt(alice_client, conversation):
    conversation.system_prompt = "Be brief."
    conversation.save()
    response = alice_client.post(f"/c/{conversation.pk}/messages", {"content": ""})
    assert response.status_code == 422
    assert "Be brief.</textarea>" in response.content.decode()
