"""Read-only share links: a snapshot of the branch a conversation shows, as it was.

The snapshot is the leaf the branch ended with when shared: the path from the first
message down to it is fixed (a message's parent never changes), and what comes after it is
not shared unless shared again. The token is the only key: 32 random URL-safe characters.
Hidden messages are left out when the link is viewed, so a moderator's later hide applies.
"""

from __future__ import annotations

import re
import secrets
from uuid import UUID

from django.contrib.auth.models import User
from django.db.models import QuerySet
from django.utils import timezone

from conversations import branches
from conversations.models import Attachment, Conversation, Message, ShareLink

TOKEN_BYTES = 24  # 32 characters
# What token_urlsafe makes; anything else is not looked up (PostgreSQL refuses a NUL).
_TOKEN = re.compile(r"[A-Za-z0-9_-]{20,64}")


class ShareRefused(Exception):
    """Nothing finished to share yet, or a conversation a moderator hid."""


def share(*, conversation: Conversation) -> ShareLink:
    """A link to the shown branch up to its last finished message."""
    if conversation.hidden:
        raise ShareRefused("A moderator hid this conversation: it cannot be shared.")
    _tree, path = branches.shown_path(conversation)
    finished = set(
        conversation.messages.filter(pk__in=path)
        .exclude(status__in=Message.LIVE_STATUSES)
        .values_list("pk", flat=True)
    )
    # The answer being written is left out; the finished path above it is shared.
    leaf = next((pk for pk in reversed(path) if pk in finished), None)
    if leaf is None:
        raise ShareRefused("Nothing to share yet: send a message first.")
    return ShareLink.objects.create(
        token=secrets.token_urlsafe(TOKEN_BYTES),
        conversation=conversation,
        leaf_id=leaf,
        title=conversation.display_title,
    )


def revoke(*, link: ShareLink, by: User) -> ShareLink:
    if link.revoked_at is None:
        link.revoked_at, link.revoked_by = timezone.now(), by
        link.save(update_fields=["revoked_at", "revoked_by"])
    return link


def links_of(user: User) -> QuerySet[ShareLink]:
    return ShareLink.objects.filter(conversation__owner=user).select_related("conversation")


def active_link(token: str) -> ShareLink | None:
    """The link a token names, if it still shares something (None: unknown, revoked, or
    its conversation hidden by a moderator or its owner suspended)."""
    if not _TOKEN.fullmatch(token):
        return None
    return (
        ShareLink.objects.select_related("conversation")
        .filter(
            token=token,
            revoked_at__isnull=True,
            conversation__hidden=False,
            conversation__owner__is_active=True,
        )
        .first()
    )


def shared_messages(link: ShareLink) -> list[Message]:
    """The shared path, root first, without the messages a moderator hid."""
    conversation = link.conversation
    tree = branches.Tree.of(conversation)
    if link.leaf_id not in tree:
        return []
    path = tree.path_to(link.leaf_id)
    rows = conversation.messages.filter(hidden=False).in_bulk(path)
    messages = [rows[pk] for pk in path if pk in rows]
    for message in messages:
        message.conversation = conversation
    return messages


def shared_image(link: ShareLink, attachment_id: UUID) -> Attachment | None:
    """An image of a message on the link's shared path (not hidden, nor its message), or
    None: a document, another branch, a later message, another conversation."""
    attachment = (
        Attachment.objects.filter(
            pk=attachment_id,
            kind=Attachment.Kind.IMAGE,
            hidden=False,
            message__conversation=link.conversation,
            message__hidden=False,
        )
        .only("id", "message_id", "storage_name", "content_type", "name", "kind")
        .first()
    )
    if attachment is None:
        return None
    tree = branches.Tree.of(link.conversation)
    if link.leaf_id not in tree or attachment.message_id not in tree.path_to(link.leaf_id):
        return None
    return attachment
