"""What every provider does alike, whatever its API: the errors it raises (the messages users
see, what is retryable, the server's Retry-After), text mended as it arrives, a stop that
hangs up on the server.

A provider's test module imports these tests and gives them its fake server's fixtures:
`server`, `make_provider` and `contract` (a `Contract`).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest

from conversations.models import Message
from conversations.providers import ChatTurn, Provider, ProviderError, StreamResult
from tests.streams import send_data, wait_until_final


@dataclass(frozen=True)
class Contract:
    reply: type  # the fake server's scripted reply
    api_key: str  # the provider's key, which no error may show
    unreachable_url: str  # a base URL where nothing listens


TURNS = [ChatTurn("system", "Be brief."), ChatTurn("user", "Say hello")]


async def answer_to(client, conversation, text: str = "Say hello") -> Message:
    """Send `text` through the app and wait for the answer's final state."""
    response = await client.post(
        f"/c/{conversation.pk}/messages", send_data(text), headers={"HX-Request": "true"}
    )
    assert response.status_code == 200, response.content
    answer = await Message.objects.aget(conversation=conversation, role="assistant")
    return await wait_until_final(answer.pk)


async def collect(provider: Provider, into: list[str] | None = None, turns: list[ChatTurn] = TURNS):
    """Read the whole stream; `into` keeps the deltas that arrived before an error."""
    deltas = [] if into is None else into
    result = StreamResult()
    async for delta in provider.stream(turns, result):
        deltas.append(delta)
    return deltas, result


@pytest.mark.parametrize(
    ("status", "user_message"),
    [
        (400, "The model server rejected the request."),
        (404, "The model server rejected the request."),
        (401, "The model server refused our credentials. Tell the operator."),
        (403, "The model server refused our credentials. Tell the operator."),
    ],
)
async def test_client_errors_fail_at_once_with_a_safe_message(
    server, make_provider, contract, status, user_message
):
    # Real servers echo (part of) the key back in the error; it must stay out of what users see.
    server.replies = [
        contract.reply(status=status, error=f"Incorrect API key provided: {contract.api_key}")
    ]

    with pytest.raises(ProviderError) as caught:
        await collect(make_provider())

    assert caught.value.user_message == user_message
    assert f"({status})" in str(caught.value)
    assert contract.api_key not in str(caught.value)  # nor in the log line made from it
    assert not caught.value.retryable
    assert len(server.requests) == 1  # the SDK does not retry: generation.py decides


async def test_closing_the_stream_early_hangs_up_on_the_server(server, make_provider, contract):
    server.replies = [contract.reply(deltas=["tick"] * 500, pause=0.01)]
    stream = make_provider().stream(TURNS, StreamResult())

    assert await anext(stream) == "tick"
    await stream.aclose()  # what a stop does

    for _ in range(500):  # the server notices on its next writes
        if server.disconnects:
            break
        await asyncio.sleep(0.01)
    assert server.disconnects == 1


async def test_connection_dropped_mid_stream_is_a_retryable_error(server, make_provider, contract):
    server.replies = [contract.reply(deltas=["partial", " text", " never"], break_after=2)]
    received: list[str] = []

    with pytest.raises(ProviderError) as caught:
        await collect(make_provider(), into=received)

    assert received == ["partial", " text"]
    assert caught.value.retryable
    assert caught.value.user_message == "The connection to the model broke off."


@pytest.mark.parametrize(
    ("headers", "seconds", "wait"),
    [
        ({"Retry-After": "7"}, 7.0, "Try again in 7 s."),
        ({"retry-after-ms": "2500"}, 2.5, "Try again in 2 s."),
        ({}, None, "Try again in a moment."),
    ],
)
async def test_rate_limit_carries_the_servers_retry_after(
    server, make_provider, contract, headers, seconds, wait
):
    server.replies = [contract.reply(status=429, error="Slow down", headers=headers)]

    with pytest.raises(ProviderError) as caught:
        await collect(make_provider())

    assert caught.value.retry_after == seconds
    assert caught.value.retryable
    assert caught.value.user_message == f"The model is busy (rate limited). {wait}"
    assert len(server.requests) == 1


@pytest.mark.parametrize("status", [408, 409, 500, 503, 529])  # 529: Anthropic's overloaded
async def test_server_errors_are_retryable_with_a_safe_message(
    server, make_provider, contract, status
):
    server.replies = [
        contract.reply(status=status, error="upstream exploded", headers={"retry-after-ms": "250"})
    ]

    with pytest.raises(ProviderError) as caught:
        await collect(make_provider())

    assert len(server.requests) == 1  # one request: the retries are generation.py's
    assert caught.value.retryable
    assert caught.value.retry_after == 0.25
    assert caught.value.user_message == "The model server had an error. Try again."
    assert "exploded" not in caught.value.user_message


async def test_text_that_cannot_be_stored_is_mended_as_it_arrives(server, make_provider, contract):
    # An emoji split across two chunks (as JSON escapes), a lone half, a NUL, a last half.
    server.replies = [
        contract.reply(deltas=["Hi ", "\ud83d", "\ude00 there", "x\udc00", "\x00!", "\ud83d"])
    ]

    deltas, _ = await collect(make_provider())

    assert "".join(deltas) == "Hi \U0001f600 therex\ufffd\ufffd!\ufffd"
    assert all(delta.encode("utf-8") for delta in deltas)  # none left that UTF-8 refuses


async def test_unreachable_server_is_a_retryable_error(make_provider, contract):
    with pytest.raises(ProviderError) as caught:
        await collect(make_provider(base_url=contract.unreachable_url))

    assert caught.value.retryable
    assert caught.value.user_message == "Could not reach the model server."
