"""Browser tests: Debian's headless Chromium (Playwright) against the app served by Daphne.

pytest-django's live_server is WSGI and cannot run the async streaming views, so Daphne
processes serve the app on free localhost ports, DEBUG off (real 404 pages) and the demo
model in echo mode (providers/demo.py), on two stacks:
- embedded: one process, a SQLite file and the in-memory channel layer (`server`);
- production: PostgreSQL (a database of its own on DATABASE_URL's server), Redis (REDIS_URL)
  and two processes; a test's first tab is served by one, other tabs by the other.
The tests that matter most in production (chat, stop, resume, two tabs, signed out) take
`stack` and run on both; the rest run on the embedded stack.

Every page runs under the app's enforced CSP; a test fails on any CSP violation, any
JavaScript error and any console error it did not declare as expected (`browser_log.allow`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.servers import Server, manage, own_database, start_daphne, two_daphnes

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "docs" / "screenshots"
DEMO_EMAIL = "demo@example.com"
DEMO_PASSWORD = "demo-password-123"  # from manage.py ensure_demo_user
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]
# The demo user's conversation with more messages than one page shows (imported).
LONG_CONVERSATION = "0f0f0f0f-0000-4000-8000-000000000120"
LONG_MESSAGES = 120
OLD_CONVERSATIONS = 60
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
# Long enough to see intermediate states, short enough to keep the suite quick.
TOKEN_INTERVAL = "0.03"


def _chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is not installed: CI must run the browser tests")
        pytest.skip("chromium is not installed (apt-get install chromium); browser tests skipped")
    return path


def _server_env(workdir: Path) -> dict[str, str]:
    """What every browser-test server runs with; the embedded stack as it is."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "REDIS_URL", "TEST_DATABASE_NAME", "DJANGO_ENV")
    }
    env.update(
        DJANGO_SETTINGS_MODULE="chatsite.settings",
        SQLITE_PATH=str(workdir / "e2e.sqlite3"),
        DJANGO_DEBUG="0",
        CHAT_PROVIDER="demo",
        DEMO_ECHO="1",
        DEMO_TOKEN_INTERVAL=TOKEN_INTERVAL,
        CHAT_MESSAGES_PER_MINUTE="1000",
        CHAT_CONCURRENT_STREAMS="50",
        CHAT_CHECKPOINT_SECONDS="0.5",
        LOGIN_RATE_LIMIT="1000/m/ip",
        # Attachments: the demo as a model that sees images, its files in the test's dir.
        CHAT_ENDPOINTS='[{"id": "demo", "kind": "demo", "vision": true}]',
        MEDIA_ROOT=str(workdir / "media"),
    )
    env.pop("OPENAI_API_KEY", None)
    env.pop("ANTHROPIC_API_KEY", None)
    return env


@pytest.fixture(scope="session")
def server(tmp_path_factory) -> Iterator[Server]:
    """The embedded stack's one process."""
    _chromium()  # no browser: skip (or fail in CI) before starting anything
    workdir = tmp_path_factory.mktemp("e2e")
    env = _server_env(workdir)
    manage(env, "migrate", "--noinput")
    manage(env, "ensure_demo_user")
    manage(env, "import_conversations", str(_demo_history(workdir / "long.jsonl")))
    server = start_daphne(env, workdir / "daphne.log")
    try:
        yield server
    finally:
        server.stop()


def _demo_history(path: Path) -> Path:
    """A JSONL export (docs/export-schema.md) for the demo user: a conversation of
    LONG_MESSAGES turns, and OLD_CONVERSATIONS quiet ones."""
    at = "2026-01-10T12:00:00+00:00"
    lines = [
        {"type": "header", "schema": "streamchat.conversations", "version": 1},
        {"type": "conversation", "id": LONG_CONVERSATION, "owner": DEMO_EMAIL,
         "title": "A long conversation", "created_at": at, "updated_at": at},
    ]  # fmt: skip
    for seq in range(1, LONG_MESSAGES + 1):
        role = "user" if seq % 2 else "assistant"
        lines.append(
            {
                "type": "message",
                "id": str(uuid.UUID(int=seq)),
                "conversation": LONG_CONVERSATION,
                "seq": seq,
                "role": role,
                "content": f"Message number {seq}.\n\nIts second line.",
                "created_at": at,
                "updated_at": at,
            }
        )
    for n in range(OLD_CONVERSATIONS):  # more than the sidebar's first page holds
        lines.append(
            {
                "type": "conversation",
                "id": str(uuid.UUID(int=10_000 + n)),
                "owner": DEMO_EMAIL,
                "title": f"Old conversation {n}",
                "created_at": "2026-01-01T00:00:00+00:00",
                "updated_at": f"2026-01-01T{n // 60:02d}:{n % 60:02d}:00+00:00",
            }
        )
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


@dataclass
class Stack:
    """Where a test's tabs are served: `first` serves its first tab, `other` the rest."""

    name: str
    first: Server
    other: Server
    demo_state: dict  # the demo user's signed-in cookies (valid on both servers)

    @property
    def servers(self) -> list[Server]:
        return [self.first] if self.other is self.first else [self.first, self.other]


@pytest.fixture(scope="session")
def production_servers(tmp_path_factory) -> Iterator[tuple[Server, Server]]:
    _chromium()
    production = os.environ.get("REDIS_URL") and os.environ.get("DATABASE_URL", "").startswith(
        ("postgres://", "postgresql://")
    )
    if not production:
        if os.environ.get("CI") == "true":
            pytest.fail("CI must run the browser tests on PostgreSQL + Redis")
        pytest.skip("the production stack needs DATABASE_URL (PostgreSQL) and REDIS_URL")
    workdir = tmp_path_factory.mktemp("e2e-production")
    with own_database("streamchat_e2e") as database_url:
        env = _server_env(workdir)
        env.update(
            DATABASE_URL=database_url,
            REDIS_URL=os.environ["REDIS_URL"],
            REDIS_PREFIX=f"e2e-{os.getpid()}-{uuid.uuid4().hex[:6]}",
        )
        with two_daphnes(env, workdir) as servers:
            yield servers


@pytest.fixture(scope="session")
def production_state(browser, production_servers) -> dict:
    return _signed_in_state(browser, production_servers[0])


@pytest.fixture(params=["embedded", "production"])
def stack(request, server, demo_state) -> Stack:
    if request.param == "embedded":
        return Stack("embedded", server, server, demo_state)
    first, other = request.getfixturevalue("production_servers")
    return Stack("production", first, other, request.getfixturevalue("production_state"))


@pytest.fixture(scope="session")
def browser(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=_chromium(), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@dataclass
class BrowserLog:
    """Console errors and uncaught exceptions of one test's pages."""

    errors: list[str] = field(default_factory=list)
    allowed: list[re.Pattern[str]] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    failed_responses: list[str] = field(default_factory=list)  # to say which URL a 404 was

    def allow(self, pattern: str) -> None:
        """Declare a console error the test provokes on purpose (e.g. an HTTP 404)."""
        self.allowed.append(re.compile(pattern))

    def unexpected(self) -> list[str]:
        return [
            error
            for error in self.errors
            # A CSP violation is never expected.
            if "Content Security Policy" in error or not any(p.search(error) for p in self.allowed)
        ]


@pytest.fixture
def browser_log() -> BrowserLog:
    return BrowserLog()


@pytest.fixture
def new_context(browser, server, browser_log: BrowserLog):
    """Make browser contexts that report errors to browser_log; checked after the test,
    with the logs of the servers they used. `on` picks the server (the embedded one)."""
    contexts = []
    log_offsets: dict[str, tuple[Server, int]] = {}

    def make(*, on: Server = server, **options):
        options.setdefault("viewport", DESKTOP)
        log_offsets.setdefault(on.url, (on, on.log_size()))
        context = browser.new_context(base_url=on.url, **options)
        context.set_default_timeout(10_000)
        context.on(
            "console",
            lambda msg: browser_log.errors.append(msg.text) if msg.type == "error" else None,
        )
        context.on("weberror", lambda error: browser_log.errors.append(f"uncaught: {error.error}"))
        context.on(
            "response",
            lambda r: (
                browser_log.failed_responses.append(f"{r.status} {r.request.method} {r.url}")
                if r.status >= 400
                else None
            ),
        )

        def on_page(page):
            def on_dialog(dialog):
                browser_log.dialogs.append(dialog.message)
                dialog.dismiss()

            page.on("dialog", on_dialog)

        context.on("page", on_page)
        contexts.append(context)
        return context

    yield make
    for context in contexts:
        context.close()
    assert browser_log.unexpected() == [], (
        f"console errors or CSP violations; failed responses: {browser_log.failed_responses}"
    )
    assert browser_log.dialogs == [], "a dialog opened (injected script ran?)"
    for used, offset in log_offsets.values():
        server_log = used.log_since(offset)
        assert "Traceback" not in server_log, server_log[-3000:]


@pytest.fixture(scope="session")
def demo_state(browser, server) -> dict:
    """The demo user's logged-in cookies, made once through the login form."""
    return _signed_in_state(browser, server)


def _signed_in_state(browser, server: Server) -> dict:
    context = browser.new_context(base_url=server.url)
    page = context.new_page()
    log_in(page, DEMO_EMAIL, DEMO_PASSWORD)
    state = context.storage_state()
    context.close()
    return state


@pytest.fixture
def page(new_context, demo_state):
    """A page logged in as the demo user (embedded stack)."""
    return new_context(storage_state=demo_state).new_page()


@pytest.fixture
def tab(new_context, stack: Stack):
    """A page logged in as the demo user, on the stack's first server."""
    return new_context(on=stack.first, storage_state=stack.demo_state).new_page()


@pytest.fixture
def other_tab(new_context, stack: Stack):
    """Opens another tab of the same user, on the stack's other server."""
    return lambda: new_context(on=stack.other, storage_state=stack.demo_state).new_page()


def log_in(page, email: str, password: str, *, base: str = "") -> None:
    page.goto(base + "/accounts/login/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign In").click()
    page.wait_for_url(re.compile(r"/$"))
