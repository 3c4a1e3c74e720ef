"""The conversation list, create, rename, delete, and paging through lists and transcripts."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from conversations.models import Conversation, Message
from tests.trees import link_as_one_path

HTMX = {"HX-Request": "true"}


def listed_ids(response) -> list[str]:
    """The conversations the sidebar lists, top to bottom."""
    return re.findall(r'id="conv-([0-9a-f-]{36})"', response.content.decode())


def shown_seqs(response) -> list[int]:
    return [int(s) for s in re.findall(r'data-seq="(\d+)"', response.content.decode())]


def conversations_aged(owner, count: int) -> list[Conversation]:
    """`count` conversations, the first one most recently active."""
    now = timezone.now()
    made = []
    for age in range(count):
        conversation = Conversation.objects.create(owner=owner, title=f"Chat {age}")
        Conversation.objects.filter(pk=conversation.pk).update(
            updated_at=now - timedelta(minutes=age)
        )
        made.append(conversation)
    return made


# ---- list -------------------------------------------------------------------------


def test_list_shows_most_recently_active_first(alice_client, alice):
    newest, middle, oldest = conversations_aged(alice, 3)

    response = alice_client.get("/")

    assert response.status_code == 200
    assert listed_ids(response) == [str(newest.pk), str(middle.pk), str(oldest.pk)]


def test_renaming_an_old_conversation_moves_it_to_the_top(alice_client, alice):
    newest, _, oldest = conversations_aged(alice, 3)

    alice_client.post(f"/c/{oldest.pk}/rename", {"title": "Revived"})

    assert listed_ids(alice_client.get("/"))[:2] == [str(oldest.pk), str(newest.pk)]


def test_list_pages_through_every_conversation_once(alice_client, alice, settings):
    settings.CHAT = {**settings.CHAT, "CONVERSATIONS_PER_PAGE": 3}
    everything = [str(c.pk) for c in conversations_aged(alice, 7)]

    first = alice_client.get("/")
    second = alice_client.get("/?page=2", headers=HTMX)
    third = alice_client.get("/?page=3", headers=HTMX)

    assert listed_ids(first) == everything[:3]
    assert 'hx-get="/?page=2"' in first.content.decode()
    assert "<html" not in second.content.decode()  # just the next items
    assert listed_ids(second) == everything[3:6]
    assert 'hx-get="/?page=3"' in second.content.decode()
    assert listed_ids(third) == everything[6:]
    assert "Older conversations" not in third.content.decode()


def test_empty_list_invites_a_first_conversation(alice_client):
    body = alice_client.get("/").content.decode()
    assert "No conversations yet." in body
    assert "+ New chat" in body


# ---- create (tests/test_new_chat.py: a new chat, its first send) ----------------------


def test_an_empty_conversation_from_before_shows_its_empty_state(alice_client, conversation):
    page = alice_client.get(f"/c/{conversation.pk}/")
    assert page.status_code == 200 and "Say hello" in page.content.decode()


# ---- rename -----------------------------------------------------------------------


def test_rename_form_comes_in_place_over_htmx_and_as_a_page_without(alice_client, conversation):
    fragment = alice_client.get(f"/c/{conversation.pk}/rename", headers=HTMX).content.decode()
    page = alice_client.get(f"/c/{conversation.pk}/rename").content.decode()

    assert fragment.lstrip().startswith("<form") and 'value="Alice&#x27;s chat"' in fragment
    assert "<html" in page and "Rename conversation" in page


def test_rename_over_htmx_returns_the_new_title_for_the_page_and_sidebar(
    alice_client, conversation
):
    response = alice_client.post(
        f"/c/{conversation.pk}/rename", {"title": "  Trip to Lisbon  "}, headers=HTMX
    )

    assert response.status_code == 200
    body = response.content.decode()
    assert "<h1>Trip to Lisbon</h1>" in body
    assert f'id="conv-title-{conversation.pk}" hx-swap-oob="true">Trip to Lisbon<' in body
    conversation.refresh_from_db()
    assert conversation.title == "Trip to Lisbon"


def test_plain_rename_redirects_to_the_conversation(alice_client, conversation):
    response = alice_client.post(f"/c/{conversation.pk}/rename", {"title": "Renamed"})

    assert response.status_code == 302
    assert response["Location"] == f"/c/{conversation.pk}/"
    assert "<h1>Renamed</h1>" in alice_client.get(response["Location"]).content.decode()


@pytest.mark.parametrize("title", ["", "   "], ids=["empty", "whitespace"])
@pytest.mark.parametrize("htmx", [True, False], ids=["htmx", "page"])
def test_empty_title_is_refused_with_an_error(alice_client, conversation, title, htmx):
    response = alice_client.post(
        f"/c/{conversation.pk}/rename", {"title": title}, headers=HTMX if htmx else {}
    )

    assert response.status_code == 422
    assert "A title cannot be empty." in response.content.decode()
    assert ("<html" in response.content.decode()) is not htmx
    conversation.refresh_from_db()
    assert conversation.title == "Alice's chat"


def test_overlong_title_is_refused(alice_client, conversation):
    response = alice_client.post(f"/c/{conversation.pk}/rename", {"title": "x" * 201})

    assert response.status_code == 422
    assert "at most 200 characters" in response.content.decode()
    conversation.refresh_from_db()
    assert conversation.title == "Alice's chat"


# ---- delete -----------------------------------------------------------------------


@pytest.fixture
def conversation_with_messages(conversation):
    question = Message.objects.create(conversation=conversation, seq=1, role="user", content="Q")
    Message.objects.create(
        conversation=conversation, seq=2, role="assistant", content="A", reply_to=question
    )
    link_as_one_path(conversation)
    return conversation


def test_delete_asks_for_confirmation_first(alice_client, conversation_with_messages):
    conversation = conversation_with_messages

    page = alice_client.get(f"/c/{conversation.pk}/delete")
    fragment = alice_client.get(f"/c/{conversation.pk}/delete", headers=HTMX)

    for response in (page, fragment):
        body = response.content.decode()
        assert response.status_code == 200
        assert "will be deleted for good" in body
        assert f'method="post" action="/c/{conversation.pk}/delete"' in body
    assert "<html" in page.content.decode() and "<html" not in fragment.content.decode()
    assert Message.objects.filter(conversation=conversation).count() == 2  # nothing deleted yet


def test_confirmed_delete_removes_the_conversation_and_its_messages(
    alice_client, conversation_with_messages
):
    conversation = conversation_with_messages

    response = alice_client.post(f"/c/{conversation.pk}/delete")

    assert response.status_code == 302 and response["Location"] == "/"
    assert not Conversation.objects.filter(pk=conversation.pk).exists()
    assert not Message.objects.exists()
    assert alice_client.get(f"/c/{conversation.pk}/").status_code == 404
    assert str(conversation.pk) not in alice_client.get("/").content.decode()


def test_confirmed_delete_over_htmx_sends_the_browser_to_the_list(
    alice_client, conversation_with_messages
):
    response = alice_client.post(f"/c/{conversation_with_messages.pk}/delete", headers=HTMX)

    assert response["HX-Redirect"] == "/"
    assert not Message.objects.exists()


# ---- the transcript, a page at a time ---------------------------------------------


@pytest.fixture
def long_conversation(conversation, settings):
    """Ten messages, four to a page."""
    settings.CHAT = {**settings.CHAT, "MESSAGES_PER_PAGE": 4}
    Message.objects.bulk_create(
        Message(
            conversation=conversation,
            seq=seq,
            role="user" if seq % 2 else "assistant",
            content=f"message number {seq}",
        )
        for seq in range(1, 11)
    )
    link_as_one_path(conversation)
    return conversation


def test_conversation_opens_on_its_latest_messages(alice_client, long_conversation):
    response = alice_client.get(f"/c/{long_conversation.pk}/")

    assert shown_seqs(response) == [7, 8, 9, 10]
    assert f'hx-get="/c/{long_conversation.pk}/?before=7"' in response.content.decode()


def test_load_earlier_returns_the_previous_page_in_seq_order(alice_client, long_conversation):
    url = f"/c/{long_conversation.pk}/"

    earlier = alice_client.get(f"{url}?before=7", headers=HTMX)
    earliest = alice_client.get(f"{url}?before=3", headers=HTMX)

    assert earlier.status_code == 200
    assert "<html" not in earlier.content.decode()
    assert shown_seqs(earlier) == [3, 4, 5, 6]
    assert f'hx-get="{url}?before=3"' in earlier.content.decode()
    assert shown_seqs(earliest) == [1, 2]
    assert "Load earlier messages" not in earliest.content.decode()


def test_load_earlier_without_javascript_shows_the_page_before(alice_client, long_conversation):
    response = alice_client.get(f"/c/{long_conversation.pk}/?before=7")

    assert "<html" in response.content.decode()
    assert shown_seqs(response) == [3, 4, 5, 6]
