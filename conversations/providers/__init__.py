"""The providers' interface; `catalog` chooses one per answer, nothing else names a concrete
provider."""

from __future__ import annotations

from conversations.providers import catalog
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


def get_provider() -> Provider:
    """The default model's provider (one instance per process: it holds a connection pool)."""
    choice = catalog.default_choice()
    return catalog.provider_for(choice.endpoint, choice.model)


def set_provider_override(provider: Provider | None) -> None:
    """For tests and benchmarks: every answer is this provider's, whatever model is chosen."""
    catalog.set_override(provider)
