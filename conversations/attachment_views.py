"""Attachments over HTTP: the upload (before the send), a file for its owner, and a shared
link's images. Anything not yours (or not on the shared path) is a 404."""

from __future__ import annotations

from uuid import UUID

from django.contrib.auth.decorators import login_required
from django.core.files.storage import default_storage
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.urls import reverse
from django.utils.cache import patch_cache_control
from django.utils.http import content_disposition_header
from django.views.decorators.http import require_GET, require_POST

from conversations.http import SignedInRequest
from conversations.models import Attachment
from conversations.selectors import attachment_for
from conversations.services import attachments, sharing
from conversations.services.ratelimit import RateLimited, check_upload_allowed


@login_required
@require_POST
def attachment_upload(request: SignedInRequest) -> JsonResponse:
    """One file, checked and stored unattached: its id goes with the send. A refusal is a
    400 whose `error` says why; nothing is stored then."""
    try:  # before the body is read: a refused upload costs no parsing
        check_upload_allowed(user_id=request.user.pk)
    except RateLimited as exc:
        response = JsonResponse({"error": exc.message}, status=429)
        response["Retry-After"] = str(exc.retry_after)
        return response
    upload = request.FILES.get("file")
    if upload is None:
        return JsonResponse({"error": "Choose a file to attach."}, status=400)
    try:
        attachment = attachments.store_upload(owner=request.user, upload=upload)
    except attachments.AttachmentRefused as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    return JsonResponse(
        {
            "id": str(attachment.pk),
            "name": attachment.name,
            "kind": attachment.kind,
            "content_type": attachment.content_type,
            "size": attachment.size,
            "size_label": attachments.human_size(attachment.size),
            "url": reverse("attachment_file", args=[attachment.pk]),
        },
        status=201,
    )


@login_required
@require_GET
def attachment_file(request: SignedInRequest, attachment_id: UUID) -> FileResponse:
    return file_response(attachment_for(request.user, attachment_id))


@require_GET
def shared_attachment(request: HttpRequest, token: str, attachment_id: UUID) -> FileResponse:
    """An image of a shared message, for anyone with the link; a 404 for a revoked link, a
    document, or an attachment off the shared path."""
    link = sharing.active_link(token)
    if link is None:
        raise Http404("No such share link.")
    attachment = sharing.shared_image(link, attachment_id)
    if attachment is None:
        raise Http404("No such file.")
    response = file_response(attachment)
    response["X-Robots-Tag"] = "noindex, nofollow"
    return response


def file_response(attachment: Attachment) -> FileResponse:
    """The stored bytes under the type they were sniffed to be: images inline, anything
    else as a download; never sniffed again by the browser, never run as a page."""
    try:
        handle = default_storage.open(attachment.storage_name, "rb")
    except FileNotFoundError:
        raise Http404("No such file.") from None
    content_type = attachment.content_type
    if content_type.startswith("text/") or content_type == "application/json":
        content_type = "text/plain; charset=utf-8"
    response = FileResponse(handle, content_type=content_type)
    response["Content-Disposition"] = (
        content_disposition_header(as_attachment=not attachment.is_image, filename=attachment.name)
        or "attachment"
    )
    response["X-Content-Type-Options"] = "nosniff"
    # A file opened on its own is no page: no scripts, no plugins, nothing loaded.
    response["Content-Security-Policy"] = "default-src 'none'; img-src 'self'; sandbox"
    patch_cache_control(response, private=True, max_age=3600)
    return response


def refused(exc: attachments.AttachmentRefused) -> HttpResponse:
    """A send whose files are refused: 400 with the reason, nothing stored."""
    return HttpResponse(str(exc), status=400, content_type="text/plain")
