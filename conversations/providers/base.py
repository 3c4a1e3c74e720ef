"""The Provider protocol: an async generator of text deltas, and the errors it may raise."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Protocol


class Thinking(str):
    """A delta of the model's reasoning (its "thinking"), not of the answer.

    Providers yield these beside plain `str` answer deltas; the generation keeps them apart
    (LiveStream.think) and they are never sent back to the model as context. A subclass, so
    the answer's deltas stay plain strings and the token loop tells them apart with one
    identity check.
    """

    __slots__ = ()


@dataclass(frozen=True)
class ChatTurn:
    role: str  # "system" | "user" | "assistant"
    content: str


@dataclass
class Usage:
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str = ""


@dataclass
class StreamResult:
    """Filled in by the provider while it streams; read by the generator at the end."""

    usage: Usage = field(default_factory=Usage)


class ProviderError(Exception):
    """A failure talking to the model.

    `user_message` is safe to show; the exception text may hold details for the log only.
    `retryable` is true when trying again may help (and nothing was streamed yet).
    """

    def __init__(
        self,
        detail: str,
        *,
        user_message: str = "The model could not answer.",
        retryable: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(detail)
        self.user_message = user_message
        self.retryable = retryable
        self.retry_after = retry_after


class Provider(Protocol):
    name: str
    label: str  # shown in the UI
    model: str
    temperature: float | None  # None: the model's own default

    def stream(self, turns: list[ChatTurn], result: StreamResult) -> AsyncGenerator[str]:
        """Yield text deltas (`Thinking` for reasoning). Cancellation (aclose) must stop the
        upstream request."""
        ...
