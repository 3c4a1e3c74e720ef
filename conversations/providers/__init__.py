"""Chooses the provider from settings; nothing else names a concrete provider."""

from __future__ import annotations

from django.conf import settings

from conversations.providers.base import (
    ChatTurn,
    Provider,
    ProviderError,
    StreamResult,
    Thinking,
    Usage,
)

__all__ = [
    "ChatTurn",
    "Provider",
    "ProviderError",
    "StreamResult",
    "Thinking",
    "Usage",
    "get_provider",
]

_override: Provider | None = None
_configured: Provider | None = None


def get_provider() -> Provider:
    """The provider for new answers (one instance per process: it holds a connection pool)."""
    global _configured
    if _override is not None:
        return _override
    if _configured is None:
        _configured = _build_provider()
    return _configured


def _build_provider() -> Provider:
    chat = settings.CHAT
    timeouts = {
        "connect_timeout": chat["CONNECT_TIMEOUT"],
        # A backstop past our own timeouts (the idle watchdog may look up to 2 s late), so
        # a silent server ends with the reason they give, not "connection broke off".
        "read_timeout": max(chat["FIRST_TOKEN_TIMEOUT"], chat["IDLE_TIMEOUT"]) + 5,
    }
    if chat["PROVIDER"] == "openai":
        from conversations.providers.openai_compatible import OpenAICompatibleProvider

        return OpenAICompatibleProvider(
            model=chat["MODEL"],
            api_key=chat["OPENAI_API_KEY"],
            base_url=chat["OPENAI_BASE_URL"],
            **timeouts,
        )
    if chat["PROVIDER"] == "anthropic":
        from conversations.providers.anthropic_messages import AnthropicProvider

        return AnthropicProvider(
            model=chat["MODEL"],
            api_key=chat["ANTHROPIC_API_KEY"],
            base_url=chat["ANTHROPIC_BASE_URL"],
            max_tokens=chat["ANTHROPIC_MAX_TOKENS"],
            **timeouts,
        )
    if chat["PROVIDER"] == "paced":  # the benchmark's numbered tokens (bench/)
        from conversations.providers.paced import PacedProvider

        return PacedProvider(model=chat["MODEL"], token_interval=chat["DEMO_TOKEN_INTERVAL"])
    from conversations.providers.demo import DemoProvider

    return DemoProvider(model=chat["MODEL"], token_interval=chat["DEMO_TOKEN_INTERVAL"])


def set_provider_override(provider: Provider | None) -> None:
    """For tests and benchmarks: use this provider instead of the configured one."""
    global _override
    _override = provider
