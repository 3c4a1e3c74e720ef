"""The Anthropic provider against a real HTTP server on localhost.

The server (tests/upstreams.py) speaks the Messages API's streaming format: named SSE events
(message_start, ping, content_block_start/delta/stop for thinking and text blocks,
message_delta with the stop reason and usage, message_stop, and `error` events) over chunked
HTTP/1.1, so the official SDK runs unmodified. Each test states the server's replies.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from conversations import providers
from conversations.models import Message
from conversations.providers import ChatTurn, ProviderError, set_provider_override
from conversations.providers.anthropic_messages import (
    DEFAULT_MODEL,
    AnthropicProvider,
    to_messages,
)
from conversations.streaming import generation

# The tests every provider passes alike, run here against this provider's fake server.
from tests.provider_contract import (  # noqa: F401
    Contract,
    answer_to,
    collect,
    test_client_errors_fail_at_once_with_a_safe_message,
    test_closing_the_stream_early_hangs_up_on_the_server,
    test_connection_dropped_mid_stream_is_a_retryable_error,
    test_rate_limit_carries_the_servers_retry_after,
    test_reasoning_is_kept_apart_stored_and_never_sent_back,
    test_reasoning_streams_apart_from_the_answer,
    test_server_errors_are_retryable_with_a_safe_message,
    test_text_that_cannot_be_stored_is_mended_as_it_arrives,
    test_unreachable_server_is_a_retryable_error,
)
from tests.servers import free_port
from tests.streams import read_events
from tests.upstreams import ScriptedReply, ScriptedServer

API_KEY = "sk-ant-test-DO-NOT-LEAK-93be1c0d7f"
MODEL = "claude-test-1"


def event(name: str, **data: object) -> bytes:
    return f"event: {name}\ndata: {json.dumps({'type': name, **data})}\n\n".encode()


@dataclass
class Reply(ScriptedReply):
    """One scripted answer of the fake server, in the Messages API's event format."""

    stop_reason: str = "end_turn"
    cache: tuple[int, int] = (0, 0)  # prompt tokens written to, read from the prompt cache
    error_event_after: int | None = None  # an `error` event after this many deltas
    error_type: str = "overloaded_error"

    @property
    def lead(self) -> int:
        thinking = 3 + len(self.reasoning) if self.reasoning else 0  # start, deltas, sig, stop
        return 2 + thinking + 1  # message_start, ping, (thinking), the text block's start

    def error_body(self) -> dict:
        kind = {401: "authentication_error", 429: "rate_limit_error"}.get(self.status, "api_error")
        return {
            "type": "error",
            "error": {"type": kind, "message": self.error or "failed"},
            "request_id": "req_fake",
        }

    def frames(self) -> Iterator[bytes]:
        prompt, completion = self.usage
        written, read = self.cache
        usage = {"input_tokens": prompt, "output_tokens": 1}
        if self.cache != (0, 0):
            usage |= {"cache_creation_input_tokens": written, "cache_read_input_tokens": read}
        message = {
            "id": "msg_fake",
            "type": "message",
            "role": "assistant",
            "model": MODEL,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage,
        }
        yield event("message_start", message=message)
        yield event("ping")
        index = 0
        if self.reasoning:  # a thinking block before the text
            yield event(
                "content_block_start",
                index=0,
                content_block={"type": "thinking", "thinking": "", "signature": ""},
            )
            for text in self.reasoning:
                yield event(
                    "content_block_delta",
                    index=0,
                    delta={"type": "thinking_delta", "thinking": text},
                )
            yield event(
                "content_block_delta",
                index=0,
                delta={"type": "signature_delta", "signature": "EqQBCgIYAhIM"},
            )
            yield event("content_block_stop", index=0)
            index = 1
        yield event("content_block_start", index=index, content_block={"type": "text", "text": ""})
        for sent, text in enumerate(self.deltas):
            if sent == self.error_event_after:
                yield self._error_event()
                return
            yield event(
                "content_block_delta", index=index, delta={"type": "text_delta", "text": text}
            )
        if self.error_event_after == len(self.deltas):
            yield self._error_event()
            return
        yield event("content_block_stop", index=index)
        yield event(
            "message_delta",
            delta={"stop_reason": self.stop_reason, "stop_sequence": None},
            usage={"output_tokens": completion},
        )
        yield event("message_stop")

    def _error_event(self) -> bytes:
        return event(
            "error", error={"type": self.error_type, "message": self.error or "Overloaded"}
        )


class FakeAnthropicServer(ScriptedServer):
    def __init__(self) -> None:
        super().__init__(Reply(deltas=["Hello"]))

    @property
    def url(self) -> str:
        return self.origin  # the SDK adds /v1/messages


@pytest.fixture
def server():
    fake = FakeAnthropicServer()
    yield fake
    fake.close()


@pytest.fixture
async def make_provider(server):
    made: list[AnthropicProvider] = []

    def make(*, base_url: str | None = None, read_timeout: float = 5) -> AnthropicProvider:
        provider = AnthropicProvider(
            model=MODEL,
            api_key=API_KEY,
            base_url=base_url or server.url,
            max_tokens=1234,
            connect_timeout=2,
            read_timeout=read_timeout,
        )
        made.append(provider)
        return provider

    yield make
    for provider in made:
        await provider.client.close()


@pytest.fixture
def contract():
    return Contract(reply=Reply, api_key=API_KEY, unreachable_url=f"http://127.0.0.1:{free_port()}")


# ---- the provider on its own ----------------------------------------------------------


async def test_stream_yields_the_text_deltas_in_order_and_records_usage(server, make_provider):
    server.replies = [Reply(deltas=["Hel", "lo", " there", "!"], usage=(21, 4))]

    deltas, result = await collect(make_provider())

    assert deltas == ["Hel", "lo", " there", "!"]
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (21, 4)
    assert result.usage.finish_reason == "stop"
    [request] = server.requests
    assert request["path"] == "/v1/messages"
    headers = request["headers"]  # the key as x-api-key, or (newer SDKs) a bearer token
    assert API_KEY in (headers.get("x-api-key"), headers.get("authorization", "")[7:])
    assert request["headers"]["anthropic-version"]
    assert request["body"]["model"] == MODEL
    assert request["body"]["stream"] is True
    assert request["body"]["max_tokens"] == 1234
    # The system prompt is a parameter of its own: the API has no system role in messages.
    assert request["body"]["system"] == "Be brief."
    assert request["body"]["messages"] == [{"role": "user", "content": "Say hello"}]


async def test_no_system_prompt_sends_no_system_parameter(server, make_provider):
    await collect(make_provider(), turns=[ChatTurn("user", "Hi")])

    assert "system" not in server.requests[0]["body"]


async def test_prompt_tokens_include_the_prompt_cache(server, make_provider):
    server.replies = [Reply(deltas=["ok"], usage=(10, 2), cache=(100, 1000))]

    _, result = await collect(make_provider())

    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (1110, 2)


@pytest.mark.parametrize(
    ("stop_reason", "finish_reason"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("refusal", "refusal"),
        ("model_context_window_exceeded", "model_context_window_exceeded"),
    ],
)
async def test_stop_reasons_are_stored_in_the_openai_words(
    server, make_provider, stop_reason, finish_reason
):
    server.replies = [Reply(deltas=["Hi"], stop_reason=stop_reason)]

    _, result = await collect(make_provider())

    assert result.usage.finish_reason == finish_reason


async def test_the_conversation_is_sent_as_valid_alternating_messages(server, make_provider):
    turns = [
        ChatTurn("system", "Be brief."),
        ChatTurn("assistant", "an answer whose question is before the context window"),
        ChatTurn("user", "First question"),
        ChatTurn("user", "Asked again (the answer before failed)"),
        ChatTurn("assistant", "An answer"),
        ChatTurn("user", "Thanks"),
    ]

    await collect(make_provider(), turns=turns)

    body = server.requests[0]["body"]
    assert body["system"] == "Be brief."
    assert body["messages"] == [
        {"role": "user", "content": "First question\n\nAsked again (the answer before failed)"},
        {"role": "assistant", "content": "An answer"},
        {"role": "user", "content": "Thanks"},
    ]


def test_system_turns_join_into_one_system_prompt_and_empty_turns_are_left_out():
    system, messages = to_messages(
        [
            ChatTurn("system", "One."),
            ChatTurn("user", ""),
            ChatTurn("system", "Two."),
            ChatTurn("user", "Hi"),
        ]
    )

    assert system == "One.\n\nTwo."
    assert messages == [{"role": "user", "content": "Hi"}]


@pytest.mark.parametrize("after", [0, 2])
async def test_an_error_event_in_the_stream_is_a_broken_stream(server, make_provider, after):
    server.replies = [
        Reply(
            deltas=["partial", " text", " never"],
            error_event_after=after,
            error=f"Overloaded (key {API_KEY})",
        )
    ]
    received: list[str] = []

    with pytest.raises(ProviderError) as caught:
        await collect(make_provider(), into=received)

    assert received == ["partial", " text"][:after]
    assert caught.value.retryable  # generation.py retries it only if nothing was streamed
    assert caught.value.user_message == "The connection to the model broke off."
    assert API_KEY not in str(caught.value)


async def test_a_server_that_does_not_answer_in_time_is_unreachable(server, make_provider):
    server.replies = [Reply(deltas=["late"], stall=3)]

    with pytest.raises(ProviderError) as caught:
        await collect(make_provider(read_timeout=0.5))

    assert caught.value.retryable
    assert caught.value.user_message == "Could not reach the model server."
    assert "Timeout" in str(caught.value)


async def test_a_stream_that_goes_silent_times_out_as_broken(server, make_provider):
    server.replies = [Reply(deltas=["so far", " so good", " never"], hang_after=2)]
    received: list[str] = []

    with pytest.raises(ProviderError) as caught:
        await collect(make_provider(read_timeout=0.5), into=received)

    assert received == ["so far", " so good"]
    assert caught.value.user_message == "The connection to the model broke off."


def test_the_model_defaults_when_none_is_configured():
    provider = AnthropicProvider(model="", api_key=API_KEY)

    assert (provider.name, provider.model, provider.label) == (
        "anthropic",
        DEFAULT_MODEL,
        DEFAULT_MODEL,
    )


# ---- through the whole app -----------------------------------------------------------


@pytest.fixture
def anthropic_app(settings, server, monkeypatch):
    """The app configured, as settings build it, for the fake Anthropic server."""
    settings.CHAT = {
        **settings.CHAT,
        "PROVIDER": "anthropic",
        "ANTHROPIC_API_KEY": API_KEY,
        "ANTHROPIC_BASE_URL": server.url,
        "ANTHROPIC_MAX_TOKENS": 777,
        "MODEL": MODEL,
    }
    set_provider_override(None)


@pytest.fixture
async def configured(anthropic_app):
    provider = providers.get_provider()
    assert isinstance(provider, AnthropicProvider)
    yield provider
    await provider.client.close()


@pytest.fixture
def answering(configured):
    """For the contract's tests through the app."""
    return configured


@pytest.mark.django_db(transaction=True)
async def test_sent_message_is_answered_by_the_anthropic_server(
    alice_async, conversation, server, configured
):
    conversation.system_prompt = "Answer like a pirate."
    await conversation.asave(update_fields=["system_prompt"])
    server.replies = [Reply(reasoning=["hmm"], deltas=["Hello", " from", " Claude."], usage=(9, 4))]

    answer = await answer_to(alice_async, conversation, "Greet me")

    assert answer.status == Message.Status.COMPLETE
    assert answer.content == "Hello from Claude."
    assert (answer.prompt_tokens, answer.completion_tokens) == (9, 4)
    assert answer.finish_reason == "stop"
    assert (answer.provider, answer.model) == ("anthropic", MODEL)
    body = server.requests[0]["body"]
    assert body["system"] == "Answer like a pirate."
    assert body["messages"] == [{"role": "user", "content": "Greet me"}]
    assert body["max_tokens"] == 777
    page = await alice_async.get(f"/c/{conversation.pk}/")
    stream = await alice_async.get(f"/c/{conversation.pk}/m/{answer.pk}/stream")
    shown = page.content.decode() + json.dumps(await read_events(stream), ensure_ascii=False)
    assert "Hello from Claude." in shown and MODEL in shown
    assert API_KEY not in shown and server.url not in shown


@pytest.mark.django_db(transaction=True)
async def test_an_overloaded_server_is_retried_before_the_first_token(
    alice_async, conversation, server, configured
):
    server.replies = [
        Reply(status=529, error="Overloaded", headers={"retry-after-ms": "1"}),
        Reply(deltas=["ok"], error_event_after=0),  # overloaded_error as the stream starts
        Reply(deltas=["made", " it"]),
    ]

    answer = await answer_to(alice_async, conversation)

    assert answer.content == "made it"
    assert answer.status == Message.Status.COMPLETE
    assert len(server.requests) == 3


@pytest.mark.django_db(transaction=True)
async def test_an_error_event_after_some_text_ends_as_error_with_the_text_kept(
    alice_async, conversation, server, configured
):
    server.replies = [Reply(deltas=["The answer", " is", " forty"], error_event_after=2)]

    answer = await answer_to(alice_async, conversation)

    assert answer.status == Message.Status.ERROR
    assert answer.content == "The answer is"
    assert answer.error == "The connection to the model broke off."
    assert len(server.requests) == 1  # text had streamed: not retried behind the user's back


@pytest.mark.django_db(transaction=True)
async def test_a_hang_mid_stream_is_called_an_idle_timeout(
    alice_async, conversation, server, configured, settings
):
    settings.CHAT = {**settings.CHAT, "FIRST_TOKEN_TIMEOUT": 1, "IDLE_TIMEOUT": 1}
    server.replies = [Reply(deltas=["so far", " so good"], hang_after=2)]

    answer = await answer_to(alice_async, conversation)

    assert answer.content == "so far so good"
    assert answer.error == generation.IDLE_MESSAGE
