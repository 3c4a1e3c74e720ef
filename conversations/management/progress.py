"""A one-line progress bar for the data commands, drawn on stderr only when it is a terminal
(a pipe or a log file gets nothing but the command's own output)."""

from __future__ import annotations

import time
from typing import TextIO

WIDTH = 30
INTERVAL = 0.2  # seconds between redraws


class Progress:
    def __init__(self, stream: TextIO, *, total: int | None, unit: str, enabled: bool) -> None:
        self.stream = stream
        self.total = total
        self.unit = unit
        self.enabled = enabled
        self.started = time.monotonic()
        self.drawn_at = 0.0

    @classmethod
    def for_terminal(cls, stream: TextIO, *, total: int | None, unit: str) -> Progress:
        isatty = getattr(stream, "isatty", None)
        return cls(stream, total=total, unit=unit, enabled=bool(isatty and isatty()))

    def update(self, done: int) -> None:
        now = time.monotonic()
        if not self.enabled or now - self.drawn_at < INTERVAL:
            return
        self.drawn_at = now
        self.stream.write("\r" + self.line(done, now - self.started))
        self.stream.flush()

    def finish(self, done: int) -> None:
        if self.enabled:
            self.stream.write("\r" + self.line(done, time.monotonic() - self.started) + "\n")
            self.stream.flush()

    def line(self, done: int, elapsed: float) -> str:
        rate = done / elapsed if elapsed > 0 else 0.0
        if self.total:
            filled = min(WIDTH, WIDTH * done // self.total)
            bar = "#" * filled + "-" * (WIDTH - filled)
            return f"[{bar}] {done:,}/{self.total:,} {self.unit} ({rate:,.0f}/s)"
        return f"{done:,} {self.unit} ({rate:,.0f}/s)"
