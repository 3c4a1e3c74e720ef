"""Redis that stops, restarts or hangs: sign-in and sends keep working, stop requests find
their answer again once it is back, and the log says so once per outage.

Each test runs a Redis server of its own (tests/servers.py), so it can stop it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import socket
import time
from collections.abc import Iterator

import pytest
from django.test import Client
from redis.exceptions import RedisError

from chatsite import redis_cache
from conversations.models import Message
from conversations.streaming import control, redis_relay
from conversations.streaming.hub import StreamHub
from tests.conftest import PASSWORD
from tests.fakes import words
from tests.servers import PrivateRedis
from tests.streams import send_data, wait_until_final

pytestmark = [
    pytest.mark.redis,
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is missing"),
]


@pytest.fixture
def private_redis(tmp_path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.stop()


def redis_layer(url: str) -> dict:
    return {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [{"address": url, "socket_timeout": 15}]},
        }
    }


def redis_cache_at(url: str, settings) -> dict:
    return {
        "default": {
            "BACKEND": "chatsite.redis_cache.SharedRedisCache",
            "LOCATION": url,
            "OPTIONS": settings.REDIS_SOCKET_OPTIONS,
        }
    }


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A Redis behind a partition: connections open (the kernel's backlog) and nothing
    ever answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    yield listener.getsockname()[1]
    listener.close()


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens there once it is closed


@pytest.fixture(autouse=True)
def _fresh_cache_outage(monkeypatch):
    """Each test starts with a cache that has not failed yet."""
    fresh = redis_cache.Outage(redis_cache._outage.what, redis_cache.log)
    monkeypatch.setattr(redis_cache, "_outage", fresh)


def messages_logged(caplog, text: str) -> int:
    return sum(text in record.getMessage() for record in caplog.records)


# ---- stop requests ------------------------------------------------------------------------


@pytest.fixture
async def listener(private_redis, settings, monkeypatch):
    """This process's control listener on the private Redis; stops it hears are recorded."""
    settings.CHANNEL_LAYERS = redis_layer(private_redis.url)
    heard: list[str] = []
    monkeypatch.setattr(control, "RETRY_SECONDS", 0.1)
    task = asyncio.create_task(control.listen(stop=heard.append))  # what the runtime runs
    yield heard
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def until_heard(heard: list[str], message_id: str, timeout: float = 15) -> None:
    """Send the stop again and again (another process would send it once, but the test
    cannot know when the listener is back) until the listener hears it."""
    deadline = time.monotonic() + timeout
    while message_id not in heard:
        assert time.monotonic() < deadline, f"the stop for {message_id} never arrived"
        with contextlib.suppress(Exception):  # Redis still on its way back
            await control.broadcast_stop(message_id)
        await asyncio.sleep(0.2)


async def test_stop_requests_arrive_again_after_redis_restarts(listener, private_redis, caplog):
    await until_heard(listener, "before")

    private_redis.stop()
    await asyncio.sleep(1.5)  # the listener fails a few times meanwhile
    private_redis.start()  # empty: the group membership is gone too
    await until_heard(listener, "after")

    assert messages_logged(caplog, "control channel failed") == 1
    assert messages_logged(caplog, "control channel works again") == 1


# ---- the relay's writes ---------------------------------------------------------------


async def test_an_outage_is_logged_once_not_once_per_write(private_redis, settings, caplog):
    settings.REDIS_URL = private_redis.url
    hub = StreamHub(tick_seconds=0.01)
    relay = redis_relay.RedisRelay(hub)
    stream = hub.open("through-an-outage")
    relay.track(stream)
    try:
        private_redis.stop()
        for n in range(20):  # a frame of an answer streaming through the outage, each 40 ms
            stream.append(f"word {n} ")
            with pytest.raises(RedisError):
                await relay.publish([stream])
                await relay.flush()
        private_redis.start()
        stream.append("back")
        await relay.publish([stream])
        await relay.flush()

        entries = await relay.commands.xrange(redis_relay.stream_key("through-an-outage"))
        assert "".join(fields["t"] for _, fields in entries).endswith("word 19 back")
        assert messages_logged(caplog, "redis relay write failed") == 1
        assert messages_logged(caplog, "redis relay write works again") == 1
    finally:
        for task in (hub._ticker, hub._heartbeat, relay._writer):
            if task is not None:
                task.cancel()
        await relay.commands.aclose()
        await relay.blocking.aclose()


# ---- sign-in and sends ------------------------------------------------------------------


@pytest.mark.parametrize("redis_is", ["down", "silent"])
def test_sign_in_works_while_the_cache_redis_is_out_of_reach(
    alice, settings, redis_is, closed_port, silent_port, caplog
):
    port = closed_port if redis_is == "down" else silent_port
    settings.CACHES = redis_cache_at(f"redis://127.0.0.1:{port}/0", settings)
    client = Client()
    started = time.monotonic()

    response = client.post("/accounts/login/", {"login": alice.email, "password": PASSWORD})

    assert response.status_code == 302 and response["Location"] == "/"
    assert client.get("/").status_code == 200
    assert time.monotonic() - started < 4  # one 1 s timeout, not one per cache call
    assert messages_logged(caplog, "cache (rate limits not counted) failed") == 1


def test_wrong_passwords_are_still_refused_while_the_cache_is_down(alice, settings, closed_port):
    settings.CACHES = redis_cache_at(f"redis://127.0.0.1:{closed_port}/0", settings)

    response = Client().post("/accounts/login/", {"login": alice.email, "password": "nope"})

    assert response.status_code == 200
    assert "not correct" in response.content.decode()


@pytest.mark.django_db(transaction=True)
async def test_a_send_is_not_held_by_a_channel_layer_that_hangs(
    alice_async, conversation, provider, settings, silent_port, caplog
):
    settings.CHANNEL_LAYERS = redis_layer(f"redis://127.0.0.1:{silent_port}/0")
    provider.scripts = [words("answered anyway")]
    started = time.monotonic()

    response = await alice_async.post(
        f"/c/{conversation.pk}/messages", send_data("hi"), headers={"HX-Request": "true"}
    )

    assert response.status_code == 200
    assert time.monotonic() - started < 5  # the layer's own timeout is 15 s
    answer = await Message.objects.aget(conversation=conversation, role="assistant")
    assert (await wait_until_final(answer.pk)).content == "answered anyway"
    assert any(
        r.levelno >= logging.WARNING and "sync event" in r.getMessage() for r in caplog.records
    )
