"""The authentication backends: Django's and allauth's, with the read of the signed-in user
that every request makes prepared (compiled once, conversations/prepared.py)."""

from __future__ import annotations

from typing import Any

from allauth.account import auth_backends as allauth_backends
from asgiref.sync import sync_to_async
from django.contrib.auth import backends, get_user_model

from conversations.prepared import PreparedModel

_USER = PreparedModel(
    lambda pk: get_user_model()._default_manager.filter(pk=pk), pk=get_user_model()._meta.pk
)

# Sessions signed in before these backends were ours name the ones they extend: conversations/
# sessions.py renames them, so that nobody is signed out by an upgrade.
RENAMED = {
    "django.contrib.auth.backends.ModelBackend": "conversations.auth_backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend": (
        "conversations.auth_backends.AuthenticationBackend"
    ),
}


class ModelBackend(backends.ModelBackend):
    """Django's: its get_user's checks, on a prepared read."""

    def get_user(self, user_id: Any) -> Any:
        user = _USER.first(pk=user_id)
        return user if user is not None and self.user_can_authenticate(user) else None

    async def aget_user(self, user_id: Any) -> Any:
        return await sync_to_async(self.get_user)(user_id)


class AuthenticationBackend(ModelBackend, allauth_backends.AuthenticationBackend):
    """allauth's (sign-in by email), with ModelBackend's prepared get_user above."""
