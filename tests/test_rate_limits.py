"""Rate limits: a 429 says when to try again, stores nothing, and a repeat is never refused."""

from __future__ import annotations

import importlib
import os
import threading
import uuid
from types import SimpleNamespace

import pytest
import redis.asyncio as redis

from conversations.models import Message
from conversations.services import ratelimit
from tests.conftest import PASSWORD
from tests.streams import send_data, wait_until_final

pytestmark = pytest.mark.django_db(transaction=True)


async def answered(conversation) -> None:
    latest = await Message.objects.filter(conversation=conversation).order_by("-seq").afirst()
    await wait_until_final(latest.pk)


def post(client, conversation, client_id=None):
    return client.post(
        f"/c/{conversation.pk}/messages",
        send_data("hi", client_id),
        headers={"HX-Request": "true"},
    )


async def test_messages_per_minute_limit_answers_429_with_retry_after(
    alice_async, conversation, provider, settings, monkeypatch
):
    settings.CHAT = {**settings.CHAT, "MESSAGES_PER_MINUTE": 2, "CONCURRENT_STREAMS": 10}
    # Inside one minute's window, however slow the machine (the window is fixed).
    monkeypatch.setattr(ratelimit, "time", SimpleNamespace(time=lambda: 1_700_000_010.0))
    first_id = uuid.uuid4()
    assert (await post(alice_async, conversation, first_id)).status_code == 200
    await answered(conversation)  # one answer at a time in a conversation
    assert (await post(alice_async, conversation)).status_code == 200
    await answered(conversation)
    refused = await post(alice_async, conversation)
    assert refused.status_code == 429
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert "Try again in" in refused.content.decode()
    assert await Message.objects.filter(conversation=conversation).acount() == 4
    # Re-sending a message that already went through is not a new message.
    assert (await post(alice_async, conversation, first_id)).status_code == 200


async def test_concurrent_streams_limit(alice_async, conversation, provider, settings):
    settings.CHAT = {**settings.CHAT, "CONCURRENT_STREAMS": 1}
    from tests.fakes import Hang

    provider.scripts = [[Hang()]]
    assert (await post(alice_async, conversation)).status_code == 200
    refused = await post(alice_async, conversation)
    assert refused.status_code == 429
    assert "already have 1 answers streaming" in refused.content.decode()
    assert refused["Retry-After"]


async def test_limits_are_per_user(alice_async, conversation, bob, provider, settings):
    from django.test import AsyncClient

    from conversations.models import Conversation

    settings.CHAT = {**settings.CHAT, "MESSAGES_PER_MINUTE": 1}
    assert (await post(alice_async, conversation)).status_code == 200
    assert (await post(alice_async, conversation)).status_code == 429
    bob_client = AsyncClient()
    await bob_client.aforce_login(bob)
    bobs = await Conversation.objects.acreate(owner=bob)
    assert (await post(bob_client, bobs)).status_code == 200


def test_repeated_failed_logins_are_refused(client, alice):
    for _ in range(5):
        client.post("/accounts/login/", {"login": alice.email, "password": "wrong"})
    response = client.post("/accounts/login/", {"login": alice.email, "password": PASSWORD})
    assert "Too many failed login attempts" in response.content.decode()
    assert "_auth_user_id" not in client.session


@pytest.mark.redis
@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="REDIS_URL is not set")
async def test_with_redis_the_counter_is_shared_by_every_process(
    alice_async, conversation, provider, settings
):
    prefix = f"rl-test-{uuid.uuid4().hex[:8]}"
    settings.CACHES = {"default": {**production_cache(), "KEY_PREFIX": prefix}}
    settings.CHAT = {**settings.CHAT, "MESSAGES_PER_MINUTE": 1}
    assert (await post(alice_async, conversation)).status_code == 200
    client = redis.from_url(os.environ["REDIS_URL"])
    try:
        keys = await client.keys(f"{prefix}:*rl:send:{conversation.owner_id}:*")
        assert len(keys) == 1  # in Redis, where every server process counts
        assert await client.get(keys[0]) == b"1"
        assert 0 < await client.ttl(keys[0]) <= 65  # the window's counter goes away
    finally:
        await client.aclose()
    assert (await post(alice_async, conversation)).status_code == 429


def production_cache() -> dict:
    """The cache as chatsite/settings.py builds it from REDIS_URL (tests use a local one)."""
    project = importlib.import_module("chatsite.settings")
    assert project.CACHES["default"]["LOCATION"] == os.environ["REDIS_URL"]
    return project.CACHES["default"]


@pytest.mark.redis
@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="REDIS_URL is not set")
def test_requests_in_their_own_threads_share_one_redis_pool(settings):
    """Under ASGI every request has its own thread, so its own cache object: they must not
    each open a new Redis connection."""
    from django.core.cache import caches

    settings.CACHES = {"default": {**production_cache(), "KEY_PREFIX": "pool-test"}}
    pools = set()

    def one_request() -> None:
        cache = caches["default"]
        cache.add("hits", 0)
        cache.incr("hits")
        pools.add(id(cache._cache._get_connection_pool(write=True)))

    threads = [threading.Thread(target=one_request) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(pools) == 1
    assert caches["default"].get("hits") == 20
    caches["default"].delete("hits")
