"""A new chat is a composer: nothing is stored until its first send, which creates the
conversation and its first message in one transaction, once per client_id."""

from __future__ import annotations

import re
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection, connections

from conversations.models import Conversation, Message
from conversations.services.sending import start_conversation
from tests.streams import send_data, wait_until_final

pytestmark = pytest.mark.django_db(transaction=True)

HTMX = {"HX-Request": "true"}
TOO_LONG = "Messages can be at most 10000 characters (this one has 10001)."


def composer_action(body: str) -> str:
    match = re.search(r'<form id="composer"[^>]*hx-post="([^"]+)"', body)
    assert match, "no composer on the page"
    return match.group(1)


async def finish_all() -> None:
    async for answer in Message.objects.filter(role="assistant"):
        await wait_until_final(answer.pk)


# ---- opening a new chat stores nothing -------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/c/new"], ids=["landing", "new-chat"])
def test_the_landing_page_and_new_chat_show_a_composer_and_store_nothing(alice_client, alice, path):
    for _ in range(2):  # "+ New chat" clicked twice
        response = alice_client.get(path)

        assert response.status_code == 200
        body = response.content.decode()
        assert composer_action(body) == "/c/new/messages"
        assert 'data-send-url="/c/new/messages"' in body
        assert "Start a conversation" in body and "+ New chat" in body
        assert "<title>New chat · StreamChat</title>" in body
    assert not Conversation.objects.exists()


def test_new_chat_is_a_link_not_a_form_that_creates(alice_client):
    body = alice_client.get("/").content.decode()
    assert '<a class="btn btn-primary" id="new-conversation" href="/c/new">' in body
    assert 'action="/c/new"' not in body


@pytest.mark.parametrize("headers", [{}, HTMX], ids=["plain", "htmx"])
def test_an_old_pages_post_to_new_opens_the_composer_and_stores_nothing(alice_client, headers):
    response = alice_client.post("/c/new", headers=headers)

    location = response["HX-Redirect"] if headers else response["Location"]
    assert location == "/"
    assert not Conversation.objects.exists()


def test_existing_empty_conversations_stay_listed(alice_client, conversation):
    body = alice_client.get("/").content.decode()
    assert f'id="conv-{conversation.pk}"' in body
    assert alice_client.get(f"/c/{conversation.pk}/").status_code == 200


# ---- the first send ---------------------------------------------------------------------


async def test_first_send_creates_the_conversation_with_its_message_and_lands_on_it(
    alice_async, alice, provider
):
    response = await alice_async.post("/c/new/messages", send_data("Hello, new chat"), headers=HTMX)

    assert response.status_code == 200
    conversation = await Conversation.objects.aget()
    assert conversation.owner_id == alice.pk
    assert conversation.title == "Hello, new chat"
    assert [(m.seq, m.role) async for m in conversation.messages.order_by("seq")] == [
        (1, "user"),
        (2, "assistant"),
    ]
    url = f"/c/{conversation.pk}/"
    assert response["HX-Push-Url"] == url
    assert response["HX-Retarget"] == "#main"
    assert response["HX-Reswap"] == "outerHTML"
    body = response.content.decode()
    # The sidebar lists it (first, as the current one), then the conversation's page.
    assert body.startswith('<ul class="conversation-list" id="conversation-list" hx-swap-oob')
    assert re.search(rf'href="{url}" id="conv-{conversation.pk}"\s+aria-current="page"', body)
    assert '<main id="main" class="main chat">' in body
    assert 'data-document-title="Hello, new chat · StreamChat"' in body
    assert composer_action(body) == f"/c/{conversation.pk}/messages"
    assert f'data-conversation="{conversation.pk}"' in body
    answer = await conversation.messages.aget(role="assistant")
    assert f'sse-connect="/c/{conversation.pk}/m/{answer.pk}/stream?t=' in body
    await finish_all()
    assert len(provider.calls) == 1


async def test_plain_first_send_redirects_to_the_new_conversation(alice_async, provider):
    response = await alice_async.post("/c/new/messages", send_data("No JavaScript"))

    conversation = await Conversation.objects.aget()
    assert response.status_code == 302
    assert response["Location"] == f"/c/{conversation.pk}/"
    await finish_all()


async def test_first_send_repeated_with_its_client_id_returns_the_same_conversation(
    alice_async, provider
):
    data = send_data("Sent twice (a dropped response, then Retry)", uuid.uuid4())

    first = await alice_async.post("/c/new/messages", data, headers=HTMX)
    second = await alice_async.post("/c/new/messages", data, headers=HTMX)

    conversation = await Conversation.objects.aget()
    assert await conversation.messages.acount() == 2
    assert first["HX-Push-Url"] == second["HX-Push-Url"] == f"/c/{conversation.pk}/"
    await finish_all()
    assert len(provider.calls) == 1  # the repeat did not ask the model again


async def test_a_client_id_is_looked_up_only_among_the_senders_conversations(
    alice_async, bob, provider
):
    client_id = uuid.uuid4()
    bobs = await Conversation.objects.acreate(owner=bob, title="Bob's")
    await Message.objects.acreate(
        conversation=bobs, seq=1, role="user", content="Bob's", client_id=client_id
    )

    response = await alice_async.post(
        "/c/new/messages", send_data("Alice's", client_id), headers=HTMX
    )

    alices = await Conversation.objects.exclude(pk=bobs.pk).aget()
    assert alices.owner_id != bob.pk
    assert response["HX-Push-Url"] == f"/c/{alices.pk}/"
    assert "Bob&#x27;s" not in response.content.decode()
    assert await bobs.messages.acount() == 1
    await finish_all()


@pytest.mark.parametrize(
    ("content", "error"),
    [("", "Type a message first."), ("  \n ", "Type a message first."), ("x" * 10_001, TOO_LONG)],
    ids=["empty", "whitespace", "10001"],
)
@pytest.mark.parametrize("htmx", [True, False], ids=["htmx", "plain"])
def test_an_invalid_first_send_says_why_and_stores_nothing(alice_client, content, error, htmx):
    response = alice_client.post(
        "/c/new/messages", send_data(content), headers=HTMX if htmx else {}
    )

    assert response.status_code == 422
    body = response.content.decode()
    assert error in body
    assert composer_action(body) == "/c/new/messages"  # the composer of the new chat
    if htmx:
        assert response["HX-Retarget"] == "#composer"
        assert body.lstrip().startswith('<form id="composer"')
    else:
        assert "<html" in body and "Start a conversation" in body
    assert not Conversation.objects.exists() and not Message.objects.exists()


async def test_a_rate_limited_first_send_stores_nothing(alice_async, provider, settings):
    settings.CHAT = {**settings.CHAT, "MESSAGES_PER_MINUTE": 1, "CONCURRENT_STREAMS": 10}
    assert (await alice_async.post("/c/new/messages", send_data("one"))).status_code == 302

    refused = await alice_async.post("/c/new/messages", send_data("two"), headers=HTMX)

    assert refused.status_code == 429
    assert int(refused["Retry-After"]) >= 1
    assert await Conversation.objects.acount() == 1
    await finish_all()


def test_a_suspended_account_cannot_start_a_conversation(alice, provider):
    from conversations.services import moderation

    alice.is_active = False
    alice.save()
    with pytest.raises(moderation.SendRefused):
        start_conversation(owner=alice, content="hi", client_id=uuid.uuid4(), launch=None)
    assert not Conversation.objects.exists()


def test_anonymous_first_send_goes_to_login_and_stores_nothing(client):
    response = client.post("/c/new/messages", send_data("hi"))
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    assert not Conversation.objects.exists()


def test_same_first_send_racing_at_the_database_makes_one_conversation(alice, provider):
    if connection.vendor == "sqlite":
        pytest.skip("needs a database server for truly concurrent connections")
    client_id = uuid.uuid4()
    barrier = threading.Barrier(4)

    def send(_):
        try:
            barrier.wait(timeout=10)
            return start_conversation(owner=alice, content="Race", client_id=client_id, launch=None)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(send, range(4)))

    assert Conversation.objects.count() == 1 and Message.objects.count() == 2
    assert len({r.user_message.pk for r in results}) == 1
    assert sum(r.created for r in results) == 1
