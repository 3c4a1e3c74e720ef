"""Choosing the model: several endpoints at once, their model lists, the picker, a default.

Two fake servers stand in for the endpoints (tests/upstreams.py): an OpenAI-compatible one
(a local vLLM, say) and Anthropic's, each with its own key, base URL and model list.
"""

from __future__ import annotations

import json
import logging
import re

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import AsyncClient, Client

from conversations.models import ChatPreferences, Conversation, Message
from conversations.providers import catalog, listing
from conversations.services import export
from tests.streams import send_data, wait_until_final
from tests.test_anthropic_provider import FakeAnthropicServer
from tests.test_anthropic_provider import Reply as AnthropicReply
from tests.test_openai_provider import FakeOpenAIServer
from tests.test_openai_provider import Reply as OpenAIReply

LOCAL_KEY = "sk-local-DO-NOT-LEAK-91c3"
CLAUDE_KEY = "sk-ant-DO-NOT-LEAK-77d0"
HTMX = {"HX-Request": "true"}


@pytest.fixture
def local():
    server = FakeOpenAIServer()
    server.models = ["llama-3-8b", "qwen-2"]
    server.replies = [OpenAIReply(deltas=["From ", "llama"])]
    yield server
    server.close()


@pytest.fixture
def claude():
    server = FakeAnthropicServer()
    server.models = ["claude-a", "claude-b", "claude-c"]
    server.replies = [AnthropicReply(deltas=["From ", "claude"])]
    yield server
    server.close()


@pytest.fixture
def endpoints(settings, local, claude, monkeypatch):
    """Two endpoints: the local one offers whatever it lists, Claude an allow-list."""
    monkeypatch.setenv("LOCAL_KEY", LOCAL_KEY)
    settings.CHAT = {
        **settings.CHAT,
        "ENDPOINTS": json.dumps(
            [
                {
                    "id": "local",
                    "kind": "openai",
                    "label": "Local vLLM",
                    "base_url": local.url,
                    "api_key_env": "LOCAL_KEY",
                    "default_model": "llama-3-8b",
                },
                {
                    "id": "claude",
                    "kind": "anthropic",
                    "label": "Claude",
                    "base_url": claude.url,
                    "api_key": CLAUDE_KEY,
                    "models": ["claude-a", "claude-b"],
                },
            ]
        ),
        "MODEL_LIST_TIMEOUT": 2,
    }
    yield
    catalog.reset()


def options(html: str) -> dict[str, str]:
    """The picker's options: value -> what the option says, "(disabled)" when it is."""
    found = {}
    for attrs, text in re.findall(r"<option ([^>]*)>([^<]*)</option>", html):
        value = re.search(r'value="([^"]*)"', attrs).group(1)
        found[value] = text.strip() + (" (disabled)" if " disabled" in attrs else "")
    return found


def selected(html: str) -> str:
    return re.search(r'<option value="([^"]*)" selected', html).group(1)


def picker(client, conversation=None) -> str:
    """The picker once every model list is in (what the page asks for when one was not)."""
    query = f"?conversation={conversation.pk}" if conversation else ""
    response = client.get(f"/models/picker{query}", headers=HTMX)
    assert response.status_code == 200
    return response.content.decode()


def test_the_picker_offers_every_endpoints_models_within_its_allow_list(
    endpoints, alice_client, conversation
):
    html = picker(alice_client, conversation)

    assert options(html) == {
        "local/llama-3-8b": "llama-3-8b",
        "local/qwen-2": "qwen-2",
        "claude/claude-a": "claude-a",
        "claude/claude-b": "claude-b",  # claude-c is listed by the server, but not allowed
    }
    assert 'label="Local vLLM"' in html and 'label="Claude"' in html


def test_a_page_never_waits_for_a_model_list_and_asks_for_it_after(
    endpoints, alice_client, conversation, claude
):
    claude.replies = [AnthropicReply(stall=1.5)]  # unrelated: answers only
    listing.forget()

    page = alice_client.get(f"/c/{conversation.pk}/").content.decode()

    # Not fetched yet: the page shows what configuration says and asks for the picker again.
    assert "(checking…)" in page
    assert f'hx-get="/models/picker?conversation={conversation.pk}"' in page
    assert "claude/claude-a" in page
    assert "(checking…)" not in picker(alice_client, conversation)


def test_no_key_reaches_a_page_or_an_export(endpoints, alice_client, conversation):
    alice_client.post(f"/c/{conversation.pk}/model", {"model": "claude/claude-a"})
    pages = [
        alice_client.get(f"/c/{conversation.pk}/").content.decode(),
        alice_client.get("/").content.decode(),
        picker(alice_client, conversation),
        picker(alice_client),
        "".join(export.export_chunks(export.select(owner=conversation.owner), "jsonl")),
    ]
    assert '"provider":"claude","model":"claude-a"' in pages[-1]

    for html in pages:
        assert LOCAL_KEY not in html and CLAUDE_KEY not in html
        assert "127.0.0.1" not in html  # nor a base URL


def test_an_endpoint_that_is_down_shows_its_models_unavailable(
    endpoints, alice_client, conversation, claude, caplog
):
    claude.models = None  # its model list fails
    caplog.set_level(logging.WARNING, logger="conversations.providers.listing")

    html = picker(alice_client, conversation)
    page = alice_client.get(f"/c/{conversation.pk}/")

    assert page.status_code == 200
    assert options(html)["claude/claude-a"] == "claude-a (unavailable) (disabled)"
    assert options(html)["local/qwen-2"] == "qwen-2"
    response = alice_client.post(
        f"/c/{conversation.pk}/model", {"model": "claude/claude-a"}, headers=HTMX
    )
    assert response.status_code == 400
    assert response.content.decode() == (
        "Claude does not answer right now: its models are unavailable."
    )
    assert "model list failed" in caplog.text
    assert CLAUDE_KEY not in caplog.text


def test_model_lists_are_cached_and_asked_again_after_a_failure(
    endpoints, alice_client, settings, claude, local
):
    picker(alice_client)
    picker(alice_client)
    assert (local.model_lists, claude.model_lists) == (1, 1)  # cached

    settings.CHAT = {**settings.CHAT, "MODEL_LIST_TTL": 0, "MODEL_LIST_RETRY": 0}
    claude.models = None
    picker(alice_client)
    assert "(unavailable)" in picker(alice_client)
    claude.models = ["claude-a", "claude-b"]  # back up: shown again on the next ask

    assert "(unavailable)" not in picker(alice_client)


@pytest.mark.django_db(transaction=True)
async def test_switching_model_mid_conversation_labels_each_answer_with_its_model(
    endpoints, alice, local, claude
):
    client = AsyncClient()
    await client.aforce_login(alice)
    response = await client.post(
        "/c/new/messages", {**send_data("First"), "model": "local/qwen-2"}, headers=HTMX
    )
    assert response.status_code == 200
    conversation = await Conversation.objects.aget(owner=alice)
    first = await wait_until_final(
        (await Message.objects.aget(conversation=conversation, role="assistant")).pk
    )

    response = await client.post(
        f"/c/{conversation.pk}/model", {"model": "claude/claude-b"}, headers=HTMX
    )
    assert response.status_code == 200
    assert "The next answers come from this model." in response.content.decode()
    await client.post(f"/c/{conversation.pk}/messages", send_data("Second"), headers=HTMX)
    second = await wait_until_final(
        (await Message.objects.filter(role="assistant").order_by("-seq").afirst()).pk
    )

    assert (first.provider, first.model, first.content) == ("local", "qwen-2", "From llama")
    assert (second.provider, second.model, second.content) == ("claude", "claude-b", "From claude")
    assert local.requests[-1]["body"]["model"] == "qwen-2"
    assert claude.requests[-1]["body"]["model"] == "claude-b"
    assert local.requests[-1]["headers"]["authorization"] == f"Bearer {LOCAL_KEY}"
    claude_headers = claude.requests[-1]["headers"]  # x-api-key, or a bearer token
    assert CLAUDE_KEY in (claude_headers.get("x-api-key"), claude_headers["authorization"][7:])
    # The second answer's context holds the first answer, written by the other model.
    assert [m["content"] for m in claude.requests[-1]["body"]["messages"]] == [
        "First",
        "From llama",
        "Second",
    ]
    page = (await client.get(f"/c/{conversation.pk}/")).content.decode()
    assert page.count('class="usage-model" title="The model that wrote this answer">qwen-2<') == 1
    assert page.count('class="usage-model" title="The model that wrote this answer">claude-b<') == 1
    assert selected(page) == "claude/claude-b"


@pytest.mark.parametrize(
    ("model", "reason"),
    [
        ("nowhere/model", "Unknown model 'nowhere/model': choose one from the list."),
        ("local/", "Unknown model 'local/': choose one from the list."),
        ("local", "Unknown model 'local': choose one from the list."),
        ("claude/claude-c", "The model 'claude/claude-c' is not offered here."),
        ("local/gpt-5", "Local vLLM has no model 'gpt-5'."),
        (
            "local/" + "x" * 300,
            "A model id can be at most 160 characters.",
        ),
        ("<script>/x", "Unknown model '<script>/x': choose one from the list."),
        ("", "Choose a model."),
    ],
)
def test_a_model_not_on_offer_is_a_400_that_says_why_and_changes_nothing(
    endpoints, alice_client, conversation, model, reason
):
    conversation.provider, conversation.model = "local", "qwen-2"
    conversation.save()

    for headers in (HTMX, {}):
        response = alice_client.post(
            f"/c/{conversation.pk}/model", {"model": model}, **{"headers": headers}
        )
        assert response.status_code == 400
        assert response["Content-Type"].startswith("text/plain")
        assert response.content.decode() == reason
    response = alice_client.post("/me/model", {"model": model}, headers=HTMX)
    assert response.status_code == 400

    conversation.refresh_from_db()
    assert (conversation.provider, conversation.model) == ("local", "qwen-2")
    assert not ChatPreferences.objects.exists()


def test_a_first_send_with_a_model_not_on_offer_stores_nothing(endpoints, alice_client):
    response = alice_client.post(
        "/c/new/messages", {**send_data("Hello"), "model": "claude/claude-c"}, headers=HTMX
    )

    assert response.status_code == 400
    assert response.content.decode() == "The model 'claude/claude-c' is not offered here."
    assert not Conversation.objects.exists()
    assert not Message.objects.exists()


def test_someone_elses_conversation_model_is_a_404(endpoints, conversation, bob):
    client = Client()
    client.force_login(bob)

    response = client.post(f"/c/{conversation.pk}/model", {"model": "local/qwen-2"})

    assert response.status_code == 404
    assert client.get(f"/models/picker?conversation={conversation.pk}").status_code == 404
    conversation.refresh_from_db()
    assert conversation.model == ""


def test_the_default_model_starts_new_chats_until_it_is_taken_off_the_list(
    endpoints, alice_client, alice, settings
):
    response = alice_client.post("/me/model", {"model": "claude/claude-b"}, headers=HTMX)
    assert response.status_code == 200
    assert "New chats start with this model." in response.content.decode()

    assert selected(alice_client.get("/").content.decode()) == "claude/claude-b"
    alice_client.post("/c/new/messages", send_data("Hi"))  # no model: the default
    assert Conversation.objects.get(owner=alice).model_id == "claude/claude-b"

    settings.CHAT = {
        **settings.CHAT,
        "ENDPOINTS": json.dumps([json.loads(settings.CHAT["ENDPOINTS"])[0]]),
    }
    assert selected(alice_client.get("/").content.decode()) == "local/llama-3-8b"


def test_make_default_in_a_conversation_sets_both(endpoints, alice_client, conversation):
    response = alice_client.post(
        f"/c/{conversation.pk}/model",
        {"model": "local/qwen-2", "make_default": "1"},
        headers=HTMX,
    )

    assert "New chats start with this model." in response.content.decode()
    conversation.refresh_from_db()
    assert conversation.model_id == "local/qwen-2"
    assert selected(alice_client.get("/").content.decode()) == "local/qwen-2"


@pytest.mark.django_db(transaction=True)
async def test_an_answer_from_an_endpoint_taken_off_the_list_is_an_error_to_retry(
    endpoints, alice_async, conversation
):
    conversation.provider, conversation.model = "retired", "old-model"
    await conversation.asave()

    await alice_async.post(f"/c/{conversation.pk}/messages", send_data("Hi"), headers=HTMX)
    answer = await wait_until_final(
        (await Message.objects.aget(conversation=conversation, role="assistant")).pk
    )

    assert answer.status == Message.Status.ERROR
    assert answer.error == "This model is no longer offered here: choose another one."
    assert answer.error_id


@pytest.mark.django_db(transaction=True)
async def test_a_conversations_temperature_reaches_the_model(
    endpoints, alice_async, conversation, local
):
    conversation.provider, conversation.model = "local", "qwen-2"
    await conversation.asave()
    await alice_async.post(f"/c/{conversation.pk}/messages", send_data("Hi"), headers=HTMX)
    await wait_until_final((await Message.objects.aget(role="assistant")).pk)
    conversation.temperature = 0.3
    await conversation.asave()

    await alice_async.post(f"/c/{conversation.pk}/messages", send_data("Again"), headers=HTMX)
    await wait_until_final((await Message.objects.filter(role="assistant").alast()).pk)

    assert "temperature" not in local.requests[0]["body"]  # the model's own default
    assert local.requests[1]["body"]["temperature"] == 0.3


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ("{", "CHAT_ENDPOINTS is not valid JSON"),
        ("[]", "CHAT_ENDPOINTS must be a JSON list of endpoints"),
        ('["x"]', "each endpoint must be a JSON object"),
        ('[{"id": "A b", "kind": "openai"}]', "id must be lowercase letters"),
        ('[{"id": "a", "kind": "bard"}]', "kind must be one of openai, anthropic, demo, paced"),
        ('[{"id": "a", "kind": "demo"}, {"id": "a", "kind": "demo"}]', "ids must differ"),
        ('[{"id": "a", "models": ["m"], "default_model": "n"}]', "default_model 'n' is not in"),
        ('[{"id": "a", "api_key": "sk-SECRET", "bogus": 1}]', "unknown keys ['bogus']"),
    ],
)
def test_bad_endpoint_configuration_stops_start_up_saying_what_to_fix(raw, says):
    with pytest.raises(ImproperlyConfigured) as error:
        catalog.endpoints_from_settings({"ENDPOINTS": raw})

    assert says in str(error.value)
    assert "SECRET" not in str(error.value)


def test_without_chat_endpoints_each_key_set_offers_its_endpoint(settings):
    chat = {
        **settings.CHAT,
        "PROVIDER": "anthropic",
        "MODEL": "claude-x",
        "OPENAI_API_KEY": "sk-o",
        "ANTHROPIC_API_KEY": "sk-a",
    }

    found = catalog.endpoints_from_settings(chat)

    assert [(e.id, e.default_model) for e in found] == [
        ("anthropic", "claude-x"),  # CHAT_PROVIDER's, the default
        ("openai", "gpt-4o-mini"),
    ]
    assert catalog.endpoints_from_settings({**chat, "PROVIDER": "demo"})[0].id == "demo"


@pytest.mark.django_db(transaction=True)
async def test_a_first_send_to_an_endpoint_that_is_down_is_kept_and_its_answer_fails_as_usual(
    endpoints, alice_async, claude
):
    claude.models = None
    claude.replies = [AnthropicReply(status=503, error="overloaded")]

    response = await alice_async.post(
        "/c/new/messages", {**send_data("Hello?"), "model": "claude/claude-a"}, headers=HTMX
    )

    assert response.status_code == 200  # the send is stored: nothing is lost
    answer = await wait_until_final((await Message.objects.aget(role="assistant")).pk)
    assert (answer.provider, answer.model) == ("claude", "claude-a")
    assert answer.status == Message.Status.ERROR and answer.error_id
    assert await Message.objects.filter(role="user", content="Hello?").aexists()


def test_a_first_send_with_a_model_its_endpoint_does_not_list_is_refused(endpoints, alice_client):
    picker(alice_client)  # the lists are in

    response = alice_client.post(
        "/c/new/messages", {**send_data("Hello"), "model": "local/gpt-5"}, headers=HTMX
    )

    assert response.status_code == 400
    assert response.content.decode() == "Local vLLM has no model 'gpt-5'."
    assert not Conversation.objects.exists()


@pytest.mark.django_db(transaction=True)
async def test_an_anthropic_endpoint_with_a_thinking_budget_asks_for_extended_thinking(
    endpoints, settings, alice_async, conversation, claude
):
    configured = json.loads(settings.CHAT["ENDPOINTS"])
    configured[1] |= {"thinking_budget": 2048, "max_tokens": 8000}
    settings.CHAT = {**settings.CHAT, "ENDPOINTS": json.dumps(configured)}
    conversation.provider, conversation.model = "claude", "claude-a"
    await conversation.asave()

    await alice_async.post(f"/c/{conversation.pk}/messages", send_data("Hi"), headers=HTMX)
    await wait_until_final((await Message.objects.aget(role="assistant")).pk)

    body = claude.requests[-1]["body"]
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert body["max_tokens"] == 8000


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        ({"kind": "openai", "thinking_budget": 2048}, "for kind anthropic only"),
        ({"kind": "anthropic", "thinking_budget": 100}, "1024 or more, under max_tokens"),
        ({"kind": "anthropic", "thinking_budget": 5000}, "1024 or more, under max_tokens"),
        ({"kind": "anthropic", "thinking_budget": "lots"}, "a whole number of tokens"),
    ],
)
def test_a_bad_thinking_budget_stops_start_up(entry, says):
    with pytest.raises(ImproperlyConfigured, match=says):
        catalog.endpoints_from_settings({"ENDPOINTS": json.dumps([{"id": "a", **entry}])})
