"""A conversation's title written by the model after its first answer (CHAT_MODEL_TITLES).

A short call of its own, made once the answer's final state is written: it never delays or
changes the answer. On any failure, or when the owner renamed the conversation meanwhile,
the plain-text title taken from the first message stays.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from contextlib import aclosing

from asgiref.sync import sync_to_async
from django.conf import settings

from conversations.models import Conversation, Message
from conversations.providers import ChatTurn, Provider, StreamResult, catalog, get_provider
from conversations.services import sync
from conversations.streaming.hub import LiveStream
from conversations.titles import TITLE_CHARS, plain_title

log = logging.getLogger(__name__)

PROMPT = (
    "Write a title of at most six words for the conversation below, in its language. "
    "Reply with the title alone: plain text, no quotes, no full stop."
)
TIMEOUT_SECONDS = 15.0
EXCERPT_CHARS = 2000  # of the question and of the answer: a title needs no more
REPLY_CHARS = 200  # a model that rambles is cut off here
QUOTES = "\"'*\u201c\u201d\u2018\u2019"  # around a title the model was told not to quote
_pending: set[asyncio.Task] = set()  # referenced until done (the loop holds tasks weakly)


def title_after_answer(answer: Message, stream: LiveStream) -> None:
    """After a complete answer to a conversation's first question: ask for a title."""
    if not settings.CHAT["MODEL_TITLES"] or answer.parent_id is None:
        return
    # Asked of the model that wrote the answer.
    provider = catalog.provider_for(answer.provider, answer.model)
    task = asyncio.get_running_loop().create_task(
        write_title(answer.parent_id, stream.text, provider=provider)
    )
    _pending.add(task)
    task.add_done_callback(_pending.discard)


async def write_title(
    question_id: uuid.UUID, answer: str, *, provider: Provider | None = None
) -> str | None:
    """The title written, or None (not the first question, renamed, or the model failed)."""
    try:
        question = await Message.objects.select_related("conversation").aget(pk=question_id)
        if question.parent_id is not None:  # not the conversation's first question
            return None
        conversation = question.conversation
        first = plain_title(question.content, TITLE_CHARS)
        if conversation.title != first:  # renamed, or titled already
            return None
        async with asyncio.timeout(TIMEOUT_SECONDS):
            title = await _ask(provider or get_provider(), question.content, answer)
        if not title or title == first:
            return None
        # Only over the title from the first message: a rename meanwhile wins.
        if not await Conversation.objects.filter(pk=conversation.pk, title=first).aupdate(
            title=title
        ):
            return None
        conversation.title = title
        await sync_to_async(sync.announce_conversation)(conversation, change="renamed")
        return title
    except Exception:
        log.warning("the model could not title the conversation", exc_info=True)
        return None


async def _ask(provider: Provider, question: str, answer: str) -> str:
    turns = [
        ChatTurn("system", PROMPT),
        ChatTurn(
            "user",
            f"Question:\n{question[:EXCERPT_CHARS]}\n\nAnswer:\n{answer[:EXCERPT_CHARS]}",
        ),
    ]
    reply = ""
    async with aclosing(provider.stream(turns, StreamResult())) as deltas:
        async for delta in deltas:
            reply += delta
            if len(reply) >= REPLY_CHARS:
                break
    line = next((line for line in reply.splitlines() if line.strip()), "")
    return plain_title(line.strip().strip(QUOTES).rstrip("."), TITLE_CHARS)
