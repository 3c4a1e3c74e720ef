"""Model text made safe to store and send, as it arrives from an upstream.

A JSON string may carry any UTF-16 code unit as an escape, so a server's delta can hold a lone
surrogate (half of an emoji split across two chunks, or garbage) or a NUL. Neither survives the
trip onward: UTF-8 has no surrogates (the SSE frame, the Redis relay and PostgreSQL all fail
to encode them) and PostgreSQL text has no NUL. One such character failed the whole answer's
checkpoints and final write, so the answer was lost. Here a pair split across deltas is joined
again, and anything else becomes U+FFFD.
"""

from __future__ import annotations

REPLACEMENT = "\ufffd"


class DeltaCleaner:
    """Cleans one answer's deltas in order; holds back a trailing high surrogate until the
    next delta says whether its pair follows."""

    def __init__(self) -> None:
        self._held = ""

    def feed(self, delta: str) -> str:
        text, self._held = self._held + delta, ""
        if text and "\ud800" <= text[-1] <= "\udbff":
            text, self._held = text[:-1], text[-1]
        return clean(text)

    def flush(self) -> str:
        """What is still held back at the end of the answer (a lone half, replaced)."""
        held, self._held = self._held, ""
        return clean(held)


def clean(text: str) -> str:
    if not text.isascii():
        # UTF-16 with surrogatepass pairs up what pairs; what is left alone cannot decode.
        text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return text.replace("\x00", REPLACEMENT) if "\x00" in text else text
