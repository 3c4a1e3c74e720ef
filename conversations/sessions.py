"""The session engine: Django's database sessions, with the read every request makes
prepared (compiled once) instead of compiled again each time."""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.contrib.sessions.backends import db
from django.contrib.sessions.models import Session
from django.utils import timezone

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
