from __future__ import annotations

from django.contrib.messages import get_messages
from django.http import HttpRequest

from conversations.providers import get_provider


def provider(request: HttpRequest | None) -> dict[str, object]:
    """Also called with no request, for a live-sync frame rendered off the socket."""
    current = get_provider()
    return {"provider_label": current.label, "provider_is_demo": current.name == "demo"}


def flashes(request: HttpRequest) -> dict[str, object]:
    """Django's messages ("Signed in as..."), for base.html under a name of their own: the
    chat pages' `messages` is their transcript."""
    return {"flashes": get_messages(request)}
