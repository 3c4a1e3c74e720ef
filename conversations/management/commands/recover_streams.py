from django.core.management.base import BaseCommand

from conversations.streaming.recovery import interrupt_stale


class Command(BaseCommand):
    help = (
        "Mark answers left streaming by a dead server process as interrupted (offered for retry)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--older-than",
            type=float,
            default=0,
            help="Only answers with no checkpoint for this many seconds (default 0: all of them,"
            " right before starting the only server process).",
        )

    def handle(self, *args, older_than: float, **options):
        count = interrupt_stale(older_than=older_than)
        self.stdout.write(f"{count} interrupted answer(s) marked for retry.")
