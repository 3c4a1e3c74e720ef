"""Send, stream, persist: the flow of one message."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async

from conversations.models import Message
from conversations.services import sync
from conversations.streaming import generation, reading
from conversations.streaming.runtime import get_runtime
from tests.fakes import Delta, Hang, Sleep, fatal, words
from tests.streams import (
    offset_of,
    read_events,
    send_data,
    shown_html,
    shown_text,
    wait_until_final,
)

pytestmark = pytest.mark.django_db(transaction=True)


async def post_message(client, conversation, **data):
    return await client.post(
        f"/c/{conversation.pk}/messages", send_data(**data), headers={"HX-Request": "true"}
    )


async def test_answer_streams_token_events_in_order_then_done(alice_async, conversation, provider):
    # Far enough apart that a busy machine's ticker does not fold them into one frame.
    provider.scripts = [words("one two three four", pause=0.1)]
    response = await post_message(alice_async, conversation, content="Count to four")
    assert response.status_code == 200
    assistant = await Message.objects.aget(conversation=conversation, role="assistant")

    stream = await alice_async.get(f"/c/{conversation.pk}/m/{assistant.pk}/stream")
    assert stream["Content-Type"] == "text/event-stream"
    assert stream["Cache-Control"] == "no-cache"
    assert stream["X-Accel-Buffering"] == "no"
    events = await read_events(stream)

    kinds = [e["event"] for e in events]
    assert kinds[-1] == "done"
    assert kinds.count("token") >= 2, kinds  # incremental, not all at once
    text = shown_text(events)
    assert text == "one two three four"
    ids = [offset_of(e) for e in events]
    assert ids == sorted(ids) and ids[-1] == len("one two three four")

    saved = await Message.objects.aget(pk=assistant.pk)
    assert saved.status == Message.Status.COMPLETE
    assert saved.content == "one two three four"
    assert "one two three four" in events[-1]["data"]


async def test_closing_the_stream_mid_answer_still_persists_the_full_answer(
    alice_async, conversation, provider
):
    provider.scripts = [words("a slow answer that keeps going", pause=0.05)]
    await post_message(alice_async, conversation)
    assistant = await Message.objects.aget(conversation=conversation, role="assistant")

    stream = await alice_async.get(f"/c/{conversation.pk}/m/{assistant.pk}/stream")
    first = await read_events(stream, limit=2)  # read a little, then go away
    assert first
    await stream.streaming_content.aclose()

    saved = await wait_until_final(assistant.pk)
    assert saved.status == Message.Status.COMPLETE
    assert saved.content == "a slow answer that keeps going"


async def test_generation_does_not_need_any_reader(alice_async, conversation, provider):
    await post_message(alice_async, conversation, content="Nobody listens")
    assistant = await Message.objects.aget(conversation=conversation, role="assistant")
    saved = await wait_until_final(assistant.pk)
    assert saved.content == "Hello **there**, how can I help?"


async def test_finished_message_streams_a_single_done_at_once(alice_async, conversation, provider):
    await post_message(alice_async, conversation)
    assistant = await Message.objects.aget(conversation=conversation, role="assistant")
    await wait_until_final(assistant.pk)

    events = await read_events(
        await alice_async.get(f"/c/{conversation.pk}/m/{assistant.pk}/stream")
    )
    assert [e["event"] for e in events] == ["done"]
    assert "<strong>there</strong>" in events[0]["data"]


async def test_token_text_is_html_escaped_on_the_wire(alice_async, conversation, provider):
    provider.scripts = [[Delta("<img src=x onerror=alert(1)>"), Sleep(0.05), Delta(" & done")]]
    await post_message(alice_async, conversation)
    assistant = await Message.objects.aget(conversation=conversation, role="assistant")
    events = await read_events(
        await alice_async.get(f"/c/{conversation.pk}/m/{assistant.pk}/stream")
    )
    streamed = [e["data"] for e in events if e["event"] in ("snapshot", "token")]
    assert streamed and all("<img" not in data for data in streamed)
    assert "&lt;img" in "".join(streamed)
    assert "<img" not in events[-1]["data"]


async def test_multiline_tokens_survive_the_wire(alice_async, conversation, provider):
    provider.scripts = [[Delta("line one\n\nline"), Sleep(0.03), Delta(" two\r\nthree")]]
    await post_message(alice_async, conversation)
    assistant = await Message.objects.aget(conversation=conversation, role="assistant")
    events = await read_events(
        await alice_async.get(f"/c/{conversation.pk}/m/{assistant.pk}/stream")
    )
    # The finished paragraph as HTML, the open one as text, its CR intact.
    assert shown_html(events).startswith("<p>line one</p>")
    assert shown_text(events).endswith("line two\r\nthree")


async def test_a_streamed_markdown_answer_ends_as_a_reload_renders_it(
    alice_async, conversation, provider
):
    """`done` reuses the blocks the stream rendered: the bubble it swaps in must be the
    bubble a reload shows, to the byte."""
    answer = (
        "# Plan\n\n- one\n- **two**\n\n```python\nx = 1\n```\n\n"
        "| a | b |\n|---|---|\n| 1 | 2 |\n\nEnd"
    )
    provider.scripts = [words(answer, pause=0.01)]
    await post_message(alice_async, conversation)
    assistant = await Message.objects.aget(conversation=conversation, role="assistant")
    events = await read_events(
        await alice_async.get(f"/c/{conversation.pk}/m/{assistant.pk}/stream")
    )
    assert any(e["event"] == "blocks" for e in events)
    done = events[-1]
    assert done["event"] == "done"
    page = (await alice_async.get(f"/c/{conversation.pk}/")).content.decode()
    body = done["data"].split('<div class="msg-body markdown">', 1)[1].split("</div>", 1)[0]
    assert "<h1>Plan</h1>" in body and "<table>" in body and "tok-" in body
    assert f'<div class="msg-body markdown">{body}</div>' in page


async def test_a_finished_answer_shows_its_model_tokens_and_speed(
    alice_async, conversation, provider
):
    provider.scripts = [[Sleep(0.2), *words("one two three four", pause=0.05)]]
    await post_message(alice_async, conversation)
    assistant = await Message.objects.aget(conversation=conversation, role="assistant")
    events = await read_events(
        await alice_async.get(f"/c/{conversation.pk}/m/{assistant.pk}/stream")
    )
    saved = await Message.objects.aget(pk=assistant.pk)
    assert 200 <= saved.first_token_ms < saved.duration_ms
    assert saved.completion_tokens == 4
    for html in (events[-1]["data"], (await alice_async.get(f"/c/{conversation.pk}/")).content):
        usage = str(html).split('<p class="msg-usage">', 1)[1].split("</p>", 1)[0]
        assert "fake-model" in usage and "4 out" in usage
        assert f"first token {saved.first_token_ms / 1000:.1f} s" in usage
        assert f"{saved.tokens_per_second:.0f} tokens/s" in usage


async def test_an_answer_that_never_started_shows_no_timings(alice_async, conversation, provider):
    provider.scripts = [[fatal()]]
    await post_message(alice_async, conversation)
    assistant = await wait_until_final(
        (await Message.objects.aget(conversation=conversation, role="assistant")).pk
    )
    assert assistant.status == Message.Status.ERROR
    assert assistant.first_token_ms is None and assistant.tokens_per_second is None
    page = (await alice_async.get(f"/c/{conversation.pk}/")).content.decode()
    assert "first token" not in page and "tokens/s" not in page


async def test_reader_without_last_event_id_gets_a_snapshot_then_live_tokens(
    alice_async, conversation, provider
):
    provider.scripts = [[Delta("first part"), Sleep(0.3), Delta(" second part")]]
    await post_message(alice_async, conversation)
    assistant = await Message.objects.aget(conversation=conversation, role="assistant")
    await asyncio.sleep(0.1)  # the first part is out; a page reload happens now

    events = await read_events(
        await alice_async.get(f"/c/{conversation.pk}/m/{assistant.pk}/stream")
    )
    assert events[0]["event"] == "snapshot"
    assert shown_text(events[:1]) == "first part" and events[0]["id"] == "10.0"
    assert [e["event"] for e in events[1:]] == ["token", "done"]
    assert events[1]["data"] == " second part"


async def test_reconnect_with_last_event_id_continues_exactly(alice_async, conversation, provider):
    text = "alpha beta gamma delta epsilon zeta"
    provider.scripts = [words(text, pause=0.04)]
    await post_message(alice_async, conversation)
    assistant = await Message.objects.aget(conversation=conversation, role="assistant")
    url = f"/c/{conversation.pk}/m/{assistant.pk}/stream"

    first = await alice_async.get(url)
    head = await read_events(first, limit=2)
    await first.streaming_content.aclose()
    received = shown_text(head)
    last_id = head[-1]["id"]
    assert offset_of(head[-1]) == len(received)

    second = await alice_async.get(url, headers={"Last-Event-ID": last_id})
    rest = await read_events(second)
    assert all(e["event"] != "snapshot" for e in rest)
    # No repeated and no missing characters: the tail comes back whole, then grows.
    assert shown_text(rest, shown_html(head)) == text


async def test_orphaned_live_message_is_marked_interrupted_not_left_spinning(
    alice_async, conversation, settings
):
    settings.REDIS_URL = ""
    await Message.objects.acreate(conversation=conversation, seq=1, role="user", content="hi")
    orphan = await Message.objects.acreate(
        conversation=conversation, seq=2, role="assistant", status="streaming", content="half"
    )
    events = await read_events(await alice_async.get(f"/c/{conversation.pk}/m/{orphan.pk}/stream"))
    assert events[-1]["event"] == "done"
    assert "Interrupted" in events[-1]["data"] and "Retry" in events[-1]["data"]
    saved = await Message.objects.aget(pk=orphan.pk)
    assert saved.status == Message.Status.INTERRUPTED and saved.content == "half"


@pytest.fixture
async def streams_open_when_other_tabs_hear(monkeypatch) -> list[set[str]]:
    """The answers this process streams at each moment other tabs are told of new messages."""
    hub = get_runtime().hub  # the test's loop: the server's
    seen: list[set[str]] = []
    tell = sync._send

    def spy(user_id: object, event: dict[str, str]) -> None:
        if event["type"] == "sync.messages":
            seen.append(set(hub.streams))
        tell(user_id, event)

    monkeypatch.setattr(sync, "_send", spy)
    return seen


async def test_other_tabs_hear_of_a_new_answer_only_once_it_streams(
    alice_async, conversation, provider, settings, streams_open_when_other_tabs_hear
):
    """A tab told first could ask for the stream before it existed: in one process the answer
    was taken for an orphan and marked interrupted under its generator."""
    settings.REDIS_URL = ""
    provider.scripts = [words("first answer"), words("second answer")]
    await post_message(alice_async, conversation)
    answer = await Message.objects.aget(conversation=conversation, role="assistant")
    await wait_until_final(answer.pk)
    retried = await alice_async.post(
        f"/c/{conversation.pk}/m/{answer.pk}/retry", headers={"HX-Request": "true"}
    )
    assert retried.status_code == 200
    second = await Message.objects.filter(conversation=conversation).alatest("seq")

    told = streams_open_when_other_tabs_hear
    assert len(told) == 2
    assert str(answer.pk) in told[0] and str(second.pk) in told[1]
    assert (await wait_until_final(second.pk)).content == "second answer"


async def test_an_answer_whose_generation_cannot_start_ends_in_an_error_to_retry(
    alice_async, conversation, provider, monkeypatch, streams_open_when_other_tabs_hear
):
    async def server_stopping(message: Message) -> None:
        raise RuntimeError("event loop is closed")

    monkeypatch.setattr(generation, "_launch", server_stopping)
    response = await post_message(alice_async, conversation)

    assert response.status_code == 200  # the question is stored: it shows as sent
    answer = await Message.objects.aget(conversation=conversation, role="assistant")
    assert answer.status == Message.Status.ERROR and answer.is_retryable
    assert answer.error == generation.NOT_STARTED_MESSAGE and answer.error_id
    assert len(streams_open_when_other_tabs_hear) == 1  # other tabs are still told


async def test_a_reader_faster_than_the_generations_start_is_not_taken_for_an_orphan(
    alice_async, conversation, provider, settings
):
    """A reader can find a live answer in the instant between its send's commit and its
    launch (a page loaded then): a stream request in that moment used to mark the answer
    interrupted."""
    settings.REDIS_URL = ""
    provider.scripts = [words("made it after all")]
    await Message.objects.acreate(conversation=conversation, seq=1, role="user", content="hi")
    created = await Message.objects.acreate(
        conversation=conversation, seq=2, role="assistant", status="streaming"
    )
    answer = await Message.objects.select_related("conversation").aget(pk=created.pk)
    url = f"/c/{conversation.pk}/m/{answer.pk}/stream"

    async def follow() -> list[dict[str, str]]:
        return await read_events(await alice_async.get(url))

    reading = asyncio.ensure_future(follow())
    await asyncio.sleep(0.2)  # the stream request is in before the generation starts

    generation.launch_generation(answer)
    events = await reading

    assert events[-1]["event"] == "done" and "made it after all" in events[-1]["data"]
    assert (await wait_until_final(answer.pk)).status == Message.Status.COMPLETE


async def test_heartbeat_comments_keep_a_quiet_stream_open(
    alice_async, conversation, provider, settings
):
    settings.CHAT = {**settings.CHAT, "HEARTBEAT_SECONDS": 0.1, "FIRST_TOKEN_TIMEOUT": 0.5}
    provider.scripts = [[Hang()]]
    await post_message(alice_async, conversation)
    assistant = await Message.objects.aget(conversation=conversation, role="assistant")
    response = await alice_async.get(f"/c/{conversation.pk}/m/{assistant.pk}/stream")
    raw = ""
    async for chunk in response.streaming_content:
        raw += chunk.decode() if isinstance(chunk, bytes) else chunk
    assert ": ping" in raw
    assert "event: error" in raw  # the hang ends as a timeout error, never a spinner


async def test_checkpoints_save_partial_text_while_streaming(alice_async, conversation, provider):
    provider.scripts = [[Delta("partial"), Sleep(0.5), Delta(" rest"), Sleep(0.5)]]
    await post_message(alice_async, conversation)
    assistant = await Message.objects.aget(conversation=conversation, role="assistant")
    await asyncio.sleep(0.35)  # past one checkpoint interval (0.2 s in tests)
    # The checkpoint happens on the next delta after the interval; wait for it.
    await asyncio.sleep(0.4)
    midway = await Message.objects.aget(pk=assistant.pk)
    assert midway.status == Message.Status.STREAMING
    assert midway.content.startswith("partial")
    final = await wait_until_final(assistant.pk)
    assert final.content == "partial rest"


async def test_a_checkpoint_batch_never_overwrites_a_finished_answer(conversation):
    """Checkpoints are written in one statement per batch; an answer whose final write
    landed first keeps its final text."""
    from conversations.streaming.checkpoints import write_checkpoints

    live = [
        await Message.objects.acreate(
            conversation=conversation, seq=seq, role="assistant", status="streaming"
        )
        for seq in (1, 2)
    ]
    done = await Message.objects.acreate(
        conversation=conversation, seq=3, role="assistant", status="complete", content="final"
    )
    texts = {str(m.pk): (f"partial {m.seq}", "") for m in [*live, done]}
    await sync_to_async(write_checkpoints)(texts)

    saved = {m.seq: m async for m in Message.objects.filter(conversation=conversation)}
    assert {seq: m.content for seq, m in saved.items()} == {
        1: "partial 1",
        2: "partial 2",
        3: "final",
    }
    assert saved[1].updated_at > live[0].updated_at  # the recovery sweep reads this
    assert saved[3].updated_at == done.updated_at


async def test_first_message_names_the_conversation_on_the_page(alice_async, alice, provider):
    from conversations.models import Conversation

    conversation = await Conversation.objects.acreate(owner=alice)
    response = await post_message(alice_async, conversation, content="Plan a trip to Lisbon")
    body = response.content.decode()
    assert 'id="chat-title" hx-swap-oob="true"' in body
    assert "Plan a trip to Lisbon" in body
    second = await post_message(alice_async, conversation, content="And Porto?")
    assert "hx-swap-oob" not in second.content.decode()
    await conversation.arefresh_from_db()
    assert conversation.title == "Plan a trip to Lisbon"


async def test_hidden_live_answer_streams_no_text(alice_async, conversation, provider):
    provider.scripts = [[Delta("something a moderator hid"), Sleep(0.5), Delta(" and more")]]
    await post_message(alice_async, conversation)
    assistant = await Message.objects.aget(conversation=conversation, role="assistant")
    await Message.objects.filter(pk=assistant.pk).aupdate(hidden=True)
    events = await read_events(
        await alice_async.get(f"/c/{conversation.pk}/m/{assistant.pk}/stream")
    )
    assert [e["event"] for e in events] == ["done"]
    assert "moderator hid" not in events[0]["data"]
    assert "Hidden by a moderator" in events[0]["data"]


async def test_deleting_a_conversation_stops_its_answers(alice_async, conversation, provider):
    provider.scripts = [[Delta("Started"), Sleep(5), Delta(" NEVER SENT")]]
    await post_message(alice_async, conversation)
    assistant = await Message.objects.aget(conversation=conversation, role="assistant")
    stream = await alice_async.get(f"/c/{conversation.pk}/m/{assistant.pk}/stream")
    reader = asyncio.ensure_future(read_events(stream))
    await asyncio.sleep(0.1)

    response = await alice_async.post(f"/c/{conversation.pk}/delete")
    assert response.status_code == 302
    events = await asyncio.wait_for(reader, 3)
    assert events[-1] == {"event": "done", "id": "0", "data": ""}  # the bubble goes away
    assert provider.closed == 1 and provider.yielded == 1  # the model was hung up on
    assert not await Message.objects.filter(pk=assistant.pk).aexists()


def test_a_long_answer_keeps_a_compact_buffer_and_resumes_from_any_offset():
    """Thousands of deltas (a long answer) cost their text, not an object each; a reader
    resuming anywhere still gets exactly what follows."""
    from conversations.streaming.hub import COMPACT_AT, LiveStream

    stream = LiveStream(message_id="long")
    deltas = [f" t{index}" for index in range(5000)] + ["", "\n", " 🚀"]
    for delta in deltas:
        stream.append(delta)
    text = "".join(deltas)

    assert stream.text == text and stream.length == len(text)
    assert len(stream.chunks) <= COMPACT_AT
    for offset in (0, 1, 7, len(text) // 3, len(text) - 3, len(text) - 1, len(text)):
        assert stream.read_from(offset) == text[offset:]


async def test_every_reader_of_an_answer_ends_on_the_bubble_a_later_reader_reads(
    alice_async, conversation, provider, monkeypatch
):
    """The generator renders a complete answer's bubble once, with its final write, for the
    readers following it (two tabs); a reader who comes after it ended reads the saved
    message: all three end on the same bubble, to the byte."""
    provider.scripts = [words("- one\n- **two**\n\nEnd", pause=0.05)]
    await post_message(alice_async, conversation)
    assistant = await Message.objects.aget(conversation=conversation, role="assistant")
    url = f"/c/{conversation.pk}/m/{assistant.pk}/stream"
    reads = []
    read = reading.final_event
    monkeypatch.setattr(reading, "final_event", lambda *a, **k: reads.append(a) or read(*a, **k))
    tabs = await asyncio.gather(*(alice_async.get(url) for _ in range(2)))
    following = await asyncio.gather(*(read_events(tab) for tab in tabs))
    later = await read_events(await alice_async.get(url))
    finals = [events[-1] for events in (*following, later)]
    assert [final["event"] for final in finals] == ["done"] * 3
    assert finals[0]["data"] == finals[1]["data"] == later[-1]["data"]
    assert "<strong>two</strong>" in later[-1]["data"]
    assert "status-complete" in later[-1]["data"] and "aria-busy" not in later[-1]["data"]
    assert len(reads) == 1  # the later reader's: the two who followed it read nothing


async def test_a_regenerated_answer_ends_on_a_bubble_with_its_versions(
    alice_async, conversation, provider
):
    provider.scripts = [words("first answer"), words("second answer", pause=0.05)]
    await post_message(alice_async, conversation)
    first = await wait_until_final(
        (await Message.objects.aget(conversation=conversation, role="assistant")).pk
    )
    await alice_async.post(
        f"/c/{conversation.pk}/m/{first.pk}/retry", headers={"HX-Request": "true"}
    )
    second = await Message.objects.filter(conversation=conversation).alatest("seq")
    events = await read_events(await alice_async.get(f"/c/{conversation.pk}/m/{second.pk}/stream"))
    assert events[-1]["event"] == "done"
    assert "second answer" in events[-1]["data"]
    assert "2 / 2" in events[-1]["data"]  # the version switcher, as a reload shows it


async def test_a_stop_that_comes_while_the_answer_is_written_leaves_its_bubble_to_the_database(
    alice_async, conversation, provider
):
    """A moderator's hide stops an answer; if it ends at that instant, the bubble its
    generator rendered (with the text) is dropped, and readers read the hidden one."""
    stream = get_runtime().hub.open("0" * 32)
    stream.task = asyncio.get_running_loop().create_future()  # generated here
    stream.finishing = True
    stream.final_event = "event: done\ndata: the text\n\n"
    try:
        assert get_runtime().stop_here(stream.message_id)
        assert stream.final_event is None and stream.stop_requested
    finally:
        stream.task.cancel()
        get_runtime().hub.close(stream)
