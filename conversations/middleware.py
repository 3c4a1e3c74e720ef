"""Requests refused before the view: signed out or suspended (told why, instead of a bare
login page), and forms whose text is not UTF-8."""

from __future__ import annotations

import time
from collections.abc import Callable
from urllib.parse import unquote_to_bytes, urlsplit

from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, resolve_url

from conversations import metrics
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
    # instead of two thread hops per sync middleware on every request (docs/performance.md).
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


UNDECODABLE = "This request holds text that is not valid UTF-8. Nothing was saved."


class RefuseUndecodableFormsMiddleware:
    """A form whose text is not UTF-8 is refused with a 422 before anything reads it.

    Django decodes form fields with errors="replace" (or in the charset the request names):
    "hi%FF" arrived as "hi\\ufffd" and was stored, and an answer started. Browsers never
    send such a body; a broken client or a probe does. Before CsrfViewMiddleware, the first
    reader of request.POST. Sync only, like SignedOutMiddleware (see there).
    """

    async_capable = False
    sync_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method == "POST" and not _form_is_utf8(request):
            return HttpResponse(UNDECODABLE, status=422, content_type="text/plain")
        return self.get_response(request)


def _form_is_utf8(request: HttpRequest) -> bool:
    charset = (request.content_params or {}).get("charset", "utf-8").lower()
    if request.content_type == "application/x-www-form-urlencoded":
        return charset in ("utf-8", "utf8") and all(
            _is_utf8(unquote_to_bytes(field.replace(b"+", b" ")))
            for field in request.body.split(b"&")
        )
    if request.content_type == "multipart/form-data":
        return charset in ("utf-8", "utf8") and _multipart_text_is_utf8(request)
    return True


def _multipart_text_is_utf8(request: HttpRequest) -> bool:
    """Every part that is not a file. A body too large to hold in memory is left to
    Django's own limits (its text fields cannot exceed DATA_UPLOAD_MAX_MEMORY_SIZE)."""
    boundary = (request.content_params or {}).get("boundary", "")
    length = int(request.META.get("CONTENT_LENGTH") or 0)
    if not boundary or length > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
        return True
    for part in request.body.split(b"--" + boundary.encode("latin-1")):
        headers, _, value = part.partition(b"\r\n\r\n")
        if b"filename=" in headers:
            continue
        if not (_is_utf8(headers) and _is_utf8(value)):
            return False
    return True


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")  # strict: also refuses encoded surrogates (%ED%A0%80)
    except UnicodeDecodeError:
        return False
    return True


class RequestMetricsMiddleware:
    """The latency of every Django request by its route (the resolved URL name), for
    /metrics. Sync only, like SignedOutMiddleware, so the stack stays in one thread."""

    async_capable = False
    sync_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        match = request.resolver_match
        route = (match.url_name or match.route) if match is not None else "unresolved"
        method = request.method if request.method in HTTP_METHODS else "other"  # bounded labels
        metrics.HTTP_LATENCY.labels(route, method, str(response.status_code)).observe(
            time.perf_counter() - started
        )
        return response


HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
