"""Any OpenAI-compatible server (OpenAI, Ollama, vLLM, llama.cpp, LiteLLM) via the official SDK."""

from __future__ import annotations

from collections.abc import AsyncIterator

import openai

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
        max_retries: int = 2,
    ) -> None:
        self.model = model or "gpt-4o-mini"
        self.label = self.model
        self._api_key = api_key
        self.client = openai.AsyncOpenAI(
            api_key=api_key or "not-needed",
            base_url=base_url or None,
            max_retries=max_retries,
            timeout=openai.Timeout(read_timeout, connect=connect_timeout),
        )

    async def stream(self, turns: list[ChatTurn], result: StreamResult) -> AsyncIterator[str]:
        try:
            response = await self.client.chat.completions.create(
                model=self.model,
                messages=[{"role": t.role, "content": t.content} for t in turns],
                stream=True,
                stream_options={"include_usage": True},
            )
        except openai.APIStatusError as exc:
            raise self._redacted(_status_error(exc)) from exc
        except openai.APIConnectionError as exc:
            # Not retryable: the SDK already retried it (connection errors, 408/409/429/5xx,
            # with backoff and Retry-After). Ours retries only what the SDK cannot: a stream
            # that broke before its first token.
            raise ProviderError(
                f"connection failed: {type(exc).__name__}",
                user_message="Could not reach the model server.",
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
            retry_after=retry_after,
        )
    if status in (401, 403):
        return ProviderError(
            f"auth failed ({status}): {exc.message}",
            user_message="The model server refused our credentials. Tell the operator.",
        )
    if status >= 500:
        return ProviderError(
            f"server error ({status}): {exc.message}",
            user_message="The model server had an error. Try again.",
        )
    return ProviderError(
        f"request rejected ({status}): {exc.message}",
        user_message="The model server rejected the request.",
    )


def _retry_after(exc: openai.APIStatusError) -> float | None:
    raw = exc.response.headers.get("retry-after") if exc.response is not None else None
    try:
        return float(raw) if raw else None
    except ValueError:
        return None
