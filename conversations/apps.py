from django.apps import AppConfig


class ConversationsConfig(AppConfig):
    name = "conversations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_out

        from conversations.services import sync

        user_logged_out.connect(sync.close_sockets_on_logout, dispatch_uid="sync-logout")
