"""The OpenAI-compatible provider against a real HTTP server on localhost.

The server (tests/upstreams.py) speaks the chat completions streaming format (`data: {chunk}`
lines, a usage chunk, `data: [DONE]`) over chunked HTTP/1.1, so the official SDK runs
unmodified: its retries, its SSE decoder, its errors. Each test states the server's replies.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from conversations import providers
from conversations.models import Message
from conversations.providers import (
    Thinking,
    set_provider_override,
)
from conversations.providers.openai_compatible import OpenAICompatibleProvider
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

API_KEY = "sk-test-DO-NOT-LEAK-4f9c2e7a1b"
MODEL = "test-model-7b"


@dataclass
class Reply(ScriptedReply):
    """One scripted answer of the fake server, in the chat completions format."""

    # The extra field reasoning comes in: vLLM's and DeepSeek's, or Ollama's `reasoning`.
    reasoning_field: str = "reasoning_content"

    @property
    def lead(self) -> int:
        return 1 + len(self.reasoning)  # the role chunk, the reasoning's

    def frames(self) -> Iterator[bytes]:
        for data in self.events():
            yield f"data: {data}\n\n".encode()

    def error_body(self) -> dict:
        return {"error": {"message": self.error or "failed", "type": "error", "code": None}}

    def events(self) -> Iterator[str]:
        """The `data:` payloads of a chat completion stream."""

        def chunk(choices: list[dict], usage: dict | None = None) -> str:
            return json.dumps(
                {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion.chunk",
                    "created": 1_700_000_000,
                    "model": MODEL,
                    "choices": choices,
                    "usage": usage,
                }
            )

        yield chunk([{"index": 0, "delta": {"role": "assistant", "content": ""}}])
        for text in self.reasoning:
            delta = {"content": None, self.reasoning_field: text}
            yield chunk([{"index": 0, "delta": delta, "finish_reason": None}])
        for text in self.deltas:
            yield chunk([{"index": 0, "delta": {"content": text}, "finish_reason": None}])
        yield chunk([{"index": 0, "delta": {}, "finish_reason": "stop"}])
        prompt, completion = self.usage
        yield chunk(
            [],
            {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            },
        )
        yield "[DONE]"


class FakeOpenAIServer(ScriptedServer):
    def __init__(self) -> None:
        super().__init__(Reply(deltas=["Hello"]))

    @property
    def url(self) -> str:
        return f"{self.origin}/v1"


@pytest.fixture
def server():
    fake = FakeOpenAIServer()
    yield fake
    fake.close()


@pytest.fixture
async def make_provider(server):
    made: list[OpenAICompatibleProvider] = []

    def make(*, base_url: str | None = None) -> OpenAICompatibleProvider:
        provider = OpenAICompatibleProvider(
            model=MODEL,
            api_key=API_KEY,
            base_url=base_url or server.url,
            connect_timeout=2,
            read_timeout=5,
        )
        made.append(provider)
        return provider

    yield make
    for provider in made:
        await provider.client.close()


@pytest.fixture
def contract():
    return Contract(
        reply=Reply, api_key=API_KEY, unreachable_url=f"http://127.0.0.1:{free_port()}/v1"
    )


# ---- the provider on its own ----------------------------------------------------------


async def test_stream_yields_the_servers_deltas_in_order_and_records_usage(server, make_provider):
    server.replies = [Reply(deltas=["Hel", "lo", " there", "!"], usage=(21, 4))]

    deltas, result = await collect(make_provider())

    assert deltas == ["Hel", "lo", " there", "!"]
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (21, 4)
    assert result.usage.finish_reason == "stop"
    [request] = server.requests
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["authorization"] == f"Bearer {API_KEY}"
    assert request["body"]["model"] == MODEL
    assert request["body"]["stream"] is True
    assert request["body"]["stream_options"] == {"include_usage": True}
    assert request["body"]["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Say hello"},
    ]


async def test_ollamas_reasoning_field_is_reasoning_too(server, make_provider):
    server.replies = [Reply(reasoning=["Hm", "m."], deltas=["Yes."], reasoning_field="reasoning")]

    deltas, _ = await collect(make_provider())

    assert deltas == [Thinking("Hm"), Thinking("m."), "Yes."]
    assert [type(delta) for delta in deltas] == [Thinking, Thinking, str]


# ---- through the whole app -----------------------------------------------------------


@pytest.fixture
def openai_app(settings, make_provider):
    """The app configured for an OpenAI-compatible server: the fake one."""
    settings.CHAT = {**settings.CHAT, "PROVIDER": "openai", "OPENAI_API_KEY": API_KEY}
    set_provider_override(make_provider())


@pytest.fixture
def answering(openai_app):
    """For the contract's tests through the app."""
    return openai_app


async def page_and_stream(client, answer: Message) -> str:
    page = await client.get(f"/c/{answer.conversation_id}/")
    stream = await client.get(f"/c/{answer.conversation_id}/m/{answer.pk}/stream")
    return page.content.decode() + json.dumps(await read_events(stream), ensure_ascii=False)


@pytest.mark.django_db(transaction=True)
async def test_sent_message_is_answered_by_the_openai_compatible_server(
    alice_async, conversation, server, openai_app
):
    server.replies = [Reply(deltas=["Hello", " from", " the", " server."], usage=(9, 4))]

    answer = await answer_to(alice_async, conversation, "Greet me")

    assert answer.status == Message.Status.COMPLETE
    assert answer.content == "Hello from the server."
    assert (answer.prompt_tokens, answer.completion_tokens) == (9, 4)
    assert answer.finish_reason == "stop"
    assert (answer.provider, answer.model) == ("openai", MODEL)
    assert server.requests[0]["body"]["messages"][-1] == {"role": "user", "content": "Greet me"}
    shown = await page_and_stream(alice_async, answer)
    assert "Hello from the server." in shown and MODEL in shown
    assert API_KEY not in shown


@pytest.mark.django_db(transaction=True)
async def test_answer_with_text_postgres_and_utf8_refuse_is_stored_whole(
    alice_async, conversation, server, openai_app
):
    server.replies = [Reply(deltas=["Smile ", "\ud83d", "\ude00", " and \x00 a lone \udc00."])]

    answer = await answer_to(alice_async, conversation)

    assert answer.status == Message.Status.COMPLETE
    assert answer.content == "Smile \U0001f600 and \ufffd a lone \ufffd."
    stream = await alice_async.get(f"/c/{conversation.pk}/m/{answer.pk}/stream")
    assert "Smile \U0001f600" in (await read_events(stream))[-1]["data"]  # the final bubble


@pytest.mark.django_db(transaction=True)
async def test_stream_broken_after_some_text_ends_as_error_with_the_text_kept(
    alice_async, conversation, server, openai_app
):
    server.replies = [Reply(deltas=["The answer", " is", " forty"], break_after=2)]

    answer = await answer_to(alice_async, conversation)

    assert answer.status == Message.Status.ERROR
    assert answer.content == "The answer is"
    assert answer.error == "The connection to the model broke off."
    assert len(server.requests) == 1  # text had streamed: not retried behind the user's back
    shown = await page_and_stream(alice_async, answer)
    assert "The answer is" in shown and "Retry" in shown
    assert API_KEY not in shown


@pytest.mark.django_db(transaction=True)
async def test_rejected_key_is_a_clear_error_that_never_shows_the_key(
    alice_async, conversation, server, openai_app
):
    server.replies = [Reply(status=401, error=f"Incorrect API key provided: {API_KEY}")]

    answer = await answer_to(alice_async, conversation)

    assert answer.status == Message.Status.ERROR
    assert answer.error == "The model server refused our credentials. Tell the operator."
    assert API_KEY not in answer.error + answer.content
    assert API_KEY not in await page_and_stream(alice_async, answer)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("attempts", [1, 5])
async def test_retry_attempts_is_the_number_of_upstream_requests(
    alice_async, conversation, server, openai_app, settings, attempts
):
    settings.CHAT = {**settings.CHAT, "RETRY_ATTEMPTS": attempts}
    server.replies = [Reply(status=503, error="down", headers={"retry-after-ms": "1"})]

    answer = await answer_to(alice_async, conversation)

    assert len(server.requests) == attempts
    assert answer.error == "The model server had an error. Try again."


@pytest.mark.django_db(transaction=True)
async def test_a_rate_limit_is_waited_out_between_attempts(
    alice_async, conversation, server, openai_app, settings
):
    """The Retry-After wait comes between attempts, outside the first-token timeout."""
    settings.CHAT = {**settings.CHAT, "FIRST_TOKEN_TIMEOUT": 0.5, "RETRY_ATTEMPTS": 2}
    server.replies = [
        Reply(status=429, error="Slow down", headers={"Retry-After": "1"}),
        Reply(deltas=["made", " it"]),
    ]

    answer = await answer_to(alice_async, conversation)

    assert answer.content == "made it"
    assert len(server.requests) == 2


@pytest.mark.django_db(transaction=True)
async def test_a_persistent_rate_limit_says_so_not_that_the_model_was_slow(
    alice_async, conversation, server, openai_app, settings
):
    settings.CHAT = {**settings.CHAT, "FIRST_TOKEN_TIMEOUT": 0.3, "RETRY_ATTEMPTS": 2}
    server.replies = [Reply(status=429, error="Slow down", headers={"Retry-After": "0.5"})]

    answer = await answer_to(alice_async, conversation)

    assert answer.error.startswith("The model is busy (rate limited).")


@pytest.mark.django_db(transaction=True)
async def test_a_hang_mid_stream_is_called_an_idle_timeout_with_equal_timeouts(
    alice_async, conversation, server, settings, monkeypatch
):
    """The provider as settings build it: its read timeout is a backstop behind ours."""
    settings.CHAT = {
        **settings.CHAT,
        "PROVIDER": "openai",
        "OPENAI_API_KEY": API_KEY,
        "OPENAI_BASE_URL": server.url,
        "MODEL": MODEL,
        "FIRST_TOKEN_TIMEOUT": 1,
        "IDLE_TIMEOUT": 1,
    }
    server.replies = [Reply(deltas=["so far", " so good"], hang_after=2)]
    try:
        answer = await answer_to(alice_async, conversation)
    finally:
        await providers.get_provider().client.close()

    assert answer.content == "so far so good"
    assert answer.error == generation.IDLE_MESSAGE
