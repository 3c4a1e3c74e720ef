"""Tell a suspended user why they are out, instead of a bare login page."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect

from conversations.services import moderation


class SuspendedAccountMiddleware:
    """A suspended account is inactive, so Django already treats its sessions as anonymous.
    A request that still carries such a session ends it and is told why: htmx requests get
    the reason as a 403 (the composer shows it), pages go to the "account suspended" page."""

    # Sync only, and last in MIDDLEWARE: Django then runs the whole stack in one thread,
    # instead of two thread hops per sync middleware on every request (measured in bench/).
    async_capable = False
    sync_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.user.is_authenticated and self._suspended(request):
            request.session.flush()
            return _suspended_response(request)
        return self.get_response(request)

    @staticmethod
    def _suspended(request: HttpRequest) -> bool:
        if settings.SESSION_COOKIE_NAME not in request.COOKIES:
            return False  # no session at all: nothing to look up
        user_id = request.session.get(SESSION_KEY)
        return user_id is not None and moderation.is_suspended(user_id)


def _suspended_response(request: HttpRequest) -> HttpResponse:
    if getattr(request, "htmx", False):
        return HttpResponse(moderation.SUSPENDED, status=403, content_type="text/plain")
    return redirect("account_inactive")
