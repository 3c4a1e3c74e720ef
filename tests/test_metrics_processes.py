"""/metrics with two real server processes sharing PROMETHEUS_MULTIPROC_DIR: a scrape of
either counts the answers of both (needs REDIS_URL, as every scale-out test)."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator

import aiohttp
import pytest

from tests.servers import Server, own_database, two_daphnes
from tests.test_two_processes import TIMEOUT, logged_in, start_and_finish

pytestmark = [
    pytest.mark.redis,
    pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="REDIS_URL is not set"),
]

TOKEN = "scrape-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def servers(tmp_path_factory) -> Iterator[tuple[Server, Server]]:
    workdir = tmp_path_factory.mktemp("metrics")
    (workdir / "prometheus").mkdir()
    skip = ("DATABASE_URL", "TEST_DATABASE_NAME", "DJANGO_ENV", "OPENAI_API_KEY")
    env = {name: value for name, value in os.environ.items() if name not in skip}
    env.update(
        DJANGO_SETTINGS_MODULE="chatsite.settings",
        SQLITE_PATH=str(workdir / "db.sqlite3"),
        REDIS_PREFIX=f"metrics-{os.getpid()}-{uuid.uuid4().hex[:6]}",
        DJANGO_DEBUG="0",
        CHAT_PROVIDER="demo",
        DEMO_TOKEN_INTERVAL="0.005",
        PROMETHEUS_MULTIPROC_DIR=str(workdir / "prometheus"),
        METRICS_TOKEN=TOKEN,
    )
    with own_database("streamchat_metrics") as url:
        if url is not None:
            env["DATABASE_URL"] = url
        with two_daphnes(env, workdir) as pair:
            yield pair


def value(text: str, sample: str) -> float:
    found = re.search(rf"^{re.escape(sample)} (\S+)$", text, re.MULTILINE)
    return float(found[1]) if found else 0.0


async def scrape(server: Server, token: str | None = TOKEN) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        aiohttp.ClientSession(timeout=TIMEOUT) as session,
        session.get(f"{server.url}/metrics", headers=headers) as response,
    ):
        return response.status, await response.text()


async def test_a_scrape_of_either_process_counts_the_answers_of_both(servers):
    a, b = servers
    assert (await scrape(a, token=None))[0] == 404
    for server in (a, b):
        session = await logged_in(server)
        try:
            await start_and_finish(session, f"count me ({uuid.uuid4().hex[:6]})")
        finally:
            await session.close()
    for server in (a, b):
        status, text = await scrape(server)
        assert status == 200
        assert value(text, "streamchat_answers_started_total") == 2
        assert value(text, 'streamchat_answers_total{status="complete"}') == 2
        assert value(text, "streamchat_answer_duration_seconds_count") == 2
        assert value(text, 'streamchat_tokens_total{kind="completion"}') > 0
        assert value(text, "streamchat_open_streams") == 0  # both readers have left
