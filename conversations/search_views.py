"""Search's HTTP side: the sidebar's results, and opening a conversation at a result."""

from __future__ import annotations

from uuid import UUID

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from conversations import search
from conversations.branches import Tree, shown_path
from conversations.http import SignedInRequest
from conversations.models import Conversation, Message
from conversations.selectors import conversation_page
from conversations.services.sending import show_version


@login_required
@require_GET
def conversation_search(request: SignedInRequest) -> HttpResponse:
    """`?q=`: over htmx (the sidebar's box, as you type) the results region; without
    JavaScript (the box's form submitted) a page of results beside the sidebar."""
    found = search.search(request.user, request.GET.get("q", ""))
    status = 422 if found.error else 200
    context: dict[str, object] = {"search": found}
    if request.htmx:
        return render(request, "conversations/_search.html", context, status=status)
    context.update(page=conversation_page(request.user, request.GET.get("page")))
    return render(request, "conversations/search.html", context, status=status)


def open_at(conversation: Conversation, raw: str | None) -> UUID | None:
    """The message `?at=` names, if it is one of the conversation's and not hidden (else
    None: the page opens as usual). If it is on a branch the conversation does not show,
    that branch is shown, as the version arrows would (show_version): the page, a reload,
    the next send and the other tabs then agree on the branch. This GET writes only that
    pointer, and only when it changes; the link needs both unguessable ids."""
    try:
        message_id = UUID(raw) if raw else None
    except ValueError:
        return None
    if message_id is None or conversation.hidden:
        return None
    tree, path = shown_path(conversation, Tree.of(conversation))
    if message_id not in tree:
        return None
    message = Message.objects.filter(pk=message_id, hidden=False).first()
    if message is None:
        return None
    if message_id not in path:
        message.conversation = conversation
        show_version(message=message)
    return message_id
