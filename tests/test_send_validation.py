"""A send the server refuses says why in the composer, keeps the typed text and stores nothing."""

from __future__ import annotations

import html
import re
import uuid

import pytest

from conversations.models import Message
from tests.streams import send_data, wait_until_final

HTMX = {"HX-Request": "true"}
TOO_LONG = "Messages can be at most 10000 characters (this one has 10001)."
EMPTY = "Type a message first."

INVALID_SENDS = [
    pytest.param({"content": "", "client_id": str(uuid.uuid4())}, EMPTY, id="empty"),
    pytest.param({"content": "  \n\t  ", "client_id": str(uuid.uuid4())}, EMPTY, id="whitespace"),
    pytest.param({"client_id": str(uuid.uuid4())}, EMPTY, id="missing-content"),
    pytest.param({"content": "x" * 10_001, "client_id": str(uuid.uuid4())}, TOO_LONG, id="10001"),
]


def composer_text(body: str) -> str:
    """What the message box holds, as the browser shows it."""
    match = re.search(r'<textarea[^>]*name="content"[^>]*>(.*?)</textarea>', body, re.DOTALL)
    assert match, "no message box in the response"
    return html.unescape(match.group(1)).removeprefix("\n")  # Django adds one newline


def composer_error(body: str) -> str:
    match = re.search(r'<p class="composer-error"[^>]*>(.*?)</p>', body, re.DOTALL)
    assert match, "no error slot in the response"
    return html.unescape(match.group(1)).strip()


@pytest.mark.parametrize(("data", "error"), INVALID_SENDS)
def test_invalid_htmx_send_returns_the_composer_with_the_error_and_stores_nothing(
    alice_client, conversation, data, error
):
    response = alice_client.post(f"/c/{conversation.pk}/messages", data, headers=HTMX)

    assert response.status_code == 422
    assert response["HX-Retarget"] == "#composer"
    assert response["HX-Reswap"] == "outerHTML"
    body = response.content.decode()
    assert body.lstrip().startswith('<form id="composer"')  # the fragment, not the page
    assert composer_error(body) == error
    assert composer_text(body) == data.get("content", "")
    assert not Message.objects.exists()


@pytest.mark.parametrize(("data", "error"), INVALID_SENDS)
def test_invalid_plain_send_rerenders_the_page_with_the_error_and_stores_nothing(
    alice_client, conversation, data, error
):
    response = alice_client.post(f"/c/{conversation.pk}/messages", data)

    assert response.status_code == 422
    body = response.content.decode()
    assert "<html" in body and "Alice&#x27;s chat" in body
    assert composer_error(body) == error
    assert composer_text(body) == data.get("content", "")
    assert not Message.objects.exists()


def test_invalid_send_does_not_name_an_untitled_conversation(alice_client, alice):
    conversation = alice.conversations.create()
    alice_client.post(f"/c/{conversation.pk}/messages", {"content": "   "}, headers=HTMX)
    conversation.refresh_from_db()
    assert conversation.title == ""


@pytest.mark.parametrize("htmx", [True, False], ids=["htmx", "page"])
def test_malformed_client_id_is_a_clear_error_and_stores_nothing(alice_client, conversation, htmx):
    response = alice_client.post(
        f"/c/{conversation.pk}/messages",
        {"content": "Hello", "client_id": "not-a-uuid"},
        headers=HTMX if htmx else {},
    )

    assert response.status_code == 422
    body = response.content.decode()
    assert "Reload the page" in composer_error(body)
    assert composer_text(body) == "Hello"
    assert not Message.objects.exists()


@pytest.mark.django_db(transaction=True)
async def test_exactly_10000_characters_after_stripping_are_accepted(
    alice_async, conversation, provider
):
    text = "y" * 10_000
    response = await alice_async.post(
        f"/c/{conversation.pk}/messages", send_data(f"  {text}\n"), headers=HTMX
    )

    assert response.status_code == 200
    stored = await Message.objects.aget(conversation=conversation, role="user")
    assert stored.content == text
    answer = await Message.objects.aget(conversation=conversation, role="assistant")
    await wait_until_final(answer.pk)  # let the answer finish before the test database goes
