"""Archive (out of the list, kept) and pin (at its top), from the conversation's page."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from conversations.models import Conversation

HTMX = {"HX-Request": "true"}


def listed(client) -> list[str]:
    """The sidebar's titles, top first."""
    page = client.get("/").content.decode()
    items = page.split('id="conversation-list"', 1)[1].split("</ul>", 1)[0]
    return re.findall(r'class="conv-title"[^>]*>([^<]*)<', items)


@pytest.fixture
def three(alice):
    made = [Conversation.objects.create(owner=alice, title=t) for t in ("Old", "Middle", "New")]
    return dict(zip(("old", "middle", "new"), made, strict=True))


def test_a_pinned_conversation_heads_the_list_and_unpinning_puts_it_back(alice_client, three):
    assert listed(alice_client) == ["New", "Middle", "Old"]

    response = alice_client.post(f"/c/{three['old'].pk}/pin", {"pinned": "1"}, headers=HTMX)

    assert response.status_code == 200
    assert re.search(
        r'class="btn btn-link btn-icon pin" aria-pressed="true"', response.content.decode()
    )
    assert listed(alice_client) == ["Old", "New", "Middle"]
    assert "pinned" in alice_client.get("/").content.decode()
    alice_client.post(f"/c/{three['old'].pk}/pin", {"pinned": "0"})
    assert listed(alice_client) == ["New", "Middle", "Old"]  # pinning was not activity


def test_archiving_moves_a_conversation_to_the_archived_view_and_back(alice_client, three):
    middle = three["middle"]

    response = alice_client.post(f"/c/{middle.pk}/archive", {"archived": "1"}, headers=HTMX)

    assert response.status_code == 200
    assert "Archived</span>" in response.content.decode()  # the title bar says so
    assert listed(alice_client) == ["New", "Old"]
    archived = alice_client.get("/archived").content.decode()
    assert "Middle" in archived and "Unarchive Middle" in archived
    page = alice_client.get(f"/c/{middle.pk}/")
    assert page.status_code == 200  # still readable, and can be continued

    response = alice_client.post(
        f"/c/{middle.pk}/archive", {"archived": "0", "from": "archived"}, headers=HTMX
    )
    assert response.status_code == 200 and response.content == b""  # its row goes
    assert "Middle" in listed(alice_client)
    assert "Nothing archived" in alice_client.get("/archived").content.decode()


def test_archiving_a_pinned_conversation_unpins_it(alice_client, three):
    alice_client.post(f"/c/{three['old'].pk}/pin", {"pinned": "1"})
    alice_client.post(f"/c/{three['old'].pk}/archive", {"archived": "1"})
    alice_client.post(f"/c/{three['old'].pk}/archive", {"archived": "0"})

    three["old"].refresh_from_db()
    assert not three["old"].pinned and not three["old"].archived


def test_without_javascript_the_forms_post_and_come_back(alice_client, three):
    response = alice_client.post(f"/c/{three['new'].pk}/archive", {"archived": "1"})
    assert response.status_code == 302 and response["Location"] == f"/c/{three['new'].pk}/"
    response = alice_client.post(
        f"/c/{three['new'].pk}/archive", {"archived": "0", "from": "archived"}
    )
    assert response["Location"] == "/archived"
    response = alice_client.post(f"/c/{three['new'].pk}/pin", {"pinned": "1"})
    assert response["Location"] == f"/c/{three['new'].pk}/"


def test_someone_elses_conversation_cannot_be_archived_or_pinned(three, bob):
    client = Client()
    client.force_login(bob)

    for route, field in (("archive", "archived"), ("pin", "pinned")):
        assert client.post(f"/c/{three['old'].pk}/{route}", {field: "1"}).status_code == 404
    three["old"].refresh_from_db()
    assert not three["old"].archived and not three["old"].pinned
    assert "Old" not in client.get("/archived").content.decode()


def test_the_archived_view_lists_only_ones_own_and_never_hidden(alice, alice_client, bob):
    Conversation.objects.create(owner=alice, title="Mine", archived=True)
    Conversation.objects.create(owner=alice, title="Removed", archived=True, hidden=True)
    Conversation.objects.create(owner=bob, title="Bob's", archived=True)

    page = alice_client.get("/archived").content.decode()

    assert "Mine" in page and "Removed" not in page and "Bob's" not in page
