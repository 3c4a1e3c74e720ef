"""The model's reasoning ("thinking"): streamed, saved and shown apart from the answer, and
never sent back to the model."""

from __future__ import annotations

import asyncio
import html
import re

import pytest

from conversations.models import Message
from conversations.providers import ChatTurn, StreamResult, Thinking
from conversations.providers.demo import DemoProvider, demo_answer, demo_thinking
from conversations.streaming.runtime import get_runtime
from tests.fakes import Delta, Hang, Sleep, Think, fatal
from tests.streams import read_events, send_data, shown_html, shown_text, wait_until_final

pytestmark = pytest.mark.django_db(transaction=True)

THOUGHT = [Think("First, "), Think("the <question>."), Sleep(0.05), Think(" Then the answer.")]


async def ask(client, conversation, content: str = "Why?") -> Message:
    response = await client.post(
        f"/c/{conversation.pk}/messages", send_data(content), headers={"HX-Request": "true"}
    )
    assert response.status_code == 200, response.content
    return await Message.objects.filter(conversation=conversation, role="assistant").alatest("seq")


def thinking_shown(events: list[dict[str, str]], shown: str = "") -> str:
    """The Thinking section's text after these events, as the page swaps them."""
    for event in events:
        if event["event"] == "thinking-snapshot":
            shown = event["data"]
        elif event["event"] == "thinking":
            shown += event["data"]
    return html.unescape(shown)


def thinking_html(bubble: str) -> str:
    match = re.search(r'<details class="thinking".*?</details>', bubble, re.DOTALL)
    assert match, "no Thinking section"
    return match[0]


async def wait_for(condition, what: str) -> None:
    for _ in range(300):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{what} never happened")


async def test_reasoning_streams_apart_and_is_saved_beside_the_answer(
    alice_async, conversation, provider
):
    provider.scripts = [[*THOUGHT, Delta("Because"), Sleep(0.05), Delta(" **so**.")]]
    answer = await ask(alice_async, conversation)

    events = await read_events(await alice_async.get(f"/c/{conversation.pk}/m/{answer.pk}/stream"))

    assert thinking_shown(events) == "First, the <question>. Then the answer."
    assert "&lt;question&gt;" in "".join(e["data"] for e in events if e["event"] != "done")
    assert shown_text(events) == "Because so."  # the answer has none of the reasoning
    saved = await wait_until_final(answer.pk)
    assert saved.content == "Because **so**."
    assert saved.reasoning == "First, the <question>. Then the answer."
    section = thinking_html(events[-1]["data"])
    assert "<summary>Thinking</summary>" in section and " open" not in section  # collapsed
    assert "First, the &lt;question&gt;. Then the answer." in section  # rendered as text
    assert "<question>" not in events[-1]["data"]
    # The answer's body comes after the section, and has no reasoning in it.
    body = events[-1]["data"].split("</details>", 1)[1]
    assert "Because <strong>so</strong>." in body and "First" not in body


async def test_a_reload_shows_the_same_bubble_as_the_live_end(alice_async, conversation, provider):
    provider.scripts = [[*THOUGHT, Delta("Yes.")]]
    answer = await ask(alice_async, conversation)
    events = await read_events(await alice_async.get(f"/c/{conversation.pk}/m/{answer.pk}/stream"))

    page = (await alice_async.get(f"/c/{conversation.pk}/")).content.decode()

    assert thinking_html(events[-1]["data"]) == thinking_html(page)


async def test_an_answer_without_reasoning_has_no_thinking_section(
    alice_async, conversation, provider
):
    answer = await ask(alice_async, conversation)
    events = await read_events(await alice_async.get(f"/c/{conversation.pk}/m/{answer.pk}/stream"))

    assert not any(e["event"].startswith("thinking") for e in events)
    assert 'class="thinking"' not in events[-1]["data"]
    assert all(e["id"].count(".") <= 1 for e in events)  # the ids as before


async def test_reasoning_is_checkpointed_while_the_model_thinks(
    alice_async, conversation, provider
):
    provider.scripts = [[Think("Still thinking"), Sleep(0.6), Delta("Done.")]]
    answer = await ask(alice_async, conversation)

    await asyncio.sleep(0.45)  # a checkpoint (every 0.2 s in tests) has passed
    midway = await Message.objects.aget(pk=answer.pk)
    assert midway.status == Message.Status.STREAMING
    assert (midway.reasoning, midway.content) == ("Still thinking", "")
    page = (await alice_async.get(f"/c/{conversation.pk}/")).content.decode()
    assert "Still thinking</div>" in thinking_html(page)  # a reload shows it at once
    assert "Thinking…" in thinking_html(page)
    final = await wait_until_final(answer.pk)
    assert (final.reasoning, final.content) == ("Still thinking", "Done.")


async def test_a_reader_joining_mid_thought_gets_both_texts_then_the_rest(
    alice_async, conversation, provider
):
    provider.scripts = [
        [Think("One thought."), Delta("Part"), Sleep(0.3), Think(" Two."), Delta(" whole.")]
    ]
    answer = await ask(alice_async, conversation)
    stream = get_runtime().hub.get(str(answer.pk))
    await wait_for(lambda: stream.length, "the answer's first text")

    events = await read_events(await alice_async.get(f"/c/{conversation.pk}/m/{answer.pk}/stream"))

    assert [e["event"] for e in events[:2]] == ["thinking-snapshot", "snapshot"]
    assert events[1]["id"] == "4.0.12"
    assert thinking_shown(events) == "One thought. Two."
    assert shown_text(events) == "Part whole."


async def test_a_reconnect_resumes_both_texts_exactly(alice_async, conversation, provider):
    thoughts = [step for word in "abcdef" for step in (Think(word), Sleep(0.03))]
    provider.scripts = [[*thoughts, Delta("x"), Sleep(0.03), Delta("y"), Sleep(0.03), Delta("z")]]
    answer = await ask(alice_async, conversation)
    url = f"/c/{conversation.pk}/m/{answer.pk}/stream"

    first = await alice_async.get(url)
    head = await read_events(first, limit=2)
    await first.streaming_content.aclose()
    second = await alice_async.get(url, headers={"Last-Event-ID": head[-1]["id"]})
    rest = await read_events(second)

    assert all(e["event"] not in ("snapshot", "thinking-snapshot") for e in rest)
    assert thinking_shown(rest, thinking_shown(head)) == "abcdef"  # nothing twice, no gap
    assert shown_text(rest, shown_html(head)) == "xyz"


async def test_stop_while_thinking_keeps_the_reasoning(alice_async, conversation, provider):
    provider.scripts = [[Think("Hmm, let me see"), Hang()]]
    answer = await ask(alice_async, conversation)
    stream = get_runtime().hub.get(str(answer.pk))
    await wait_for(lambda: stream.reasoning_length, "the first thought")

    response = await alice_async.post(
        f"/c/{conversation.pk}/m/{answer.pk}/stop", headers={"HX-Request": "true"}
    )

    assert response.status_code == 204
    final = await wait_until_final(answer.pk, timeout=2)
    assert (final.status, final.reasoning, final.content) == ("stopped", "Hmm, let me see", "")
    events = await read_events(await alice_async.get(f"/c/{conversation.pk}/m/{answer.pk}/stream"))
    assert [e["event"] for e in events] == ["done"]
    assert "Stopped" in events[0]["data"] and "Hmm, let me see" in events[0]["data"]


async def test_an_answer_that_only_thought_then_failed_shows_the_error(
    alice_async, conversation, provider
):
    provider.scripts = [[Think("Thinking hard"), fatal("upstream 500", "The model failed.")]]
    answer = await ask(alice_async, conversation)

    final = await wait_until_final(answer.pk)
    events = await read_events(await alice_async.get(f"/c/{conversation.pk}/m/{answer.pk}/stream"))

    assert (final.status, final.reasoning) == ("error", "Thinking hard")
    assert len(provider.calls) == 1  # it had started: no retry
    assert [e["event"] for e in events] == ["error"]
    assert "The model failed." in events[0]["data"] and "Retry" in events[0]["data"]
    assert "Thinking hard" in thinking_html(events[0]["data"])


async def test_long_thinking_is_not_taken_for_a_silent_model(
    alice_async, conversation, provider, settings
):
    settings.CHAT = {**settings.CHAT, "IDLE_TIMEOUT": 0.2}
    thoughts = [step for n in range(8) for step in (Think(f"step {n}. "), Sleep(0.1))]
    provider.scripts = [[Delta("A"), *thoughts, Delta("nswer.")]]
    answer = await ask(alice_async, conversation)

    final = await wait_until_final(answer.pk, timeout=5)

    assert final.status == Message.Status.COMPLETE, final.error
    assert final.content == "Answer."


async def test_reasoning_is_never_sent_back_to_the_model(alice_async, conversation, provider):
    provider.scripts = [[Think("SECRET PLAN"), Delta("Public answer.")], [Delta("Again.")]]
    first = await ask(alice_async, conversation, "One")
    await wait_until_final(first.pk)

    second = await ask(alice_async, conversation, "Two")
    await wait_until_final(second.pk)

    assert provider.calls[1] == [
        ChatTurn("user", "One"),
        ChatTurn("assistant", "Public answer."),
        ChatTurn("user", "Two"),
    ]


async def test_the_demo_thinks_before_answering_a_prompt_that_says_think():
    prompt = "Please think about ordering"
    deltas = [
        d
        async for d in DemoProvider(token_interval=0).stream(
            [ChatTurn("user", prompt)], StreamResult()
        )
    ]

    thought = "".join(d for d in deltas if type(d) is Thinking)
    answer = "".join(d for d in deltas if type(d) is str)
    assert thought == demo_thinking(prompt) and "think" in thought
    assert answer == demo_answer(prompt)
    assert deltas[0].__class__ is Thinking and deltas[-1].__class__ is str
    assert demo_thinking("Tell me about ordering") == ""  # only when asked to
    assert demo_thinking(f"echo: {prompt}", echo=True) == ""  # echo stays verbatim
