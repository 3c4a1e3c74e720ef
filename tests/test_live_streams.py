"""Signed stream URLs: a live answer is followed without the request cycle, by its owner only."""

from __future__ import annotations

import asyncio
import html
import re
import time
from unittest import mock

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import signing

from chatsite.asgi import http_application
from conversations.models import Conversation, Message, ModerationAction
from conversations.services import moderation
from conversations.streaming import access, generation
from conversations.streaming.fast_path import serve_live_streams
from conversations.streaming.runtime import get_runtime
from tests.conftest import make_user
from tests.fakes import words
from tests.streams import (
    OtherProcess,
    asgi_get,
    live_answer,
    parse_block,
    send_data,
    shown_html,
    shown_text,
    wait_until_final,
)

pytestmark = pytest.mark.django_db(transaction=True)


class DjangoSpy:
    """The full request cycle, counting the requests that reach it."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    async def __call__(self, scope, receive, send) -> None:
        self.paths.append(scope["path"])
        await http_application(scope, receive, send)


@pytest.fixture
def django_spy() -> DjangoSpy:
    return DjangoSpy()


@pytest.fixture
def app(django_spy):
    return serve_live_streams(django_spy)


async def get(app, url: str, *, cookie: str = "", headers=(), leave_after: float | None = None):
    """One GET through the ASGI app: (status, headers, events); `leave_after` closes the tab."""
    headers = list(headers)
    if cookie:
        headers.append((b"cookie", f"{settings.SESSION_COOKIE_NAME}={cookie}".encode()))
    leave = None if leave_after is None else (lambda: asyncio.sleep(leave_after))
    status, sent_headers, body = await asyncio.wait_for(
        asgi_get(app, url, headers=headers, leave=leave), 10
    )
    events = [e for e in (parse_block(block) for block in body.split("\n\n")) if e]
    return status, sent_headers, events


def text_of(events) -> str:
    return shown_text(events)


async def send_and_get_stream_url(client, conversation) -> tuple[str, Message]:
    response = await client.post(
        f"/c/{conversation.pk}/messages", send_data("hi"), headers={"HX-Request": "true"}
    )
    url = html.unescape(re.search(r'sse-connect="([^"]+)"', response.content.decode())[1])
    answer = await Message.objects.aget(conversation=conversation, role="assistant")
    return url, answer


def session_of(client) -> str:
    return client.cookies[settings.SESSION_COOKIE_NAME].value


async def test_the_owner_follows_a_live_answer_without_the_request_cycle(
    app, django_spy, alice_async, conversation, provider
):
    provider.scripts = [words("streamed straight from the hub", pause=0.02)]
    url, answer = await send_and_get_stream_url(alice_async, conversation)
    assert "?t=" in url

    status, headers, events = await get(app, url, cookie=session_of(alice_async))

    assert status == 200
    assert headers[b"content-type"].startswith(b"text/event-stream")
    assert headers[b"cache-control"] == b"no-cache" and headers[b"x-accel-buffering"] == b"no"
    assert text_of(events) == "streamed straight from the hub"
    assert events[-1]["event"] == "done" and "<p>streamed straight" in events[-1]["data"]
    assert django_spy.paths == []  # no middleware, no session or user lookup
    saved = await Message.objects.aget(pk=answer.pk)
    assert saved.status == "complete" and saved.content == "streamed straight from the hub"


async def test_resume_with_last_event_id_continues_exactly(
    app, alice_async, conversation, provider
):
    provider.scripts = [words("abc def ghi jkl mno", pause=0.05)]
    url, _ = await send_and_get_stream_url(alice_async, conversation)
    cookie = session_of(alice_async)
    _, _, first = await get(app, url, cookie=cookie, leave_after=0.12)
    last_id = next(e["id"] for e in reversed(first) if e["event"] in ("snapshot", "token"))

    _, _, rest = await get(app, url, cookie=cookie, headers=[(b"last-event-id", last_id.encode())])

    assert first[-1]["event"] != "done"  # the first tab really left mid-answer
    assert shown_text(rest, shown_html(first)) == "abc def ghi jkl mno"
    assert rest[-1]["event"] == "done"


async def test_a_reader_who_leaves_does_not_stop_the_answer(
    app, alice_async, conversation, provider
):
    provider.scripts = [words("kept even when nobody watches", pause=0.03)]
    url, answer = await send_and_get_stream_url(alice_async, conversation)
    await get(app, url, cookie=session_of(alice_async), leave_after=0.05)
    saved = await wait_until_final(answer.pk)
    assert saved.status == "complete" and saved.content == "kept even when nobody watches"


async def test_someone_elses_session_with_the_owners_url_gets_a_404(
    app, django_spy, alice_async, bob, conversation, provider
):
    provider.scripts = [words("for alice only", pause=0.05)]
    url, _ = await send_and_get_stream_url(alice_async, conversation)
    bob_client = type(alice_async)()
    await bob_client.aforce_login(bob)

    status, _, events = await get(app, url, cookie=session_of(bob_client))

    assert status == 404 and events == []
    assert len(django_spy.paths) == 1  # the token did not fit: Django checked, and refused


async def test_the_url_without_a_session_is_refused_with_a_401(
    app, alice_async, conversation, provider
):
    """Not a redirect to the login page: an EventSource cannot follow one."""
    provider.scripts = [words("for alice only", pause=0.05)]
    url, _ = await send_and_get_stream_url(alice_async, conversation)
    status, headers, events = await get(app, url)
    assert status == 401 and events == []
    assert headers[b"content-type"].startswith(b"text/plain")


@pytest.mark.parametrize("spoil", ["tampered", "expired", "other message"])
async def test_a_bad_token_falls_back_to_the_full_checks(
    app, django_spy, alice_async, conversation, provider, spoil
):
    """The owner still gets the answer, through Django's view."""
    provider.scripts = [words("still readable", pause=0.02)]
    url, answer = await send_and_get_stream_url(alice_async, conversation)
    cookie = session_of(alice_async)
    path = url.split("?")[0]
    if spoil == "tampered":
        url = url[:-2] + ("AA" if not url.endswith("AA") else "BB")
    elif spoil == "other message":
        url = f"{path}?t={access.stream_token('x' * 36, cookie)}"
    else:
        an_hour_ago = time.time() - access.MAX_AGE - 1
        with mock.patch.object(signing.time, "time", return_value=an_hour_ago):
            url = f"{path}?t={access.stream_token(str(answer.pk), cookie)}"

    status, _, events = await get(app, url, cookie=cookie)

    assert status == 200 and text_of(events).endswith("readable")
    assert django_spy.paths == [path]


async def test_a_finished_answer_is_answered_by_django_with_its_final_state(
    app, django_spy, alice_async, conversation, provider
):
    provider.scripts = [words("all done", pause=0.01)]
    url, answer = await send_and_get_stream_url(alice_async, conversation)
    live = get_runtime().hub.get(str(answer.pk))
    if live is not None:
        await live.task  # the final write done, and the stream closed

    status, _, events = await get(app, url, cookie=session_of(alice_async))

    assert status == 200 and [e["event"] for e in events] == ["done"]
    assert len(django_spy.paths) == 1


async def test_a_live_answer_hidden_by_a_moderator_streams_no_text_after_a_reload(
    app, alice_async, conversation, provider
):
    provider.scripts = [words("something a moderator hid", pause=0.05)]
    _, answer = await send_and_get_stream_url(alice_async, conversation)
    await Message.objects.filter(pk=answer.pk).aupdate(hidden=True)

    page = (await alice_async.get(f"/c/{conversation.pk}/")).content.decode()
    url = html.unescape(re.search(rf'id="msg-{answer.pk}"[^>]*sse-connect="([^"]+)"', page)[1])
    status, _, events = await get(app, url, cookie=session_of(alice_async))

    assert "?t=" not in url
    assert status == 200 and text_of(events) == ""
    assert "Hidden by a moderator" in events[-1]["data"]


HIDE_ANSWER = "hide the answer"
HIDE_QUESTION = "hide the question"
HIDE_CONVERSATION = "hide the conversation"
SUSPEND_OWNER = "suspend its owner"


def moderate(action: str, answer: Message) -> None:
    moderator = make_user("mod@example.com")
    answers = Message.objects.filter(pk=answer.pk)
    common = {"actor": moderator, "reason": "abuse"}
    if action in (HIDE_ANSWER, HIDE_QUESTION):
        if action == HIDE_QUESTION:
            answers = Message.objects.filter(pk=answer.reply_to_id)
        moderation.moderate_messages(messages=answers, kind=ModerationAction.Kind.HIDE, **common)
    elif action == HIDE_CONVERSATION:
        conversations = Conversation.objects.filter(pk=answer.conversation_id)
        moderation.set_conversations_hidden(conversations=conversations, hidden=True, **common)
    else:
        owners = get_user_model().objects.filter(conversations__messages=answer)
        moderation.set_users_suspended(users=owners, suspended=True, **common)


@pytest.mark.parametrize("action", [HIDE_ANSWER, HIDE_QUESTION, HIDE_CONVERSATION, SUSPEND_OWNER])
async def test_a_moderator_cuts_an_answer_its_reader_is_following(
    action, app, alice_async, conversation, provider
):
    provider.scripts = [words("an answer that goes on " + "and on " * 40, pause=0.02)]
    url, answer = await send_and_get_stream_url(alice_async, conversation)
    reading = asyncio.ensure_future(get(app, url, cookie=session_of(alice_async)))
    await asyncio.sleep(0.2)  # tokens are flowing to the open tab

    await sync_to_async(moderate)(action, answer)
    status, _, events = await asyncio.wait_for(reading, 2)

    saved = await Message.objects.aget(pk=answer.pk)
    assert saved.status == Message.Status.STOPPED  # no more tokens generated, or paid for
    assert len(saved.content) < 100 and provider.closed == 1
    assert status == 200 and events[-1]["event"] == "done"  # the tab is not left spinning
    if action in (HIDE_ANSWER, HIDE_CONVERSATION):  # hidden: the final bubble shows none of it
        assert "Hidden by a moderator" in events[-1]["data"]
        assert "and on" not in events[-1]["data"]


async def test_a_stop_that_cannot_be_sent_does_not_undo_the_moderators_change(
    alice_async, conversation, provider, caplog
):
    provider.scripts = [words("an answer", pause=0.01)]
    _, answer = await send_and_get_stream_url(alice_async, conversation)
    layer_down = mock.patch(
        "conversations.streaming.control.broadcast_stop", side_effect=OSError("Redis went away")
    )

    with layer_down:
        await sync_to_async(moderate)(HIDE_ANSWER, answer)

    assert (await Message.objects.aget(pk=answer.pk)).hidden
    assert await ModerationAction.objects.acount() == 1
    assert "stop requests not sent" in caplog.text
    await wait_until_final(answer.pk)


@pytest.fixture
async def elsewhere(settings):
    """The Redis relay on, as in production; this process serves the stream of an answer
    that another process generates."""
    import os

    if not os.environ.get("REDIS_URL"):
        pytest.skip("REDIS_URL is not set")
    settings.REDIS_URL = os.environ["REDIS_URL"]
    settings.REDIS_PREFIX = f"test-ls-{os.getpid()}"
    other = OtherProcess()
    yield other
    await other.close()


def signed_url(conversation, answer, client) -> str:
    token = access.stream_token(str(answer.pk), session_of(client))
    return f"/c/{conversation.pk}/m/{answer.pk}/stream?t={token}"


@pytest.mark.redis
async def test_an_answer_generated_by_another_process_is_relayed_without_the_request_cycle(
    app, django_spy, alice_async, conversation, elsewhere
):
    answer = await live_answer(conversation)
    await elsewhere.say(answer.pk, "Hello")

    async def generate_elsewhere() -> None:
        await asyncio.sleep(0.2)
        await elsewhere.say(answer.pk, " from elsewhere")
        await Message.objects.filter(pk=answer.pk).aupdate(
            status="complete", content="Hello from elsewhere"
        )
        await elsewhere.end(answer.pk)

    generator = asyncio.ensure_future(generate_elsewhere())
    status, _, events = await get(
        app, signed_url(conversation, answer, alice_async), cookie=session_of(alice_async)
    )
    await generator

    assert status == 200 and text_of(events) == "Hello from elsewhere"
    assert events[-1]["event"] == "done"
    assert django_spy.paths == []
    assert get_runtime().hub.get(str(answer.pk)) is None  # the mirror went with its reader


@pytest.mark.redis
async def test_a_reader_who_comes_before_the_generation_starts_gets_the_answer(
    app, alice_async, conversation, provider, elsewhere
):
    """A reader who finds a live answer before its launch (a page loaded in that instant)
    mirrors it as another process's. The launch used to take the mirror for its own stream
    and never start generating."""
    provider.scripts = [words("adopted by its generator", pause=0.01)]
    created = await live_answer(conversation)
    answer = await Message.objects.select_related("conversation").aget(pk=created.pk)
    url = signed_url(conversation, answer, alice_async)
    reading = asyncio.ensure_future(get(app, url, cookie=session_of(alice_async)))
    await asyncio.sleep(0.3)
    assert get_runtime().hub.get(str(answer.pk)).task is None  # the reader came first: a mirror

    generation.launch_generation(answer)
    status, _, events = await reading

    assert status == 200 and text_of(events) == "adopted by its generator"
    assert events[-1]["event"] == "done"
    assert (await wait_until_final(answer.pk)).status == Message.Status.COMPLETE


@pytest.mark.redis
async def test_a_relayed_answer_before_its_first_token_waits_for_it(
    app, django_spy, alice_async, conversation, elsewhere
):
    answer = await live_answer(conversation)

    async def generate_elsewhere() -> None:
        await asyncio.sleep(0.3)
        await elsewhere.say(answer.pk, "late start")
        await Message.objects.filter(pk=answer.pk).aupdate(status="complete", content="late start")
        await elsewhere.end(answer.pk)

    generator = asyncio.ensure_future(generate_elsewhere())
    status, _, events = await get(
        app, signed_url(conversation, answer, alice_async), cookie=session_of(alice_async)
    )
    await generator

    assert status == 200
    assert text_of(events) == "late start" and events[-1]["event"] == "done"
    assert django_spy.paths == []


@pytest.mark.redis
async def test_a_relayed_answer_long_over_is_answered_by_django_at_once(
    app, django_spy, alice_async, conversation, elsewhere
):
    """Its Redis entries expired; the tab was asleep. No waiting for a heartbeat."""
    answer = await live_answer(conversation)
    await Message.objects.filter(pk=answer.pk).aupdate(status="complete", content="old news")

    started = time.monotonic()
    status, _, events = await get(
        app, signed_url(conversation, answer, alice_async), cookie=session_of(alice_async)
    )

    assert status == 200
    assert [e["event"] for e in events] == ["done"] and "old news" in events[-1]["data"]
    assert len(django_spy.paths) == 1
    assert time.monotonic() - started < settings.CHAT["HEARTBEAT_SECONDS"]


@pytest.mark.redis
async def test_when_the_database_fails_the_fast_path_django_answers_and_nothing_leaks(
    app, django_spy, alice_async, conversation, elsewhere, monkeypatch, caplog
):
    from conversations.streaming import reading

    answer = await live_answer(conversation)
    await Message.objects.filter(pk=answer.pk).aupdate(status="complete", content="saved")
    failures = [ConnectionError("database went away")]
    real_still_live = reading.still_live

    async def flaky_still_live(message_id):
        if failures:
            raise failures.pop()
        return await real_still_live(message_id)

    monkeypatch.setattr(reading, "still_live", flaky_still_live)
    status, _, events = await get(
        app, signed_url(conversation, answer, alice_async), cookie=session_of(alice_async)
    )

    assert status == 200 and events[-1]["event"] == "done" and "saved" in events[-1]["data"]
    assert len(django_spy.paths) == 1
    assert "live stream fast path failed" in caplog.text
    follower = get_runtime().relay
    assert str(answer.pk) not in follower.readers and get_runtime().hub.get(str(answer.pk)) is None
