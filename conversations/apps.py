from django.apps import AppConfig


class ConversationsConfig(AppConfig):
    name = "conversations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_out
        from django.db.models.signals import post_delete, post_migrate

        from conversations.models import Attachment
        from conversations.services import attachments, sync

        # A deleted attachment's file leaves the storage (conversation, account, expiry).
        post_delete.connect(
            attachments.remove_file, sender=Attachment, dispatch_uid="attachment-file"
        )

        user_logged_out.connect(sync.close_sockets_on_logout, dispatch_uid="sync-logout")
        post_migrate.connect(_repair_search_index, sender=self, dispatch_uid="search-repair")


def _repair_search_index(sender: AppConfig, using: str, **kwargs: object) -> None:
    """A later migration that remade a table on SQLite dropped the search index's triggers."""
    from django.db import connections

    from conversations import search_index

    search_index.repair(connections[using])
