"""Sessions with Redis: read from the cache, kept in the database."""

from __future__ import annotations

import html
import importlib
import os
import uuid

import pytest
from django.contrib.sessions.backends.cached_db import SessionStore
from django.core.cache import caches
from django.test import Client

pytestmark = [
    pytest.mark.redis,
    pytest.mark.django_db,
    pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="REDIS_URL is not set"),
]


@pytest.fixture
def production_sessions(settings):
    """The cache and session engine as chatsite/settings.py sets them with REDIS_URL."""
    project = importlib.import_module("chatsite.settings")
    settings.CACHES = {
        "default": {**project.CACHES["default"], "KEY_PREFIX": f"sess-{uuid.uuid4().hex[:8]}"}
    }
    settings.SESSION_ENGINE = project.SESSION_ENGINE
    yield settings
    caches["default"].close()


def test_losing_redis_logs_nobody_out(production_sessions, alice, conversation):
    client = Client()
    client.force_login(alice)
    session_key = client.cookies["sessionid"].value
    assert caches["default"].get(SessionStore(session_key).cache_key) is not None

    caches["default"].delete(SessionStore(session_key).cache_key)  # a Redis restart

    page = client.get(f"/c/{conversation.pk}/")
    assert page.status_code == 200
    assert html.escape(conversation.title) in page.content.decode()


def test_logging_out_ends_the_session_in_redis_too(production_sessions, alice, conversation):
    client = Client()
    client.force_login(alice)
    stolen = client.cookies["sessionid"].value

    client.post("/accounts/logout/")

    replay = Client()
    replay.cookies["sessionid"] = stolen
    page = replay.get(f"/c/{conversation.pk}/")
    assert page.status_code == 302
    assert "/accounts/login/" in page["Location"]
