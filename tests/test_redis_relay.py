"""The cross-process relay through Redis Streams (needs the Redis named by REDIS_URL)."""

from __future__ import annotations

import asyncio
import html
import os

import pytest
import redis.asyncio as redis

from conversations.models import Message
from conversations.streaming import redis_relay
from conversations.streaming.runtime import get_runtime
from tests.fakes import words
from tests.streams import (
    OtherProcess,
    live_answer,
    offset_of,
    read_events,
    send_data,
    shown_text,
    view_html,
    wait_until_final,
)

pytestmark = [
    pytest.mark.redis,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="REDIS_URL is not set"),
]


@pytest.fixture
def redis_settings(settings):
    settings.REDIS_URL = os.environ["REDIS_URL"]
    settings.REDIS_PREFIX = f"test-{os.getpid()}"
    return settings


@pytest.fixture
async def redis_client(redis_settings):
    client = redis.from_url(redis_settings.REDIS_URL, decode_responses=True)
    yield client
    await client.aclose()


async def test_generating_process_publishes_each_frame_and_an_end_marker(
    alice_async, conversation, provider, redis_client, redis_settings
):
    provider.scripts = [words("relay 🚀 me — across «processes»", pause=0.03)]
    await alice_async.post(f"/c/{conversation.pk}/messages", send_data("hi"))
    assistant = await Message.objects.aget(conversation=conversation, role="assistant")
    await wait_until_final(assistant.pk)

    entries = await redis_client.xrange(redis_relay.stream_key(str(assistant.pk)))
    texts = [fields["t"] for _, fields in entries if "t" in fields]
    assert "".join(texts) == "relay 🚀 me — across «processes»"
    assert len(texts) > 1  # frame by frame, not all at the end
    assert entries[-1][1] == {"end": "complete"}
    assert 0 < await redis_client.ttl(redis_relay.stream_key(str(assistant.pk))) <= 120


async def test_a_live_answers_stream_expires_even_if_its_generator_dies(
    redis_client, redis_settings
):
    """The expiry is set with the first entry (not renewed every frame)."""
    hub = get_runtime().hub
    relay = get_runtime().relay
    stream = hub.open("dies-midway")
    relay.track(stream)
    for word in ("first", " second", " third"):
        stream.append(word)
        await relay.publish([stream])
        await relay.flush()
    key = redis_relay.stream_key("dies-midway")
    assert await redis_client.xlen(key) == 3
    assert redis_relay.EXPIRE_AFTER_END < await redis_client.ttl(key) <= 3600


@pytest.fixture
async def elsewhere(redis_settings):
    other = OtherProcess()
    yield other
    await other.close()


async def test_other_process_relays_an_answer_it_does_not_generate(
    alice_async, conversation, elsewhere
):
    """Play the generating process by hand, while this process serves the SSE stream."""
    answer = await live_answer(conversation)
    await elsewhere.say(answer.pk, "Hello")
    assert get_runtime().hub.get(str(answer.pk)) is None

    response = await alice_async.get(f"/c/{conversation.pk}/m/{answer.pk}/stream")
    reader = asyncio.ensure_future(read_events(response))
    await asyncio.sleep(0.2)
    await elsewhere.say(answer.pk, " from")
    await asyncio.sleep(0.05)
    await elsewhere.say(answer.pk, " elsewhere <b>")
    await Message.objects.filter(pk=answer.pk).aupdate(
        status="complete", content="Hello from elsewhere <b>"
    )
    await elsewhere.end(answer.pk)
    events = await asyncio.wait_for(reader, 5)

    assert events[0]["event"] == "snapshot" and shown_text(events[:1]) == "Hello"
    assert shown_text(events) == "Hello from elsewhere <b>"
    assert events[-1]["event"] == "done"
    assert [offset_of(e) for e in events] == sorted(offset_of(e) for e in events)


async def test_resume_through_redis_with_last_event_id(alice_async, conversation, elsewhere):
    answer = await live_answer(conversation)
    await elsewhere.say(answer.pk, "abc")
    await elsewhere.say(answer.pk, "def")

    response = await alice_async.get(
        f"/c/{conversation.pk}/m/{answer.pk}/stream", headers={"Last-Event-ID": "4.0"}
    )
    reader = asyncio.ensure_future(read_events(response))
    await asyncio.sleep(0.2)
    await elsewhere.say(answer.pk, "gh")
    await Message.objects.filter(pk=answer.pk).aupdate(status="complete", content="abcdefgh")
    await elsewhere.end(answer.pk)
    events = await asyncio.wait_for(reader, 5)
    # The open tail comes back whole (the page had "abcd" of it), then grows exactly.
    assert events[0]["event"] == "blocks" and events[0]["id"] == "6.0"
    assert shown_text(events[:1], view_html("abcd", answer.pk)) == "abcdef"
    assert events[1] == {"event": "token", "id": "8.0", "data": "gh"}
    assert events[-1]["event"] == "done"


async def test_answer_whose_generator_died_ends_as_interrupted(
    alice_async, conversation, redis_settings
):
    redis_settings.CHAT = {
        **redis_settings.CHAT,
        "HEARTBEAT_SECONDS": 0.1,
        "STALE_STREAM_SECONDS": 0.3,
    }
    answer = await live_answer(conversation, content="so far")
    response = await alice_async.get(f"/c/{conversation.pk}/m/{answer.pk}/stream")
    events = await asyncio.wait_for(read_events(response), 5)
    assert events[-1]["event"] == "done"
    assert "Interrupted" in events[-1]["data"]
    assert get_runtime().hub.get(str(answer.pk)) is None  # the mirror was let go


async def test_mirror_is_let_go_when_its_last_reader_leaves(alice_async, conversation, elsewhere):
    answer = await live_answer(conversation)
    await elsewhere.say(answer.pk, "Hi")
    url = f"/c/{conversation.pk}/m/{answer.pk}/stream"
    # Two tabs follow the answer; closing a tab cancels its request (as the ASGI server does).
    tabs = [asyncio.ensure_future(read_events(await alice_async.get(url))) for _ in range(2)]
    await asyncio.sleep(0.2)
    relay = get_runtime().relay
    assert relay.readers[str(answer.pk)] == 2

    tabs[0].cancel()
    await asyncio.sleep(0.05)
    assert get_runtime().hub.get(str(answer.pk)) is not None  # one reader is still there
    tabs[1].cancel()
    await asyncio.sleep(0.05)
    assert get_runtime().hub.get(str(answer.pk)) is None
    assert str(answer.pk) not in relay.followed


async def test_a_thousand_answers_ending_together_all_get_their_end_marker(
    redis_client, redis_settings
):
    """A burst larger than any connection pool: every end marker is written, after its text."""
    hub = get_runtime().hub
    relay = get_runtime().relay
    streams = [hub.open(f"burst-{n}") for n in range(1000)]
    for stream in streams:
        relay.track(stream)
        stream.append("last words")

    await asyncio.gather(*(relay.publish_end(stream, "complete") for stream in streams))

    for stream in streams[::97]:
        entries = await redis_client.xrange(redis_relay.stream_key(stream.message_id))
        assert [fields for _, fields in entries] == [
            {"o": "0", "t": "last words"},
            {"end": "complete"},
        ]
    pipe = redis_client.pipeline(transaction=False)
    for stream in streams:
        pipe.xrevrange(redis_relay.stream_key(stream.message_id), count=1)
    ended = await pipe.execute()
    assert all(entries[0][1] == {"end": "complete"} for entries in ended)
    assert relay.published == {}


async def test_the_channel_layer_waits_quietly_past_its_blocking_read(redis_settings):
    """An idle listener (stop requests, live sync) must not fail every few seconds."""
    from channels.layers import channel_layers

    layer = channel_layers.make_backend("default")
    channel = await layer.new_channel("idle.")
    blocking = layer.brpop_timeout
    try:
        with pytest.raises(TimeoutError) as waited:
            async with asyncio.timeout(blocking + 1.5):
                await layer.receive(channel)
        assert type(waited.value) is TimeoutError  # asyncio's, not a Redis read timeout
    finally:
        await layer.flush()


async def test_text_whose_write_failed_is_sent_again_without_a_gap(
    redis_client, redis_settings, monkeypatch
):
    from redis.exceptions import ConnectionError as RedisDown

    hub = get_runtime().hub
    relay = get_runtime().relay
    stream = hub.open("flaky-redis")
    relay.track(stream)
    real_evalsha = relay.commands.evalsha
    failures = [RedisDown("Redis went away")]

    async def flaky_evalsha(*args, **kwargs):
        if failures:
            raise failures.pop()
        return await real_evalsha(*args, **kwargs)

    monkeypatch.setattr(relay.commands, "evalsha", flaky_evalsha)
    stream.append("lost?")
    await relay.publish([stream])
    with pytest.raises(RedisDown):
        await relay.flush()
    stream.append(" No.")
    await relay.publish([stream])
    await relay.flush()

    entries = await redis_client.xrange(redis_relay.stream_key("flaky-redis"))
    assert [fields for _, fields in entries] == [{"o": "0", "t": "lost? No."}]


async def test_a_follower_that_missed_frames_catches_up_without_a_gap(
    alice_async, conversation, elsewhere, monkeypatch
):
    """`frames` keeps a bounded history: a follower that lagged past it fetches the rest
    from the answer's own stream."""
    answer = await live_answer(conversation)
    await elsewhere.say(answer.pk, "Hello")
    response = await alice_async.get(f"/c/{conversation.pk}/m/{answer.pk}/stream")
    reader = asyncio.ensure_future(read_events(response))
    await asyncio.sleep(0.2)

    relay = get_runtime().relay
    deliver = relay._deliver
    dropped = []

    def lagging(texts, ends, *thoughts):  # the first round after this is trimmed unread
        if not dropped:
            dropped.append(texts)
            return
        deliver(texts, ends, *thoughts)

    monkeypatch.setattr(relay, "_deliver", lagging)
    await elsewhere.say(answer.pk, " lost")
    await asyncio.sleep(0.2)
    await elsewhere.say(answer.pk, " and found")
    await asyncio.sleep(0.2)
    await Message.objects.filter(pk=answer.pk).aupdate(
        status="complete", content="Hello lost and found"
    )
    await elsewhere.end(answer.pk)
    events = await asyncio.wait_for(reader, 5)

    assert dropped and dropped[0][0][2] == " lost"
    assert shown_text(events) == "Hello lost and found"
    assert [offset_of(e) for e in events] == sorted(offset_of(e) for e in events)
    assert events[-1]["event"] == "done"


async def test_a_growing_mirror_does_not_ask_the_database_on_each_heartbeat(
    alice_async, conversation, elsewhere, monkeypatch, redis_settings
):
    """Only a mirror that went quiet for a whole heartbeat checks that its answer lives."""
    from conversations.streaming import reading

    redis_settings.CHAT = {**redis_settings.CHAT, "HEARTBEAT_SECONDS": 0.1}
    checks = []
    real_still_live = reading.still_live

    async def counted(message_id):
        checks.append(message_id)
        return await real_still_live(message_id)

    monkeypatch.setattr(reading, "still_live", counted)
    answer = await live_answer(conversation)
    await elsewhere.say(answer.pk, "t0")
    response = await alice_async.get(f"/c/{conversation.pk}/m/{answer.pk}/stream")
    reader = asyncio.ensure_future(read_events(response))
    for index in range(1, 41):  # 1 s of tokens: ten heartbeats
        await asyncio.sleep(0.025)
        await elsewhere.say(answer.pk, f" t{index}")
    await Message.objects.filter(pk=answer.pk).aupdate(status="complete", content="done")
    await elsewhere.end(answer.pk)
    events = await asyncio.wait_for(reader, 5)

    assert events[-1]["event"] == "done"
    assert len(checks) <= 4  # not one per heartbeat (that was 10 to 20)


async def test_answers_followed_at_once_share_one_reader(elsewhere, redis_settings, caplog):
    """Two first followers at the same moment: one reader, both mirrors get their text."""
    relay = get_runtime().relay
    first, second = await asyncio.gather(relay.follow("at-once-1"), relay.follow("at-once-2"))
    reader = relay._reader
    await elsewhere.say("at-once-1", "one")
    await elsewhere.say("at-once-2", "two")
    await elsewhere.end("at-once-1")
    await elsewhere.end("at-once-2")
    for _ in range(100):
        if first.finished and second.finished:
            break
        await asyncio.sleep(0.02)

    assert (first.text, second.text) == ("one", "two")
    assert first.finished and second.finished
    assert relay._reader is reader
    assert "redis relay read failed" not in caplog.text


async def test_a_lone_surrogate_in_one_answer_does_not_stop_the_others(
    redis_client, redis_settings
):
    hub = get_runtime().hub
    relay = get_runtime().relay
    broken, fine = hub.open("surrogate-broken"), hub.open("surrogate-fine")
    for stream in (broken, fine):
        relay.track(stream)
    broken.append("bad \ud83d half")
    fine.append("all good")

    await relay.publish([broken, fine])
    await relay.flush()

    entries = await redis_client.xrange(redis_relay.stream_key("surrogate-fine"))
    assert [fields for _, fields in entries] == [{"o": "0", "t": "all good"}]
    entries = await redis_client.xrange(redis_relay.stream_key("surrogate-broken"))
    assert [fields for _, fields in entries] == [{"o": "0", "t": "bad ? half"}]


async def test_a_dead_processs_answer_keeps_what_it_published_and_never_goes_back(
    alice_async, conversation, elsewhere, redis_settings
):
    """kill -9 between two checkpoints: Redis holds more than the database. A reader who
    resumed from Redis must not see the final state take text back."""
    answer = await live_answer(conversation, content="checkpointed")
    await elsewhere.say(answer.pk, "checkpointed")
    await elsewhere.say(answer.pk, " and then some more")  # ...and the process dies
    redis_settings.CHAT = {
        **redis_settings.CHAT,
        "HEARTBEAT_SECONDS": 0.1,
        "STALE_STREAM_SECONDS": 0.3,
    }
    published = len("checkpointed and then some more")

    response = await alice_async.get(
        f"/c/{conversation.pk}/m/{answer.pk}/stream", headers={"Last-Event-ID": str(published)}
    )
    events = await asyncio.wait_for(read_events(response), 5)

    assert events[-1]["event"] == "done"
    assert int(events[-1]["id"]) == published  # not the checkpoint's 12
    assert "checkpointed and then some more" in events[-1]["data"]
    stored = await Message.objects.aget(pk=answer.pk)
    assert (stored.status, stored.content) == ("interrupted", "checkpointed and then some more")


def thinking_shown(events: list[dict[str, str]], shown: str = "") -> str:
    """The reasoning a reader's page shows after these events (the Thinking section)."""
    for event in events:
        if event["event"] == "thinking-snapshot":
            shown = event["data"]
        elif event["event"] == "thinking":
            shown += event["data"]
    return html.unescape(shown)


async def test_reasoning_is_relayed_apart_from_the_answer(alice_async, conversation, elsewhere):
    answer = await live_answer(conversation)
    await elsewhere.think(answer.pk, "Let me <think>")

    response = await alice_async.get(f"/c/{conversation.pk}/m/{answer.pk}/stream")
    reader = asyncio.ensure_future(read_events(response))
    await asyncio.sleep(0.2)
    await elsewhere.think(answer.pk, " it over.")
    await asyncio.sleep(0.05)
    await elsewhere.say(answer.pk, "Done")
    await elsewhere.say(answer.pk, " thinking.")
    await Message.objects.filter(pk=answer.pk).aupdate(
        status="complete", content="Done thinking.", reasoning="Let me <think> it over."
    )
    await elsewhere.end(answer.pk)
    events = await asyncio.wait_for(reader, 5)

    assert events[0]["event"] == "thinking-snapshot"
    assert events[0]["data"] == "Let me &lt;think&gt;"  # text, never markup
    assert thinking_shown(events) == "Let me <think> it over."
    assert shown_text(events) == "Done thinking."
    assert "think" not in shown_text(events).replace("thinking", "")  # nothing mixed in
    assert [offset_of(e) for e in events] == sorted(offset_of(e) for e in events)
    assert events[-1]["event"] == "done"
    assert "Let me &lt;think&gt; it over." in events[-1]["data"]


async def test_resume_through_redis_takes_the_reasoning_from_its_offset(
    alice_async, conversation, elsewhere
):
    answer = await live_answer(conversation)
    await elsewhere.think(answer.pk, "abcdef")

    response = await alice_async.get(
        f"/c/{conversation.pk}/m/{answer.pk}/stream", headers={"Last-Event-ID": "0.0.4"}
    )
    reader = asyncio.ensure_future(read_events(response))
    await asyncio.sleep(0.2)
    await elsewhere.say(answer.pk, "Yes")
    await Message.objects.filter(pk=answer.pk).aupdate(
        status="complete", content="Yes", reasoning="abcdef"
    )
    await elsewhere.end(answer.pk)
    events = await asyncio.wait_for(reader, 5)

    assert events[0] == {"event": "thinking", "id": "0.0.6", "data": "ef"}
    assert events[1]["event"] == "blocks" and events[1]["id"] == "3.0.6"  # the tail whole
    assert thinking_shown(events, "abcd") == "abcdef"
    assert events[-1]["event"] == "done"


async def test_a_dead_processs_answer_keeps_the_reasoning_it_published(
    alice_async, conversation, elsewhere, redis_settings
):
    answer = await live_answer(conversation, reasoning="checkpointed")
    await elsewhere.think(answer.pk, "checkpointed and more")  # ...and the process dies
    redis_settings.CHAT = {
        **redis_settings.CHAT,
        "HEARTBEAT_SECONDS": 0.1,
        "STALE_STREAM_SECONDS": 0.3,
    }

    response = await alice_async.get(f"/c/{conversation.pk}/m/{answer.pk}/stream")
    events = await asyncio.wait_for(read_events(response), 5)

    assert events[-1]["event"] == "done"
    stored = await Message.objects.aget(pk=answer.pk)
    assert (stored.status, stored.reasoning) == ("interrupted", "checkpointed and more")


def test_published_text_joins_entries_sent_again_after_a_failed_write():
    assert redis_relay.joined_text([(0, "abc"), (3, "def"), (3, "defgh"), (8, "!")]) == "abcdefgh!"
    assert redis_relay.joined_text([(0, "abc"), (5, "lost")]) == "abc"
