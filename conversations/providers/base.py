"""The Provider protocol: an async generator of text deltas, and the errors it may raise."""

from __future__ import annotations

import base64
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
class TurnFile:
    """A file sent with a turn: an image's bytes (sent as an image part, to models that
    take them), or a document's text (plain text, Markdown, CSV, code, a PDF's text),
    which goes into the turn's text (`turn_text`)."""

    name: str
    content_type: str
    size: int
    kind: str  # "image" | "text" | "pdf"
    data: bytes = field(default=b"", repr=False)
    text: str = field(default="", repr=False)

    @property
    def is_image(self) -> bool:
        return self.kind == "image"

    def data_url(self) -> str:
        return f"data:{self.content_type};base64,{self.base64()}"

    def base64(self) -> str:
        return base64.b64encode(self.data).decode("ascii")


@dataclass(frozen=True)
class ChatTurn:
    role: str  # "system" | "user" | "assistant"
    content: str
    files: tuple[TurnFile, ...] = ()

    @property
    def images(self) -> list[TurnFile]:
        return [f for f in self.files if f.is_image]


def turn_text(turn: ChatTurn) -> str:
    """The turn's text with its documents after it, each under a line naming it."""
    documents = [f for f in turn.files if not f.is_image]
    if not documents:
        return turn.content
    parts = [turn.content] if turn.content else []
    for document in documents:
        parts.append(f"[Attached file: {document.name} ({document.content_type})]\n{document.text}")
    return "\n\n".join(parts)


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
