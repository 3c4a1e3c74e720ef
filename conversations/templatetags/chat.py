from __future__ import annotations

from urllib.parse import urlencode

from django import template
from django.urls import reverse
from django.utils.safestring import SafeString, mark_safe

from conversations.live_markdown import LiveMarkdown
from conversations.models import Conversation, Message
from conversations.rendering import render_markdown
from conversations.streaming import access

register = template.Library()


@register.filter
def markdown(text: str) -> SafeString:
    """Model output through the one sanitizing renderer."""
    return render_markdown(text or "")


@register.filter
def seconds(milliseconds: int) -> str:
    """1234 -> "1.2 s": timings under an answer, to a tenth of a second."""
    return f"{milliseconds / 1000:.1f} s"


@register.simple_tag
def live_markdown(message: Message) -> SafeString:
    """A live answer's saved text as its stream shows it: finished blocks, then the tail."""
    view = LiveMarkdown()
    view.feed(message.content or "")
    return mark_safe(view.html(str(message.id)))  # blocks from render_markdown, tail escaped


@register.simple_tag(takes_context=True)
def stream_url(context: template.Context, message: Message) -> str:
    """The live answer's SSE URL, signed for this request's session when it has one.

    A hidden answer gets no token: only the full path, which streams it no text.
    """
    url = reverse("message_stream", args=[message.conversation_id, message.id])
    if message.hidden or message.conversation.hidden:
        return url
    session_key = access.session_key_of(context)
    if not session_key:
        return url
    return f"{url}?{urlencode({'t': access.stream_token(str(message.id), session_key)})}"


@register.simple_tag
def send_url(conversation: Conversation | None) -> str:
    """Where the composer sends: the conversation's messages, or, on a new chat (no
    conversation yet), the first send that creates one."""
    if conversation is None:
        return reverse("conversation_start")
    return reverse("message_send", args=[conversation.pk])
