"""The session engine: Django's database sessions, with the read every request makes
prepared (compiled once) instead of compiled again each time, and sessions signed in before
the app had backends of its own (conversations/auth_backends.py) moved to them."""

from __future__ import annotations

from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY
from django.contrib.sessions.backends import db
from django.contrib.sessions.models import Session
from django.utils import timezone

from conversations.auth_backends import RENAMED
from conversations.prepared import PreparedModel

_LIVE_SESSION = PreparedModel(
    lambda key, now: Session.objects.filter(session_key=key, expire_date__gt=now),
    key=Session._meta.get_field("session_key"),
    now=Session._meta.get_field("expire_date"),
)


class SessionStore(db.SessionStore):
    def _get_session_from_db(self) -> Session | None:
        key = self.session_key
        found = None if key is None else _LIVE_SESSION.first(key=key, now=timezone.now())
        if found is None:
            self._session_key = None  # as Django's: an unknown or expired key gets a new one
        return found

    async def _aget_session_from_db(self) -> Session | None:
        return await sync_to_async(self._get_session_from_db)()

    def load(self) -> dict[str, Any]:
        return self._renamed(super().load())

    async def aload(self) -> dict[str, Any]:
        return self._renamed(await super().aload())

    def _renamed(self, session: dict[str, Any]) -> dict[str, Any]:
        old = session.get(BACKEND_SESSION_KEY)
        new = RENAMED.get(old or "")
        backends = settings.AUTHENTICATION_BACKENDS
        if new is not None and old not in backends and new in backends:
            session[BACKEND_SESSION_KEY] = new
            self.modified = True  # saved with the response: renamed once
        return session
