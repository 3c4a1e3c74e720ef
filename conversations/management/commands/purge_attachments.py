"""Delete uploads never sent with a message, once CHAT_ATTACHMENT_UNSENT_HOURS old (run it
from cron, e.g. hourly): their rows and, once committed, their files."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from conversations.services.attachments import purge_unsent


class Command(BaseCommand):
    help = "Delete attachments uploaded but never sent, older than CHAT_ATTACHMENT_UNSENT_HOURS."

    def handle(self, *args: Any, **options: Any) -> None:
        count = purge_unsent()
        self.stdout.write(f"{count} unsent attachment{'s' if count != 1 else ''} deleted.")
