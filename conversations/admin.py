"""The moderators' admin: find and read conversations, act on messages, conversations and
accounts, export. Actions go through conversations/services/moderation.py, which records each
one (who, what, when, why) in the moderation log shown here too.

Moderators are staff with the permissions in moderation.MODERATOR_PERMISSIONS (the
"Moderators" group: `manage.py moderators_group`); without them the actions are not offered
and not run. Content is evidence: nobody edits it here.
"""

from __future__ import annotations

from collections.abc import Callable

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Exists, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.http import HttpRequest, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html
from django.utils.http import content_disposition_header
from django.utils.text import Truncator

from conversations import attachment_views
from conversations.branches import branch_notes, shown_path
from conversations.forms import PresetForm
from conversations.models import (
    AnswerFeedback,
    Attachment,
    Conversation,
    Message,
    ModerationAction,
    Preset,
    Quota,
    ShareLink,
    UsageDay,
)
from conversations.selectors import with_attachments
from conversations.services import export, moderation

Kind = ModerationAction.Kind
TRANSCRIPT_LIMIT = 500


class ReasonForm(ActionForm):
    """The action bar with a reason field: every moderator action is recorded with one."""

    reason = forms.CharField(
        required=False,
        max_length=500,
        label="Reason",
        widget=forms.TextInput(attrs={"placeholder": "Reason (recorded)", "size": 40}),
    )


class Moderated:
    """`admin.action(permissions=["moderate"])` and friends look these methods up."""

    moderate_permission = ""

    def has_moderate_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(self.moderate_permission)

    def has_suspend_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("conversations.suspend_user")

    def has_export_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("conversations.export_conversation")


def _actor(request: HttpRequest) -> User:
    """The admin lets only staff in: its requests carry a real user."""
    assert isinstance(request.user, User)
    return request.user


def _reason(modeladmin: admin.ModelAdmin, request: HttpRequest) -> str | None:
    reason = (request.POST.get("reason") or "").strip()[:500]
    if not reason:
        modeladmin.message_user(
            request, "Give a reason: every moderator action is recorded with one.", messages.ERROR
        )
        return None
    return reason


def _message_action(kind: Kind, description: str) -> Callable:
    def action(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet) -> None:
        if (reason := _reason(modeladmin, request)) is not None:
            changed = moderation.moderate_messages(
                messages=queryset, kind=kind, actor=_actor(request), reason=reason
            )
            modeladmin.message_user(request, f"{changed} message(s) {kind.label}.")

    action.__name__ = f"{kind.value}_messages"
    return admin.action(description=description, permissions=["moderate"])(action)


def _suspend_action(suspended: bool, description: str, users: Callable[[QuerySet], QuerySet]):
    """Suspend or reactivate the users `users(selection)` names."""

    def action(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet) -> None:
        if (reason := _reason(modeladmin, request)) is not None:
            changed = moderation.set_users_suspended(
                users=users(queryset), suspended=suspended, actor=_actor(request), reason=reason
            )
            verb = "suspended" if suspended else "reactivated"
            modeladmin.message_user(request, f"{changed} user(s) {verb}.")

    action.__name__ = f"{'suspend' if suspended else 'reactivate'}_{users.__name__}"
    return admin.action(description=description, permissions=["suspend"])(action)


def selected_users(queryset: QuerySet) -> QuerySet:
    return queryset


def conversation_owners(queryset: QuerySet) -> QuerySet:
    return User.objects.filter(pk__in=queryset.values("owner_id"))


def message_authors(queryset: QuerySet) -> QuerySet:
    return User.objects.filter(pk__in=queryset.values("conversation__owner_id"))


def _hide_action(hidden: bool, description: str) -> Callable:
    def action(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet) -> None:
        if (reason := _reason(modeladmin, request)) is not None:
            changed = moderation.set_conversations_hidden(
                conversations=queryset, hidden=hidden, actor=_actor(request), reason=reason
            )
            modeladmin.message_user(
                request, f"{changed} conversation(s) {'hidden' if hidden else 'unhidden'}."
            )

    action.__name__ = "hide_conversations" if hidden else "unhide_conversations"
    return admin.action(description=description, permissions=["moderate"])(action)


@admin.action(description="Export the selected conversations (JSONL)", permissions=["export"])
def export_conversations(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet
) -> HttpResponseBase:
    selected = Conversation.objects.filter(pk__in=queryset.values("pk"))
    moderation.record_export(
        actor=_actor(request),
        conversations=selected.count(),
        reason=(request.POST.get("reason") or "").strip()[:500],
    )
    chunks = export.export_chunks(export.select(conversations=selected, include_hidden=True))
    response = StreamingHttpResponse(
        export.aexport_chunks(chunks), content_type=export.CONTENT_TYPES["jsonl"]
    )
    response["Content-Disposition"] = content_disposition_header(
        as_attachment=True, filename=export.filename("jsonl", "streamchat-moderation-export")
    )
    return response


class HasFlaggedMessages(admin.SimpleListFilter):
    title = "flagged messages"
    parameter_name = "has_flagged"

    def lookups(self, request, model_admin):
        return [("yes", "Has flagged messages"), ("no", "No flagged messages")]

    def queryset(self, request, queryset):
        flagged = Exists(Message.objects.filter(conversation=OuterRef("pk"), flagged=True))
        if self.value() == "yes":
            return queryset.filter(flagged)
        if self.value() == "no":
            return queryset.exclude(flagged)
        return queryset


def _count_of(messages: QuerySet) -> Coalesce:
    """A per-row count, computed for the page's rows only (not a GROUP BY over them all)."""
    counted = (
        messages.filter(conversation=OuterRef("pk"))
        .order_by()
        .values("conversation")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return Coalesce(Subquery(counted), 0)


class ReadOnlyContent:
    """Messages and conversations are evidence: viewed and acted on, never edited here."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class ReadOnlyRecord(ReadOnlyContent):
    """A record nobody edits or deletes here, superusers included."""

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(Conversation)
class ConversationAdmin(Moderated, ReadOnlyContent, admin.ModelAdmin):
    moderate_permission = "conversations.moderate_conversation"
    action_form = ReasonForm
    actions = [
        _hide_action(True, "Hide the selected conversations"),
        _hide_action(False, "Unhide the selected conversations"),
        _suspend_action(True, "Suspend the owners", conversation_owners),
        _suspend_action(False, "Reactivate the owners", conversation_owners),
        export_conversations,
    ]
    list_display = (
        "display_title",
        "owner_email",
        "message_count",
        "flagged_count",
        "provider",
        "model",
        "hidden",
        "archived",
        "created_at",
        "updated_at",
    )
    list_filter = (
        "hidden",
        HasFlaggedMessages,
        "archived",
        "provider",
        "created_at",
        "updated_at",
    )
    search_fields = ("title", "owner__email", "messages__content")
    list_select_related = ("owner",)
    show_full_result_count = False  # a second COUNT over every conversation, per page view
    fields = (
        "id",
        "title",
        "owner",
        "provider",
        "model",
        "system_prompt",
        "archived",
        "hidden",
        "created_at",
        "updated_at",
        "transcript",
        "moderation_log",
    )
    readonly_fields = fields

    class Media:
        css = {"all": ["conversations/admin.css"]}

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return (
            super()
            .get_queryset(request)
            .annotate(
                message_count=_count_of(Message.objects.all()),
                flagged_count=_count_of(Message.objects.filter(flagged=True)),
            )
        )

    @admin.display(description="owner", ordering="owner__email")
    def owner_email(self, obj: Conversation) -> str:
        return obj.owner.email

    @admin.display(description="messages", ordering="message_count")
    def message_count(self, obj: Conversation) -> int:
        return obj.message_count  # type: ignore[attr-defined]  # get_queryset annotates it

    @admin.display(description="flagged", ordering="flagged_count")
    def flagged_count(self, obj: Conversation) -> int:
        return obj.flagged_count  # type: ignore[attr-defined]  # get_queryset annotates it

    @admin.display(description="Transcript")
    def transcript(self, obj: Conversation) -> str:
        """Every message of every branch in seq order, each with where it sits: its version
        among its siblings, and whether the owner's page shows its branch."""
        shown = list(obj.messages.order_by("seq")[: TRANSCRIPT_LIMIT + 1])
        tree, path = shown_path(obj)
        notes, on_path = branch_notes(tree, path), set(path)
        shown = with_attachments(shown[:TRANSCRIPT_LIMIT]) + shown[TRANSCRIPT_LIMIT:]
        rows = [(m, notes.get(m.pk, []), m.pk in on_path) for m in shown[:TRANSCRIPT_LIMIT]]
        return render_to_string(
            "admin/conversations/transcript.html",
            {
                "messages": rows,
                "more": len(shown) > TRANSCRIPT_LIMIT,
                "limit": TRANSCRIPT_LIMIT,
                "all_url": reverse("admin:conversations_message_changelist")
                + f"?conversation__id__exact={obj.pk}",
            },
        )

    @admin.display(description="Moderation log")
    def moderation_log(self, obj: Conversation) -> str:
        actions = ModerationAction.objects.filter(conversation=obj)[:100]
        return render_to_string("admin/conversations/moderation_log.html", {"actions": actions})


@admin.register(Message)
class MessageAdmin(Moderated, ReadOnlyContent, admin.ModelAdmin):
    moderate_permission = "conversations.moderate_message"
    action_form = ReasonForm
    actions = [
        _message_action(Kind.FLAG, "Flag the selected messages"),
        _message_action(Kind.UNFLAG, "Unflag the selected messages"),
        _message_action(Kind.HIDE, "Hide the selected messages"),
        _message_action(Kind.UNHIDE, "Unhide the selected messages"),
        _suspend_action(True, "Suspend the authors", message_authors),
    ]
    list_display = (
        "excerpt",
        "conversation_link",
        "owner_email",
        "seq",
        "role",
        "status",
        "flagged",
        "hidden",
        "moderation_reason",
        "provider",
        "rating",
        "created_at",
    )
    list_filter = ("flagged", "hidden", "role", "status", "provider", "rating", "created_at")
    search_fields = ("content", "conversation__title", "conversation__owner__email")
    list_select_related = ("conversation__owner",)
    ordering = ("-created_at",)
    show_full_result_count = False
    fields = (
        "id",
        "conversation",
        "seq",
        "role",
        "status",
        "content",
        "reasoning",
        "reply_to",
        "parent",
        "provider",
        "model",
        "error",
        "error_id",
        "finish_reason",
        "prompt_tokens",
        "completion_tokens",
        "first_token_ms",
        "duration_ms",
        "flagged",
        "hidden",
        "moderation_reason",
        "rating",
        "rating_comment",
        "rated_at",
        "created_at",
        "updated_at",
        "moderation_log",
    )
    readonly_fields = fields

    @admin.display(description="message")
    def excerpt(self, obj: Message) -> str:
        return Truncator(obj.content).chars(80) or "(empty)"

    @admin.display(description="conversation", ordering="conversation__title")
    def conversation_link(self, obj: Message) -> str:
        return obj.conversation.display_title

    @admin.display(description="owner", ordering="conversation__owner__email")
    def owner_email(self, obj: Message) -> str:
        return obj.conversation.owner.email

    @admin.display(description="Moderation log")
    def moderation_log(self, obj: Message) -> str:
        actions = ModerationAction.objects.filter(message=obj)[:100]
        return render_to_string("admin/conversations/moderation_log.html", {"actions": actions})


@admin.register(AnswerFeedback)
class AnswerFeedbackAdmin(ReadOnlyRecord, admin.ModelAdmin):
    """What people thought of the answers: thumbs and comments, with counts per model
    above the list (for the filters chosen). Read-only: it is the users' word."""

    list_display = ("rated_at", "rating", "rating_comment", "model", "provider", "answer_excerpt")
    list_filter = ("rating", "model", "provider", "rated_at")
    search_fields = ("rating_comment", "content", "model")
    list_select_related = ("conversation",)
    ordering = ("-rated_at",)
    date_hierarchy = "rated_at"
    fields = (
        "rating",
        "rating_comment",
        "rated_at",
        "model",
        "provider",
        "content",
        "conversation",
    )
    readonly_fields = fields
    change_list_template = "admin/conversations/answerfeedback/change_list.html"

    def get_queryset(self, request: HttpRequest) -> QuerySet[AnswerFeedback]:
        return super().get_queryset(request).exclude(rating="")  # message_rated

    def has_view_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return request.user.has_perm("conversations.view_message")

    @admin.display(description="answer")
    def answer_excerpt(self, obj: Message) -> str:
        return Truncator(obj.content).chars(80) or "(empty)"

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None):
        response = super().changelist_view(request, extra_context)
        if not isinstance(response, TemplateResponse) or response.context_data is None:
            return response  # a redirect (an action ran) or an error page
        changelist = response.context_data.get("cl")
        if changelist is not None:
            rows = changelist.queryset.order_by().values("provider", "model")
            response.context_data["per_model"] = rows.annotate(
                up=Count("pk", filter=Q(rating=Message.Rating.UP)),
                down=Count("pk", filter=Q(rating=Message.Rating.DOWN)),
            ).order_by("provider", "model")
        return response


@admin.register(ShareLink)
class ShareLinkAdmin(ReadOnlyContent, admin.ModelAdmin):
    """Every share link; a moderator revokes one (its page is a 404 from then on)."""

    list_display = ("title", "owner_email", "created_at", "revoked_at")
    list_filter = (("revoked_at", admin.EmptyFieldListFilter), "created_at")
    search_fields = ("title", "conversation__owner__email")
    list_select_related = ("conversation__owner",)
    fields = ("title", "conversation", "leaf", "created_at", "revoked_at", "revoked_by")
    readonly_fields = fields
    actions = ["revoke_links"]

    @admin.display(description="owner", ordering="conversation__owner__email")
    def owner_email(self, obj: ShareLink) -> str:
        return obj.conversation.owner.email

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("conversations.revoke_sharelink")

    @admin.action(description="Revoke the selected links", permissions=["revoke"])
    def revoke_links(self, request: HttpRequest, queryset: QuerySet[ShareLink]) -> None:
        from conversations.services import sharing

        links = list(queryset.filter(revoked_at__isnull=True))
        for link in links:
            sharing.revoke(link=link, by=_actor(request))
        self.message_user(request, f"Revoked {len(links)} link(s).", messages.SUCCESS)


def _attachment_action(hidden: bool, description: str) -> Callable:
    def action(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet) -> None:
        if (reason := _reason(modeladmin, request)) is not None:
            changed = moderation.set_attachments_hidden(
                attachments=queryset, hidden=hidden, actor=_actor(request), reason=reason
            )
            verb = "hidden" if hidden else "unhidden"
            modeladmin.message_user(request, f"{changed} attachment(s) {verb}.")

    action.__name__ = "hide_attachments" if hidden else "unhide_attachments"
    return admin.action(description=description, permissions=["moderate"])(action)


@admin.register(Attachment)
class AttachmentAdmin(Moderated, ReadOnlyContent, admin.ModelAdmin):
    """Files sent with messages: seen by moderators (also hidden ones, at the admin's own
    address), hidden or unhidden with a reason. A hidden file is not served to its owner
    or a share link, and not sent to the model."""

    moderate_permission = "conversations.moderate_message"
    action_form = ReasonForm
    actions = [
        _attachment_action(True, "Hide the selected attachments"),
        _attachment_action(False, "Unhide the selected attachments"),
    ]
    list_display = (
        "name",
        "kind",
        "content_type",
        "size",
        "owner",
        "message",
        "hidden",
        "created_at",
    )
    list_filter = ("kind", "hidden", "created_at")
    search_fields = ("name", "owner__email")
    list_select_related = ("owner", "message")
    ordering = ("-created_at",)
    show_full_result_count = False
    fields = (
        "id",
        "name",
        "kind",
        "content_type",
        "size",
        "width",
        "height",
        "owner",
        "message",
        "hidden",
        "created_at",
        "file_link",
        "text",
    )
    readonly_fields = fields

    def get_urls(self) -> list:
        from django.urls import path

        view = self.admin_site.admin_view(self.file_view)
        return [
            path("<uuid:attachment_id>/file/", view, name="conversations_attachment_file"),
            *super().get_urls(),
        ]

    def file_view(self, request: HttpRequest, attachment_id: object) -> HttpResponseBase:
        if not self.has_view_permission(request):
            raise PermissionDenied
        attachment = get_object_or_404(Attachment, pk=attachment_id)
        return attachment_views.file_response(attachment)

    @admin.display(description="file")
    def file_link(self, obj: Attachment) -> str:
        url = reverse("admin:conversations_attachment_file", args=[obj.pk])
        return format_html('<a href="{}" target="_blank" rel="noopener">Open {}</a>', url, obj.name)


@admin.register(ModerationAction)
class ModerationActionAdmin(ReadOnlyRecord, admin.ModelAdmin):
    """The record of moderation: read-only for everyone, superusers included."""

    list_display = ("created_at", "actor_email", "kind", "target", "reason")
    list_filter = ("kind", "created_at")
    search_fields = ("actor_email", "target", "reason")
    date_hierarchy = "created_at"
    fields = ("created_at", "actor_email", "kind", "target", "reason", "message", "conversation")
    readonly_fields = fields


class PublishedPresetForm(forms.ModelForm):
    """The users' preset form's rules: the model on offer (blank: each user's default), the
    system prompt's limit, a temperature from 0 to 2."""

    system_prompt = PresetForm.base_fields["system_prompt"]
    model = PresetForm.base_fields["model"]
    temperature = PresetForm.base_fields["temperature"]

    class Meta:
        model = Preset
        fields = ("name", "system_prompt", "model", "temperature")

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.fields["model"].required = False

    def clean_model(self) -> str:
        choice = self.cleaned_data.get("model")
        return choice.id if choice is not None else ""


@admin.register(Preset)
class PublishedPresetAdmin(admin.ModelAdmin):
    """Presets published for everyone (no owner). Only staff with `publish_preset` add,
    change or delete them; users see them read-only and copy them to change them. Users'
    own presets are theirs alone and not listed here."""

    form = PublishedPresetForm
    list_display = ("name", "model", "temperature", "updated_at")
    search_fields = ("name", "system_prompt")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Preset]:
        return super().get_queryset(request).filter(owner__isnull=True)

    def save_model(self, request: HttpRequest, obj: Preset, form: object, change: bool) -> None:
        obj.owner = None  # published: everyone's
        super().save_model(request, obj, form, change)

    def _may_publish(self, request: HttpRequest) -> bool:
        return request.user.has_perm("conversations.publish_preset")

    def has_view_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return self._may_publish(request) or super().has_view_permission(request, obj)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return self._may_publish(request)

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return self._may_publish(request)

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return self._may_publish(request)


if admin.site.is_registered(User):
    admin.site.unregister(User)


@admin.register(User)
class ModeratedUserAdmin(Moderated, UserAdmin):
    """Django's user admin with suspend / reactivate (an inactive account is a suspended one)."""

    action_form = ReasonForm
    actions = [
        _suspend_action(True, "Suspend the selected users", selected_users),
        _suspend_action(False, "Reactivate the selected users", selected_users),
    ]
    list_display = (*UserAdmin.list_display, "is_active")  # type: ignore[misc]

    def get_readonly_fields(self, request: HttpRequest, obj: object = None) -> tuple[str, ...]:
        # Suspending goes through the actions: they ask why, record it, close the user's
        # sockets and stop their answers; ticking the box here would do none of that.
        return (*super().get_readonly_fields(request, obj), "is_active")


@admin.register(Quota)
class QuotaAdmin(admin.ModelAdmin):
    """Token limits per day and month (UTC), for a user or for every member of a group; blank
    is unlimited, and where several apply the tightest wins (services/quotas.py)."""

    list_display = ("__str__", "user", "group", "daily_tokens", "monthly_tokens")
    list_filter = (("group", admin.RelatedOnlyFieldListFilter),)
    search_fields = ("user__email", "group__name")
    autocomplete_fields = ("user",)


@admin.register(UsageDay)
class UsageDayAdmin(admin.ModelAdmin):
    """Tokens per user, day and model, as counted for quotas: read-only."""

    list_display = ("day", "user", "model", "answers", "prompt_tokens", "completion_tokens")
    list_filter = ("day", "model")
    search_fields = ("user__email", "model")
    date_hierarchy = "day"
    list_select_related = ("user",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
