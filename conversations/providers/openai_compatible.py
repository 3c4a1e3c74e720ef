"""Any OpenAI-compatible server (OpenAI, Ollama, vLLM, llama.cpp, LiteLLM) via the official SDK."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import cast

import openai
from openai.types.chat import ChatCompletionMessageParam

from conversations.providers import errors
from conversations.providers.base import ChatTurn, StreamResult, Thinking, turn_text
from conversations.providers.text import DeltaCleaner


class OpenAICompatibleProvider:
    name = "openai"
    temperature: float | None = None

    def __init__(
        self,
        *,
        model: str,
        api_key: str,
        base_url: str = "",
        connect_timeout: float = 10,
        read_timeout: float = 60,
    ) -> None:
        self.model = model or "gpt-4o-mini"
        self.label = self.model
        self._api_key = api_key
        self.client = openai.AsyncOpenAI(
            api_key=api_key or "not-needed",
            base_url=base_url or None,
            # The SDK does not retry: generation.py does, CHAT_RETRY_ATTEMPTS times, with our
            # backoff and the server's Retry-After. Two retry loops multiplied the attempts
            # (5 configured, 3 more inside each), and the SDK's waits ran inside the
            # first-token timeout, which then took the blame for a rate limit.
            max_retries=0,
            timeout=openai.Timeout(read_timeout, connect=connect_timeout),
        )

    async def stream(self, turns: list[ChatTurn], result: StreamResult) -> AsyncGenerator[str]:
        try:
            response = await self.client.chat.completions.create(
                model=self.model,
                messages=[_message(t) for t in turns],
                stream=True,
                stream_options={"include_usage": True},
                temperature=openai.omit if self.temperature is None else self.temperature,
            )
        except openai.APIStatusError as exc:
            headers = exc.response.headers if exc.response is not None else {}
            error = errors.status_error(exc.status_code, exc.message, headers)
            raise errors.redacted(error, self._api_key) from exc
        except openai.APIConnectionError as exc:
            raise errors.unreachable(exc) from exc
        cleaner, thoughts = DeltaCleaner(), DeltaCleaner()  # a surrogate pair split in each
        try:
            async for chunk in response:
                if chunk.usage is not None:
                    result.usage.prompt_tokens = chunk.usage.prompt_tokens
                    result.usage.completion_tokens = chunk.usage.completion_tokens
                for choice in chunk.choices:
                    if choice.finish_reason:
                        result.usage.finish_reason = choice.finish_reason
                    if (delta := choice.delta) is None:
                        continue
                    # Reasoning is not in the SDK's types: vLLM, DeepSeek and Ollama send it
                    # as an extra field, `reasoning_content` (or, some, `reasoning`).
                    extra = delta.model_extra
                    if extra and (thought := thoughts.feed(_reasoning(extra))):
                        yield Thinking(thought)
                    if delta.content and (text := cleaner.feed(delta.content)):
                        yield text
            if thought := thoughts.flush():
                yield Thinking(thought)
            if text := cleaner.flush():
                yield text
        except openai.APIError as exc:
            raise errors.broke_off(exc) from exc
        finally:
            await response.close()


def _reasoning(extra: dict[str, object]) -> str:
    reasoning = extra.get("reasoning_content") or extra.get("reasoning")
    return reasoning if isinstance(reasoning, str) else ""


def _message(turn: ChatTurn) -> ChatCompletionMessageParam:
    # The SDK types each role's message apart; ChatTurn's role is one of these three.
    text = turn_text(turn)
    if not turn.images:
        return cast(ChatCompletionMessageParam, {"role": turn.role, "content": text})
    # Images as content parts (a data URL: no URL of ours is fetched by the server).
    parts: list[dict[str, object]] = [{"type": "text", "text": text}] if text else []
    parts += [{"type": "image_url", "image_url": {"url": f.data_url()}} for f in turn.images]
    return cast(ChatCompletionMessageParam, {"role": turn.role, "content": parts})
