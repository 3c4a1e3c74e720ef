"""Reads that enforce ownership: anything not yours is a 404, never a 403."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from uuid import UUID

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.models import User
from django.core.paginator import Page, Paginator
from django.db.models import Q, QuerySet
from django.http import Http404
from django.shortcuts import get_object_or_404

from conversations.branches import Tree, shown_path
from conversations.models import Attachment, Conversation, Message, Preset
from conversations.prepared import PreparedModel


def conversations_of(user: User) -> QuerySet[Conversation]:
    # A conversation a moderator hid leaves the list; opened by its address it shows as hidden.
    return Conversation.objects.filter(owner=user, archived=False, hidden=False)


# Every page and send of a conversation reads it: prepared, as compiling it cost more CPU
# than running it.
_CONVERSATION = PreparedModel(
    lambda pk, owner: Conversation.objects.filter(id=pk, owner_id=owner),
    pk=Conversation._meta.pk,
    owner=Conversation._meta.get_field("owner"),
)


def conversation_for(user: User, conversation_id: UUID) -> Conversation:
    conversation = _CONVERSATION.first(pk=conversation_id, owner=user.pk)
    if conversation is None:
        raise Http404("No conversation matches the given query.")
    return conversation


# A message's every action and stream opening reads it with its conversation.
_MESSAGE = PreparedModel(
    lambda pk, conversation, owner: Message.objects.select_related("conversation").filter(
        id=pk, conversation_id=conversation, conversation__owner_id=owner
    ),
    pk=Message._meta.pk,
    conversation=Message._meta.get_field("conversation"),
    owner=Conversation._meta.get_field("owner"),
)


def message_for(user: User, conversation_id: UUID, message_id: UUID) -> Message:
    message = _MESSAGE.first(pk=message_id, conversation=conversation_id, owner=user.pk)
    if message is None:
        raise Http404("No message matches the given query.")
    return message


async def amessage_for(user: User, conversation_id: UUID, message_id: UUID) -> Message:
    return await sync_to_async(message_for)(user, conversation_id, message_id)


def attachment_for(user: User, attachment_id: UUID) -> Attachment:
    """A file its owner may open: theirs, and neither it, its message nor its conversation
    hidden by a moderator (404 otherwise)."""
    visible = (
        Attachment.objects.filter(owner=user, hidden=False)
        .exclude(message__hidden=True)
        .exclude(message__conversation__hidden=True)
    )
    return get_object_or_404(visible, id=attachment_id)


def with_attachments(messages: list[Message]) -> list[Message]:
    """Sets each message's `shown_attachments`: one query for those that have some
    (`attachment_count`), none when no message has any."""
    having = [m.pk for m in messages if m.attachment_count]
    found: dict[UUID, list[Attachment]] = {}
    if having:
        for attachment in Attachment.objects.filter(message_id__in=having):
            found.setdefault(attachment.message_id, []).append(attachment)  # type: ignore[arg-type]
    for message in messages:
        message.shown_attachments = found.get(message.pk, [])
    return messages


def presets_of(user: User) -> tuple[list[Preset], list[Preset]]:
    """The user's own presets and the published ones (no owner), in one query."""
    rows = list(Preset.objects.filter(Q(owner=user) | Q(owner__isnull=True)))
    return [p for p in rows if p.owner_id == user.pk], [p for p in rows if p.published]


def own_preset_for(user: User, preset_id: UUID) -> Preset:
    """A preset the user may change: their own (a published one is changed in the admin)."""
    return get_object_or_404(Preset, id=preset_id, owner=user)


def preset_for(user: User, preset_id: UUID) -> Preset:
    """A preset the user may see and start from: their own or a published one."""
    return get_object_or_404(
        Preset.objects.filter(Q(owner=user) | Q(owner__isnull=True)), id=preset_id
    )


def _sidebar_rows(user: User) -> QuerySet[Conversation]:
    rows = conversations_of(user).only("id", "title", "updated_at", "pinned")
    return rows.order_by("-pinned", "-updated_at")  # conv_owner_pinned


def archived_conversations(user: User, number: int | str | None = None) -> Page:
    rows = Conversation.objects.filter(owner=user, archived=True, hidden=False)
    paginator = Paginator(
        rows.only("id", "title", "updated_at"), settings.CHAT["CONVERSATIONS_PER_PAGE"]
    )
    return paginator.get_page(number)


def conversation_page(user: User, number: int | str | None = None) -> Page:
    """One page of the sidebar's conversation list, most recently active first."""
    paginator = Paginator(
        _sidebar_rows(user),
        settings.CHAT["CONVERSATIONS_PER_PAGE"],
    )
    return paginator.get_page(number)


# A live-sync frame renders the sidebar's list as far as the page has it open ("Older
# conversations"), up to this many pages.
MAX_SYNCED_PAGES = 20


@dataclass
class ListPages:
    """Pages 1 to `last` of the sidebar's list at once, for the page's partial: iterating,
    `has_next` and `next_page_number` as on a Paginator page."""

    object_list: list[Conversation]
    has_next: bool
    last: int

    def __iter__(self) -> Iterator[Conversation]:
        return iter(self.object_list)

    def next_page_number(self) -> int:
        return self.last + 1


def conversation_pages(user: User, *, shown: int) -> ListPages:
    """The whole pages that hold the first `shown` conversations (at least one page)."""
    per_page = settings.CHAT["CONVERSATIONS_PER_PAGE"]
    last = min(max(1, -(-shown // per_page)), MAX_SYNCED_PAGES)
    rows = list(_sidebar_rows(user)[: last * per_page + 1])
    return ListPages(rows[: last * per_page], has_next=len(rows) > last * per_page, last=last)


def transcript(
    conversation: Conversation,
    *,
    before_seq: int | None = None,
    after_seq: int | None = None,
    limit: int = 50,
    tree: Tree | None = None,
    including: UUID | None = None,
) -> tuple[list[Message], bool]:
    """The last `limit` messages of the path the conversation shows (between the seqs
    given), root first, each with its `versions`; and whether more exist. With `including`
    (a message on that path: a search result opened), from that message on if it is older."""
    tree, path = shown_path(conversation, tree)
    steps = [
        pk
        for pk in path
        if (before_seq is None or tree.seq[pk] < before_seq)
        and (after_seq is None or tree.seq[pk] > after_seq)
    ]
    first = len(steps) - limit
    if including in steps:
        first = min(first, steps.index(including))
    has_earlier = first > 0
    steps = steps[first:] if has_earlier else steps
    rows = conversation.messages.in_bulk(steps)
    messages = [rows[pk] for pk in steps if pk in rows]
    for message in messages:
        message.conversation = conversation  # the partial reads it: no query per message
        message.versions = tree.versions(message.pk)
    return with_attachments(messages), has_earlier
