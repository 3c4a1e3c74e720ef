"""Anything not yours is a 404 (never a 403, never a change); anonymous visitors log in first."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from conversations.middleware import SIGNED_OUT
from conversations.models import Conversation, Message
from tests.trees import link_as_one_path

# Every conversation and message URL: (method, path, form data). `{c}` and `{m}` are ids.
CONVERSATION_URLS = [
    ("get", "/c/{c}/", None),
    ("get", "/c/{c}/rename", None),
    ("post", "/c/{c}/rename", {"title": "Mine now"}),
    ("get", "/c/{c}/delete", None),
    ("post", "/c/{c}/delete", {}),
    ("post", "/c/{c}/messages", {"content": "Let me in", "client_id": ""}),
]
MESSAGE_URLS = [
    ("get", "/c/{c}/m/{m}/stream", None),
    ("post", "/c/{c}/m/{m}/stop", {}),
    ("post", "/c/{c}/m/{m}/retry", {}),
]
ALL_URLS = CONVERSATION_URLS + MESSAGE_URLS


def url_id(case: tuple) -> str:
    return f"{case[0].upper()} {case[1]}"


@pytest.fixture
def bobs_conversation(bob):
    conversation = Conversation.objects.create(owner=bob, title="Bob's secrets")
    question = Message.objects.create(
        conversation=conversation, seq=1, role="user", content="Bob asks"
    )
    Message.objects.create(
        conversation=conversation,
        seq=2,
        role="assistant",
        content="Bob's answer",
        reply_to=question,
    )
    link_as_one_path(conversation)
    return conversation


@pytest.fixture
def alices_answer(conversation):
    question = Message.objects.create(conversation=conversation, seq=1, role="user", content="Q")
    answer = Message.objects.create(
        conversation=conversation, seq=2, role="assistant", content="A", reply_to=question
    )
    link_as_one_path(conversation)
    return answer


def snapshot(conversation: Conversation) -> tuple:
    """What its owner would notice if someone else touched it."""
    fresh = Conversation.objects.filter(pk=conversation.pk).first()
    assert fresh is not None, "the conversation was deleted"
    messages = fresh.messages.order_by("seq").values_list("seq", "role", "status", "content")
    return fresh.title, list(messages)


def request(client: Client, method: str, path: str, data: dict | None, **headers):
    if method == "get":
        return client.get(path, headers=headers)
    return client.post(path, data, headers=headers)


@pytest.mark.parametrize(("method", "path", "data"), ALL_URLS, ids=map(url_id, ALL_URLS))
@pytest.mark.parametrize("htmx", [False, True], ids=["page", "htmx"])
def test_other_users_conversation_is_404_and_unchanged(
    alice_client, bobs_conversation, method, path, data, htmx
):
    answer = bobs_conversation.messages.get(seq=2)
    before = snapshot(bobs_conversation)
    headers = {"HX-Request": "true"} if htmx else {}

    url = path.format(c=bobs_conversation.pk, m=answer.pk)
    response = request(alice_client, method, url, data, **headers)

    assert response.status_code == 404
    assert "Bob" not in response.content.decode()
    assert snapshot(bobs_conversation) == before


@pytest.mark.parametrize(("method", "path", "data"), MESSAGE_URLS, ids=map(url_id, MESSAGE_URLS))
def test_other_users_message_under_your_own_conversation_is_404(
    alice_client, conversation, bobs_conversation, method, path, data
):
    answer = bobs_conversation.messages.get(seq=2)
    before = snapshot(bobs_conversation)

    response = request(alice_client, method, path.format(c=conversation.pk, m=answer.pk), data)

    assert response.status_code == 404
    assert snapshot(bobs_conversation) == before
    assert not conversation.messages.exists()


def test_other_users_conversation_is_not_in_your_list(alice_client, bobs_conversation):
    response = alice_client.get("/")
    assert response.status_code == 200
    assert "Bob's secrets" not in response.content.decode()
    assert str(bobs_conversation.pk) not in response.content.decode()


@pytest.mark.parametrize(("method", "path", "data"), ALL_URLS, ids=map(url_id, ALL_URLS))
def test_anonymous_request_redirects_to_login_and_changes_nothing(
    client, alices_answer, method, path, data
):
    conversation = alices_answer.conversation
    before = snapshot(conversation)
    url = path.format(c=conversation.pk, m=alices_answer.pk)

    response = request(client, method, url, data)

    if path.endswith("/stream"):  # an EventSource: told, not redirected
        assert response.status_code == 401
    else:
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/?next=")
    assert snapshot(conversation) == before


@pytest.mark.parametrize(("method", "path", "data"), ALL_URLS, ids=map(url_id, ALL_URLS))
def test_a_signed_out_pages_htmx_request_is_told_why_not_sent_the_login_page(
    alice_client, alices_answer, method, path, data
):
    """A logout in another tab: the page's next action must not get the login page swapped
    into the chat, but a reason it can show (and a send it can keep to retry)."""
    conversation = alices_answer.conversation
    alice_client.post("/accounts/logout/")
    before = snapshot(conversation)
    url = path.format(c=conversation.pk, m=alices_answer.pk)

    response = request(alice_client, method, url, data, **{"HX-Request": "true"})

    assert response.status_code == 401
    assert response["Content-Type"].startswith("text/plain")
    assert response.content.decode() == SIGNED_OUT
    assert snapshot(conversation) == before


@pytest.mark.parametrize(("method", "path"), [("get", "/"), ("post", "/c/new")])
def test_anonymous_list_and_create_redirect_to_login(client, db, method, path):
    response = request(client, method, path, {})
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")
    assert not Conversation.objects.exists()


def test_healthz_reports_database_and_channel_layer_ok(client, db):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert json.loads(response.content) == {
        "status": "ok",
        "database": "ok",
        "channel_layer": "ok",
    }
