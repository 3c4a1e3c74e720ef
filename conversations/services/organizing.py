"""Keeping a user's list in order: archive (out of the list, kept) and pin (at its top)."""

from __future__ import annotations

from conversations.models import Conversation
from conversations.services import sync


def set_archived(*, conversation: Conversation, archived: bool) -> Conversation:
    """An archived conversation leaves the sidebar for the Archived view; its page, links
    and messages stay. Archiving unpins it: a pin would hold a place in a list it left."""
    conversation.archived = archived
    fields = ["archived", "updated_at"]
    if archived and conversation.pinned:
        conversation.pinned = False
        fields.append("pinned")
    # Not touching updated_at would keep it in place, but "recently active" should mean
    # the user did something to it; the Archived view sorts by it too.
    conversation.save(update_fields=fields)
    sync.announce_conversation(conversation, change="archived")
    return conversation


def set_pinned(*, conversation: Conversation, pinned: bool) -> Conversation:
    conversation.pinned = pinned
    # Not updated_at: pinning is not activity, and unpinning puts it back where it was.
    Conversation.objects.filter(pk=conversation.pk).update(pinned=pinned)
    sync.announce_conversation(conversation, change="pinned")
    return conversation
