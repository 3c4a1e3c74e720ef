"""The request types views see: what django-htmx adds, and a signed-in user."""

from django.contrib.auth.models import User
from django.http import HttpRequest
from django_htmx.middleware import HtmxDetails


class HtmxHttpRequest(HttpRequest):
    """What django-htmx's middleware adds: `request.htmx`, typed."""

    htmx: HtmxDetails


class SignedInRequest(HtmxHttpRequest):
    """A request that `login_required` (or the admin's staff check) let through:
    `request.user` is a real user."""

    user: User
