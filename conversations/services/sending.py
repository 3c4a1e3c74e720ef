"""Writes for a user's send: the user message and the assistant placeholder, in one transaction."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple
from uuid import UUID

from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from conversations import branches
from conversations.models import Attachment, Conversation, Message, Preset
from conversations.prepared import Prepared, PreparedUpdate, insert_rows
from conversations.providers.catalog import ModelChoice
from conversations.services import attachments as attaching
from conversations.services import model_choice, moderation, quotas, sync
from conversations.services.ratelimit import RateLimited, check_send_allowed
from conversations.streaming import control
from conversations.titles import TITLE_CHARS, plain_title

SEQ_ATTEMPTS = 5

# Starts an answer's generation (generation.start_generation). Required, so no caller makes
# an answer nobody generates by forgetting it; None only where nothing generates (tests).
Launch = Callable[[Message], None]


@dataclass
class SendResult:
    user_message: Message
    assistant_message: Message | None
    created: bool  # False when the client_id was seen before (an idempotent repeat)


@dataclass
class RetryResult:
    reply: Message
    created: bool  # False when another click (in any process) already made this answer


class RetryRefused(Exception):
    """Only the conversation's last answer, once it is finished, can be retried."""


class EditRefused(Exception):
    """Not an editable message, or an answer is still being written in the conversation."""


class AnswerInProgress(Exception):
    """A send while an answer in the conversation is still being written: one at a time, so
    a question never lands in the middle of the answer before it."""


SEND_WHILE_LIVE = "An answer is still being written: wait for it, or stop it, then send."
EDIT_WHILE_LIVE = "An answer is still being written: stop it, then edit."


def create_conversation(
    *,
    owner: User,
    title: str = "",
    model: ModelChoice | None = None,
    preset: Preset | None = None,
) -> Conversation:
    """`model` defaults to the owner's default model. A `preset` gives its system prompt
    and temperature (its model is the caller's to choose: presets.start_model)."""
    model = model or model_choice.default_for(owner)
    conversation = Conversation.objects.create(
        owner=owner,
        title=title.strip(),
        provider=model.endpoint,
        model=model.model,
        preset=preset,
        system_prompt=preset.system_prompt if preset is not None else "",
        temperature=preset.temperature if preset is not None else None,
    )
    sync.announce_conversation(conversation, change="created")
    return conversation


def start_conversation(
    *,
    owner: User,
    content: str,
    client_id: uuid.UUID | None,
    launch: Launch | None,
    model: ModelChoice | None = None,
    preset: Preset | None = None,
    attachments: list[Attachment] | None = None,
) -> SendResult:
    """A new conversation with its first message and that message's answer, in one
    transaction: nothing is stored until there is something to say, and a refusal (rate
    limit, suspended account) stores nothing.

    Idempotent on `client_id` across the owner's conversations: a repeat of a first send
    (a retry after a dropped response, a double submit) returns the conversation the first
    one made, never a second one. The owner's row is locked before the lookup, as every
    send locks it (`_lock_sender`), so two copies of one send go one after the other and
    the second finds the first's message.
    """
    client_id = client_id or uuid.uuid4()
    with transaction.atomic():
        _lock_user(owner.pk)
        existing = (
            Message.objects.select_related("conversation")
            .filter(conversation__owner=owner, client_id=client_id, role=Message.Role.USER)
            .first()
        )
        if existing is not None:
            return _existing_send(existing.conversation, client_id) or SendResult(
                existing, None, created=False
            )
        conversation = create_conversation(owner=owner, model=model, preset=preset)
        return _ask(
            conversation,
            content=content,
            client_id=client_id,
            launch=launch,
            attachments=attachments,
        )


def rename_conversation(*, conversation: Conversation, title: str) -> Conversation:
    conversation.title = title.strip()
    conversation.save(update_fields=["title", "updated_at"])
    sync.announce_conversation(conversation, change="renamed")
    return conversation


def set_system_prompt(*, conversation: Conversation, system_prompt: str) -> Conversation:
    """The instructions sent before the conversation's next answers (not the earlier ones)."""
    conversation.system_prompt = system_prompt.strip()
    conversation.save(update_fields=["system_prompt", "updated_at"])
    return conversation


def delete_conversation(*, conversation: Conversation) -> None:
    with transaction.atomic():
        live = list(
            conversation.messages.filter(status__in=Message.LIVE_STATUSES).values_list(
                "pk", flat=True
            )
        )
        # Both sent once committed: other tabs drop it, and its answers stop costing money.
        sync.announce_conversation(conversation, change="deleted")
        control.stop_after_commit([str(pk) for pk in live])
        conversation.delete()


def send_message(
    *,
    conversation: Conversation,
    content: str,
    client_id: uuid.UUID | None,
    launch: Launch | None,
    attachments: list[Attachment] | None = None,
) -> SendResult:
    """Store the user's message, following the branch the conversation shows, and an
    assistant placeholder, with the next two `seq` values; once committed, `launch` the
    answer's generation. `attachments` (checked by attachments.for_send) become the
    message's in the same transaction.

    Idempotent on `client_id`: a repeat returns the messages of the first send, even where a
    new send would be refused. The unique client_id finds repeats, so a first send (nearly
    every one) pays no lookup; a repeat counts as a hit against the rate limit.
    """
    return _ask(
        conversation,
        content=content,
        client_id=client_id,
        launch=launch,
        attachments=attachments,
    )


def edit_message(
    *,
    message: Message,
    content: str,
    client_id: uuid.UUID | None,
    launch: Launch | None,
) -> SendResult:
    """The edited text as a new version of `message` (its sibling), with an answer to it;
    the original and everything below it stay, one switch away. Idempotent on `client_id`
    like a send. Refused while an answer is being written: the edit would leave it
    streaming into a branch nobody sees."""
    if message.role != Message.Role.USER:
        raise EditRefused("Only your own messages can be edited.")
    if message.hidden:
        raise EditRefused("A moderator hid this message: it cannot be edited.")
    return _ask(
        message.conversation, content=content, client_id=client_id, launch=launch, edit_of=message
    )


def show_version(*, message: Message) -> UUID:
    """Show `message`'s branch: the conversation's path goes through it, down to the
    latest message below it. Remembered (reload and other tabs show the same branch).
    Returns the new leaf's id."""
    conversation = message.conversation
    with transaction.atomic():
        leaf_id = branches.Tree.of(conversation).latest_leaf_below(message.pk)
        Conversation.objects.filter(pk=conversation.pk).update(current_leaf_id=leaf_id)
        conversation.current_leaf_id = leaf_id
        sync.announce_messages(conversation)
    return leaf_id


def retry_reply(*, message: Message, launch: Launch | None) -> RetryResult:
    """A new version of an answer: a sibling answering the same question, with the next
    `seq`, `launch`ed once committed; the one retried stays as a version in its state.

    Only the answer the conversation ends with can be retried or regenerated, so a double
    click returns the answer the first click made instead of a second one.
    """
    if message.role != Message.Role.ASSISTANT or message.is_live:
        raise RetryRefused("Only a finished answer can be retried.")
    if message.hidden:  # the page offers no retry for it either
        raise RetryRefused("A moderator hid this answer: it cannot be retried.")
    conversation = message.conversation
    endpoint, model = model_choice.answering(conversation)
    with transaction.atomic():
        sender = _lock_sender(conversation)
        position = _position(conversation)
        seq, leaf_id = position.seq, position.leaf_id
        if leaf_id != message.pk:
            # A sibling answer at the end: the one a first click (in any tab) just made.
            siblings = conversation.messages.filter(parent_id=message.parent_id, role=message.role)
            leaf = siblings.filter(pk=leaf_id).first() if leaf_id else None
            if leaf is not None:
                return RetryResult(leaf, created=False)  # the first click's answer
            raise RetryRefused("Only the last answer can be retried.")
        moderation.ensure_can_send(conversation, owner_active=sender.active)
        check_send_allowed(user_id=conversation.owner_id, live=position.owner_live)
        if sender.has_quota:
            quotas.check_quota(user_id=conversation.owner_id)
        reply = Message.objects.create(
            conversation=conversation,
            seq=seq,
            role=Message.Role.ASSISTANT,
            status=Message.Status.STREAMING,
            reply_to_id=message.reply_to_id,
            parent_id=message.parent_id,
            provider=endpoint,
            model=model,
        )
        _touch(conversation, leaf=reply)
        _launch_and_announce(conversation, reply, launch)
    return RetryResult(reply, created=True)


def _ask(
    conversation: Conversation,
    *,
    content: str,
    client_id: uuid.UUID | None,
    launch: Launch | None,
    edit_of: Message | None = None,
    attachments: list[Attachment] | None = None,
) -> SendResult:
    """A question and its answer's placeholder: after the shown leaf, or beside `edit_of`."""
    client_id = client_id or uuid.uuid4()
    endpoint, model = model_choice.answering(conversation)
    for attempt in range(SEQ_ATTEMPTS):
        try:
            with transaction.atomic():
                sender = _lock_sender(conversation)
                moderation.ensure_can_send(conversation, owner_active=sender.active)
                position = _position(conversation)
                if attempt == 0:
                    check_send_allowed(user_id=conversation.owner_id, live=position.owner_live)
                    if sender.has_quota:  # one query more, only for those with a quota
                        quotas.check_quota(user_id=conversation.owner_id)
                if position.live_here and edit_of is not None:
                    raise EditRefused(EDIT_WHILE_LIVE)
                if position.live_here:
                    raise AnswerInProgress(SEND_WHILE_LIVE)
                seq = position.seq
                parent_id = edit_of.parent_id if edit_of is not None else position.leaf_id
                # An edit's new version keeps the question's files (no query without any).
                carried = attaching.carried_by_edit(edit_of) if edit_of is not None else []
                user_message = Message(
                    conversation=conversation,
                    seq=seq,
                    role=Message.Role.USER,
                    content=content,
                    client_id=client_id,
                    parent_id=parent_id,
                    attachment_count=len(attachments or carried),
                )
                assistant = Message(
                    conversation=conversation,
                    seq=seq + 1,
                    role=Message.Role.ASSISTANT,
                    status=Message.Status.STREAMING,
                    reply_to=user_message,
                    parent=user_message,
                    provider=endpoint,
                    model=model,
                )
                assistant.only_version = True
                insert_rows([user_message, assistant])  # one INSERT
                if attachments:
                    attaching.attach(message=user_message, attachments=attachments)
                elif carried:
                    attaching.attach_copies(message=user_message, copies=carried)
                # Files alone: the first one's name titles a new conversation.
                first_text = content or (attachments[0].name if attachments else "")
                _touch(conversation, leaf=assistant, first_text=first_text)
                _launch_and_announce(conversation, assistant, launch)
            return SendResult(user_message, assistant, created=True)
        except (
            IntegrityError,
            moderation.SendRefused,
            RateLimited,
            quotas.OverQuota,
            EditRefused,
            AnswerInProgress,
            attaching.AttachmentRefused,
        ) as refusal:
            existing = _existing_send(conversation, client_id)
            if existing is not None:
                return existing  # a repeat (or the same send racing itself: a double submit)
            if not isinstance(refusal, IntegrityError):
                raise
            # else: another send took our seq; try again with a fresh one
    raise IntegrityError(f"could not allocate a seq in conversation {conversation.pk}")


def _launch_and_announce(
    conversation: Conversation, answer: Message, launch: Launch | None
) -> None:
    """Once committed, in this order: the answer's stream opens, then other tabs hear of it.

    A tab that heard first could ask for the stream before it existed, and take the answer
    for an orphan (one process: marked interrupted) or for another process's (with Redis).
    On-commit callbacks run in the order they were registered.
    """
    if launch is not None:
        transaction.on_commit(lambda: launch(answer))
    sync.announce_messages(conversation)


class Sender(NamedTuple):
    active: bool  # the owner may send (not suspended)
    has_quota: bool  # a token quota applies to them (their own or a group's)


def _lock_sender(conversation: Conversation) -> Sender:
    """Lock the owner's row; whether the owner is active and has a quota, read with it.

    Every path that adds messages takes this lock, so a user's sends go one at a time (the
    limit on live answers holds) and so do each conversation's seq values, on PostgreSQL;
    on SQLite the IMMEDIATE transaction already does. The unique constraint is the backstop.
    """
    return _lock_user(conversation.owner_id)


_LOCK_USER = Prepared(
    lambda pk: (
        get_user_model()
        .objects.select_for_update()
        .filter(pk=pk)
        .annotate(has_quota=quotas.applies())
        .values_list("is_active", "has_quota")
    ),
    pk=get_user_model()._meta.pk,
)


def _lock_user(user_id: int) -> Sender:
    active, has_quota = _LOCK_USER.first(pk=user_id) or (False, False)
    return Sender(active=bool(active), has_quota=bool(has_quota))


def _existing_send(conversation: Conversation, client_id: uuid.UUID) -> SendResult | None:
    user_message = conversation.messages.filter(client_id=client_id).first()
    if user_message is None:
        return None
    assistant = user_message.replies.order_by("-seq").first()
    return SendResult(user_message, assistant, created=False)


class Position(NamedTuple):
    """Where a conversation's next message goes, and what is being written meanwhile."""

    seq: int  # the next seq
    leaf_id: UUID | None  # the message the conversation shows last: the next one follows it
    live_here: bool  # an answer in this conversation is still being written
    owner_live: int  # the owner's answers being written, in all their conversations


# Every send, retry and edit runs it under the sender's lock: written out, as the ORM spent
# about a millisecond of CPU compiling its subqueries each time (and a count apart). It must
# come after the lock (not inside the locking statement): a statement waiting for a lock
# reads the snapshot taken before it was granted, so two racing sends would see one seq.
_MESSAGE, _CONVERSATION = Message._meta.db_table, Conversation._meta.db_table
_POSITION_SQL = f"""
SELECT c.current_leaf_id,
    (SELECT m.id FROM {_MESSAGE} m WHERE m.conversation_id = c.id ORDER BY m.seq DESC LIMIT 1),
    (SELECT MAX(m.seq) FROM {_MESSAGE} m WHERE m.conversation_id = c.id),
    EXISTS (SELECT 1 FROM {_MESSAGE} m WHERE m.conversation_id = c.id AND m.status IN (%s, %s)),
    (SELECT COUNT(*) FROM {_MESSAGE} m JOIN {_CONVERSATION} o ON o.id = m.conversation_id
        WHERE o.owner_id = c.owner_id AND m.role = %s AND m.status IN (%s, %s))
FROM {_CONVERSATION} c WHERE c.id = %s
"""


def _position(conversation: Conversation) -> Position:
    """Read under the sender's lock. A leaf is kept on every write; a conversation without
    one (imported bare, or emptied by hand) continues after its latest message."""
    live = list(Message.LIVE_STATUSES)
    pk = Conversation._meta.pk.get_db_prep_value(conversation.pk, connection)
    with connection.cursor() as cursor:
        cursor.execute(_POSITION_SQL, [*live, Message.Role.ASSISTANT, *live, pk])
        leaf_id, latest_id, latest_seq, live_here, owner_live = cursor.fetchone()
    return Position(
        seq=(latest_seq or 0) + 1,
        leaf_id=Message._meta.pk.to_python(leaf_id or latest_id),  # SQLite's are text
        live_here=bool(live_here),
        owner_live=owner_live,
    )


# Every send, retry and edit moves its conversation's leaf: prepared (prepared.py).
_TOUCH = PreparedUpdate(lambda pk: Conversation.objects.filter(pk=pk), pk=Conversation._meta.pk)


def _touch(conversation: Conversation, *, leaf: Message, first_text: str = "") -> None:
    conversation.current_leaf_id = leaf.pk
    fields: dict[str, object] = {"updated_at": timezone.now(), "current_leaf_id": leaf.pk}
    if first_text and not conversation.title:
        conversation.title = plain_title(first_text, TITLE_CHARS)
        fields["title"] = conversation.title
    _TOUCH.update(pk=conversation.pk, values=fields)
