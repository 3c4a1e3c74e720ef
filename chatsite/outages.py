"""One warning when a dependency (Redis) starts failing, one line when it answers again.

A streaming answer retries its Redis writes every frame: logging each failure wrote
thousands of tracebacks in a few seconds of outage and buried everything else.
"""

from __future__ import annotations

import logging
import time


class Outage:
    """The state of one dependency as one caller sees it: failing since when, or fine."""

    def __init__(self, what: str, logger: logging.Logger) -> None:
        self.what = what
        self.log = logger
        self.since: float | None = None
        self.failures = 0

    @property
    def ongoing(self) -> bool:
        return self.since is not None

    def failed(self, **extra: object) -> None:
        """Call from an `except` block: the first failure is logged with its traceback."""
        self.failures += 1
        if self.since is None:
            self.since = time.monotonic()
            self.log.warning(f"{self.what} failed; retrying", exc_info=True, extra=extra)

    def recovered(self) -> None:
        if self.since is not None:
            seconds = round(time.monotonic() - self.since, 1)
            self.log.warning(
                f"{self.what} works again",
                extra={"outage_seconds": seconds, "failures": self.failures},
            )
            self.since, self.failures = None, 0
