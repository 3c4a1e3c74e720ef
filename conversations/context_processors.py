from __future__ import annotations

from django.contrib.messages import get_messages
from django.http import HttpRequest


def flashes(request: HttpRequest) -> dict[str, object]:
    """Django's messages ("Signed in as..."), for base.html under a name of their own: the
    chat pages' `messages` is their transcript."""
    return {"flashes": get_messages(request)}
