"""A send the server refuses says why in the composer, keeps the typed text and stores nothing."""

from __future__ import annotations

import html
import re
import uuid
from urllib.parse import quote_plus

import pytest

from conversations.models import Conversation, Message
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


MULTIPART = "multipart/form-data; boundary=XyZ"


def multipart(content: bytes) -> bytes:
    return (
        b'--XyZ\r\nContent-Disposition: form-data; name="content"\r\n\r\n'
        + content
        + b'\r\n--XyZ\r\nContent-Disposition: form-data; name="client_id"\r\n\r\n'
        + str(uuid.uuid4()).encode()
        + b"\r\n--XyZ--\r\n"
    )


UNDECODABLE_SENDS = [
    pytest.param(b"content=hi%FF%FEthere", None, id="percent-encoded-bytes"),
    pytest.param(b"content=half+%ED%A0%80+an+emoji", None, id="lone-surrogate"),
    pytest.param(b"content=raw\xff\xfebytes", None, id="raw-bytes"),
    pytest.param(multipart(b"hi\xff\xfethere"), MULTIPART, id="multipart-bytes"),
    pytest.param(multipart(b"half \xed\xa0\x80 an emoji"), MULTIPART, id="multipart-surrogate"),
    pytest.param(
        b"content=caf%E9",
        "application/x-www-form-urlencoded; charset=latin-1",
        id="declared-latin-1",
    ),
]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("body", "content_type"), UNDECODABLE_SENDS)
def test_text_that_is_not_utf8_is_refused_and_nothing_is_stored(
    alice_client, conversation, provider, body, content_type
):
    response = alice_client.post(
        f"/c/{conversation.pk}/messages",
        body,
        content_type=content_type or "application/x-www-form-urlencoded",
        headers=HTMX,
    )

    assert response.status_code == 422
    assert response["Content-Type"].startswith("text/plain")
    assert "not valid UTF-8" in response.content.decode()
    assert not Message.objects.filter(conversation=conversation).exists()
    assert provider.calls == []


def test_valid_utf8_in_both_encodings_is_sent(alice, alice_client, conversation, provider):
    text = "Grüße 🚀 — ok"
    # Each in a conversation of its own: a send waits for the answer before it.
    other = Conversation.objects.create(owner=alice, title="Another chat")
    for chat, (body, content_type) in zip(
        (conversation, other),
        [
            (f"content={quote_plus(text)}&client_id={uuid.uuid4()}".encode(), None),
            (multipart(text.encode()), MULTIPART),
        ],
        strict=True,
    ):
        response = alice_client.post(
            f"/c/{chat.pk}/messages",
            body,
            content_type=content_type or "application/x-www-form-urlencoded",
            headers=HTMX,
        )
        assert response.status_code == 200, response.content
    assert list(
        Message.objects.filter(conversation__owner=alice, role="user").values_list(
            "content", flat=True
        )
    ) == [text, text]
