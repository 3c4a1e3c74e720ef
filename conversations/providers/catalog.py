"""The models on offer: several endpoints at once, each with its own key and base URL.

An endpoint is one server that answers: OpenAI, a local Ollama or vLLM through the
OpenAI-compatible provider, Anthropic, the offline demo. Its models come from its own model
list (`listing.py`: fetched off the request path, cached, with a short timeout), narrowed by
an allow-list when one is configured. A model is chosen by its id, "<endpoint>/<model>"; an
answer records both halves (`Message.provider`, `Message.model`).

Endpoints are read from `CHAT_ENDPOINTS` (JSON), or, without it, from the single-provider
variables (`CHAT_PROVIDER`, `OPENAI_API_KEY`, `ANTHROPIC_API_KEY`...). Keys stay here: no
page, log line or export is given an Endpoint, only its id, label and model names.
"""

from __future__ import annotations

import copy
import json
import os
import re
import threading
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver

from conversations.providers.base import Provider, ProviderError

KINDS = ("openai", "anthropic", "demo", "paced")
_ENDPOINT_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,49}")
MODEL_ID_MAX = 160  # "<endpoint>/<model>": the columns hold 50 and 100

DEMO_MODELS = ("demo", "demo-mini")
_DEFAULT_MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-sonnet-4-5", "paced": "paced"}
_LABELS = {"openai": "OpenAI", "anthropic": "Anthropic", "demo": "Demo", "paced": "Paced"}


@dataclass(frozen=True)
class Endpoint:
    id: str
    kind: str  # one of KINDS
    label: str
    default_model: str
    api_key: str = field(default="", repr=False)
    base_url: str = ""
    allow: tuple[str, ...] = ()  # the models offered; empty: every model the server lists
    max_tokens: int = 4096  # Anthropic needs a limit on the answer's length
    # Anthropic only: extended thinking with this budget of tokens (0: off), streamed into
    # the answer's "Thinking" section.
    thinking_budget: int = 0
    # Takes images as content parts; None: the kind's default (openai and anthropic do).
    vision: bool | None = None

    @property
    def takes_images(self) -> bool:
        return self.vision if self.vision is not None else self.kind in ("openai", "anthropic")

    @property
    def is_demo(self) -> bool:
        return self.kind in ("demo", "paced")


@dataclass(frozen=True)
class ModelChoice:
    endpoint: str
    model: str
    label: str  # the endpoint's
    available: bool = True

    @property
    def id(self) -> str:
        return f"{self.endpoint}/{self.model}"


@dataclass(frozen=True)
class ModelGroup:
    """One endpoint's models, as the picker shows them."""

    endpoint: str
    label: str
    choices: tuple[ModelChoice, ...]
    listed: bool  # False while the endpoint's model list has not been fetched yet


class UnknownModel(ValueError):
    """A model id that names no model on offer; the message is safe to show."""


# ---------------------------------------------------------------------------------------
# Endpoints, read from settings once per process (and again when a test changes CHAT).

_endpoints: dict[str, Endpoint] | None = None
_providers: dict[str, Provider] = {}
_lock = threading.Lock()
_override: Provider | None = None


def endpoints() -> dict[str, Endpoint]:
    global _endpoints
    if _endpoints is None:
        _endpoints = {e.id: e for e in endpoints_from_settings(settings.CHAT)}
    return _endpoints


def default_endpoint() -> Endpoint:
    return next(iter(endpoints().values()))


def endpoints_from_settings(chat: Any) -> list[Endpoint]:
    """The configured endpoints, the default one first. Bad configuration stops start-up
    with a message that says what to fix (never the key)."""
    raw = chat.get("ENDPOINTS", "")
    if raw:
        found = [_endpoint_from_json(entry) for entry in _json_list(raw)]
    else:
        found = _endpoints_from_single_provider(chat)
    ids = [e.id for e in found]
    if len(set(ids)) != len(ids):
        raise ImproperlyConfigured(f"CHAT_ENDPOINTS: endpoint ids must differ, got {ids}")
    return found


def _json_list(raw: str) -> list[dict[str, Any]]:
    try:
        entries = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ImproperlyConfigured(f"CHAT_ENDPOINTS is not valid JSON: {exc}") from exc
    if not isinstance(entries, list) or not entries:
        raise ImproperlyConfigured("CHAT_ENDPOINTS must be a JSON list of endpoints")
    if not all(isinstance(entry, dict) for entry in entries):
        raise ImproperlyConfigured("CHAT_ENDPOINTS: each endpoint must be a JSON object")
    return entries


def _endpoint_from_json(entry: dict[str, Any]) -> Endpoint:
    known = {"id", "kind", "label", "models", "default_model", "base_url", "api_key_env"}
    known |= {"api_key", "max_tokens", "thinking_budget", "vision"}
    where = f"CHAT_ENDPOINTS[{entry.get('id', '?')!r}]"
    if unknown := sorted(set(entry) - known):
        raise ImproperlyConfigured(f"{where}: unknown keys {unknown}")
    endpoint_id = str(entry.get("id", ""))
    kind = str(entry.get("kind", "openai"))
    if not _ENDPOINT_ID.fullmatch(endpoint_id):
        raise ImproperlyConfigured(f"{where}: id must be lowercase letters, digits, - or _")
    if kind not in KINDS:
        raise ImproperlyConfigured(f"{where}: kind must be one of {', '.join(KINDS)}")
    models = entry.get("models", [])
    if not isinstance(models, list) or not all(isinstance(m, str) and m for m in models):
        raise ImproperlyConfigured(f"{where}: models must be a list of model names")
    key_env = entry.get("api_key_env", "")
    api_key = os.environ.get(key_env, "") if key_env else str(entry.get("api_key", ""))
    default = str(entry.get("default_model") or (models[0] if models else _default_model(kind)))
    if models and default not in models:
        raise ImproperlyConfigured(f"{where}: default_model {default!r} is not in its models")
    vision = entry.get("vision")
    if vision is not None and not isinstance(vision, bool):
        raise ImproperlyConfigured(f"{where}: vision must be true or false")
    return Endpoint(
        id=endpoint_id,
        kind=kind,
        label=str(entry.get("label") or _LABELS[kind]),
        default_model=default,
        api_key=api_key,
        base_url=str(entry.get("base_url", "")),
        allow=tuple(models),
        max_tokens=int(entry.get("max_tokens", 4096)),
        thinking_budget=_thinking_budget(entry, where),
        vision=vision,
    )


def _thinking_budget(entry: dict[str, Any], where: str) -> int:
    budget = entry.get("thinking_budget", 0)
    if not isinstance(budget, int) or isinstance(budget, bool) or budget < 0:
        raise ImproperlyConfigured(f"{where}: thinking_budget must be a whole number of tokens")
    if budget and entry.get("kind") != "anthropic":
        raise ImproperlyConfigured(f"{where}: thinking_budget is for kind anthropic only")
    # The API takes at least 1,024, and fewer than max_tokens.
    if budget and not 1024 <= budget < int(entry.get("max_tokens", 4096)):
        raise ImproperlyConfigured(
            f"{where}: thinking_budget must be 1024 or more, under max_tokens"
        )
    return budget


def _endpoints_from_single_provider(chat: Any) -> list[Endpoint]:
    """Without CHAT_ENDPOINTS: CHAT_PROVIDER's endpoint (with CHAT_MODEL), then any other
    whose key is set, so setting both keys offers both."""
    chosen = chat["PROVIDER"]
    if chosen not in KINDS:
        raise ImproperlyConfigured(f"CHAT_PROVIDER must be one of {', '.join(KINDS)}")
    configured = {
        "openai": bool(chat["OPENAI_API_KEY"] or chat["OPENAI_BASE_URL"]),
        "anthropic": bool(chat["ANTHROPIC_API_KEY"]),
    }
    kinds = [chosen] + [k for k, on in configured.items() if on and k != chosen]
    if chosen in ("demo", "paced"):
        kinds = [chosen]  # the offline modes answer alone: no key of the machine is used
    found = []
    for kind in kinds:
        model = (chat["MODEL"] if kind == chosen else "") or _default_model(kind)
        found.append(
            Endpoint(
                id=kind,
                kind=kind,
                label=_LABELS[kind],
                default_model=model,
                api_key=chat.get(f"{kind.upper()}_API_KEY", ""),
                base_url=chat.get(f"{kind.upper()}_BASE_URL", ""),
                max_tokens=chat["ANTHROPIC_MAX_TOKENS"],
            )
        )
    return found


def _default_model(kind: str) -> str:
    return _DEFAULT_MODELS.get(kind, DEMO_MODELS[0])


# ---------------------------------------------------------------------------------------
# Choosing a model.


def default_choice() -> ModelChoice:
    """What a conversation starts with when its owner chose nothing."""
    if _override is not None:
        return ModelChoice(_override.name, _override.model, _override.label)
    endpoint = default_endpoint()
    return ModelChoice(endpoint.id, endpoint.default_model, endpoint.label)


def parse(model_id: str) -> tuple[Endpoint, str]:
    """The endpoint and model an id names, without asking the endpoint (UnknownModel)."""
    endpoint_id, _, model = (model_id or "").strip().partition("/")
    endpoint = endpoints().get(endpoint_id)
    if not model or len(model_id) > MODEL_ID_MAX or endpoint is None:
        raise UnknownModel(f"Unknown model {_shown(model_id)}: choose one from the list.")
    if endpoint.allow and model not in endpoint.allow:
        raise UnknownModel(f"The model {_shown(model_id)} is not offered here.")
    return endpoint, model


def resolve(model_id: str) -> ModelChoice:
    """The model an id names, if it is on offer and its endpoint answers (UnknownModel).

    For a choice in the picker: asks the endpoint's model list (cached; fetched with a
    short timeout when it is not).
    """
    from conversations.providers import listing

    endpoint, model = parse(model_id)
    listed = listing.models_of(endpoint, wait=True)
    if listed is None:
        raise UnknownModel(
            f"{endpoint.label} does not answer right now: its models are unavailable."
        )
    if model not in listed:
        raise UnknownModel(f"{endpoint.label} has no model {_shown(model)}.")
    return ModelChoice(endpoint.id, model, endpoint.label)


def resolve_for_send(model_id: str) -> ModelChoice:
    """The model a send names (UnknownModel), never waiting on an endpoint: refused only
    when configuration, or a model list already in, says it is not on offer. An endpoint
    that is down gets the send, and its answer the usual error states and retries."""
    from conversations.providers import listing

    endpoint, model = parse(model_id)
    listed = listing.models_of(endpoint, wait=False)
    if listed is not None and model not in listed:
        raise UnknownModel(f"{endpoint.label} has no model {_shown(model)}.")
    return ModelChoice(endpoint.id, model, endpoint.label)


def groups() -> list[ModelGroup]:
    """Every endpoint's models for the picker, from the cached lists (never waits: a list
    not fetched yet is asked for in the background, and its group says so)."""
    from conversations.providers import listing

    found = []
    for endpoint in endpoints().values():
        listed = listing.models_of(endpoint, wait=False)
        state = listing.state_of(endpoint)
        names = endpoint.allow or listed or (endpoint.default_model,)
        up = set(listed or ())
        choices = tuple(
            ModelChoice(endpoint.id, name, endpoint.label, available=name in up) for name in names
        )
        found.append(ModelGroup(endpoint.id, endpoint.label, choices, listed=state != "unknown"))
    return found


def takes_images(endpoint_id: str) -> bool:
    """Whether the endpoint's models see images (the `vision` flag; a test's fake does)."""
    if _override is not None:
        return bool(getattr(_override, "vision", True))
    endpoint = endpoints().get(endpoint_id)
    return endpoint is not None and endpoint.takes_images


def label_of(endpoint_id: str) -> str:
    endpoint = endpoints().get(endpoint_id)
    return endpoint.label if endpoint is not None else endpoint_id


def _shown(text: str) -> str:
    text = (text or "").strip()
    return repr(text if len(text) <= 60 else text[:57] + "...")


# ---------------------------------------------------------------------------------------
# Providers: one per endpoint and process (each holds a connection pool), configured per
# answer with its model and temperature by a shallow copy that shares the pool.


def provider_for(endpoint_id: str, model: str, *, temperature: float | None = None) -> Provider:
    if _override is not None:
        return _override
    base = _providers.get(endpoint_id)
    if base is None:
        endpoint = endpoints().get(endpoint_id)
        if endpoint is None:
            raise ProviderError(
                f"endpoint {endpoint_id!r} is not configured",
                user_message="This model is no longer offered here: choose another one.",
            )
        with _lock:
            base = _providers.get(endpoint_id) or _build(endpoint)
            _providers[endpoint_id] = base
    if base.model == model and temperature is None:
        return base
    configured = copy.copy(base)
    configured.model = model or base.model
    configured.label = configured.model
    configured.temperature = temperature
    return configured


def _build(endpoint: Endpoint) -> Provider:
    chat = settings.CHAT
    timeouts = {
        "connect_timeout": chat["CONNECT_TIMEOUT"],
        # A backstop past our own timeouts (the idle watchdog may look up to 2 s late), so
        # a silent server ends with the reason they give, not "connection broke off".
        "read_timeout": max(chat["FIRST_TOKEN_TIMEOUT"], chat["IDLE_TIMEOUT"]) + 5,
    }
    provider: Provider
    if endpoint.kind == "openai":
        from conversations.providers.openai_compatible import OpenAICompatibleProvider

        provider = OpenAICompatibleProvider(
            model=endpoint.default_model,
            api_key=endpoint.api_key,
            base_url=endpoint.base_url,
            **timeouts,
        )
    elif endpoint.kind == "anthropic":
        from conversations.providers.anthropic_messages import AnthropicProvider

        provider = AnthropicProvider(
            model=endpoint.default_model,
            api_key=endpoint.api_key,
            base_url=endpoint.base_url,
            max_tokens=endpoint.max_tokens,
            thinking_budget=endpoint.thinking_budget,
            **timeouts,
        )
    elif endpoint.kind == "paced":  # the benchmark's numbered tokens (bench/)
        from conversations.providers.paced import PacedProvider

        provider = PacedProvider(
            model=endpoint.default_model, token_interval=chat["DEMO_TOKEN_INTERVAL"]
        )
    else:
        from conversations.providers.demo import DemoProvider

        provider = DemoProvider(
            model=endpoint.default_model, token_interval=chat["DEMO_TOKEN_INTERVAL"]
        )
    provider.name = endpoint.id  # what answers record: the endpoint, not the SDK
    return provider


def set_override(provider: Provider | None) -> None:
    global _override
    _override = provider


@receiver(setting_changed)
def _reset(*, setting: str, **kwargs: object) -> None:
    if setting == "CHAT":
        reset()


def reset() -> None:
    """Forget the endpoints and their providers (settings changed)."""
    global _endpoints
    from conversations.providers import listing

    _endpoints = None
    _providers.clear()
    listing.forget()
