"""/metrics: Prometheus text, for the bearer token or an allowed address only (else 404);
an answer moves the counters once, at its end."""

from __future__ import annotations

import ipaddress
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client
from prometheus_client import REGISTRY

from conversations.models import Message
from conversations.providers import ProviderError
from tests.fakes import Fail
from tests.streams import read_events, send_data, wait_until_final

ROOT = Path(__file__).resolve().parent.parent


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def token(settings):
    settings.METRICS_TOKEN = "s3cret-metrics-token"
    return settings.METRICS_TOKEN


def test_without_a_token_or_an_allowed_address_it_is_a_404(client, token):
    assert client.get("/metrics").status_code == 404


def test_a_signed_in_user_without_the_token_gets_a_404(alice_client, token):
    assert alice_client.get("/metrics").status_code == 404


def test_a_wrong_token_is_a_404(client, token):
    wrong = client.get("/metrics", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 404


def test_no_token_configured_never_matches_an_empty_bearer(client, settings):
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics", headers={"Authorization": "Bearer "}).status_code == 404


def test_the_token_gets_the_prometheus_text_format(client, token):
    response = client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    body = response.content.decode()
    assert "# TYPE streamchat_answers_started_total counter" in body
    assert "# TYPE streamchat_answer_first_token_seconds histogram" in body


def test_an_allowed_network_needs_no_token(settings, db):
    settings.METRICS_ALLOWED_IPS = [ipaddress.ip_network("10.1.0.0/16")]
    assert Client(REMOTE_ADDR="10.1.2.3").get("/metrics").status_code == 200
    assert Client(REMOTE_ADDR="10.2.0.1").get("/metrics").status_code == 404


def test_a_bad_allowed_address_stops_start_up():
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "chatsite.settings"}
        | {"METRICS_ALLOWED_IPS": "10.0.0.0/8,not-an-ip"},
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert "METRICS_ALLOWED_IPS" in result.stderr


@pytest.mark.django_db(transaction=True)
async def test_an_answer_moves_the_counters_once(alice_async, conversation, provider):
    before = {
        "started": sample("streamchat_answers_started_total"),
        "complete": sample("streamchat_answers_total", status="complete"),
        "tokens": sample("streamchat_tokens_total", kind="completion"),
        "durations": sample("streamchat_answer_duration_seconds_count"),
        "first": sample("streamchat_answer_first_token_seconds_count"),
        "sends": sample(
            "streamchat_http_request_duration_seconds_count",
            route="message_send",
            method="POST",
            status="200",
        ),
    }
    response = await alice_async.post(
        f"/c/{conversation.pk}/messages", send_data("hi"), headers={"HX-Request": "true"}
    )
    assert response.status_code == 200
    answer = await Message.objects.aget(conversation=conversation, role="assistant")
    stream = await alice_async.get(f"/c/{conversation.pk}/m/{answer.pk}/stream")
    await read_events(stream)
    answer = await wait_until_final(answer.pk)
    assert answer.completion_tokens == 6
    assert sample("streamchat_answers_started_total") == before["started"] + 1
    assert sample("streamchat_answers_total", status="complete") == before["complete"] + 1
    assert sample("streamchat_tokens_total", kind="completion") == before["tokens"] + 6
    assert sample("streamchat_answer_duration_seconds_count") == before["durations"] + 1
    assert sample("streamchat_answer_first_token_seconds_count") == before["first"] + 1
    sends = sample(
        "streamchat_http_request_duration_seconds_count",
        route="message_send",
        method="POST",
        status="200",
    )
    assert sends == before["sends"] + 1
    assert sample("streamchat_open_streams") == 0  # the reader left


@pytest.mark.django_db(transaction=True)
async def test_a_provider_error_is_counted_by_kind(alice_async, conversation, provider):
    retried = ProviderError("server error (503): busy", retryable=True)
    final = ProviderError("auth failed (401): no", user_message="Refused.")
    provider.scripts = [[Fail(retried)], [Fail(final)]]
    server = sample("streamchat_provider_errors_total", kind="server_error")
    auth = sample("streamchat_provider_errors_total", kind="auth_failed")
    errors = sample("streamchat_answers_total", status="error")
    await alice_async.post(
        f"/c/{conversation.pk}/messages", send_data("hi"), headers={"HX-Request": "true"}
    )
    answer = await Message.objects.aget(conversation=conversation, role="assistant")
    assert (await wait_until_final(answer.pk)).status == "error"
    assert sample("streamchat_provider_errors_total", kind="server_error") == server + 1
    assert sample("streamchat_provider_errors_total", kind="auth_failed") == auth + 1
    assert sample("streamchat_answers_total", status="error") == errors + 1


def test_with_a_multiprocess_directory_every_process_is_counted(tmp_path):
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    bump = (
        "from conversations import metrics; "
        "metrics.ANSWERS_STARTED.inc(); metrics.OPEN_STREAMS.inc()"
    )
    for _ in range(2):  # two server processes
        subprocess.run([sys.executable, "-c", bump], env=env, cwd=ROOT, check=True)
    show = "from conversations import metrics; print(metrics.exposition()[0].decode())"
    out = subprocess.run(
        [sys.executable, "-c", show], env=env, cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout
    assert "streamchat_answers_started_total 2.0" in out
    # livesum: a process that exits takes its open streams with it (metrics.py, atexit).
    assert "streamchat_open_streams 0.0" in out


def test_relay_lag_reads_the_redis_entry_ids_clock():
    import time

    from conversations.streaming.redis_relay import entry_age

    assert 1.9 < entry_age(f"{int((time.time() - 2) * 1000)}-0") < 2.5
    assert entry_age(f"{int((time.time() + 5) * 1000)}-3") == 0  # clocks apart: never < 0


@pytest.fixture
async def elsewhere(settings):
    from tests.streams import OtherProcess

    settings.REDIS_URL = os.environ["REDIS_URL"]
    settings.REDIS_PREFIX = f"test-metrics-{os.getpid()}"
    other = OtherProcess()
    yield other
    await other.close()


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="REDIS_URL is not set")
async def test_an_answer_relayed_from_another_process_records_the_relay_lag(
    alice_async, conversation, elsewhere
):
    import asyncio

    from tests.streams import live_answer

    lags = sample("streamchat_relay_lag_seconds_count")
    answer = await live_answer(conversation)
    await elsewhere.say(answer.pk, "Hello")
    response = await alice_async.get(f"/c/{conversation.pk}/m/{answer.pk}/stream")
    reader = asyncio.ensure_future(read_events(response))
    await asyncio.sleep(0.2)
    await elsewhere.say(answer.pk, " there")
    await Message.objects.filter(pk=answer.pk).aupdate(status="complete", content="Hello there")
    await elsewhere.end(answer.pk)
    await asyncio.wait_for(reader, 5)
    assert sample("streamchat_relay_lag_seconds_count") > lags
    assert sample("streamchat_relay_lag_seconds_sum") < 60


def test_an_unknown_http_method_is_one_label(client):
    before = sample(
        "streamchat_http_request_duration_seconds_count",
        route="metrics",
        method="other",
        status="405",
    )
    client.generic("BREW", "/metrics")
    after = sample(
        "streamchat_http_request_duration_seconds_count",
        route="metrics",
        method="other",
        status="405",
    )
    assert after == before + 1
