from __future__ import annotations

from pathlib import Path

import pytest
from asgiref.sync import SyncToAsync
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db import connections
from django.test import AsyncClient, Client

from conversations.models import Conversation
from conversations.providers import set_provider_override
from conversations.services import moderation
from tests.fakes import ScriptedProvider, words

PASSWORD = "correct-horse-battery-staple"


@pytest.fixture(autouse=True)
def _fast_and_isolated(settings):
    settings.CHAT = {
        **settings.CHAT,
        "TICK_SECONDS": 0.01,
        "CHECKPOINT_SECONDS": 0.2,
        "HEARTBEAT_SECONDS": 1,
        "RETRY_BASE_DELAY": 0.01,
        "RETRY_MAX_DELAY": 0.05,
        "FIRST_TOKEN_TIMEOUT": 2,
        "IDLE_TIMEOUT": 2,
        "TOTAL_TIMEOUT": 10,
        "DEMO_TOKEN_INTERVAL": 0.001,
    }
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    # The real hasher costs about a second per user on a busy machine; tests need no strength.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    cache.clear()
    yield
    set_provider_override(None)


@pytest.fixture(scope="session", autouse=True)
def _close_worker_thread_connections(django_db_setup, django_db_blocker):
    """Async code runs the ORM in asgiref's worker thread: close its connection before the
    test database is dropped (PostgreSQL refuses to drop a database still in use)."""
    yield
    SyncToAsync.single_thread_executor.submit(connections.close_all).result()


@pytest.fixture
def provider():
    """The default fake: a short answer with a little Markdown."""
    fake = ScriptedProvider([words("Hello **there**, how can I help?")])
    set_provider_override(fake)
    return fake


def make_user(email: str):
    return get_user_model().objects.create_user(
        username=email.split("@")[0], email=email, password=PASSWORD
    )


def make_staff(email: str):
    user = make_user(email)
    user.is_staff = True
    user.save()
    return user


@pytest.fixture
def moderator(db):
    """Staff in the "Moderators" group, with exactly its permissions."""
    user = make_staff("mod@example.com")
    user.groups.add(moderation.ensure_moderators_group())
    return user


@pytest.fixture
def mod_client(moderator) -> Client:
    client = Client()
    client.force_login(moderator)
    return client


@pytest.fixture
def alice(db):
    return make_user("alice@example.com")


@pytest.fixture
def bob(db):
    return make_user("bob@example.com")


@pytest.fixture
def conversation(alice):
    return Conversation.objects.create(owner=alice, title="Alice's chat")


@pytest.fixture
def alice_client(alice) -> Client:
    client = Client()
    client.force_login(alice)
    return client


@pytest.fixture
def alice_async(alice) -> AsyncClient:
    client = AsyncClient()
    client.force_login(alice)
    return client


@pytest.fixture
def alice_second_device(alice) -> AsyncClient:
    """Alice signed in on another device (its own session)."""
    client = AsyncClient()
    client.force_login(alice)
    return client


def pytest_collection_modifyitems(config, items):
    """Browser tests last: Playwright's sync API keeps an event loop running in this thread
    for the rest of the session, which async tests and fixtures after it cannot share."""
    e2e = Path(__file__).parent / "e2e"
    for item in items:  # every test in tests/e2e, whether its module says so or not
        if item.path.is_relative_to(e2e):
            item.add_marker(pytest.mark.e2e)
    items.sort(key=lambda item: item.get_closest_marker("e2e") is not None)
