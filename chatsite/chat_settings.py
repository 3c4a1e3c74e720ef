"""The shape of ``settings.CHAT``: one typed dict, so every reader of a limit or timeout
is checked against its type (django-stubs reads the annotation in settings.py)."""

from typing import TypedDict


class ChatSettings(TypedDict):
    PROVIDER: str  # "demo", "openai", "anthropic" or "paced" (the benchmark)
    MODEL: str
    ENDPOINTS: str  # JSON, see conversations/providers/catalog.py
    MODEL_LIST_TIMEOUT: float
    MODEL_LIST_TTL: float
    MODEL_LIST_RETRY: float
    OPENAI_BASE_URL: str
    OPENAI_API_KEY: str
    ANTHROPIC_BASE_URL: str
    ANTHROPIC_API_KEY: str
    ANTHROPIC_MAX_TOKENS: int
    DEMO_TOKEN_INTERVAL: float
    DEMO_ECHO: bool
    MAX_MESSAGE_CHARS: int
    MODEL_TITLES: bool
    CONTEXT_MESSAGES: int
    CONNECT_TIMEOUT: float
    FIRST_TOKEN_TIMEOUT: float
    IDLE_TIMEOUT: float
    TOTAL_TIMEOUT: float
    RETRY_ATTEMPTS: int
    RETRY_BASE_DELAY: float
    RETRY_MAX_DELAY: float
    CHECKPOINT_SECONDS: float
    TICK_SECONDS: float
    HEARTBEAT_SECONDS: float
    STALE_STREAM_SECONDS: float
    MESSAGES_PER_MINUTE: int
    CONCURRENT_STREAMS: int
    UPLOADS_PER_MINUTE: int
    CONVERSATIONS_PER_PAGE: int
    MESSAGES_PER_PAGE: int
    ATTACHMENT_MAX_BYTES: int
    ATTACHMENTS_PER_MESSAGE: int
    ATTACHMENT_STORAGE_PER_USER: int
    ATTACHMENT_MAX_PIXELS: int
    ATTACHMENT_TEXT_CHARS: int
    ATTACHMENT_UNSENT_HOURS: int
