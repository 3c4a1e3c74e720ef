"""Signed stream URLs: the page that shows a live answer already checked who may read it.

A stream URL carries a token signed for (message, session cookie). A request that brings both
back may follow the answer's live stream without the session, user and message lookups of
the full request cycle (`conversations.live_streams`); anything else goes the full way.
A token is worthless without the session cookie it was made for, and expires.
"""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.core import signing
from django.http import HttpRequest
from django.http.cookie import parse_cookie

MAX_AGE = 3600  # seconds; later, a stream falls back to the full request cycle
SALT = "conversations.stream"


def _signer(session_key: str) -> signing.TimestampSigner:
    # The session key only ever enters as a digest: URLs end up in logs.
    session_digest = hashlib.sha256(session_key.encode()).hexdigest()
    return signing.TimestampSigner(salt=f"{SALT}:{session_digest}")


def stream_token(message_id: str, session_key: str) -> str:
    signed = _signer(session_key).sign(str(message_id))
    return signed.removeprefix(f"{message_id}{signing.Signer().sep}")


def token_for_request(request: HttpRequest | None, message_id: str) -> str:
    """The token for this request's session, or "" when it has none (then no token)."""
    session = getattr(request, "session", None)
    session_key = session.session_key if session is not None else None
    return stream_token(message_id, session_key) if session_key else ""


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
