from django.urls import path

from conversations import attachment_views, search_views, share_views, views

urlpatterns = [
    path("", views.conversation_list, name="conversation_list"),
    path("search", search_views.conversation_search, name="conversation_search"),
    path("c/new", views.conversation_create, name="conversation_create"),
    path("c/new/messages", views.conversation_start, name="conversation_start"),
    path("c/<uuid:conversation_id>/", views.conversation_detail, name="conversation_detail"),
    path("c/<uuid:conversation_id>/rename", views.conversation_rename, name="conversation_rename"),
    path("c/<uuid:conversation_id>/delete", views.conversation_delete, name="conversation_delete"),
    path(
        "c/<uuid:conversation_id>/system-prompt",
        views.conversation_system_prompt,
        name="conversation_system_prompt",
    ),
    path("c/<uuid:conversation_id>/model", views.conversation_model, name="conversation_model"),
    path(
        "c/<uuid:conversation_id>/archive", views.conversation_archive, name="conversation_archive"
    ),
    path("c/<uuid:conversation_id>/pin", views.conversation_pin, name="conversation_pin"),
    path("archived", views.conversation_archived, name="conversation_archived"),
    path("c/<uuid:conversation_id>/share", share_views.share_create, name="share_create"),
    path("me/shares", share_views.share_list, name="share_list"),
    path("me/shares/<int:link_id>/revoke", share_views.share_revoke, name="share_revoke"),
    path("s/<str:token>", share_views.share_view, name="share_view"),
    path(
        "s/<str:token>/files/<uuid:attachment_id>",
        attachment_views.shared_attachment,
        name="shared_attachment",
    ),
    path("files/upload", attachment_views.attachment_upload, name="attachment_upload"),
    path("files/<uuid:attachment_id>", attachment_views.attachment_file, name="attachment_file"),
    path("c/<uuid:conversation_id>/messages", views.message_send, name="message_send"),
    path(
        "c/<uuid:conversation_id>/m/<uuid:message_id>/",
        views.message_detail,
        name="message_detail",
    ),
    path(
        "c/<uuid:conversation_id>/m/<uuid:message_id>/edit",
        views.message_edit,
        name="message_edit",
    ),
    path(
        "c/<uuid:conversation_id>/m/<uuid:message_id>/show",
        views.message_show,
        name="message_show",
    ),
    path(
        "c/<uuid:conversation_id>/m/<uuid:message_id>/stream",
        views.message_stream,
        name="message_stream",
    ),
    path(
        "c/<uuid:conversation_id>/m/<uuid:message_id>/stop", views.message_stop, name="message_stop"
    ),
    path(
        "c/<uuid:conversation_id>/m/<uuid:message_id>/retry",
        views.message_retry,
        name="message_retry",
    ),
    path(
        "c/<uuid:conversation_id>/m/<uuid:message_id>/feedback",
        views.message_feedback,
        name="message_feedback",
    ),
    path(
        "c/<uuid:conversation_id>/m/<uuid:message_id>/report",
        views.message_report,
        name="message_report",
    ),
    path("me/model", views.model_default, name="model_default"),
    path("models/picker", views.model_picker, name="model_picker"),
    path("presets/", views.preset_list, name="preset_list"),
    path("presets/choice", views.preset_choice, name="preset_choice"),
    path("presets/<uuid:preset_id>/", views.preset_detail, name="preset_detail"),
    path("presets/<uuid:preset_id>/edit", views.preset_edit, name="preset_edit"),
    path("presets/<uuid:preset_id>/delete", views.preset_delete, name="preset_delete"),
    path("presets/<uuid:preset_id>/copy", views.preset_copy, name="preset_copy"),
    path("me/data", views.my_data, name="my_data"),
    path("me/usage", views.my_usage, name="my_usage"),
    path("me/data/download", views.my_data_download, name="my_data_download"),
]
