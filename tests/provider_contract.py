"""What every provider does alike, whatever its API: the errors it raises (the messages users
see, what is retryable, the server's Retry-After), text mended as it arrives, a stop that
hangs up on the server, the model's reasoning kept apart from its answer.

A provider's test module imports these tests and gives them its fake server's fixtures:
`server`, `make_provider` and `contract` (a `Contract`), and `answering`: the app configured
to answer from that server.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

import pytest

from conversations.models import Message
from conversations.providers import ChatTurn, Provider, ProviderError, StreamResult, Thinking
from tests.streams import read_events, send_data, wait_until_final


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


async def test_reasoning_streams_apart_from_the_answer(server, make_provider, contract):
    thinking = ["Let me ", "think", " \ud83d", "\ude00."]  # an emoji split in two
    server.replies = [contract.reply(reasoning=thinking, deltas=["The answer", "."])]

    deltas, result = await collect(make_provider())

    thought = [delta for delta in deltas if isinstance(delta, Thinking)]
    answer = [delta for delta in deltas if type(delta) is str]
    assert "".join(thought) == "Let me think \U0001f600."  # mended like the answer
    assert answer == ["The answer", "."]
    assert deltas[: len(thought)] == thought  # the thinking came first
    assert result.usage.finish_reason == "stop"


@pytest.mark.django_db(transaction=True)
async def test_reasoning_is_kept_apart_stored_and_never_sent_back(
    alice_async, conversation, server, contract, answering
):
    server.replies = [
        contract.reply(reasoning=["First I <b>weigh</b> ", "it."], deltas=["Forty", "-two."]),
        contract.reply(deltas=["Yes."]),
    ]

    answer = await answer_to(alice_async, conversation, "What is the answer?")

    assert answer.content == "Forty-two."
    assert answer.reasoning == "First I <b>weigh</b> it."
    stream = await alice_async.get(f"/c/{conversation.pk}/m/{answer.pk}/stream")
    done = (await read_events(stream))[-1]
    assert done["event"] == "done"
    assert "First I &lt;b&gt;weigh&lt;/b&gt; it." in done["data"]  # shown, as text
    # The next question's context has the answer, not how the model got there.
    conversation.current_leaf = answer
    await conversation.asave(update_fields=["current_leaf"])
    await Message.objects.filter(pk=answer.pk).aupdate(status=Message.Status.COMPLETE)
    response = await alice_async.post(
        f"/c/{conversation.pk}/messages", send_data("Sure?"), headers={"HX-Request": "true"}
    )
    assert response.status_code == 200
    second = await Message.objects.filter(conversation=conversation, role="assistant").alast()
    assert second is not None
    await wait_until_final(second.pk)
    sent = json.dumps(server.requests[1]["body"])
    assert "Forty-two." in sent
    assert "weigh" not in sent
