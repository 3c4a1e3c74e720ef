from __future__ import annotations

import contextlib
import gzip
import os
from argparse import ArgumentTypeError
from datetime import UTC, datetime, time
from pathlib import Path
from uuid import UUID

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.dateparse import parse_date, parse_datetime

from conversations.management.progress import Progress
from conversations.services import export


class Command(BaseCommand):
    help = (
        "Export conversations and their messages (schema: docs/export-schema.md). Streams with"
        " flat memory; writes to stdout, or to --output (gzip when it ends in .gz)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--format", choices=export.FORMATS, default="jsonl")
        parser.add_argument(
            "--output", metavar="FILE", help="write here instead of stdout (.gz: gzip)"
        )
        parser.add_argument(
            "--user", action="append", default=[], metavar="EMAIL", help="owner (repeatable)"
        )
        parser.add_argument(
            "--conversation", action="append", default=[], type=UUID, metavar="UUID",
            help="conversation id (repeatable)",
        )  # fmt: skip
        parser.add_argument(
            "--since", type=_moment, help="messages created at or after (ISO date or time, UTC)"
        )
        parser.add_argument("--until", type=_moment, help="messages created before")
        parser.add_argument(
            "--with-files",
            metavar="DIR",
            help="write each exported attachment's file into DIR (named as its record's `file`)",
        )
        parser.add_argument(
            "--include-hidden",
            action="store_true",
            help="also hidden messages and conversations (left out by default)",
        )

    def handle(self, *args, **options) -> None:
        for email in options["user"]:
            if not get_user_model().objects.filter(email__iexact=email).exists():
                raise CommandError(f"no user with email {email}")
        selection = export.select(
            emails=options["user"],
            conversation_ids=options["conversation"],
            since=options["since"],
            until=options["until"],
            include_hidden=options["include_hidden"],
        )
        fmt = options["format"]
        progress = Progress.for_terminal(
            self.stderr._out,  # type: ignore[arg-type]  # the stream (the stubs say a callable)
            total=None,
            unit="messages",
        )
        if progress.enabled:
            progress.total = selection.count_messages()
        files_dir = None
        if options["with_files"]:
            files_dir = Path(options["with_files"])
            files_dir.mkdir(parents=True, exist_ok=True)
        chunks = export.export_chunks(selection, fmt, progress=progress.update, files_dir=files_dir)
        output = options["output"]
        if output:
            self._to_file(chunks, output)
        else:
            for chunk in chunks:
                self.stdout.write(chunk, ending="")
        progress.finish(progress.total or 0)

    def _to_file(self, chunks, path: str) -> None:
        # Written aside and renamed when complete: a failed export never looks like a whole one.
        partial = f"{path}.partial"
        opener = gzip.open if path.endswith(".gz") else open
        try:
            with opener(partial, "wt", encoding="utf-8", newline="") as stream:
                for chunk in chunks:
                    stream.write(chunk)
        except BaseException:
            with contextlib.suppress(OSError):  # never hide the error that got us here
                os.unlink(partial)
            raise
        os.replace(partial, path)


def _moment(raw: str) -> datetime:
    """An ISO date (midnight UTC) or date and time (UTC unless it says otherwise)."""
    moment = parse_datetime(raw)
    if moment is None:
        day = parse_date(raw)
        if day is None:
            raise ArgumentTypeError(f"not an ISO date or date and time: {raw}")
        moment = datetime.combine(day, time())
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
