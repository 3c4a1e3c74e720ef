from django.apps import AppConfig


class ConversationsConfig(AppConfig):
    name = "conversations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_out
        from django.db.models.signals import post_delete, post_save

        from conversations.models import Quota
        from conversations.services import quotas, sync

        user_logged_out.connect(sync.close_sockets_on_logout, dispatch_uid="sync-logout")
        # "Is any quota configured?" is cached for every send; a change in the admin resets it.
        for signal in (post_save, post_delete):
            signal.connect(quotas.forget_any_quota, sender=Quota, dispatch_uid="quota-any")
