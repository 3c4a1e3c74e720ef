"""Share links: made and revoked by the conversation's owner, viewed by anyone with one."""

from __future__ import annotations

from uuid import UUID

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.cache import patch_cache_control
from django.views.decorators.http import require_GET, require_POST

from conversations.http import SignedInRequest
from conversations.models import ShareLink
from conversations.selectors import conversation_for, with_attachments
from conversations.services import sharing

SHARES = "conversations/shares.html"


@login_required
@require_POST
def share_create(request: SignedInRequest, conversation_id: UUID) -> HttpResponse:
    """A new link to the branch the conversation shows, as it is now."""
    conversation = conversation_for(request.user, conversation_id)
    try:
        link = sharing.share(conversation=conversation)
    except sharing.ShareRefused as exc:
        return HttpResponse(str(exc), status=409, content_type="text/plain")
    if not request.htmx:
        return redirect("share_list")
    url = _address(request, link)
    return render(request, f"{SHARES}#made", {"link": link, "url": url})


@login_required
@require_GET
def share_list(request: SignedInRequest) -> HttpResponse:
    links = [(link, _address(request, link)) for link in sharing.links_of(request.user)[:200]]
    return render(request, SHARES, {"links": links})


@login_required
@require_POST
def share_revoke(request: SignedInRequest, link_id: int) -> HttpResponse:
    link = get_object_or_404(ShareLink, pk=link_id, conversation__owner=request.user)
    sharing.revoke(link=link, by=request.user)
    if request.htmx:
        return render(request, f"{SHARES}#link", {"link": link})
    return redirect("share_list")


@require_GET
def share_view(request: HttpRequest, token: str) -> HttpResponse:
    """The shared branch, read-only, for anyone with the link; a revoked or unknown one
    (or one whose conversation a moderator hid) is a 404 like any page that is not there."""
    link = sharing.active_link(token)
    if link is None:
        raise Http404("No such share link.")
    messages = with_attachments(sharing.shared_messages(link))
    context = {"link": link, "messages": messages, "read_only": True, "shared_token": link.token}
    response = render(request, "conversations/shared.html", context)
    # Not for search engines, not for shared caches; and links in an answer must not tell
    # the site they lead to what the page's secret address was.
    response["X-Robots-Tag"] = "noindex, nofollow"
    response["Referrer-Policy"] = "no-referrer"
    patch_cache_control(response, private=True, no_store=True)
    return response


def _address(request: HttpRequest, link: ShareLink) -> str:
    """The link's full address, as its owner copies it."""
    return request.build_absolute_uri(reverse("share_view", args=[link.token]))
