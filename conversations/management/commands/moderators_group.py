from __future__ import annotations

from django.core.management.base import BaseCommand

from conversations.services.moderation import MODERATOR_PERMISSIONS, ensure_moderators_group


class Command(BaseCommand):
    help = (
        'Create (or reset) the "Moderators" group with the permissions moderators need; add'
        " staff users to it in the admin."
    )

    def handle(self, *args, **options) -> None:
        group = ensure_moderators_group()
        self.stdout.write(f'Group "{group.name}": {", ".join(MODERATOR_PERMISSIONS)}')
