"""Conversations shaped for tests: with branches made by the real services (nothing
generates: `launch=None`), or messages made by hand linked as one path."""

from __future__ import annotations

from conversations.branches import one_path
from conversations.models import Conversation, Message
from conversations.services.sending import edit_message, retry_reply, send_message


def finish(answer: Message | None, content: str) -> Message:
    """The answer as a finished generation leaves it."""
    assert answer is not None
    Message.objects.filter(pk=answer.pk).update(status=Message.Status.COMPLETE, content=content)
    answer.refresh_from_db()
    return answer


def add_branches(conversation: Conversation) -> dict[str, Message]:
    """Two turns, the second question edited and the answer to the edit regenerated:

    #1 q1 - #2 a1 - #3 q2 - #4 a2            (the branch before the edit)
                  \\ #5 q2 edited - #6 a2'   (the edit, answered)
                                  \\ #7 a2'' (regenerated: the page shows this branch)
    """
    first = send_message(conversation=conversation, content="q1", client_id=None, launch=None)
    a1 = finish(first.assistant_message, "a1")
    second = send_message(conversation=conversation, content="q2", client_id=None, launch=None)
    a2 = finish(second.assistant_message, "a2")
    edited = edit_message(
        message=second.user_message, content="q2 edited", client_id=None, launch=None
    )
    answer_to_edit = finish(edited.assistant_message, "a2 to the edit")
    regenerated = finish(retry_reply(message=answer_to_edit, launch=None).reply, "a2 regenerated")
    conversation.refresh_from_db()
    return {
        "q1": first.user_message,
        "a1": a1,
        "q2": second.user_message,
        "a2": a2,
        "q2_edited": edited.user_message,
        "a2_to_edit": answer_to_edit,
        "a2_regenerated": regenerated,
    }


def link_as_one_path(conversation: Conversation) -> None:
    """Link messages a test made by hand (no parents) as one path, by the rule migration
    0003 and the importer apply (`branches.one_path`), and show the latest message."""
    messages = list(conversation.messages.order_by("seq").only("id", "role", "reply_to_id"))
    parents = one_path((m.pk, m.role, m.reply_to_id) for m in messages)
    for message in messages:
        message.parent_id = parents[message.pk]
    Message.objects.bulk_update(messages, ["parent"], batch_size=500)
    conversation.current_leaf_id = messages[-1].pk if messages else None
    Conversation.objects.filter(pk=conversation.pk).update(
        current_leaf_id=conversation.current_leaf_id
    )
