"""The site around the chat: its icon, and the messages a page shows once."""

from pathlib import Path

from django.conf import settings
from django.templatetags.static import static

from conversations.models import Message


def test_favicon_ico_leads_to_the_svg_icon_for_anyone(client, db):
    response = client.get("/favicon.ico")
    assert response.status_code == 302
    assert response["Location"] == static("img/favicon.svg")
    assert "max-age=86400" in response["Cache-Control"]
    icon = Path(settings.BASE_DIR, "static", "img", "favicon.svg").read_text()
    assert icon.startswith("<svg")


def test_pages_link_the_icon(client, db):
    page = client.get("/accounts/login/").content.decode()
    assert f'<link rel="icon" href="{static("img/favicon.svg")}" type="image/svg+xml">' in page


def test_a_conversations_messages_are_not_shown_as_flashes(alice_client, conversation):
    """base.html's flashes are Django's messages, not the transcript the page calls
    `messages` (each message showed as a flash, "user #1")."""
    Message.objects.create(conversation=conversation, seq=1, role="user", content="hi")
    body = alice_client.get(f"/c/{conversation.pk}/").content.decode()
    assert 'class="flash' not in body
