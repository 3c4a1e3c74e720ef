"""Live sync across a user's tabs, devices and server processes: low-rate events only.

Every open page holds one WebSocket (conversations/consumers.py) in its user's group on the
Channels layer. After a write commits, these functions say what changed there; each socket
then renders what its own page lacks. Tokens never travel this way: a new answer's bubble
carries sse-connect and streams over the SSE relay in every tab.
"""

from __future__ import annotations

import logging
from typing import Literal

from asgiref.sync import async_to_sync
from django.db import transaction

from conversations.models import Conversation
from conversations.streaming.layer import group_send

log = logging.getLogger(__name__)

Change = Literal["created", "renamed", "deleted", "archived", "pinned"]


def user_group(user_id: object) -> str:
    return f"user.{user_id}"


def announce_messages(conversation: Conversation) -> None:
    """New messages exist in `conversation`: the tabs showing it fetch them."""
    _after_commit(
        conversation.owner_id,
        {"type": "sync.messages", "conversation_id": str(conversation.pk)},
    )


def announce_conversation(conversation: Conversation, *, change: Change) -> None:
    _after_commit(
        conversation.owner_id,
        {"type": "sync.conversation", "conversation_id": str(conversation.pk), "change": change},
    )


def close_sockets_on_logout(sender, request, user, **kwargs) -> None:
    """`user_logged_out` receiver (apps.py): the session's sockets close, as its requests
    are anonymous from now on. The user's other sessions (devices) stay connected."""
    session_key = getattr(getattr(request, "session", None), "session_key", None)
    if user is not None and session_key:
        _send(user.pk, {"type": "sync.logout", "session_key": session_key})


def close_user_sockets(user_id: object) -> None:
    """A suspended account: every one of its open pages stops syncing, on every device."""
    _after_commit(user_id, {"type": "sync.suspended"})


def _after_commit(user_id: object, event: dict[str, str]) -> None:
    # A rolled-back write must not reach other tabs, and a tab that fetches at once must
    # find the rows: send only once the transaction has committed.
    transaction.on_commit(lambda: _send(user_id, event))


def _send(user_id: object, event: dict[str, str]) -> None:
    try:
        async_to_sync(group_send)(user_group(user_id), event)
    except Exception:
        # The write itself succeeded; other tabs catch up when their socket reconnects.
        log.exception("sync event not sent", extra={"user_id": user_id, "event": event["type"]})
