"""Anthropic's Messages API (Claude), streamed through the official SDK."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import cast

import anthropic
from anthropic.types import MessageParam
from anthropic.types import Usage as AnthropicUsage

from conversations.providers import errors
from conversations.providers.base import (
    ChatTurn,
    StreamResult,
    Thinking,
    TurnFile,
    Usage,
    turn_text,
)
from conversations.providers.text import DeltaCleaner

DEFAULT_MODEL = "claude-sonnet-4-5"

# Anthropic's stop reasons in the words the OpenAI-compatible provider stores.
_FINISH_REASONS = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length"}


class AnthropicProvider:
    name = "anthropic"
    # Not sent: the Messages API of this SDK takes no temperature (it is the model's own).
    temperature: float | None = None

    def __init__(
        self,
        *,
        model: str,
        api_key: str,
        base_url: str = "",
        max_tokens: int = 4096,
        thinking_budget: int = 0,
        connect_timeout: float = 10,
        read_timeout: float = 60,
    ) -> None:
        self.model = model or DEFAULT_MODEL
        self.label = self.model
        self.max_tokens = max_tokens
        self.thinking_budget = thinking_budget
        self._api_key = api_key
        self.client = anthropic.AsyncAnthropic(
            # Always a key of ours: with none, the SDK would look for credentials of its own
            # (other environment variables, profiles on disk). A proxy may need no key.
            api_key=api_key or "not-needed",
            base_url=base_url or None,
            # No retries in the SDK: generation.py retries (see openai_compatible.py).
            max_retries=0,
            timeout=anthropic.Timeout(read_timeout, connect=connect_timeout),
        )

    async def stream(self, turns: list[ChatTurn], result: StreamResult) -> AsyncGenerator[str]:
        system, messages = to_messages(turns)
        try:
            response = await self.client.messages.create(
                model=self.model,
                max_tokens=self.max_tokens,
                messages=messages,
                stream=True,
                system=system or anthropic.omit,
                thinking=(
                    {"type": "enabled", "budget_tokens": self.thinking_budget}
                    if self.thinking_budget
                    else anthropic.omit
                ),
            )
        except anthropic.APIStatusError as exc:
            error = errors.status_error(exc.status_code, exc.message, exc.response.headers)
            raise errors.redacted(error, self._api_key) from exc
        except anthropic.APIConnectionError as exc:
            raise errors.unreachable(exc) from exc
        cleaner, thoughts = DeltaCleaner(), DeltaCleaner()  # a surrogate pair split in each
        try:
            async for event in response:
                text = ""
                if event.type == "message_start":
                    _record_input(result.usage, event.message.usage)
                elif event.type == "content_block_start" and event.content_block.type == "text":
                    text = event.content_block.text
                elif event.type == "content_block_delta" and event.delta.type == "text_delta":
                    text = event.delta.text
                elif event.type == "content_block_delta" and event.delta.type == "thinking_delta":
                    # Extended thinking: shown apart from the answer, never sent back.
                    if thought := thoughts.feed(event.delta.thinking):
                        yield Thinking(thought)
                # Other deltas are neither: signature_delta (the thinking block's
                # signature, which only matters when it is sent back), input_json_delta
                # (tools), citations_delta.
                elif event.type == "message_delta":
                    result.usage.completion_tokens = event.usage.output_tokens  # cumulative
                    if event.delta.stop_reason:
                        result.usage.finish_reason = finish_reason(event.delta.stop_reason)
                if text and (text := cleaner.feed(text)):
                    yield text
            if thought := thoughts.flush():
                yield Thinking(thought)
            if text := cleaner.flush():
                yield text
        except anthropic.APIError as exc:  # includes an `error` event in the stream
            raise errors.broke_off(exc) from exc
        finally:
            await response.close()


def to_messages(turns: list[ChatTurn]) -> tuple[str, list[MessageParam]]:
    """The system prompt, and the turns as the API takes them.

    Anthropic has no system role in `messages`: system turns become the `system` parameter.
    The messages must alternate and start with the user: turns of one role in a row (a
    question whose failed answer is left out of the context) are joined, and an assistant
    turn at the start (the context cut off at CHAT_CONTEXT_MESSAGES) is left out.
    """
    system = "\n\n".join(t.content for t in turns if t.role == "system" and t.content)
    joined: list[tuple[str, str, list[TurnFile]]] = []
    for turn in turns:
        if turn.role not in ("user", "assistant") or not (turn.content or turn.files):
            continue
        if turn.role == "assistant" and not joined:
            continue
        text = turn_text(turn)
        if joined and joined[-1][0] == turn.role:
            role, before, images = joined[-1]
            joined[-1] = (role, "\n\n".join(t for t in (before, text) if t), images + turn.images)
        else:
            joined.append((turn.role, text, turn.images))
    # The SDK types the role as a Literal; these are the two it takes.
    return system, [
        cast(MessageParam, {"role": role, "content": _content(text, images)})
        for role, text, images in joined
    ]


def _content(text: str, images: list[TurnFile]) -> str | list[dict[str, object]]:
    """A turn's text, or, with images, its image blocks (base64 sources) then the text."""
    if not images:
        return text
    blocks: list[dict[str, object]] = [
        {
            "type": "image",
            "source": {"type": "base64", "media_type": f.content_type, "data": f.base64()},
        }
        for f in images
    ]
    if text:  # the API refuses an empty text block (a message of images alone)
        blocks.append({"type": "text", "text": text})
    return blocks


def finish_reason(stop_reason: str) -> str:
    # Cut to the column's length (30): a stop reason added later must not fail the write.
    return _FINISH_REASONS.get(stop_reason, stop_reason)[:30]


def _record_input(usage: Usage, reported: AnthropicUsage) -> None:
    # The prompt's tokens in all, as OpenAI counts them: Anthropic counts what was read
    # from or written to its prompt cache apart.
    usage.prompt_tokens = (
        (reported.input_tokens or 0)
        + (reported.cache_creation_input_tokens or 0)
        + (reported.cache_read_input_tokens or 0)
    )
