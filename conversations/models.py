"""Conversations and their messages. Order is `seq`, never a timestamp."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import models
from django.db.models import Q

if TYPE_CHECKING:
    from conversations.branches import Versions


class Conversation(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="conversations"
    )
    title = models.CharField(max_length=200, blank=True)
    # The model the next answers come from: an endpoint id and that endpoint's model name
    # (conversations.providers.catalog). Each answer records its own.
    provider = models.CharField(max_length=50, blank=True)
    model = models.CharField(max_length=100, blank=True)
    system_prompt = models.TextField(blank=True)
    # None: the model's own default.
    temperature = models.FloatField(null=True, blank=True)
    # The preset it started from, if any (shown discreetly; the settings were copied).
    preset = models.ForeignKey(
        "Preset", null=True, blank=True, on_delete=models.SET_NULL, related_name="conversations"
    )
    archived = models.BooleanField(default=False)
    # Pinned conversations head the owner's list.
    pinned = models.BooleanField(default=False)
    # Hidden by a moderator: out of its owner's list, every message shown as hidden, no sends.
    hidden = models.BooleanField(default=False)
    # The branch the page shows (and the next send continues): a leaf of the message tree.
    current_leaf = models.ForeignKey(
        "Message", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at"]
        indexes = [
            models.Index(fields=["owner", "-updated_at"], name="conv_owner_updated"),
            # The sidebar's order: pinned first, then the most recently active.
            models.Index(fields=["owner", "-pinned", "-updated_at"], name="conv_owner_pinned"),
        ]
        permissions = [
            ("moderate_conversation", "Can hide and unhide conversations"),
            ("export_conversation", "Can export conversations"),
        ]

    def __str__(self) -> str:
        return self.display_title

    @property
    def display_title(self) -> str:
        return self.title or "New conversation"

    @property
    def model_id(self) -> str:
        return f"{self.provider}/{self.model}"


class Message(models.Model):
    class Role(models.TextChoices):
        USER = "user"
        ASSISTANT = "assistant"
        SYSTEM = "system"

    class Status(models.TextChoices):
        PENDING = "pending"
        STREAMING = "streaming"
        COMPLETE = "complete"
        STOPPED = "stopped"
        ERROR = "error"
        INTERRUPTED = "interrupted"

    class Rating(models.TextChoices):
        UP = "up", "👍 good answer"
        DOWN = "down", "👎 bad answer"

    # Set where a page shows the message (conversations.branches): its place among siblings.
    versions: Versions | None = None
    # Set by a send on the answer it makes under its new question: no other version of it
    # can exist, so its final bubble needs no query for them (streaming.generation).
    only_version: bool = False

    LIVE_STATUSES = (Status.PENDING, Status.STREAMING)
    RETRYABLE_STATUSES = (Status.STOPPED, Status.ERROR, Status.INTERRUPTED)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="messages"
    )
    seq = models.PositiveIntegerField()
    role = models.CharField(max_length=10, choices=Role.choices)
    content = models.TextField(blank=True)
    # An answer's reasoning ("thinking"), shown apart from it and never sent back to the model.
    reasoning = models.TextField(blank=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.COMPLETE)
    # The browser's id for a send: a repeated client_id returns the existing messages.
    client_id = models.UUIDField(null=True, blank=True)
    # The user message an assistant message answers (retries answer the same one).
    reply_to = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="replies"
    )
    # The message this one follows: messages form a tree whose root has none. Siblings are
    # versions: an edit is a sibling of the message edited, a regenerate of the answer.
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children"
    )
    provider = models.CharField(max_length=50, blank=True)
    model = models.CharField(max_length=100, blank=True)
    error = models.TextField(blank=True)
    error_id = models.CharField(max_length=16, blank=True)
    finish_reason = models.CharField(max_length=30, blank=True)
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    # An answer's timings from the start of its generation: to its first token, to its end.
    first_token_ms = models.PositiveIntegerField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    flagged = models.BooleanField(default=False)
    hidden = models.BooleanField(default=False)
    moderation_reason = models.TextField(blank=True)
    # The owner's thumbs up or down on this answer (this version of it), and why.
    rating = models.CharField(max_length=4, choices=Rating.choices, blank=True)
    rating_comment = models.TextField(blank=True)
    rated_at = models.DateTimeField(null=True, blank=True)
    # How many files came with it: the page loads attachments only for messages that have
    # some (selectors.transcript), so a conversation without any pays no query for them.
    attachment_count = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["conversation", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["conversation", "seq"], name="message_unique_seq"),
            models.UniqueConstraint(
                fields=["conversation", "client_id"],
                condition=Q(client_id__isnull=False),
                name="message_unique_client_id",
            ),
        ]
        indexes = [
            # Recovery scans for streams left live by a dead process.
            models.Index(
                fields=["status", "updated_at"],
                name="message_live_status",
                condition=Q(status__in=["pending", "streaming"]),
            ),
            # Export --since/--until and the admin's date filter.
            models.Index(fields=["created_at"], name="message_created"),
            # The moderators' queue of reported messages.
            models.Index(fields=["updated_at"], name="message_flagged", condition=Q(flagged=True)),
            # The moderators' list of rated answers.
            models.Index(fields=["rated_at"], name="message_rated", condition=~Q(rating="")),
        ]
        permissions = [("moderate_message", "Can flag, hide and unhide messages")]

    def __str__(self) -> str:
        return f"{self.role} #{self.seq}"

    @property
    def is_live(self) -> bool:
        return self.status in self.LIVE_STATUSES

    @property
    def is_retryable(self) -> bool:
        return self.role == self.Role.ASSISTANT and self.status in self.RETRYABLE_STATUSES

    @property
    def shown_attachments(self) -> list[Attachment]:
        """The attachments its bubble shows: set in bulk by the reads that render pages;
        else read here, and only for a message that has some."""
        cached = getattr(self, "_shown_attachments", None)
        if cached is None:
            cached = list(self.attachments.all()) if self.attachment_count else []
            self._shown_attachments = cached
        return cached

    @shown_attachments.setter
    def shown_attachments(self, value: list[Attachment]) -> None:
        self._shown_attachments = value

    @property
    def tokens_per_second(self) -> float | None:
        """The answer's output rate once it started: its tokens over the time after the first."""
        if not (self.completion_tokens and self.first_token_ms is not None and self.duration_ms):
            return None
        writing = (self.duration_ms - self.first_token_ms) / 1000
        return self.completion_tokens / writing if writing > 0 else None


class Attachment(models.Model):
    """A file sent with a message: an image, a text file or a PDF. Uploaded first, unattached
    (`message` None) and owned by its uploader; a send attaches it. Unsent ones expire.

    The bytes are in the `default` storage under a generated name (`storage_name`); the
    name people see is `name`, sanitized. `content_type` is what the content was sniffed
    to be, never what the browser said."""

    class Kind(models.TextChoices):
        IMAGE = "image"
        TEXT = "text"
        PDF = "pdf"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="attachments"
    )
    message = models.ForeignKey(
        Message, null=True, blank=True, on_delete=models.CASCADE, related_name="attachments"
    )
    kind = models.CharField(max_length=10, choices=Kind.choices)
    name = models.CharField(max_length=200)
    content_type = models.CharField(max_length=100)
    size = models.PositiveBigIntegerField()
    # Shared by the copies an edit gives its new version (the file goes with the last row).
    storage_name = models.CharField(max_length=300, db_index=True)
    # A document's text (UTF-8 text, or a PDF's extracted text), cut to the context's cap.
    text = models.TextField(blank=True)
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    # Hidden by a moderator: not served, not sent to the model.
    hidden = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at"]
        indexes = [
            # The janitor's scan for uploads never sent.
            models.Index(
                fields=["created_at"], name="attachment_unsent", condition=Q(message__isnull=True)
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_image(self) -> bool:
        return self.kind == self.Kind.IMAGE


class ShareLink(models.Model):
    """A read-only view of a conversation's branch as it was when shared: the path from the
    first message to `leaf`. Messages added later are not shared unless shared again."""

    # Unguessable: the only thing a viewer needs (no sign-in).
    token = models.CharField(max_length=64, unique=True)
    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="share_links"
    )
    leaf = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="+")
    title = models.CharField(max_length=200)  # the conversation's, when shared
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]
        permissions = [("revoke_sharelink", "Can revoke anyone's share links")]

    def __str__(self) -> str:
        return f"share of {self.title!r}"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class ChatPreferences(models.Model):
    """A user's choices that outlive a conversation."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        primary_key=True,
        on_delete=models.CASCADE,
        related_name="chat_preferences",
    )
    # "<endpoint>/<model>" new conversations start with; blank: the site's default.
    default_model = models.CharField(max_length=160, blank=True)

    class Meta:
        verbose_name_plural = "chat preferences"

    def __str__(self) -> str:
        return f"preferences of user #{self.user_id}"


class Preset(models.Model):
    """A prompt template a new chat can start from: its system prompt, model and temperature
    are copied into the conversation. A user's own, or (no owner) published by a moderator
    for everyone, read-only outside the admin."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # None: published for everyone (made in the admin by staff with `publish_preset`).
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="presets",
    )
    name = models.CharField(max_length=80)
    system_prompt = models.TextField(blank=True)
    # "<endpoint>/<model>"; blank: the user's default model.
    model = models.CharField(max_length=160, blank=True)
    # None: the model's own default.
    temperature = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "created_at"]
        indexes = [models.Index(fields=["owner", "name"], name="preset_owner_name")]
        permissions = [("publish_preset", "Can publish presets for everyone")]

    def __str__(self) -> str:
        return self.name

    @property
    def published(self) -> bool:
        return self.owner_id is None


class AnswerFeedback(Message):
    """Rated answers, for the admin's feedback list (the rating lives on the message)."""

    class Meta:
        proxy = True
        verbose_name = "answer feedback"
        verbose_name_plural = "answer feedback"


class ModerationAction(models.Model):
    """One moderator action (or a user's report): who, what, when, why. Never edited."""

    class Kind(models.TextChoices):
        REPORT = "report", "reported by its owner"
        FLAG = "flag", "flagged"
        UNFLAG = "unflag", "unflagged"
        HIDE = "hide", "hidden"
        UNHIDE = "unhide", "unhidden"
        HIDE_CONVERSATION = "hide_conversation", "conversation hidden"
        UNHIDE_CONVERSATION = "unhide_conversation", "conversation unhidden"
        SUSPEND = "suspend", "user suspended"
        REACTIVATE = "reactivate", "user reactivated"
        EXPORT = "export", "exported"

    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Kept as text too, so the record still says who and what after an account is deleted.
    actor_email = models.CharField(max_length=254, blank=True)
    kind = models.CharField(max_length=30, choices=Kind.choices)
    reason = models.TextField(blank=True)
    target = models.CharField(max_length=300)
    message = models.ForeignKey(
        Message, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    conversation = models.ForeignKey(
        Conversation, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        permissions = [("suspend_user", "Can suspend and reactivate users")]

    def __str__(self) -> str:
        return f"{self.actor_email or 'system'}: {self.get_kind_display()} {self.target}"


class Quota(models.Model):
    """Tokens a user, or each member of a group, may use per day and per month (UTC), set in
    the admin. Blank is unlimited; where several apply (a user's own, each of their groups'),
    the tightest wins (services/quotas.py)."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="quota",
    )
    group = models.OneToOneField(
        "auth.Group", null=True, blank=True, on_delete=models.CASCADE, related_name="quota"
    )
    daily_tokens = models.PositiveBigIntegerField(
        null=True, blank=True, help_text="Blank: no daily limit."
    )
    monthly_tokens = models.PositiveBigIntegerField(
        null=True, blank=True, help_text="Blank: no monthly limit."
    )

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(user__isnull=False, group__isnull=True)
                | models.Q(user__isnull=True, group__isnull=False),
                name="quota_user_xor_group",
                violation_error_message="A quota is for a user or for a group, not both.",
            )
        ]

    def __str__(self) -> str:
        return f"quota of {self.user or self.group}"


class UsageDay(models.Model):
    """A user's tokens on one (UTC) day with one model: added to once per answer, at its
    final write (streaming/generation.py), so a quota check or the usage page reads at most
    a month of these rows, never the messages."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="usage_days"
    )
    day = models.DateField()
    model = models.CharField(max_length=160)  # "<endpoint>/<model>", as the answer had it
    answers = models.PositiveIntegerField(default=0)
    prompt_tokens = models.PositiveBigIntegerField(default=0)
    completion_tokens = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "day", "model"], name="usage_user_day_model")
        ]

    def __str__(self) -> str:
        return f"{self.user_id} {self.day} {self.model}"

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens
