from __future__ import annotations

import gzip
import os
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from conversations.management.progress import Progress
from conversations.services import importing


class Command(BaseCommand):
    help = (
        "Import a JSONL export (docs/export-schema.md): owners matched by email, ids kept (a"
        " second import of the same file creates nothing), one transaction per conversation."
        " Bad lines are reported with their numbers; their conversations are not imported."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", help="the .jsonl (or .jsonl.gz) file, or - for stdin")
        parser.add_argument(
            "--with-files",
            metavar="DIR",
            help="restore the messages' attachments from DIR (export_conversations --with-files)",
        )

    def handle(self, *args, path: str, **options) -> None:
        if options["with_files"] and not os.path.isdir(options["with_files"]):
            raise CommandError(f"no such directory: {options['with_files']}")
        if path == "-":
            stream = sys.stdin.buffer
        else:
            if not os.path.isfile(path):
                raise CommandError(f"no such file: {path}")
            opener = gzip.open if path.endswith(".gz") else open
            stream = opener(path, "rb")
        progress = Progress.for_terminal(
            self.stderr._out,  # type: ignore[arg-type]  # the stream (the stubs say a callable)
            total=None,
            unit="lines",
        )
        try:
            report = importing.import_conversations(
                importing.read_lines(stream),
                progress=progress.update,
                files_dir=Path(options["with_files"]) if options["with_files"] else None,
            )
        except (OSError, EOFError) as exc:  # unreadable file, broken gzip
            raise CommandError(f"could not read {path}: {exc}") from None
        finally:
            if stream is not sys.stdin.buffer:
                stream.close()
        progress.finish(report.lines)
        for error in report.errors:
            self.stderr.write(str(error))
        if report.error_count > len(report.errors):
            self.stderr.write(f"... and {report.error_count - len(report.errors)} more error(s)")
        self.stdout.write(report.summary())
        if report.error_count:
            raise CommandError(f"{report.error_count} line(s) could not be imported")
