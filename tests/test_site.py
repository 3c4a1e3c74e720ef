"""The site around the chat: its icon, and the messages a page shows once."""

from pathlib import Path

from django.conf import settings
from django.templatetags.static import static


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
