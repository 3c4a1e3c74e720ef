"""Signed stream URLs: the page that shows a live answer already checked who may read it.

A stream URL carries a token signed for (message, session cookie). A request that brings both
back may follow the answer's live stream without the session, user and message lookups of
the full request cycle (`conversations.streaming.fast_path`); anything else goes the full way.
A token is worthless without the session cookie it was made for, and expires.
"""

from __future__ import annotations

import hashlib
from typing import Any

from django.conf import settings
from django.core import signing
from django.http.cookie import parse_cookie
from django.template import Context

MAX_AGE = 3600  # seconds; later, a stream falls back to the full request cycle
SALT = "conversations.stream"


def _signer(session_key: str) -> signing.TimestampSigner:
    # The session key only ever enters as a digest: URLs end up in logs.
    session_digest = hashlib.sha256(session_key.encode()).hexdigest()
    return signing.TimestampSigner(salt=f"{SALT}:{session_digest}")


def stream_token(message_id: str, session_key: str) -> str:
    signed = _signer(session_key).sign(str(message_id))
    return signed.removeprefix(f"{message_id}{signing.Signer().sep}")


def session_key_of(context: Context | dict[str, Any]) -> str:
    """The session a template is rendered for: the request's, or the live-sync socket's."""
    request = context.get("request")
    session = getattr(request, "session", None)
    key = session.session_key if session is not None else context.get("session_key")
    return key or ""


def valid(message_id: str, session_key: str, token: str) -> bool:
    if not (session_key and token):
        return False
    signed = f"{message_id}{signing.Signer().sep}{token}"
    try:
        return _signer(session_key).unsign(signed, max_age=MAX_AGE) == str(message_id)
    except signing.BadSignature:
        return False


def session_cookie(cookie_header: str) -> str:
    """The session cookie's value from a raw Cookie header ("" when absent)."""
    return parse_cookie(cookie_header).get(settings.SESSION_COOKIE_NAME, "")
