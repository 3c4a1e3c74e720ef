"""What a failed upstream request becomes, the same for every provider that talks HTTP.

Each SDK has its own exception classes; the providers turn them into these ProviderErrors,
so the user reads the same words, and generation.py retries the same failures, whichever
model server answers.
"""

from __future__ import annotations

from collections.abc import Mapping

from conversations.providers.base import ProviderError


def status_error(status: int, message: str, headers: Mapping[str, str]) -> ProviderError:
    """An HTTP error status from the model server, with the SDK's message (log only)."""
    retry_after = retry_after_seconds(headers)
    if status == 429:
        wait = f"Try again in {round(retry_after)} s." if retry_after else "Try again in a moment."
        return ProviderError(
            f"rate limited (429): {message}",
            user_message=f"The model is busy (rate limited). {wait}",
            retryable=True,
            retry_after=retry_after,
        )
    if status in (401, 403):
        return ProviderError(
            f"auth failed ({status}): {message}",
            user_message="The model server refused our credentials. Tell the operator.",
        )
    # What the SDKs themselves would retry; Anthropic's 529 (overloaded) is among the 5xx.
    if status >= 500 or status in (408, 409):
        return ProviderError(
            f"server error ({status}): {message}",
            user_message="The model server had an error. Try again.",
            retryable=True,
            retry_after=retry_after,
        )
    return ProviderError(
        f"request rejected ({status}): {message}",
        user_message="The model server rejected the request.",
    )


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """Seconds from retry-after-ms or Retry-After (seconds; an HTTP date is not read)."""
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        try:
            if raw := headers.get(name):
                return float(raw) * scale
        except ValueError:
            continue
    return None


def unreachable(exc: Exception) -> ProviderError:
    """No response: refused, reset or timed out before the server answered."""
    return ProviderError(
        f"connection failed: {type(exc).__name__}",
        user_message="Could not reach the model server.",
        retryable=True,
    )


def broke_off(exc: Exception) -> ProviderError:
    """The stream failed after it had started (dropped, timed out, or an error event)."""
    return ProviderError(
        f"stream broke: {type(exc).__name__}",
        user_message="The connection to the model broke off.",
        retryable=True,
    )


def redacted(error: ProviderError, secret: str) -> ProviderError:
    """A server may echo our key in its error body: keep it out of the logs."""
    if secret and len(secret) >= 8:
        error.args = (str(error).replace(secret, "[redacted]"),)
    return error
