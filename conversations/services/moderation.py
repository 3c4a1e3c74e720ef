"""Moderation writes: reports, flag/hide/unhide, hidden conversations, suspended accounts.

Every change leaves one ModerationAction per changed object (who, what, when, why); asking for
a state an object already has changes and records nothing. A suspended account is an inactive
one (`is_active=False`): Django, allauth and Channels then refuse it everywhere (login,
sessions, admin, WebSockets); the middleware in conversations/middleware.py says why.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission, User
from django.db import transaction
from django.db.models import Model, Q, QuerySet
from django.utils import timezone

from conversations.models import Attachment, Conversation, Message, ModerationAction
from conversations.services import sync
from conversations.streaming import control

Kind = ModerationAction.Kind

SUSPENDED = "Your account has been suspended by a moderator."
CONVERSATION_HIDDEN = "This conversation was hidden by a moderator: it takes no new messages."
MODERATORS_GROUP = "Moderators"
# What a moderator needs: read conversations, messages, users and the log; act on them.
MODERATOR_PERMISSIONS = (
    "conversations.view_conversation",
    "conversations.view_message",
    "conversations.view_attachment",
    "conversations.view_moderationaction",
    "conversations.moderate_conversation",
    "conversations.moderate_message",
    "conversations.export_conversation",
    "conversations.suspend_user",
    "conversations.publish_preset",
    "conversations.view_sharelink",
    "conversations.revoke_sharelink",
    "auth.view_user",
)

_MESSAGE_CHANGES = {
    Kind.FLAG: {"flagged": True},
    Kind.UNFLAG: {"flagged": False},
    Kind.HIDE: {"hidden": True},
    Kind.UNHIDE: {"hidden": False},
}


class SendRefused(Exception):
    """The user may not add messages here; `str(exc)` says why, for the user."""


def ensure_can_send(conversation: Conversation, *, owner_active: bool) -> None:
    """`owner_active` as read under the sender's row lock: a suspension cannot slip past."""
    if conversation.hidden:
        raise SendRefused(CONVERSATION_HIDDEN)
    if not owner_active:
        raise SendRefused(SUSPENDED)


def is_suspended(user_id: int | str) -> bool:
    return get_user_model().objects.filter(pk=user_id, is_active=False).exists()


def report_message(*, message: Message, reporter: User, reason: str) -> None:
    """The owner reports a message: it is flagged for moderators, the reason kept."""
    with transaction.atomic():
        Message.objects.filter(pk=message.pk).update(
            flagged=True, moderation_reason=reason, updated_at=timezone.now()
        )
        message.flagged, message.moderation_reason = True, reason
        _record(reporter, Kind.REPORT, reason, [_message_target(message)])


def moderate_messages(*, messages: QuerySet[Message], kind: Kind, actor: User, reason: str) -> int:
    """Flag, unflag, hide or unhide; returns how many messages changed."""
    changes = _MESSAGE_CHANGES[kind]
    with transaction.atomic():
        changing = list(
            _lockable(Message, messages).exclude(**changes).only("pk", "seq", "conversation_id")
        )
        Message.objects.filter(pk__in=[m.pk for m in changing]).update(
            **changes, moderation_reason=reason, updated_at=timezone.now()
        )
        _record(actor, kind, reason, [_message_target(m) for m in changing])
        if kind == Kind.HIDE:  # the selected answers, and those written to selected questions
            selected = messages.values("pk")
            _stop_live(Message.objects.filter(Q(pk__in=selected) | Q(reply_to__in=selected)))
    return len(changing)


def set_conversations_hidden(
    *, conversations: QuerySet[Conversation], hidden: bool, actor: User, reason: str
) -> int:
    kind = Kind.HIDE_CONVERSATION if hidden else Kind.UNHIDE_CONVERSATION
    with transaction.atomic():
        changing = list(
            _lockable(Conversation, conversations).exclude(hidden=hidden).only("pk", "title")
        )
        # updated_at stays: it orders the owner's list and says when they last wrote.
        Conversation.objects.filter(pk__in=[c.pk for c in changing]).update(hidden=hidden)
        targets = [
            (f"conversation {c.pk} ({c.display_title})"[:300], {"conversation": c})
            for c in changing
        ]
        _record(actor, kind, reason, targets)
        if hidden:
            _stop_live(Message.objects.filter(conversation__in=[c.pk for c in changing]))
    return len(changing)


def set_attachments_hidden(
    *, attachments: QuerySet[Attachment], hidden: bool, actor: User, reason: str
) -> int:
    """Hide (not served, not sent to the model) or unhide files; recorded like a message's."""
    kind = Kind.HIDE if hidden else Kind.UNHIDE
    with transaction.atomic():
        # Locked alone: FOR UPDATE cannot take the nullable side of a join (PostgreSQL).
        changing = list(
            _lockable(Attachment, attachments)
            .exclude(hidden=hidden)
            .only("id", "name", "message_id")
        )
        Attachment.objects.filter(pk__in=[a.pk for a in changing]).update(hidden=hidden)
        messages = Message.objects.only("id", "seq", "conversation_id").in_bulk(
            [a.message_id for a in changing if a.message_id is not None]
        )
        targets = []
        for attachment in changing:
            label = f"attachment {attachment.pk} ({attachment.name})"
            links: dict[str, object] = {}
            if (message := messages.get(attachment.message_id)) is not None:
                label += f" of message #{message.seq}"
                links = {"message": message, "conversation_id": message.conversation_id}
            targets.append((label[:300], links))
        _record(actor, kind, reason, targets)
    return len(changing)


def set_users_suspended(*, users: QuerySet, suspended: bool, actor: User, reason: str) -> int:
    """Suspend (or reactivate) accounts. Nobody suspends themselves, and only a superuser
    suspends a superuser."""
    kind = Kind.SUSPEND if suspended else Kind.REACTIVATE
    with transaction.atomic():
        users = _lockable(get_user_model(), users).filter(is_active=suspended).exclude(pk=actor.pk)
        if not getattr(actor, "is_superuser", False):
            users = users.exclude(is_superuser=True)
        changing = list(users.only("pk", "email"))
        get_user_model().objects.filter(pk__in=[u.pk for u in changing]).update(
            is_active=not suspended
        )
        _record(actor, kind, reason, [(f"user {u.pk} ({u.email})", {"user": u}) for u in changing])
        if suspended:
            for user in changing:
                sync.close_user_sockets(user.pk)
            _stop_live(Message.objects.filter(conversation__owner__in=[u.pk for u in changing]))
    return len(changing)


def record_export(*, actor: User, conversations: int, reason: str = "") -> None:
    _record(actor, Kind.EXPORT, reason, [(f"{conversations} conversation(s)", {})])


def ensure_moderators_group() -> Group:
    """The "Moderators" group with exactly MODERATOR_PERMISSIONS (give it to staff users)."""
    group, _ = Group.objects.get_or_create(name=MODERATORS_GROUP)
    wanted = [name.split(".") for name in MODERATOR_PERMISSIONS]
    permissions = [
        Permission.objects.get(content_type__app_label=app, codename=codename)
        for app, codename in wanted
    ]
    group.permissions.set(permissions)
    return group


def _stop_live(messages: QuerySet[Message]) -> None:
    """Answers still being generated stop once the change commits: their readers (who may
    follow a signed stream URL, checked only when the page was shown) get the final state,
    hidden, instead of the rest of the text, and nobody pays for tokens nobody may see."""
    live = messages.filter(status__in=Message.LIVE_STATUSES).values_list("pk", flat=True)
    control.stop_after_commit([str(pk) for pk in live])


def _lockable(model: type[Model], selection: QuerySet) -> QuerySet:
    """The selected rows, locked: by primary key, since an admin selection may carry a
    DISTINCT (search across relations) that FOR UPDATE refuses."""
    return (
        model._default_manager.filter(pk__in=selection.values("pk")).select_for_update().order_by()
    )


def _message_target(message: Message) -> tuple[str, dict[str, object]]:
    label = f"message {message.pk} (#{message.seq} in conversation {message.conversation_id})"
    return label, {"message": message, "conversation_id": message.conversation_id}


def _record(
    actor: User | None,
    kind: Kind,
    reason: str,
    targets: Iterable[tuple[str, dict[str, object]]],
) -> None:
    ModerationAction.objects.bulk_create(
        ModerationAction(
            actor=actor,
            actor_email=getattr(actor, "email", "") or "",
            kind=kind,
            reason=reason,
            target=target,
            **links,
        )
        for target, links in targets
    )
