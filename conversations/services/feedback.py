"""Thumbs up or down on an answer, with an optional comment: for the operator to read."""

from __future__ import annotations

from django.utils import timezone

from conversations.models import Message

MAX_COMMENT_CHARS = 1_000


class FeedbackRefused(Exception):
    """Only a finished answer can be rated."""


def rate_answer(*, message: Message, rating: str, comment: str = "") -> Message:
    """`rating` "up", "down", or "" to take it back (the comment goes with it). Each
    version of an answer is rated on its own: a regenerate starts unrated."""
    if message.role != Message.Role.ASSISTANT or message.is_live:
        raise FeedbackRefused("Only a finished answer can be rated.")
    message.rating = rating
    message.rating_comment = comment.strip() if rating else ""
    message.rated_at = timezone.now() if rating else None
    # Not updated_at: a rating is not an edit of the message (exports --since read it).
    Message.objects.filter(pk=message.pk).update(
        rating=message.rating, rating_comment=message.rating_comment, rated_at=message.rated_at
    )
    return message
