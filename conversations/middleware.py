"""Tell a user who is out why, instead of a bare login page."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, resolve_url

from conversations.services import moderation

SIGNED_OUT = "You are signed out. Sign in again, then retry."


class SignedOutMiddleware:
    """Requests that come without a signed-in user.

    - A suspended account is inactive, so Django already treats its sessions as anonymous.
      A request that still carries such a session ends it and is told why: htmx requests
      get the reason as a 403 (the composer shows it), pages go to the "account suspended"
      page.
    - An htmx request of a signed-out page (a logout in another tab, an expired session)
      gets a 401 with the reason, instead of the login page swapped into the chat: the
      page keeps what the user typed and offers to retry.
    """

    # Sync only, and last in MIDDLEWARE: Django then runs the whole stack in one thread,
    # instead of two thread hops per sync middleware on every request (measured in bench/).
    async_capable = False
    sync_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.user.is_authenticated:
            return self.get_response(request)
        if self._suspended(request):
            request.session.flush()
            return _suspended_response(request)
        response = self.get_response(request)
        if getattr(request, "htmx", False) and _is_login_redirect(response):
            return HttpResponse(SIGNED_OUT, status=401, content_type="text/plain")
        return response

    @staticmethod
    def _suspended(request: HttpRequest) -> bool:
        if settings.SESSION_COOKIE_NAME not in request.COOKIES:
            return False  # no session at all: nothing to look up
        user_id = request.session.get(SESSION_KEY)
        return user_id is not None and moderation.is_suspended(user_id)


def _is_login_redirect(response: HttpResponse) -> bool:
    """`login_required`'s answer: a redirect to the login page."""
    if response.status_code != 302:
        return False
    return urlsplit(response["Location"]).path == resolve_url(settings.LOGIN_URL)


def _suspended_response(request: HttpRequest) -> HttpResponse:
    if getattr(request, "htmx", False):
        return HttpResponse(moderation.SUSPENDED, status=403, content_type="text/plain")
    return redirect("account_inactive")
