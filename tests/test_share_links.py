"""Read-only share links: a snapshot of the shown branch, for anyone with the link."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from conversations.models import Message, ShareLink
from conversations.services.sending import send_message
from tests.test_sanitization import PAYLOADS, assert_inert
from tests.trees import add_branches, finish

HTMX = {"HX-Request": "true"}


@pytest.fixture
def tree(conversation):
    return add_branches(conversation)


def share(client, conversation) -> str:
    response = client.post(f"/c/{conversation.pk}/share", headers=HTMX)
    assert response.status_code == 200
    return re.search(r'value="(http://testserver/s/[^"]+)"', response.content.decode()).group(1)


def bodies(html: str) -> list[str]:
    return [
        re.sub(r"<[^>]+>", "", b).strip()
        for b in re.findall(r'class="msg-body[^"]*">(.*?)</div>', html, re.S)
    ]


def test_a_link_shows_the_branch_as_it_was_to_anyone_signed_out(alice_client, conversation, tree):
    url = share(alice_client, conversation)
    later = send_message(conversation=conversation, content="q3", client_id=None, launch=None)
    finish(later.assistant_message, "a3")

    response = Client().get(url)  # signed out

    assert response.status_code == 200
    html = response.content.decode()
    # The shown branch when shared (the edit, then the regenerated answer), not the later turn.
    assert bodies(html) == ["q1", "a1", "q2 edited", "a2 regenerated"]
    assert '<meta name="robots" content="noindex, nofollow">' in html
    assert response["X-Robots-Tag"] == "noindex, nofollow"
    assert response["Referrer-Policy"] == "no-referrer"
    assert "no-store" in response["Cache-Control"]
    assert "Content-Security-Policy" in response
    # Read-only: no composer, no actions, no versions to switch.
    for absent in (
        'id="composer"',
        "Regenerate",
        ">Edit<",
        "Report",
        "feedback",
        'class="versions"',
    ):
        assert absent not in html
    assert share(alice_client, conversation) != url  # sharing again: a new link with q3
    assert bodies(Client().get(share(alice_client, conversation)).content.decode())[-2:] == [
        "q3",
        "a3",
    ]


def test_the_token_is_long_and_random(alice_client, conversation, tree):
    tokens = {share(alice_client, conversation).rsplit("/", 1)[1] for _ in range(5)}

    assert len(tokens) == 5 and all(len(t) >= 32 for t in tokens)
    assert all(re.fullmatch(r"[A-Za-z0-9_-]+", t) for t in tokens)


def test_an_answer_still_being_written_is_left_out(alice_client, conversation, tree):
    live = send_message(conversation=conversation, content="q3", client_id=None, launch=None)
    assert live.assistant_message.is_live

    html = Client().get(share(alice_client, conversation)).content.decode()

    assert bodies(html)[-1] == "q3"


def test_hidden_messages_never_appear_and_a_hidden_conversation_is_gone(
    alice_client, conversation, tree
):
    url = share(alice_client, conversation)
    Message.objects.filter(pk=tree["a1"].pk).update(hidden=True)
    assert "a1" not in bodies(Client().get(url).content.decode())

    conversation.hidden = True
    conversation.save()
    assert Client().get(url).status_code == 404


def test_hostile_text_is_inert_on_a_shared_page(alice_client, conversation):
    sent = send_message(
        conversation=conversation, content="\n".join(PAYLOADS.values()), client_id=None, launch=None
    )
    finish(sent.assistant_message, "\n\n".join(PAYLOADS.values()))

    html = Client().get(share(alice_client, conversation)).content.decode()

    parsed = assert_inert(html)
    assert PAYLOADS["script"] in "".join(parsed.text)


def test_the_owner_lists_and_revokes_links_and_a_revoked_one_is_a_404(
    alice_client, conversation, tree
):
    url = share(alice_client, conversation)
    link = ShareLink.objects.get()
    listing = alice_client.get("/me/shares").content.decode()
    assert url in listing and "Revoke the link to Alice" in listing

    response = alice_client.post(f"/me/shares/{link.pk}/revoke", headers=HTMX)

    assert response.status_code == 200 and "Revoked" in response.content.decode()
    assert Client().get(url).status_code == 404
    assert url not in alice_client.get("/me/shares").content.decode()


@pytest.mark.parametrize(
    "token",
    ["", "x", "A" * 32, "A" * 65, "../../etc/passwd", "%00", "' OR 1=1 --", "token?x=1"],
)
def test_unknown_tokens_are_a_404(alice_client, conversation, tree, token):
    share(alice_client, conversation)

    assert Client().get(f"/s/{token}").status_code == 404


def test_someone_elses_conversation_and_links_are_a_404(alice_client, conversation, tree, bob):
    share(alice_client, conversation)
    link = ShareLink.objects.get()
    client = Client()
    client.force_login(bob)

    assert client.post(f"/c/{conversation.pk}/share").status_code == 404
    assert client.post(f"/me/shares/{link.pk}/revoke").status_code == 404
    assert link.token not in client.get("/me/shares").content.decode()
    link.refresh_from_db()
    assert link.is_active and ShareLink.objects.count() == 1


def test_nothing_to_share_yet_is_refused(alice_client, conversation):
    response = alice_client.post(f"/c/{conversation.pk}/share", headers=HTMX)

    assert response.status_code == 409
    assert response.content.decode() == "Nothing to share yet: send a message first."
    assert not ShareLink.objects.exists()


def test_a_suspended_owners_links_stop_working(alice, alice_client, conversation, tree):
    url = share(alice_client, conversation)
    alice.is_active = False
    alice.save()

    assert Client().get(url).status_code == 404


def test_moderators_revoke_anyones_link_in_the_admin(
    alice_client, conversation, tree, mod_client, moderator
):
    url = share(alice_client, conversation)
    link = ShareLink.objects.get()
    client = mod_client
    assert "Alice" in client.get("/admin/conversations/sharelink/").content.decode()

    client.post(
        "/admin/conversations/sharelink/",
        {"action": "revoke_links", "_selected_action": [link.pk]},
    )

    link.refresh_from_db()
    assert link.revoked_by == moderator
    assert Client().get(url).status_code == 404
