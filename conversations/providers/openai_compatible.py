"""Any OpenAI-compatible server (OpenAI, Ollama, vLLM, llama.cpp, LiteLLM) via the official SDK."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import cast

import openai
from openai.types.chat import ChatCompletionMessageParam

from conversations.providers.base import ChatTurn, ProviderError, StreamResult
from conversations.providers.text import DeltaCleaner


class OpenAICompatibleProvider:
    name = "openai"

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
            )
        except openai.APIStatusError as exc:
            raise self._redacted(_status_error(exc)) from exc
        except openai.APIConnectionError as exc:
            raise ProviderError(
                f"connection failed: {type(exc).__name__}",
                user_message="Could not reach the model server.",
                retryable=True,
            ) from exc
        cleaner = DeltaCleaner()
        try:
            async for chunk in response:
                if chunk.usage is not None:
                    result.usage.prompt_tokens = chunk.usage.prompt_tokens
                    result.usage.completion_tokens = chunk.usage.completion_tokens
                for choice in chunk.choices:
                    if choice.finish_reason:
                        result.usage.finish_reason = choice.finish_reason
                    content = choice.delta.content if choice.delta else None
                    if content and (text := cleaner.feed(content)):
                        yield text
            if text := cleaner.flush():
                yield text
        except openai.APIError as exc:
            raise ProviderError(
                f"stream broke: {type(exc).__name__}",
                user_message="The connection to the model broke off.",
                retryable=True,
            ) from exc
        finally:
            await response.close()

    def _redacted(self, error: ProviderError) -> ProviderError:
        """A server may echo our key in its error body: keep it out of the logs."""
        if self._api_key and len(self._api_key) >= 8:
            error.args = (str(error).replace(self._api_key, "[redacted]"),)
        return error


def _status_error(exc: openai.APIStatusError) -> ProviderError:
    status = exc.status_code
    retry_after = _retry_after(exc)
    if status == 429:
        wait = f"Try again in {round(retry_after)} s." if retry_after else "Try again in a moment."
        return ProviderError(
            f"rate limited (429): {exc.message}",
            user_message=f"The model is busy (rate limited). {wait}",
            retryable=True,
            retry_after=retry_after,
        )
    if status in (401, 403):
        return ProviderError(
            f"auth failed ({status}): {exc.message}",
            user_message="The model server refused our credentials. Tell the operator.",
        )
    if status >= 500 or status in (408, 409):  # what the SDK itself would retry
        return ProviderError(
            f"server error ({status}): {exc.message}",
            user_message="The model server had an error. Try again.",
            retryable=True,
            retry_after=retry_after,
        )
    return ProviderError(
        f"request rejected ({status}): {exc.message}",
        user_message="The model server rejected the request.",
    )


def _retry_after(exc: openai.APIStatusError) -> float | None:
    """Seconds from retry-after-ms or Retry-After (seconds; an HTTP date is not read)."""
    headers = exc.response.headers if exc.response is not None else {}
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        try:
            if raw := headers.get(name):
                return float(raw) * scale
        except ValueError:
            continue
    return None


def _message(turn: ChatTurn) -> ChatCompletionMessageParam:
    # The SDK types each role's message apart; ChatTurn's role is one of these three.
    return cast(ChatCompletionMessageParam, {"role": turn.role, "content": turn.content})
