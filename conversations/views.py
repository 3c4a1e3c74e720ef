"""HTTP only: parse, authorize, call a service, render. Anything not yours is a 404."""

from __future__ import annotations

import asyncio
import datetime
from uuid import UUID

from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.contrib import messages as flashes
from django.contrib.auth.decorators import login_required
from django.core.paginator import Page
from django.db import connection
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.templatetags.static import static
from django.urls import reverse
from django.utils.cache import patch_cache_control
from django.utils.http import content_disposition_header
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect, push_url, reswap, retarget

from conversations import attachment_views, search_views
from conversations.branches import with_versions
from conversations.forms import (
    FeedbackForm,
    MessageForm,
    ModelPickForm,
    PresetForm,
    RenameForm,
    ReportForm,
    SystemPromptForm,
    edit_form,
)
from conversations.http import SignedInRequest
from conversations.middleware import SIGNED_OUT
from conversations.models import Attachment, Conversation, Message, Preset, UsageDay
from conversations.providers import catalog, listing
from conversations.selectors import (
    amessage_for,
    archived_conversations,
    conversation_for,
    conversation_page,
    message_for,
    own_preset_for,
    preset_for,
    presets_of,
    transcript,
)
from conversations.services import (
    attachments,
    export,
    feedback,
    model_choice,
    moderation,
    organizing,
    presets,
    quotas,
)
from conversations.services.ratelimit import RateLimited
from conversations.services.sending import (
    AnswerInProgress,
    EditRefused,
    RetryRefused,
    delete_conversation,
    edit_message,
    rename_conversation,
    retry_reply,
    send_message,
    set_system_prompt,
    show_version,
    start_conversation,
)
from conversations.streaming import reading, sse
from conversations.streaming.generation import start_generation
from conversations.streaming.runtime import get_runtime

DETAIL = "conversations/detail.html"
PRESETS = "conversations/presets.html"
PRESET_REFUSED = "This preset is not available: choose another one."


HEALTH_TIMEOUT = 3.0  # seconds


@login_required
@require_GET
def conversation_list(request: SignedInRequest) -> HttpResponse:
    """The landing page: a new chat (a composer; nothing is stored until its first send),
    or, over htmx with `?page=`, the sidebar's next page of conversations."""
    if request.htmx and request.GET.get("page"):
        page = _conversation_page(request)
        return render(request, "conversations/list.html#conversation_items", {"page": page})
    return _new_chat(request, MessageForm())


@login_required
@require_http_methods(["GET", "POST"])
def conversation_create(request: SignedInRequest) -> HttpResponse:
    """What "+ New chat" opens: the composer, storing nothing. A POST (an old page whose
    button created an empty conversation) is sent to the landing page's composer."""
    if request.method == "POST":
        url = reverse("conversation_list")
        return HttpResponseClientRedirect(url) if request.htmx else redirect(url)
    return _new_chat(request, MessageForm())


@login_required
@require_POST
def conversation_start(request: SignedInRequest) -> HttpResponse:
    """A new chat's first send: the conversation and its first message, in one transaction,
    idempotent on the message's client_id (a retry gets the same conversation back), with
    the picker's model and the preset chosen (400 for one the user may not use). Over htmx
    the answer is the conversation's #main, at its URL, and the sidebar listing it."""
    form = MessageForm(request.POST, files_only=True)
    if not form.is_valid():
        return _composer_error(request, None, form)
    # The new chat's picker; without one (an old page, a script), the owner's default.
    model = None
    if raw_model := request.POST.get("model", "").strip():
        try:
            model = catalog.resolve_for_send(raw_model)
        except catalog.UnknownModel as exc:
            return HttpResponse(str(exc), status=400, content_type="text/plain")
    # The new chat's preset (its system prompt, temperature and model); none: no query.
    preset, note = None, ""
    if request.POST.get("preset"):
        preset = _preset_or_none(request, request.POST["preset"])
        if preset is None:
            return HttpResponse(PRESET_REFUSED, status=400, content_type="text/plain")
        start = presets.start_model(preset=preset, picked=model, owner=request.user)
        model, note = start.choice, start.note
    # The files sent with it (uploaded before); none: no query.
    files = None
    if raw_ids := request.POST.getlist("attachment"):
        model = model or model_choice.default_for(request.user)
        try:
            files = _send_attachments(request, raw_ids, form, model.endpoint)
        except attachments.AttachmentRefused as exc:
            return attachment_views.refused(exc)
    try:
        result = start_conversation(
            owner=request.user,
            content=form.cleaned_data["content"],
            client_id=form.cleaned_data["client_id"],
            launch=start_generation,
            model=model,
            preset=preset,
            attachments=files,
        )
    except REFUSALS as exc:
        return _refusal(exc)
    conversation = result.user_message.conversation
    url = reverse("conversation_detail", args=[conversation.pk])
    if not request.htmx:
        if note:
            flashes.warning(request, note)
        return redirect(url)
    messages, has_earlier = transcript(conversation, limit=settings.CHAT["MESSAGES_PER_PAGE"])
    context = {
        "conversation": conversation,
        "current": conversation,
        "messages": messages,
        "has_earlier": has_earlier,
        **_page_parts(request, conversation),
        "form": MessageForm(),
        "started": True,
        "preset_note": note,
    }
    response = render(request, f"{DETAIL}#started", context)
    return push_url(reswap(retarget(response, "#main"), "outerHTML"), url)


@login_required
@require_GET
def conversation_detail(request: SignedInRequest, conversation_id: UUID) -> HttpResponse:
    """The conversation's page. `?at=<message id>` (a search result) opens it at that
    message: on its branch (switched to, as the version arrows do, if another is shown) and
    in the page even when older than its last page of messages."""
    conversation = conversation_for(request.user, conversation_id)
    before = _int_or_none(request.GET.get("before"))
    found = search_views.open_at(conversation, request.GET.get("at"))
    messages, has_earlier = transcript(
        conversation,
        before_seq=before,
        limit=settings.CHAT["MESSAGES_PER_PAGE"],
        including=found,
    )
    context = {
        "conversation": conversation,
        "messages": messages,
        "has_earlier": has_earlier,
        "last_id": messages[-1].pk if messages else None,
    }
    if request.htmx and before is not None:
        return render(request, f"{DETAIL}#earlier", context)
    context.update(_page_parts(request, conversation), form=MessageForm())
    return render(request, DETAIL, context)


@login_required
@require_http_methods(["GET", "POST"])
def conversation_rename(request: SignedInRequest, conversation_id: UUID) -> HttpResponse:
    conversation = conversation_for(request.user, conversation_id)
    form = RenameForm(request.POST or None, initial={"title": conversation.title})
    if request.method == "POST" and form.is_valid():
        rename_conversation(conversation=conversation, title=form.cleaned_data["title"])
        if request.htmx:
            return render(request, f"{DETAIL}#title", {"conversation": conversation})
        return redirect("conversation_detail", conversation.pk)
    template = f"{DETAIL}#rename_form" if request.htmx else "conversations/rename.html"
    status = 422 if form.errors else 200
    return render(request, template, {"conversation": conversation, "form": form}, status=status)


@login_required
@require_POST
def conversation_system_prompt(request: SignedInRequest, conversation_id: UUID) -> HttpResponse:
    conversation = conversation_for(request.user, conversation_id)
    form = SystemPromptForm(request.POST)
    saved = form.is_valid()
    if saved:
        set_system_prompt(
            conversation=conversation, system_prompt=form.cleaned_data["system_prompt"]
        )
    if not request.htmx:
        if saved:
            return redirect("conversation_detail", conversation.pk)
        return render(
            request,
            "conversations/system_prompt.html",
            {"conversation": conversation, "form": form},
            status=422,
        )
    context = {"conversation": conversation, "prompt_form": form, "saved": saved}
    return render(request, f"{DETAIL}#system_prompt", context, status=200 if saved else 422)


@login_required
@require_POST
def conversation_model(request: SignedInRequest, conversation_id: UUID) -> HttpResponse:
    """The model of the conversation's next answers (and, asked, the default for new chats).
    An unknown, disallowed or unavailable model is a 400 that says why and changes nothing."""
    conversation = conversation_for(request.user, conversation_id)
    form = ModelPickForm(request.POST)
    if not form.is_valid():
        return _model_refused(form)
    choice = form.cleaned_data["model"]
    model_choice.choose_model(conversation=conversation, choice=choice)
    as_default = bool(request.POST.get("make_default"))
    if as_default:
        model_choice.set_default_model(user=request.user, choice=choice)
    if not request.htmx:
        return redirect("conversation_detail", conversation.pk)
    context = {
        "conversation": conversation,
        **_picker(choice.id),
        "picker_saved": "default" if as_default else "model",
    }
    return render(request, f"{DETAIL}#model_picker", context)


@login_required
@require_POST
def model_default(request: SignedInRequest) -> HttpResponse:
    """The model new chats start with: what a new chat's picker was set to."""
    form = ModelPickForm(request.POST)
    if not form.is_valid():
        return _model_refused(form)
    choice = form.cleaned_data["model"]
    model_choice.set_default_model(user=request.user, choice=choice)
    if not request.htmx:
        return redirect("conversation_list")
    context = {"conversation": None, **_picker(choice.id), "picker_saved": "default"}
    return render(request, f"{DETAIL}#model_picker", context)


@require_GET
async def model_picker(request: HttpRequest) -> HttpResponse:
    """The picker again once every endpoint's model list is in (or has failed): a page that
    found a list not fetched yet asks for this, so it never waits itself."""
    user = await request.auser()
    if not user.is_authenticated:
        return HttpResponse(status=403)
    await asyncio.to_thread(listing.wait_listed, catalog.endpoints().values())
    conversation_id = request.GET.get("conversation")
    conversation = None
    if conversation_id:
        try:
            conversation = await sync_to_async(conversation_for)(user, UUID(conversation_id))
        except ValueError:
            raise Http404 from None
        selected = conversation.model_id
    else:
        selected = (await sync_to_async(model_choice.default_for)(user)).id
    context = {"conversation": conversation, **_picker(selected)}
    return await sync_to_async(render)(request, f"{DETAIL}#model_picker", context)


@login_required
@require_http_methods(["GET", "POST"])
def conversation_delete(request: SignedInRequest, conversation_id: UUID) -> HttpResponse:
    conversation = conversation_for(request.user, conversation_id)
    if request.method == "POST":
        delete_conversation(conversation=conversation)
        url = reverse("conversation_list")
        return HttpResponseClientRedirect(url) if request.htmx else redirect(url)
    template = f"{DETAIL}#delete_form" if request.htmx else "conversations/delete.html"
    return render(request, template, {"conversation": conversation})


@login_required
@require_POST
def message_send(request: SignedInRequest, conversation_id: UUID) -> HttpResponse:
    conversation = conversation_for(request.user, conversation_id)
    form = MessageForm(request.POST, files_only=True)
    if not form.is_valid():
        return _composer_error(request, conversation, form)
    files = None
    if raw_ids := request.POST.getlist("attachment"):  # none: no query for them
        try:
            endpoint, _model = model_choice.answering(conversation)
            files = _send_attachments(request, raw_ids, form, endpoint)
        except attachments.AttachmentRefused as exc:
            return attachment_views.refused(exc)
    try:
        result = send_message(
            conversation=conversation,
            content=form.cleaned_data["content"],
            client_id=form.cleaned_data["client_id"],
            launch=start_generation,
            attachments=files,
        )
    except REFUSALS as exc:
        return _refusal(exc)
    if not request.htmx:
        return redirect("conversation_detail", conversation.pk)
    messages = [m for m in (result.user_message, result.assistant_message) if m is not None]
    context = {
        "conversation": conversation,
        "messages": messages,
        # The first message names the conversation: update the page's title in place.
        "title_changed": result.created and result.user_message.seq == 1,
    }
    return render(request, f"{DETAIL}#message_list", context)


@require_GET
async def message_stream(
    request: HttpRequest, conversation_id: UUID, message_id: UUID
) -> HttpResponseBase:
    user = await request.auser()
    if not user.is_authenticated:
        # An EventSource cannot follow a redirect to a login page: it would read that page
        # as a broken stream and reconnect to it. A 401 fails it, with the reason.
        return HttpResponse(SIGNED_OUT, status=401, content_type="text/plain")
    message = await amessage_for(user, conversation_id, message_id)
    events = reading.stream_events(message, last_event_id=request.headers.get("Last-Event-ID"))
    return StreamingHttpResponse(events, content_type=sse.CONTENT_TYPE, headers=sse.HEADERS)


@login_required
@require_POST
def message_stop(request: SignedInRequest, conversation_id: UUID, message_id: UUID) -> HttpResponse:
    message = message_for(request.user, conversation_id, message_id)
    if message.is_live:
        async_to_sync(_request_stop)(str(message.pk))
    if request.htmx:
        return HttpResponse(status=204)
    return redirect("conversation_detail", conversation_id)


@login_required
@require_POST
def message_retry(
    request: SignedInRequest, conversation_id: UUID, message_id: UUID
) -> HttpResponse:
    message = message_for(request.user, conversation_id, message_id)
    try:
        result = retry_reply(message=message, launch=start_generation)
    except REFUSALS as exc:
        return _refusal(exc)
    if not request.htmx:
        return redirect("conversation_detail", conversation_id)
    # The new version takes the old one's place; the old one is a switch away.
    reply = with_versions(result.reply)
    return render(request, f"{DETAIL}#message", {"message": reply})


@login_required
@require_GET
def message_detail(
    request: SignedInRequest, conversation_id: UUID, message_id: UUID
) -> HttpResponse:
    """One bubble as the page shows it (an edit form's Cancel puts it back)."""
    message = message_for(request.user, conversation_id, message_id)
    if not request.htmx:
        return redirect("conversation_detail", conversation_id)
    return render(request, f"{DETAIL}#message", {"message": with_versions(message)})


@login_required
@require_http_methods(["GET", "POST"])
def message_edit(request: SignedInRequest, conversation_id: UUID, message_id: UUID) -> HttpResponse:
    message = message_for(request.user, conversation_id, message_id)
    if message.role != Message.Role.USER:
        raise Http404("Only your own messages can be edited.")
    form = edit_form(message, request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            edit_message(
                message=message,
                content=form.cleaned_data["content"],
                client_id=form.cleaned_data["client_id"],
                launch=start_generation,
            )
        except REFUSALS as exc:
            return _refusal(exc)
        return _shown_branch(request, message.conversation)
    status = 422 if form.errors else 200
    context = {"conversation": message.conversation, "message": message, "form": form}
    if not request.htmx:
        return render(request, "conversations/edit.html", context, status=status)
    response = render(request, f"{DETAIL}#edit_form", context, status=status)
    # The form itself targets the transcript (a saved edit shows the new branch); its errors
    # go back in its place.
    return (
        reswap(retarget(response, f"#msg-{message.pk}"), "outerHTML") if form.errors else response
    )


@login_required
@require_POST
def message_show(request: SignedInRequest, conversation_id: UUID, message_id: UUID) -> HttpResponse:
    """Switch to `message`'s version: the path through it, down to its latest message."""
    message = message_for(request.user, conversation_id, message_id)
    show_version(message=message)
    return _shown_branch(request, message.conversation)


@login_required
@require_POST
def message_report(
    request: SignedInRequest, conversation_id: UUID, message_id: UUID
) -> HttpResponse:
    message = message_for(request.user, conversation_id, message_id)
    form = ReportForm(request.POST)
    if not form.is_valid():
        return HttpResponse(
            "Say why you are reporting this message.", status=400, content_type="text/plain"
        )
    moderation.report_message(
        message=message, reporter=request.user, reason=form.cleaned_data["reason"]
    )
    if request.htmx:
        return render(request, f"{DETAIL}#message", {"message": message})
    return redirect("conversation_detail", conversation_id)


@login_required
@require_POST
def message_feedback(
    request: SignedInRequest, conversation_id: UUID, message_id: UUID
) -> HttpResponse:
    """Thumbs up or down on an answer (this version of it), with an optional comment."""
    message = message_for(request.user, conversation_id, message_id)
    form = FeedbackForm(request.POST)
    if not form.is_valid():
        reason = " ".join(str(error) for errors in form.errors.values() for error in errors)
        return HttpResponse(reason, status=422, content_type="text/plain")
    try:
        feedback.rate_answer(
            message=message,
            rating=form.cleaned_data["rating"],
            comment=form.cleaned_data["comment"],
        )
    except feedback.FeedbackRefused as exc:
        return HttpResponse(str(exc), status=409, content_type="text/plain")
    if request.htmx:
        return render(request, f"{DETAIL}#feedback", {"message": message, "rated": True})
    return redirect("conversation_detail", conversation_id)


@login_required
@require_POST
def conversation_archive(request: SignedInRequest, conversation_id: UUID) -> HttpResponse:
    """Archive (archived=1) or bring back (archived=0). From the Archived view the row goes."""
    conversation = conversation_for(request.user, conversation_id)
    organizing.set_archived(conversation=conversation, archived=request.POST.get("archived") == "1")
    from_archive = request.POST.get("from") == "archived"
    if request.htmx:
        if from_archive:
            return HttpResponse("")
        return render(request, f"{DETAIL}#title", {"conversation": conversation})
    if from_archive:
        return redirect("conversation_archived")
    return redirect("conversation_detail", conversation.pk)


@login_required
@require_POST
def conversation_pin(request: SignedInRequest, conversation_id: UUID) -> HttpResponse:
    conversation = conversation_for(request.user, conversation_id)
    organizing.set_pinned(conversation=conversation, pinned=request.POST.get("pinned") == "1")
    if request.htmx:
        return render(request, f"{DETAIL}#title", {"conversation": conversation})
    return redirect("conversation_detail", conversation.pk)


@login_required
@require_GET
def conversation_archived(request: SignedInRequest) -> HttpResponse:
    """The Archived view: the conversations out of the sidebar, most recent first."""
    archived = archived_conversations(request.user, request.GET.get("page"))
    context = {"archived": archived, "page": _conversation_page(request)}
    return render(request, "conversations/archived.html", context)


@login_required
@require_GET
def my_data(request: SignedInRequest) -> HttpResponse:
    return render(request, "conversations/my_data.html")


USAGE_DAYS = 30  # what "Your usage" shows


@login_required
@require_GET
def my_usage(request: SignedInRequest) -> HttpResponse:
    """The user's tokens per day and model over the last 30 days, and their quota if any."""
    rows = quotas.usage_since(user_id=request.user.pk, days=USAGE_DAYS)
    days: dict[datetime.date, list[UsageDay]] = {}
    for row in rows:
        days.setdefault(row.day, []).append(row)
    context = {
        "days": [{"day": day, "rows": models} for day, models in days.items()],
        "total": sum(r.tokens for r in rows),
        "limits": quotas.limits_for(user_id=request.user.pk),
        "usage_days": USAGE_DAYS,
    }
    return render(request, "conversations/my_usage.html", context)


@login_required
@require_GET
def my_data_download(request: SignedInRequest) -> HttpResponseBase:
    """All the user's own conversations as one file, streamed (hidden messages left out)."""
    fmt = request.GET.get("format", "jsonl")
    if fmt not in export.FORMATS:
        return HttpResponse("Unknown format.", status=400, content_type="text/plain")
    chunks = export.export_chunks(export.select(owner=request.user), fmt)
    response = StreamingHttpResponse(
        export.aexport_chunks(chunks), content_type=export.CONTENT_TYPES[fmt]
    )
    response["Content-Disposition"] = content_disposition_header(
        as_attachment=True, filename=export.filename(fmt, "streamchat-my-data")
    )
    return response


@login_required
@require_GET
def preset_choice(request: SignedInRequest) -> HttpResponse:
    """What the new chat's preset choice says it will start with (htmx, on change); none
    chosen, nothing. Someone else's (or no) preset is a 404, as everywhere."""
    raw = request.GET.get("preset", "")
    preset = None
    if raw:
        preset = _preset_or_none(request, raw)
        if preset is None:
            raise Http404("No such preset.")
    return render(request, f"{DETAIL}#preset_summary", {"preset": preset})


@login_required
@require_http_methods(["GET", "POST"])
def preset_list(request: SignedInRequest) -> HttpResponse:
    """The Presets page: one's own (to edit, delete, start a chat from), the published ones
    (read-only: copy one to change it), and a form for a new one."""
    form = PresetForm(request.POST or None, auto_id="preset-new-%s")
    if request.method == "POST" and form.is_valid():
        presets.create_preset(owner=request.user, values=form.values())
        if not request.htmx:
            return redirect("preset_list")
        form = PresetForm(auto_id="preset-new-%s")
    status = 422 if form.errors else 200
    context = _presets_context(request, new_form=form, created=request.method == "POST")
    template = f"{PRESETS}#presets" if request.htmx else PRESETS
    return render(request, template, context, status=status)


@login_required
@require_GET
def preset_detail(request: SignedInRequest, preset_id: UUID) -> HttpResponse:
    """One preset's row as the list shows it (an edit form's Cancel puts it back)."""
    preset = own_preset_for(request.user, preset_id)
    if not request.htmx:
        return redirect("preset_list")
    return render(request, f"{PRESETS}#preset_row", {"preset": preset})


@login_required
@require_http_methods(["GET", "POST"])
def preset_edit(request: SignedInRequest, preset_id: UUID) -> HttpResponse:
    preset = own_preset_for(request.user, preset_id)
    initial = {
        "name": preset.name,
        "system_prompt": preset.system_prompt,
        "model": preset.model,
        "temperature": preset.temperature,
    }
    form = PresetForm(request.POST or None, initial=initial, auto_id=f"preset-{preset.pk}-%s")
    if request.htmx and request.method == "GET":  # in place of the row: the focus goes in
        form.fields["name"].widget.attrs["autofocus"] = True
    if request.method == "POST" and form.is_valid():
        presets.update_preset(preset=preset, values=form.values())
        if not request.htmx:
            return redirect("preset_list")
        return render(request, f"{PRESETS}#preset_row", {"preset": preset, "saved": True})
    status = 422 if form.errors else 200
    if not request.htmx:
        context = _presets_context(request, editing=preset, edit_form=form)
        return render(request, PRESETS, context, status=status)
    context = {"preset": preset, "edit_form": form, **_picker(form["model"].value() or "")}
    return render(request, f"{PRESETS}#preset_form", context, status=status)


@login_required
@require_POST
def preset_delete(request: SignedInRequest, preset_id: UUID) -> HttpResponse:
    preset = own_preset_for(request.user, preset_id)
    presets.delete_preset(preset=preset)
    if not request.htmx:
        return redirect("preset_list")
    return HttpResponse("")  # the row goes


@login_required
@require_POST
def preset_copy(request: SignedInRequest, preset_id: UUID) -> HttpResponse:
    """One's own copy of a preset one may see (a published one, typically), to change."""
    preset = preset_for(request.user, preset_id)
    presets.copy_preset(preset=preset, owner=request.user)
    if not request.htmx:
        return redirect("preset_list")
    context = _presets_context(request, new_form=PresetForm(auto_id="preset-new-%s"))
    return render(request, f"{PRESETS}#presets", context)


def _presets_context(
    request: SignedInRequest,
    *,
    new_form: PresetForm | None = None,
    editing: Preset | None = None,
    edit_form: PresetForm | None = None,
    created: bool = False,
) -> dict[str, object]:
    own, published = presets_of(request.user)
    return {
        "own_presets": own,
        "published_presets": published,
        "new_form": new_form or PresetForm(auto_id="preset-new-%s"),
        "editing": editing,
        "edit_form": edit_form,
        "created": created and new_form is not None and not new_form.errors,
        "page": _conversation_page(request),
        **_picker(""),
    }


@require_GET
def favicon(request: HttpRequest) -> HttpResponse:
    """Browsers and crawlers ask for /favicon.ico whatever the page links: send them to the
    static SVG. Not permanent: the static file's (hashed) name changes with each deploy."""
    response = redirect(static("img/favicon.svg"))
    patch_cache_control(response, public=True, max_age=24 * 3600)
    return response


async def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness for load balancers: the database and the channel layer answer."""
    checks: dict[str, str] = {}
    try:
        await sync_to_async(_ping_database)()
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"error: {type(exc).__name__}"
    try:
        async with asyncio.timeout(HEALTH_TIMEOUT):  # a probe answers 503, never hangs
            layer = get_channel_layer()
            channel = await layer.new_channel()  # the default prefix: see control._listen
            await layer.send(channel, {"type": "healthz.ping"})
            await layer.receive(channel)
        checks["channel_layer"] = "ok"
    except Exception as exc:
        checks["channel_layer"] = f"error: {type(exc).__name__}"
    healthy = all(v == "ok" for v in checks.values())
    return JsonResponse(
        {"status": "ok" if healthy else "error", **checks}, status=200 if healthy else 503
    )


async def _request_stop(message_id: str) -> None:
    await get_runtime().request_stop(message_id)  # on the server's loop, from this thread


def _ping_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _conversation_page(request: SignedInRequest) -> Page:
    return conversation_page(request.user, request.GET.get("page"))


def _page_parts(request: SignedInRequest, conversation: Conversation) -> dict[str, object]:
    """What the whole conversation page shows beside its messages: the sidebar's page of
    conversations, the model picker and the system prompt's form."""
    return {
        "page": _conversation_page(request),
        **_picker(conversation.model_id),
        "prompt_form": SystemPromptForm(initial={"system_prompt": conversation.system_prompt}),
    }


def _picker(selected: str) -> dict[str, object]:
    """The model picker's choices, from the cached model lists (it never waits on them)."""
    groups = catalog.groups()
    endpoint = selected.partition("/")[0]
    return {
        "model_groups": groups,
        "model_selected": selected,
        "model_is_demo": endpoint in catalog.endpoints() and catalog.endpoints()[endpoint].is_demo,
        "models_listed": all(group.listed for group in groups),
    }


def _new_chat(request: SignedInRequest, form: MessageForm, status: int = 200) -> HttpResponse:
    """The chat page without a conversation: its composer's first send makes one, with the
    model its picker shows (the owner's default) and the preset chosen (`?preset=` from
    the Presets page, or what a refused send chose)."""
    selected = model_choice.default_for(request.user).id
    own, published = presets_of(request.user)
    chosen = request.POST.get("preset") or request.GET.get("preset") or ""
    context: dict[str, object] = {
        "conversation": None,
        "messages": [],
        "form": form,
        "page": _conversation_page(request),
        **_picker(selected),
        "own_presets": own,
        "published_presets": published,
        "preset": next((p for p in own + published if str(p.pk) == chosen), None),
    }
    return render(request, DETAIL, context, status=status)


def _send_attachments(
    request: SignedInRequest, raw_ids: list[str], form: MessageForm, endpoint: str
) -> list[Attachment]:
    """The uploads a send names, checked for it (AttachmentRefused: a 400, nothing stored)."""
    return attachments.for_send(
        owner=request.user,
        ids=attachments.parse_ids(raw_ids),
        client_id=form.cleaned_data["client_id"],
        endpoint_id=endpoint,
    )


def _preset_or_none(request: SignedInRequest, raw: str) -> Preset | None:
    """The preset a request names, if the user may start from it (own or published)."""
    try:
        return preset_for(request.user, UUID(raw))
    except (ValueError, Http404):
        return None


def _composer_error(
    request: SignedInRequest,
    conversation: Conversation | None,
    form: MessageForm,
    status: int = 422,
) -> HttpResponse:
    """422 with the form and its errors; the typed text stays in the box."""
    context: dict[str, object] = {"conversation": conversation, "form": form}
    if request.htmx:
        response = render(request, f"{DETAIL}#composer", context, status=status)
        return reswap(retarget(response, "#composer"), "outerHTML")
    if conversation is None:
        return _new_chat(request, form, status=status)
    messages, has_earlier = transcript(conversation)
    context.update(_page_parts(request, conversation), messages=messages, has_earlier=has_earlier)
    return render(request, DETAIL, context, status=status)


def _model_refused(form: ModelPickForm) -> HttpResponse:
    """400, the reason as text (a page offers only models on offer: this is a stale or
    tampered one, or an endpoint that stopped answering). A send keeps its text."""
    reason = next(iter(form.errors.get("model", ["Choose a model."])))
    return HttpResponse(reason, status=400, content_type="text/plain")


def _shown_branch(request: SignedInRequest, conversation: Conversation) -> HttpResponse:
    """The transcript of the branch the conversation now shows, for #transcript."""
    if not request.htmx:
        return redirect("conversation_detail", conversation.pk)
    messages, has_earlier = transcript(conversation, limit=settings.CHAT["MESSAGES_PER_PAGE"])
    context = {"conversation": conversation, "messages": messages, "has_earlier": has_earlier}
    return render(request, f"{DETAIL}#earlier", context)


# What a write can refuse, each answered with its own status by _refusal.
REFUSALS = (
    RateLimited,
    quotas.OverQuota,
    moderation.SendRefused,
    RetryRefused,
    EditRefused,
    AnswerInProgress,
)


def _refusal(exc: Exception) -> HttpResponse:
    """429 with Retry-After (too many), 403 (not allowed to send), 409 (not now: a retry
    of an older answer, a send or edit while an answer is written); the reason as text."""
    if isinstance(exc, RateLimited | quotas.OverQuota):
        response = HttpResponse(exc.message, status=429, content_type="text/plain")
        response["Retry-After"] = str(exc.retry_after)
        if isinstance(exc, quotas.OverQuota):
            # Not worth a retry before it resets: the composer keeps the text, says why.
            response["X-Refusal"] = "quota"
        return response
    status = 403 if isinstance(exc, moderation.SendRefused) else 409
    return HttpResponse(str(exc), status=status, content_type="text/plain")


def _int_or_none(raw: str | None) -> int | None:
    try:
        return int(raw) if raw else None
    except ValueError:
        return None
