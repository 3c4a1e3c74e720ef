from django.contrib import admin

from conversations.models import Conversation, Message


class MessageInline(admin.TabularInline):
    model = Message
    fields = ("seq", "role", "status", "content", "flagged", "hidden")
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ("seq",)


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = ("display_title", "owner", "provider", "updated_at", "archived")
    list_filter = ("archived", "provider", "updated_at")
    search_fields = ("title", "owner__email")
    inlines = [MessageInline]


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ("conversation", "seq", "role", "status", "flagged", "hidden", "created_at")
    list_filter = ("status", "role", "flagged", "hidden", "created_at")
    search_fields = ("content", "conversation__title", "conversation__owner__email")
    raw_id_fields = ("conversation", "reply_to")
